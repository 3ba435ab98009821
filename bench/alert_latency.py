#!/usr/bin/env python3
"""Alert latency: time from the ingest's 2xx to the webhook's arrival on a loopback receiver.

    python3 bench/alert_latency.py [--probes 200] [--flood] [--cooldown 0s|default|5m…]
                                   [--backlog N]

Starts the release server (SQLite in a temp dir, cooldown 0s unless --cooldown says otherwise,
private webhooks allowed), a webhook receiver on 127.0.0.1, and a token whose webhook points at
it. Sends one-event ingests one at a time and records, per eventID, when the 200 came back and
when the webhook arrived. With a cooldown, each probe uses a fresh token (a token's later hits
would be gathered into its summary). With --flood, wrk hammers a second token's key at full
speed meanwhile (bench/lua/one_event.lua), and 10 s after the flood ends the script reports the
backlog: alert rows by state and cooldown-window rows. With --backlog N, a token whose webhook
answers 503 (a receiver down) first gets N hits, each an alert waiting behind the first one's
retry, before the probes start (with cooldown 0s).
Prints p50/p99/max in milliseconds. Figures only: nothing here asserts a time.
"""
import argparse, shutil, http.server, json, os, socket, sqlite3, subprocess, sys, tempfile, threading, time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release",
                   "canarykeys")
SECRET = "bench-ingest-secret-0123456789"
arrivals = {}
arrived = threading.Condition()


class Receiver(http.server.BaseHTTPRequestHandler):
    # Keep-alive, as a real receiver would: the server reuses its connections.
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/down":
            # The backlog's receiver: down, so every alert queued for it waits.
            self.send_response(503)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        now = time.monotonic()
        try:
            doc = json.loads(body)
            # The generic schema carries no eventID; each probe puts its id in the user agent.
            event_id = (doc.get("event") or {}).get("user_agent")
        except Exception:
            event_id = None
        with arrived:
            if event_id:
                arrivals.setdefault(event_id, now)
            arrived.notify_all()
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def event(key, event_id):
    return json.dumps({
        "version": "0", "id": event_id, "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.sts", "account": "123456789012", "time": "2026-11-30T10:00:00Z",
        "region": "us-east-1",
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "accessKeyId": key, "accountId": "123456789012",
                             "userName": "bench"},
            "eventTime": "2026-11-30T10:00:00Z", "eventSource": "sts.amazonaws.com",
            "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7", "userAgent": event_id,
            "eventID": event_id, "eventType": "AwsApiCall", "recipientAccountId": "123456789012",
        },
    }).encode()


def queue_backlog(base, key, n, batch=500):
    """N hits on `key`, in CloudTrail files of `batch` records: N alerts for a receiver that is
    down."""
    headers = {"content-type": "application/json", "authorization": "Bearer " + SECRET}
    for start in range(0, n, batch):
        records = [json.loads(event(key, f"backlog-{i}"))["detail"]
                   for i in range(start, min(n, start + batch))]
        status, _ = post(base + "/ingest/v1/cloudtrail", json.dumps({"Records": records}).encode(),
                         headers)
        assert status == 200, status
    print(f"backlog: {n} alerts queued behind a receiver that answers 503", flush=True)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--flood", action="store_true")
    ap.add_argument("--flood-seconds", type=int, default=15)
    ap.add_argument("--backlog", type=int, default=0,
                    help="alerts queued first for a token whose webhook is down")
    ap.add_argument("--cooldown", default="0s",
                    help="alerts.cooldown for the server; 'default' leaves the server's (5m)")
    args = ap.parse_args()
    if not os.environ.get("BENCH_NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "-q", "--bin", "canarykeys"], cwd=ROOT, check=True)

    recv_port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", recv_port), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    work = tempfile.mkdtemp()
    port = free_port()
    env = dict(os.environ, CANARYKEYS_INGEST__SECRET=SECRET, CANARYKEYS_ACCESS__CREATE="open",
               CANARYKEYS_ALERTS__ALLOW_PRIVATE_WEBHOOKS="true", CANARYKEYS_LOG="warn")
    if args.cooldown != "default":
        env["CANARYKEYS_ALERTS__COOLDOWN"] = args.cooldown
    if args.cooldown != "0s":
        # A fresh probe token per probe: creations are not what is measured.
        env["CANARYKEYS_RATE_LIMIT__CREATE_PER_MINUTE"] = "0"
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([BIN, "--data-dir", os.path.join(work, "data"), "serve", "--listen",
                               f"127.0.0.1:{port}"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except Exception:
                time.sleep(0.05)

        def token(memo, webhook):
            body = {"kind": "aws_keys", "memo": memo}
            body["webhook_url" if webhook else "email"] = webhook or "soc@example.com"
            _, out = post(base + "/api/v1/tokens", json.dumps(body).encode(),
                          {"content-type": "application/json"})
            return json.loads(out)["aws"]["access_key_id"]

        probe_key = token("probe", f"http://127.0.0.1:{recv_port}/hook")
        if args.backlog:
            queue_backlog(base, token("down", f"http://127.0.0.1:{recv_port}/down"), args.backlog)
        flood = None
        if args.flood:
            flood_key = token("flooded", None)
            flood = subprocess.Popen(
                ["wrk", "-t2", "-c32", f"-d{args.flood_seconds}s", "-s", "bench/lua/one_event.lua", base],
                cwd=ROOT, env=dict(os.environ, KEY=flood_key, SECRET=SECRET), stdout=subprocess.PIPE, text=True)
            time.sleep(1)  # let the flood reach full speed before probing

        headers = {"content-type": "application/json", "authorization": "Bearer " + SECRET}
        answered = {}
        for i in range(args.probes):
            eid = f"probe-{i}-{time.time_ns()}"
            if args.cooldown != "0s" and i > 0:
                probe_key = token(f"probe {i}", f"http://127.0.0.1:{recv_port}/hook")
            status, _ = post(base + "/ingest/v1/cloudtrail", event(probe_key, eid), headers)
            answered[eid] = time.monotonic()
            assert status == 200, status
            with arrived:
                arrived.wait_for(lambda: eid in arrivals, timeout=30)
        latencies = [(arrivals[e] - t) * 1000 for e, t in answered.items() if e in arrivals]
        missing = len(answered) - len(latencies)
        label = "with a flood on another token" if args.flood else "idle"
        print(f"alert latency ({label}): probes={len(answered)} p50_ms={pct(latencies, 50):.1f} "
              f"p99_ms={pct(latencies, 99):.1f} max_ms={max(latencies):.1f} missing={missing}")
        if flood:
            out, _ = flood.communicate()
            print("flood:", next((l for l in out.splitlines() if l.startswith("BENCH")), out.strip()))
            time.sleep(10)
            db = sqlite3.connect(f"file:{os.path.join(work, 'data', 'canarykeys.db')}?mode=ro", uri=True)
            try:
                states = dict(db.execute("SELECT state, COUNT(*) FROM alerts GROUP BY state").fetchall())
            except sqlite3.OperationalError:
                # 0023 on: the table holds only alerts still to plan.
                states = {"new": db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]}
            try:
                windows = db.execute("SELECT COUNT(*), COALESCE(SUM(hits), 0) FROM alert_windows").fetchone()
            except sqlite3.OperationalError:
                windows = None  # a build from before cooldown windows had rows
            db.close()
            print(f"backlog 10 s after the flood: alerts by state {states}; "
                  f"window rows (rows, hits) {windows}")
    finally:
        server.terminate()
        server.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
