#!/usr/bin/env python3
"""Delivery throughput: how fast a backlog of alerts drains to a loopback webhook receiver.

    python3 bench/drain.py [--alerts 5000] [--streams]

With the server stopped, `canarykeys ingest` stores ALERTS hits of one token whose webhook
points at a receiver on 127.0.0.1 (cooldown 0s: one alert each). Then the release server starts,
and the script measures the time from its start until every webhook has arrived, and the rate.

`--streams` also configures every stream (`[streams.*]`, `tokens = "all"`) against receivers on
127.0.0.1: syslog over TCP (octet-counted frames counted as they arrive), Splunk HEC (events
counted per request body), Elastic `_bulk` (answered item by item), OCSF and PagerDuty (one
request per alert). The time is then until the webhook and every stream have all the alerts.

The receivers are Python (keep-alive, a thread per connection): they may be the slower side.
Figures only: nothing here asserts a time.
"""
import argparse, shutil, gzip, http.server, json, os, socket, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alert_latency as al  # noqa: E402

arrived = threading.Condition()
# Per sink: [records, first arrival, last arrival].
counts = {}


def record(sink, n):
    now = time.monotonic()
    with arrived:
        c = counts.setdefault(sink, [0, None, None])
        c[0] += n
        c[1] = c[1] or now
        c[2] = now
        arrived.notify_all()


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        answer = b""
        if self.path.startswith("/hec"):
            # HEC events are JSON objects one after another.
            record("splunk_hec", body.count(b'"sourcetype":'))
        elif self.path.endswith("/_bulk"):
            ids = [json.loads(l)["create"]["_id"] for l in body.splitlines()[0::2] if l.strip()]
            items = [{"create": {"_id": i, "status": 201}} for i in ids]
            answer = json.dumps({"took": 1, "errors": False, "items": items}).encode()
            record("elastic", len(ids))
        elif self.path.startswith("/ocsf"):
            record("ocsf", 1)
        elif self.path.startswith("/pd"):
            record("pagerduty", 1)
        else:
            record("webhook", 1)
        self.send_response(200 if answer else 204)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def syslog_receiver(listener):
    """Counts RFC 6587 octet-counted frames on each connection."""
    def serve(conn):
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            n = 0
            while True:
                space = buf.find(b" ")
                if space < 0:
                    break
                length = int(buf[:space])
                if len(buf) < space + 1 + length:
                    break
                buf = buf[space + 1 + length:]
                n += 1
            if n:
                record("syslog", n)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=5000)
    ap.add_argument("--streams", action="store_true", help="also send every alert to every stream")
    args = ap.parse_args()
    if not os.environ.get("BENCH_NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "-q", "--bin", "canarykeys"], cwd=al.ROOT, check=True)
    recv_port = al.free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", recv_port), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{recv_port}"
    work = tempfile.mkdtemp()
    data = os.path.join(work, "data")
    env = dict(os.environ, CANARYKEYS_ALERTS__COOLDOWN="0s",
               CANARYKEYS_ALERTS__ALLOW_PRIVATE_WEBHOOKS="true", CANARYKEYS_LOG="warn")
    sinks = ["webhook"]
    if args.streams:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        threading.Thread(target=syslog_receiver, args=(listener,), daemon=True).start()
        streams = {
            "SYSLOG": {"ADDRESS": f"tcp://127.0.0.1:{listener.getsockname()[1]}"},
            "SPLUNK_HEC": {"URL": f"{base}/hec/services/collector/event", "TOKEN": "bench-hec"},
            "ELASTIC": {"URL": f"{base}/es", "API_KEY": "YmVuY2g6YmVuY2g="},
            "OCSF": {"URL": f"{base}/ocsf"},
            "PAGERDUTY": {"URL": f"{base}/pd", "ROUTING_KEY": "benchroutingkey0123456789abcdef0"},
        }
        for kind, keys in streams.items():
            keys["TOKENS"] = "all"
            for key, value in keys.items():
                env[f"CANARYKEYS_STREAMS__{kind}__{key}"] = value
            sinks.append(kind.lower())
    out = subprocess.run([al.BIN, "--data-dir", data, "token", "create", "--memo", "drain",
                          "--webhook-url", f"{base}/hook"],
                         env=env, check=True, capture_output=True, text=True).stdout
    key = json.loads(out)["aws"]["access_key_id"]
    records = [json.loads(al.event(key, f"drain-{i}"))["detail"] for i in range(args.alerts)]
    trail = os.path.join(work, "trail.json.gz")
    with gzip.open(trail, "wt") as f:
        json.dump({"Records": records}, f)
    subprocess.run([al.BIN, "--data-dir", data, "ingest", trail], env=env, check=True,
                   capture_output=True)
    port = al.free_port()
    log = open(os.path.join(work, "server.log"), "w")
    start = time.monotonic()
    server = subprocess.Popen([al.BIN, "--data-dir", data, "serve", "--listen", f"127.0.0.1:{port}"],
                              env=env, stdout=log, stderr=log)
    done = lambda: all(counts.get(s, [0])[0] >= args.alerts for s in sinks)  # noqa: E731
    try:
        with arrived:
            arrived.wait_for(done, timeout=600)
        last_all = max((counts.get(s, [0, None, start])[2] or start) for s in sinks)
        print(f"drain: alerts={args.alerts} streams={'on' if args.streams else 'off'} "
              f"all_done_from_start_s={last_all - start:.2f}")
        for s in sinks:
            n, first, last = counts.get(s, [0, None, None])
            total = (last or start) - start
            rate = n / max((last or start) - (first or start), 1e-9)
            print(f"  {s}: arrived={n} from_start_s={total:.2f} first_to_last_per_s={rate:.0f} "
                  f"overall_per_s={n / max(total, 1e-9):.0f}")
    finally:
        server.terminate()
        server.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
