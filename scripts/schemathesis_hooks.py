"""schemathesis hooks of scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

A token's routes take its manage secret as `Authorization: Bearer`. The document's links carry
the id and the secret from a create to those routes, but schemathesis generates an
`Authorization` value for every operation with a bearer security scheme, and that generated value
wins over the link's. So the hooks remember each created token's secret (and each rotated one)
and send it with any request to that token's routes; a request to an id never created keeps its
generated (wrong) secret and is rightly answered 404.
"""

import json
import re

import schemathesis

SECRETS = {}
TOKEN_ROUTE = re.compile(r"^/tokens/\{id\}")


def _json(response):
    try:
        return json.loads(response.content or b"null")
    except ValueError:
        return None


@schemathesis.hook
def before_call(context, case, kwargs):
    if not TOKEN_ROUTE.match(case.operation.path):
        return
    secret = SECRETS.get(str((case.path_parameters or {}).get("id", "")))
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
