"""schemathesis hooks of scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

A token's routes take its manage secret as `Authorization: Bearer`. The document's links carry
the id and the secret from a create to those routes, but schemathesis generates an
`Authorization` value for every operation with a bearer security scheme, and that generated value
wins over the link's. So the hooks remember each created token's secret (and each rotated one)
and send it with any request to that token's routes; a request to an id never created keeps its
generated (wrong) secret and is rightly answered 404. The session route takes an `aws_session`
token's refresh secret instead, shown once by the create: the hooks keep that too. Generated
creates make an `aws_session` token only now and then, so the script makes one first
(SCHEMATHESIS_SESSION_TOKEN, `id:refresh-secret`), and every other request to the session route
with an id nobody created goes to that token instead, so the route's logic is reached in every
run while the rest still test unknown ids.

A create may name the decoy account to mint in, and only the accounts this server mints in are
taken: a runtime fact the document does not publish (a public list of decoy accounts would mark
their keys). So a generated 12-digit account becomes the server's own (SCHEMATHESIS_ACCOUNT_ID),
and the create reaches the logic instead of a 422 that says nothing about the schema.
"""

import itertools
import json
import os
import re

import schemathesis

SECRETS = {}
REFRESH_SECRETS = {}
TOKEN_ROUTE = re.compile(r"^/tokens/\{id\}")
SESSION_ROUTE = "/tokens/{id}/session"
SEEDED = os.environ.get("SCHEMATHESIS_SESSION_TOKEN", "")
if ":" in SEEDED:
    _id, _secret = SEEDED.split(":", 1)
    REFRESH_SECRETS[_id] = _secret
    SEEDED_ID = _id
else:
    SEEDED_ID = None
TURN = itertools.cycle([True, False])
ACCOUNT = os.environ.get("SCHEMATHESIS_ACCOUNT_ID", "")
TWELVE_DIGITS = re.compile(r"^\s*[0-9]{12}\s*$")


def _json(response):
    try:
        return json.loads(response.content or b"null")
    except ValueError:
        return None


@schemathesis.hook
def before_call(context, case, kwargs):
    if (case.operation.method.upper(), case.operation.path) == ("POST", "/tokens"):
        body = case.body
        account = body.get("account_id") if isinstance(body, dict) else None
        if ACCOUNT and isinstance(account, str) and TWELVE_DIGITS.match(account):
            body["account_id"] = ACCOUNT
        return
    if not TOKEN_ROUTE.match(case.operation.path):
        return
    session = case.operation.path == SESSION_ROUTE
    known = REFRESH_SECRETS if session else SECRETS
    token_id = str((case.path_parameters or {}).get("id", ""))
    if session and SEEDED_ID and token_id not in known and next(TURN):
        case.path_parameters = dict(case.path_parameters or {}, id=SEEDED_ID)
        token_id = SEEDED_ID
    secret = known.get(token_id)
    if secret is not None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {secret}"


@schemathesis.hook
def after_call(context, case, response):
    path, method = case.operation.path, case.operation.method.upper()
    if response.status_code not in (200, 201):
        return
    if (method, path) in (("POST", "/tokens"), ("POST", "/tokens/{id}/manage-secret")):
        body = _json(response)
        if isinstance(body, dict) and body.get("id") and body.get("manage_secret"):
            SECRETS[str(body["id"])] = body["manage_secret"]
        if isinstance(body, dict) and body.get("id") and body.get("refresh_secret"):
            REFRESH_SECRETS[str(body["id"])] = body["refresh_secret"]
