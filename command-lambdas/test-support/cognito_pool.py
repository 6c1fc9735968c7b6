"""Sets up a Cognito user pool on a local moto server, over the real Cognito API (boto3),
and prints tokens it issued, as JSON, for the API's Cognito tests.

Usage: pool.py ENDPOINT

Users: ada (ADMIN), otto (OPERATOR), vera (VIEWER), nemo (no group), each signed in to the
app client `dashboard` (which also lets the dashboard sign people in with their password);
ada also to a second app client. The password they share is printed too. newcomer
(OPERATOR) was created by an administrator with a temporary password (printed as
`temporary`) and has never signed in; the pool asks everyone for a code from an
authenticator app (TOTP), so newcomer sets one up on the way in (the others have none
set up, which moto lets sign in without). `expired` is ada's access token
re-signed with the pool's own key (moto's) with an expiry in the past: a token the pool
issued, an hour later.
"""

import json
import sys
import time

import boto3

endpoint = sys.argv[1]
idp = boto3.client(
    "cognito-idp",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)

pool = idp.create_user_pool(PoolName="chaos-test")["UserPool"]["Id"]
# USER_PASSWORD_AUTH: the dashboard signs people in from the browser with it.
flows = [
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
]
client = idp.create_user_pool_client(
    UserPoolId=pool, ClientName="dashboard", ExplicitAuthFlows=flows
)["UserPoolClient"]["ClientId"]
other = idp.create_user_pool_client(
    UserPoolId=pool, ClientName="elsewhere", ExplicitAuthFlows=flows
)["UserPoolClient"]["ClientId"]
for group in ["ADMIN", "OPERATOR", "VIEWER"]:
    idp.create_group(UserPoolId=pool, GroupName=group)

password = "Chaos-test-password-1"
users = {"ada": "ADMIN", "otto": "OPERATOR", "vera": "VIEWER", "nemo": None}
tokens = {}
for name, group in users.items():
    idp.admin_create_user(UserPoolId=pool, Username=name, MessageAction="SUPPRESS")
    idp.admin_set_user_password(
        UserPoolId=pool, Username=name, Password=password, Permanent=True
    )
    if group:
        idp.admin_add_user_to_group(UserPoolId=pool, Username=name, GroupName=group)
    result = idp.admin_initiate_auth(
        UserPoolId=pool,
        ClientId=client,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": name, "PASSWORD": password},
    )["AuthenticationResult"]
    tokens[name] = {"access": result["AccessToken"], "id": result["IdToken"]}

# A first sign-in to come: created the way the template's pool lets administrators create
# people, with a temporary password, never signed in.
temporary = "Temporary-pass-1"
idp.admin_create_user(
    UserPoolId=pool,
    Username="newcomer",
    TemporaryPassword=temporary,
    MessageAction="SUPPRESS",
)
idp.admin_add_user_to_group(UserPoolId=pool, Username="newcomer", GroupName="OPERATOR")
idp.set_user_pool_mfa_config(
    UserPoolId=pool,
    SoftwareTokenMfaConfiguration={"Enabled": True},
    MfaConfiguration="ON",
)

tokens["other_client"] = idp.admin_initiate_auth(
    UserPoolId=pool,
    ClientId=other,
    AuthFlow="ADMIN_USER_PASSWORD_AUTH",
    AuthParameters={"USERNAME": "ada", "PASSWORD": password},
)["AuthenticationResult"]["AccessToken"]

# The pool's own signing key, as moto keeps it, to make a token that has expired.
from joserfc import jwk, jwt  # noqa: E402
from moto.utilities.utils import load_resource  # noqa: E402

key = jwk.RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))
claims = json.loads(
    __import__("base64").urlsafe_b64decode(
        tokens["ada"]["access"].split(".")[1] + "=="
    )
)
now = int(time.time())
claims["iat"] = claims["auth_time"] = now - 7200
claims["exp"] = now - 3600
tokens["expired"] = jwt.encode({"kid": "dummy", "alg": "RS256"}, claims, key)

print(
    json.dumps(
        {
            "pool": pool,
            "client": client,
            "password": password,
            "temporary": temporary,
            "tokens": tokens,
        }
    )
)
