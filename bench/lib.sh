# Shared by the bench scripts (sourced, not run): a release build, a throwaway data directory, a
# free port, and a `canarykeys serve` on it with the ingest secret and open token creation.
#
#   source bench/lib.sh; bench_start; key=$(bench_token)

[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release -q --bin canarykeys
# BENCH_BIN: another binary (an A/B run keeps both under /tmp).
bin=${BENCH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/canarykeys}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CANARYKEYS_INGEST__SECRET=bench-ingest-secret-0123456789
export CANARYKEYS_ACCESS__CREATE=open
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT

# Starts the server (again, on the same data, when called twice) and waits for /healthz.
bench_start() {
  "$bin" --data-dir "$work/data" serve --listen "127.0.0.1:$port" >>"$work/server.log" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
}

# Stops it cleanly (SIGTERM: in-flight requests finish and the WAL is checkpointed).
bench_stop() {
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}

# Creates a token, keeps its id and manage secret in $work/token.json, and prints its access key
# id.
bench_token() {
  curl -sf -X POST "http://127.0.0.1:$port/api/v1/tokens" -H 'content-type: application/json' \
    -d '{"kind":"aws_keys","memo":"bench","email":"soc@example.com"}' >"$work/token.json"
  python3 -c 'import json,sys; print(json.load(sys.stdin)["aws"]["access_key_id"])' <"$work/token.json"
}

# Prints how many hits the server has stored for the token bench_token made.
bench_hits() {
  local id secret
  id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <"$work/token.json")
  secret=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["manage_secret"])' <"$work/token.json")
  curl -sf -H "Authorization: Bearer $secret" "http://127.0.0.1:$port/api/v1/tokens/$id" |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("alert_count") or 0)'
}
