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
[ -n "$db" ] && export CANARYKEYS_DATABASE_URL="$db"
source bench/lib.sh
bench_start
export KEY SECRET=$CANARYKEYS_INGEST__SECRET
KEY=$(bench_token)
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
