#!/usr/bin/env python3
"""Answers per API operation in a schemathesis HAR report, and whether each reached the logic.

`python3 scripts/schemathesis_report.py HAR [OPENAPI_JSON_URL_OR_FILE]`

Prints, per documented operation, how many requests it got and their statuses. Exits 1 when an
operation got requests but never a 2xx answer (nothing but 404s means its test data never
existed; nothing but 400/422s that the document lets through invalid data).
The schema comes from the HAR's own request for it when no second argument is given.
"""

import collections
import json
import re
import sys
import urllib.parse
import urllib.request

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def load_document(har, source):
    if source:
        if re.match(r"^https?://", source):
            with urllib.request.urlopen(source) as resp:
                return json.load(resp), source
        with open(source, encoding="utf-8") as f:
            return json.load(f), source
    for entry in har["log"]["entries"]:
        url = entry["request"]["url"]
        if url.split("?")[0].endswith("/openapi.json"):
            with urllib.request.urlopen(url) as resp:
                return json.load(resp), url
    sys.exit("no OpenAPI document: pass its URL or file")


def operations(doc):
    """(method, template, regex) of every documented, non-deprecated operation under the API."""
    ops = []
    for path, item in doc.get("paths", {}).items():
        if path.startswith("/ingest/") or "servers" in item:
            continue
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"
        for method, op in item.items():
            if method in HTTP_METHODS and not op.get("deprecated"):
                ops.append((method.upper(), path, re.compile(pattern)))
    # Literal paths before templated ones: `/tokens/{id}` must not take `/tokens/x/hits`.
    ops.sort(key=lambda o: (o[1].count("{"), -len(o[1])))
    return ops


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        har = json.load(f)
    doc, origin = load_document(har, sys.argv[2] if len(sys.argv) > 2 else None)
    base = urllib.parse.urlparse(doc.get("servers", [{"url": "/"}])[0]["url"]).path.rstrip("/")
    ops = operations(doc)
    counts = {(m, p): collections.Counter() for m, p, _ in ops}
    for entry in har["log"]["entries"]:
        method = entry["request"]["method"].upper()
        path = urllib.parse.urlparse(entry["request"]["url"]).path
        if base and path.startswith(base):
            path = path[len(base):] or "/"
        for m, p, rx in ops:
            if m == method and rx.match(path):
                counts[(m, p)][entry["response"]["status"]] += 1
                break
    failed = []
    print(f"==> answers per operation ({origin})")
    for (method, path), statuses in sorted(counts.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        total = sum(statuses.values())
        ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
        detail = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
        mark = "ok" if ok else ("not run" if not total else "NEVER 2xx")
        print(f"  {method:6} {path:36} {total:5} cases, {ok:5} 2xx  [{detail}]  {mark}")
        # An operation schemathesis did not run (the document itself, say) proves nothing
        # either way; one it ran that never got a 2xx never reached the logic.
        if total and not ok:
            failed.append(f"{method} {path}")
    if failed:
        print("==> these operations never reached the logic (no 2xx answer): " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
