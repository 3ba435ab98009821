#!/usr/bin/env bash
# One-event ingests ("trips"): wrk posts one EventBridge CloudTrail event per request, each with a
# unique eventID, at 1, 8 and 32 connections, first for a live token's key, then for an unknown
# key. Prints requests/s and latency percentiles per run, and checks the hit count afterwards.
#
#   bash bench/trips.sh [SECONDS per run, default 10] [DATABASE_URL, default SQLite in a temp dir]
#
# Needs wrk (Debian package `wrk`). Release build, default settings but for the ingest secret.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
db="${2:-}"
command -v wrk >/dev/null || { echo "trips.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release -q --bin canarykeys
bin_dir=${CARGO_TARGET_DIR:-$PWD/target}/release
bin=$bin_dir/canarykeys
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CANARYKEYS_INGEST__SECRET=bench-ingest-secret-0123456789
export CANARYKEYS_ACCESS__CREATE=open
[ -n "$db" ] && export CANARYKEYS_DATABASE_URL="$db"
"$bin" --data-dir "$work/data" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done
token=$(curl -sf -X POST "http://127.0.0.1:$port/api/v1/tokens" -H 'content-type: application/json' \
  -d '{"kind":"aws_keys","memo":"bench","email":"soc@example.com"}')
export KEY SECRET=$CANARYKEYS_INGEST__SECRET
KEY=$(echo "$token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["aws"]["access_key_id"])')
echo "server pid $pid, release build, ${secs}s per run, database ${db:-SQLite}"
echo "| key | connections | req/s | p50 ms | p99 ms | max ms | errors |"
echo "|---|---|---|---|---|---|---|"
run() {
  local label=$1 conns=$2 threads=$(( $2 < 2 ? 1 : 2 ))
  local line
  line=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s bench/lua/one_event.lua \
    "http://127.0.0.1:$port" | grep '^BENCH')
  # BENCH rps=… p50_ms=… p99_ms=… max_ms=… requests=… errors=…
  eval "${line#BENCH }"
  echo "| $label | $conns | $rps | $p50_ms | $p99_ms | $max_ms | $errors |"
}
for c in 1 8 32; do run live "$c"; done
KEY=AKIAIOSFODNN7EXAMPLE
for c in 1 8 32; do run unknown "$c"; done
echo "server RSS after the runs: $(ps -o rss= -p "$pid" | awk '{printf "%.1f MiB", $1/1024}')"
