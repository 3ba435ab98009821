#!/usr/bin/env bash
# The API contract: schemathesis (PyPI) generates requests from /api/v1/openapi.json and runs them
# against a freshly started server. It fails on any 5xx (not_a_server_error) and on any answer
# that does not match the documented schema (response_schema_conformance), and when an operation
# never gets past 404 (its data never existed, so nothing reached the logic): see the README's
# "The contract fuzzer".
# `bash scripts/schemathesis.sh [extra schemathesis args]`; bounded to about two minutes.
# One worker: CPython 3.11 raises "AST constructor recursion depth mismatch" when hypothesis
# describes strategies from two threads at once (seen in CI as a schemathesis "Runtime Error").
set -euo pipefail
cd "$(dirname "$0")/.."

# 4.32 or later: per-scheme auth and `warnings.fail-on` in scripts/schemathesis.toml.
if ! command -v schemathesis >/dev/null; then
  echo "==> python3 -m pip install schemathesis"
  python3 -m pip install --disable-pip-version-check --no-input \
    --root-user-action=ignore 'schemathesis>=4.32,<5'
  scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  export PATH="$PATH:$scripts_dir"
fi

locked=()
if [ -f Cargo.lock ]; then
  locked=(--locked)
fi
cargo build "${locked[@]}" -p canarykeys-server --bin canarykeys
bin="${CARGO_TARGET_DIR:-target}/debug/canarykeys"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Only this server's settings: none of the caller's CANARYKEYS_* may leak in.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(CANARYKEYS_[^=]*\)=.*/\1/p')
export CANARYKEYS_DATA_DIR="$work/data"
export CANARYKEYS_ACCESS__CREATE=open
# Generated creates come fast from one address; the limiter has its own test.
export CANARYKEYS_RATE_LIMIT__CREATE_PER_MINUTE=100000
export CANARYKEYS_RATE_LIMIT__CREATE_BURST=100000
port="${CANARYKEYS_SCHEMATHESIS_PORT:-18480}"
export CANARYKEYS_LISTEN="127.0.0.1:$port"

echo "correct horse battery" | "$bin" admin create-user --name contract --password-stdin >/dev/null
# The key's create budget would answer most generated creates 429 (its own test covers it).
key="$("$bin" admin create-api-key --user contract --name contract \
  --per-minute 1000000 --live-tokens 1000000 \
  --scopes tokens:write,tokens:read,alerts:read)"

"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if curl -fsS "$base/api/v1/openapi.json" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/server.log"
    exit 1
  fi
  sleep 0.2
done

echo "==> schemathesis $(schemathesis --version 2>/dev/null | tail -n1) against $base"
# Ingest needs a signature schemathesis cannot make, and the deprecated aliases repeat /hits.
export SCHEMATHESIS_API_KEY="$key"
# Sends each created token's manage secret with requests to its routes (see the file).
export SCHEMATHESIS_HOOKS=scripts/schemathesis_hooks.py
# One aws_session token made here, so the session route (which takes a refresh secret that only
# an aws_session create shows) is reached whatever the generated creates turn out to be.
# Its account is the one generated creates are pointed at (the hooks say why).
seeded="$(curl -fsS -X POST "$base/api/v1/tokens" \
  -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"kind":"aws_session","memo":"contract session","email":"soc@example.com"}' |
  python3 -c 'import json,sys; t=json.load(sys.stdin); print(t["id"] + ":" + t["refresh_secret"], t["aws"]["account_id"])')"
SCHEMATHESIS_SESSION_TOKEN="${seeded% *}"
SCHEMATHESIS_ACCOUNT_ID="${seeded##* }"
export SCHEMATHESIS_SESSION_TOKEN SCHEMATHESIS_ACCOUNT_ID
# Kept where SCHEMATHESIS_REPORT_DIR says (to read the exchanges), else removed with the rest.
report="${SCHEMATHESIS_REPORT_DIR:-$work/report}"
status=0
schemathesis --config-file scripts/schemathesis.toml run "$base/api/v1/openapi.json" \
  --url "$base/api/v1" \
  --checks not_a_server_error,response_schema_conformance \
  --exclude-path-regex '^/ingest/' \
  --exclude-deprecated \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
  --max-time "${SCHEMATHESIS_MAX_TIME:-90}" \
  --workers 1 \
  --seed 1 \
  --report har --report-dir "$report" \
  "$@" || status=$?
# Answers per operation, from the recorded exchanges; fails when one never got past 404.
python3 scripts/schemathesis_report.py "$report"/har-*.json "$base/api/v1/openapi.json" || status=1
if [ "$status" -ne 0 ]; then
  echo "==> schemathesis found problems; server log: $work/server.log"
  grep -A30 -m2 "panicked" "$work/server.log" | grep -E "panicked|canarykeys|byte index" \
    || tail -n 20 "$work/server.log"
  exit 1
fi
