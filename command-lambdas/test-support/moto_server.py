"""The moto server the tests start, with two changes that make it behave as AWS does.

1. DynamoDB writes are atomic. moto serves each request on a thread of its own and checks a
   write's condition, then writes, with nothing held in between; two conditional writes of
   the same item at once can both pass. DynamoDB evaluates a condition and writes atomically,
   which is what optimistic concurrency (one winner per stream version) and the target claims
   rely on. Every DynamoDB write here holds one lock.

2. Lambda functions can fail. moto's docker-less Lambda answers every invocation with the next
   canned result queued through POST /moto-api/static/lambda-simple/response, always as a
   success. A Lambda whose handler fails answers with the header X-Amz-Function-Error and its
   error as the payload, {"errorType": ..., "errorMessage": ...}, which Step Functions turns
   into an error of that name for Retry and Catch. Here a queued result of exactly that shape
   is answered the same way, so the workflow's error paths run in moto's Step Functions as
   they would on AWS. Every other result is answered as moto answers it.

3. Step Functions executes state machines, as it does on AWS (moto only records executions
   unless told otherwise), and Lambda answers docker-less: set once here, for every test, so
   that no test depends on which one configured the server first.

Run as moto_server is: python moto_server.py -H 127.0.0.1 -p PORT (with MOTO_PORT=PORT in the
environment, so that Step Functions calls back into this server for its Lambda tasks).
"""

import json
import sys
import threading

from moto.awslambda_simple import models
from moto.dynamodb.models import DynamoDBBackend

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


def _atomic(write):
    def locked(*args, **kwargs):
        with _DYNAMODB_WRITES:
            return write(*args, **kwargs)

    return locked


_DYNAMODB_WRITES = threading.RLock()
for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

from moto.core.config import default_user_config

default_user_config["stepfunctions"]["execute_state_machine"] = True
default_user_config["lambda"]["use_docker"] = False

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
