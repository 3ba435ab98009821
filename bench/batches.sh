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
[ -n "$db" ] && export CANARYKEYS_DATABASE_URL="$db"
source bench/lib.sh
bench_start
export KEY SECRET=$CANARYKEYS_INGEST__SECRET RECORDS=1000
KEY=$(bench_token)
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
