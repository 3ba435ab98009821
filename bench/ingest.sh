#!/usr/bin/env bash
# Ingest throughput and memory: `canarykeys ingest` on generated CloudTrail log files, with the
# release binary, against `--dry-run` (parse and match, nothing stored) and the decode-only floor
# (the `decode_floor` example: gunzip + streaming parse, no matching). Prints wall time, records
# per second and peak RSS of each, for each size: the median and spread (min-max) of REPEATS
# runs (default 5), each on a fresh data directory, and the ratio of ingest to --dry-run. Each
# ingest must store exactly the matching half as new hits, or the script fails. Files are
# streamed, so any size works.
#
#   [REPEATS=5] bash bench/ingest.sh [RECORDS ...]      (default: 10000 50000)
#
# Half of the records use a token's key (so they are matched and stored as hits, one
# transaction per file); the other half belong to unknown keys. Files are gzipped, as in a
# trail's bucket. Needs python3 and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 50000)
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build --release -q -p canarykeys-server --bin canarykeys
  cargo build --release -q -p canarykeys-core --example decode_floor
fi
bin_dir=${CARGO_TARGET_DIR:-$PWD/target}/release
bin=$bin_dir/canarykeys
floor=$bin_dir/examples/decode_floor
for b in "$bin" "$floor"; do
  [ -x "$b" ] || { echo "ingest.sh: $b is missing; build it with cargo build --release -p canarykeys-server --bin canarykeys and cargo build --release -p canarykeys-core --example decode_floor (or run without BENCH_NO_BUILD)" >&2; exit 1; }
done
repeats=${REPEATS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| records | file (gzip) | run | wall, median (min-max) | records/s | peak RSS, median |"
echo "|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  : >"$work/times"
  for r in $(seq 1 "$repeats"); do
    data="$work/data-$n-$r"
    token=$("$bin" --data-dir "$data" token create --memo bench --email soc@example.com)
    key=$(echo "$token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["aws"]["access_key_id"])')
    python3 - "$n" "$key" "$work/trail-$n.json.gz" <<'PY'
import gzip, json, sys
n, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
recs = []
for i in range(n):
    recs.append({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": key if i % 2 == 0 else "AKIAIOSFODNN7EXAMPLE",
                         "userName": "bench", "accountId": "123456789012"},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0 Python/3.11", "requestID": "r%d" % i, "eventID": "bench-%d-%d" % (n, i),
        "readOnly": True, "eventType": "AwsApiCall", "recipientAccountId": "123456789012",
    })
with gzip.open(out, "wt") as f:
    json.dump({"Records": recs}, f)
PY
    timed() { # label, then the command; appends "label wall rss" to the times file
      local label=$1; shift
      /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out.json"
      echo "$label $(cat "$work/time")" >>"$work/times"
    }
    timed floor "$floor" "$work/trail-$n.json.gz"
    timed dry "$bin" --data-dir "$data" ingest --dry-run --json "$work/trail-$n.json.gz"
    timed ingest "$bin" --data-dir "$data" ingest --json "$work/trail-$n.json.gz"
    new=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["new_hits"])' "$work/out.json")
    if [ "$new" != "$((n / 2 + n % 2))" ]; then
      echo "ingest.sh: run $r stored $new new hits for $((n / 2 + n % 2)) matching records" >&2
      exit 1
    fi
    rm -rf "$data"
  done
  size=$(du -h "$work/trail-$n.json.gz" | cut -f1)
  python3 - "$n" "$size" "$work/times" <<'PY'
import statistics, sys
n, size, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
runs = {}
for line in open(path):
    label, wall, rss = line.split()
    runs.setdefault(label, []).append((float(wall), int(rss)))
names = {"floor": "decode floor", "dry": "--dry-run", "ingest": "ingest"}
for label in ("floor", "dry", "ingest"):
    walls = [w for w, _ in runs[label]]
    med = statistics.median(walls)
    rss = statistics.median(r for _, r in runs[label]) / 1024
    print(f"| {n} | {size} | {names[label]} | {med:.2f} s ({min(walls):.2f}-{max(walls):.2f}) "
          f"| {n / max(med, 0.001):,.0f} | {rss:.0f} MiB |")
ratios = [i / d for (i, _), (d, _) in zip(runs["ingest"], runs["dry"])]
print(f"|  |  | ingest / --dry-run | {statistics.median(ratios):.2f}x "
      f"({min(ratios):.2f}-{max(ratios):.2f}); every run stored its {n - n // 2:,} matching "
      f"records as new hits |  |  |")
PY
done
