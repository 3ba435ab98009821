#!/usr/bin/env bash
# Batches: wrk posts CloudTrail log files of 1,000 records each (every record a live token's key,
# each with a unique eventID) at 1 and 8 connections; then the same with an unknown key, the
# floor that parses and matches but stores nothing. Prints events/s and latency per run.
#
#   bash bench/batches.sh [SECONDS per run, default 10] [DATABASE_URL, default SQLite in a temp dir]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
db="${2:-}"
command -v wrk >/dev/null || { echo "batches.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release -q --bin canarykeys
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/canarykeys
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
export KEY SECRET=$CANARYKEYS_INGEST__SECRET RECORDS=1000
KEY=$(echo "$token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["aws"]["access_key_id"])')
echo "server pid $pid, release build, ${secs}s per run, database ${db:-SQLite}, 1,000 records per request"
echo "| key | connections | requests/s | events/s | p50 ms | p99 ms | max ms | errors |"
echo "|---|---|---|---|---|---|---|---|"
run() {
  local label=$1 conns=$2 threads=$(( $2 < 2 ? 1 : 2 ))
  local line
  line=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 30s --latency -s bench/lua/batch.lua \
    "http://127.0.0.1:$port" | grep '^BENCH')
  eval "${line#BENCH }"
  echo "| $label | $conns | $rps | $events_per_s | $p50_ms | $p99_ms | $max_ms | $errors |"
}
for c in 1 8; do run live "$c"; done
KEY=AKIAIOSFODNN7EXAMPLE
for c in 1 8; do run unknown "$c"; done
echo "server RSS after the runs: $(ps -o rss= -p "$pid" | awk '{printf "%.1f MiB", $1/1024}')"
