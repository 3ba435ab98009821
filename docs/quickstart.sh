#!/usr/bin/env bash
# The README's quickstart, as one script: start the server with the AWS-compatible sensor, create
# a token, use its key with the real AWS CLI, and see the alert. crates/server/tests/sensor.rs
# runs it on free ports, so the README cannot drift from what works.
#
#   bash docs/quickstart.sh
#
# Settings (all optional): PORT (8080), SENSOR_PORT (4566), DATA_DIR (./data),
# CANARYKEYS (the command that runs the binary; default: cargo run).
set -euo pipefail
PORT="${PORT:-8080}"
SENSOR_PORT="${SENSOR_PORT:-4566}"
DATA_DIR="${DATA_DIR:-./data}"
CANARYKEYS="${CANARYKEYS:-cargo run -q --bin canarykeys --}"
SERVER="http://127.0.0.1:$PORT"
# Prints a Python expression over the JSON document `d` read from stdin.
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

# 1. Start the server, with the sensor on 127.0.0.1:$SENSOR_PORT (its log goes to a file). Its
#    heartbeat key calls the sensor as it would call AWS, so the sensor path proves it is alive.
mkdir -p "$DATA_DIR"
export CANARYKEYS_HEARTBEAT__ENDPOINT_URL="http://127.0.0.1:$SENSOR_PORT"
export CANARYKEYS_HEARTBEAT__EXPECT='["sensor"]'
CANARYKEYS_SENSOR__LISTEN="127.0.0.1:$SENSOR_PORT" CANARYKEYS_ACCESS__CREATE=open \
  $CANARYKEYS serve --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" >"$DATA_DIR/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID' EXIT
until curl -sf "$SERVER/healthz" >/dev/null; do
  kill -0 $SERVER_PID 2>/dev/null || { cat "$DATA_DIR/server.log"; exit 1; }
  sleep 0.2
done

# 2. Create a token: the response has its keys and the manage secret (shown only once).
TOKEN=$(curl -sf -X POST "$SERVER/api/v1/tokens" -H 'content-type: application/json' \
  -d '{"kind":"aws_keys","memo":"quickstart: ~/.aws on my laptop","email":"soc@example.com"}')
ID=$(echo "$TOKEN" | json 'd["id"]')
MANAGE_SECRET=$(echo "$TOKEN" | json 'd["manage_secret"]')

# 3. Download its credentials and config files, as you would plant them in ~/.aws/.
mkdir -p "$DATA_DIR/planted"
for f in credentials config; do
  curl -sf -H "Authorization: Bearer $MANAGE_SECRET" \
    "$SERVER/api/v1/tokens/$ID/credentials?format=$f" >"$DATA_DIR/planted/$f"
done

# 4. Be the intruder: use the key with the real AWS CLI, against the sensor. (`env -u` keeps
#    your own AWS credentials out of it: the CLI reads only the planted files.)
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
  AWS_SHARED_CREDENTIALS_FILE="$DATA_DIR/planted/credentials" \
  AWS_CONFIG_FILE="$DATA_DIR/planted/config" \
  aws sts get-caller-identity --endpoint-url "http://127.0.0.1:$SENSOR_PORT"

# 5. The alert, as the API shows it (and the manage page, and the email or webhook if set).
curl -sf -H "Authorization: Bearer $MANAGE_SECRET" "$SERVER/api/v1/tokens/$ID/alerts" |
  json '"\n".join(" | ".join(str(a[k]) for k in ("event_name", "event_source", "source_ip", "path", "note")) for a in d["alerts"])'

# 6. Proof of life: each detection path's state and latency (also GET /api/v1/detection and the
#    console). The heartbeat's first call is made at start; doctor prints the table.
#    (doctor exits non-zero here: it also warns that local keys are not valid at AWS.)
table() { $CANARYKEYS --data-dir "$DATA_DIR" doctor 2>/dev/null || true; }
until table | grep -q ' sensor  *ok '; do sleep 0.2; done
table | grep -E '^(ACCOUNT|[0-9]{12}) '
