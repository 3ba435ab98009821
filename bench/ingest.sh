#!/usr/bin/env bash
# Ingest throughput and memory: `canarykeys ingest` on generated CloudTrail log files, with the
# release binary, against `--dry-run` (parse and match, nothing stored) and the decode-only floor
# (the `decode_floor` example: gunzip + streaming parse, no matching). Prints wall time, records
# per second and peak RSS of each, for each size. Files are streamed, so any size works.
#
#   bash bench/ingest.sh [RECORDS ...]      (default: 10000 50000)
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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
token=$("$bin" --data-dir "$work/data" token create --memo bench --email soc@example.com)
key=$(echo "$token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["aws"]["access_key_id"])')
echo "| records | file (gzip) | run | wall | records/s | peak RSS |"
echo "|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
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
  size=$(du -h "$work/trail-$n.json.gz" | cut -f1)
  row() { # label, then the command
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out.json"
    read -r wall rss <"$work/time"
    rate=$(python3 -c "print(int($n / max($wall, 0.001)))")
    echo "| $n | $size | $label | ${wall} s | $rate | $((rss / 1024)) MiB |"
  }
  row "decode floor" "$floor" "$work/trail-$n.json.gz"
  row "--dry-run" "$bin" --data-dir "$work/data" ingest --dry-run --json "$work/trail-$n.json.gz"
  row "ingest" "$bin" --data-dir "$work/data" ingest --json "$work/trail-$n.json.gz"
  new=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["new_hits"])' "$work/out.json")
  echo "|  |  | (ingest stored $new new hits) |  |  |  |"
done
