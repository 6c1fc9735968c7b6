"""The moto server the tests start, with one addition to its Lambda stub.

moto's docker-less Lambda answers every invocation with the next canned result queued through
POST /moto-api/static/lambda-simple/response, always as a success. A Lambda whose handler fails
answers with the header X-Amz-Function-Error and its error as the payload,
{"errorType": ..., "errorMessage": ...}, which Step Functions turns into an error of that name
for Retry and Catch. Here a queued result of exactly that shape is answered the same way, so
the workflow's error paths run in moto's Step Functions as they would on AWS. Every other
result is answered as moto answers it.

Run as moto_server is: python moto_server.py -H 127.0.0.1 -p PORT (with MOTO_PORT=PORT in the
environment, so that Step Functions calls back into this server for its Lambda tasks).
"""

import json
import sys

from moto.awslambda_simple import models

_invoke = models.LambdaSimpleBackend.invoke


def _invoke_with_errors(self, function_name, qualifier, body, headers, response_headers):
    result = _invoke(self, function_name, qualifier, body, headers, response_headers)
    try:
        answer = json.loads(result)
    except ValueError:
        return result
    if isinstance(answer, dict) and set(answer) == {"errorType", "errorMessage"}:
        response_headers["x-amz-function-error"] = "Unhandled"
    return result


models.LambdaSimpleBackend.invoke = _invoke_with_errors

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
