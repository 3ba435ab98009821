#!/usr/bin/env bash
# Space per hit on SQLite: records HITS hits of one live token (batches of 1,000 records, each a
# unique eventID, real CloudTrail-sized records), stops the server cleanly (it checkpoints the
# WAL), and divides the database's growth by the number of hits. Prints bytes per hit, the WAL
# left behind, and the split between tables (sqlite's dbstat, when compiled in).
#
#   bash bench/space.sh [HITS, default 20000]
set -euo pipefail
cd "$(dirname "$0")/.."
hits="${1:-20000}"
source bench/lib.sh
db="$work/data/canarykeys.db"
bench_start
key=$(bench_token)
bench_stop
before=$(stat -c %s "$db")
bench_start
KEY=$key HITS=$hits PORT=$port SECRET=$CANARYKEYS_INGEST__SECRET python3 - <<'PY'
import json, os, urllib.request
key, hits, port, secret = os.environ["KEY"], int(os.environ["HITS"]), os.environ["PORT"], os.environ["SECRET"]
for start in range(0, hits, 1000):
    records = [{
        "eventVersion": "1.09", "eventTime": "2026-11-30T10:00:00Z",
        "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2.17.0 md/Botocore#1.34 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.11",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::111111111111:user/x",
                         "accountId": "111111111111", "accessKeyId": key, "userName": "x"},
        "requestParameters": None, "responseElements": None,
        "requestID": f"req-{start + i}", "eventID": f"space-{start + i:08d}", "readOnly": True,
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": "111111111111",
        "eventCategory": "Management", "tlsDetails": {"tlsVersion": "TLSv1.3",
        "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "sts.amazonaws.com"}}
        for i in range(min(1000, hits - start))]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/ingest/v1/cloudtrail",
        data=json.dumps({"Records": records}).encode(), method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {secret}"})
    urllib.request.urlopen(req).read()
PY
bench_stop
after=$(stat -c %s "$db")
wal=$(stat -c %s "$db-wal" 2>/dev/null || echo 0)
stored=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from hits').fetchone()[0])" "$db")
echo "hits stored: $stored (asked $hits)"
echo "database: $before → $after bytes; WAL left after the clean stop: $wal bytes"
python3 -c "print(f'space per hit: {($after - $before) / max($stored, 1):.0f} bytes (hit row, raw record, alert and delivery rows, indexes)')"
python3 - "$db" <<'PY' || true
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
try:
    rows = c.execute("select name, sum(pgsize) from dbstat group by name order by 2 desc limit 8").fetchall()
except sqlite3.Error:
    sys.exit(0)
print("largest tables and indexes:", ", ".join(f"{n} {s // 1024} KiB" for n, s in rows))
PY
