#!/usr/bin/env bash
# A/B of two release binaries, interleaved (base, new, base, new) in one session, so machine drift
# hits both alike: one-event trips (bench/load.py trips, 15 s per run over 1,000 tokens) and alert latency, idle and with
# another token flooded.
#
#   bash bench/ab.sh BASE_DIR NEW_DIR   # each a directory holding release/canarykeys
#
# Build each with `CARGO_TARGET_DIR=DIR cargo build --release --bin canarykeys` in a checkout of
# the commit to compare. Figures only: nothing here asserts a time.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench/ab.sh BASE_DIR NEW_DIR}
new=${2:?usage: bench/ab.sh BASE_DIR NEW_DIR}
for d in "$base" "$new"; do
  [ -x "$d/release/canarykeys" ] || { echo "ab.sh: no $d/release/canarykeys" >&2; exit 1; }
done
dir() { if [ "$1" = base ]; then echo "$base"; else echo "$new"; fi; }
for round in 1 2; do
  for v in base new; do
    echo "=== trips $v round $round"
    python3 bench/load.py trips --seconds 15 --repeats 1 --bin "$(dir $v)/release/canarykeys"
  done
done
for v in base new base new; do
  echo "=== alert_latency idle $v"
  BENCH_NO_BUILD=1 CARGO_TARGET_DIR=$(dir $v) python3 bench/alert_latency.py --probes 200
  echo "=== alert_latency flood $v"
  BENCH_NO_BUILD=1 CARGO_TARGET_DIR=$(dir $v) python3 bench/alert_latency.py --probes 100 --flood --flood-seconds 15 --cooldown default
done
echo BENCH-DONE
