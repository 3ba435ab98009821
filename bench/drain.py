#!/usr/bin/env python3
"""Delivery throughput: how fast a backlog of alerts drains to a loopback webhook receiver.

    python3 bench/drain.py [--alerts 5000]

With the server stopped, `canarykeys ingest` stores ALERTS hits of one token whose webhook
points at a receiver on 127.0.0.1 (cooldown 0s: one alert each). Then the release server starts,
and the script measures the time from its start until every webhook has arrived, and the rate.
The receiver is Python (keep-alive, a thread per connection): it may be the slower side.
Figures only: nothing here asserts a time.
"""
import argparse, gzip, http.server, json, os, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alert_latency as al  # noqa: E402

arrived = threading.Condition()
count = [0, None, None]  # arrivals, first, last


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        now = time.monotonic()
        with arrived:
            count[0] += 1
            count[1] = count[1] or now
            count[2] = now
            arrived.notify_all()
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=5000)
    args = ap.parse_args()
    if not os.environ.get("BENCH_NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "-q", "--bin", "canarykeys"], cwd=al.ROOT, check=True)
    recv_port = al.free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", recv_port), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp()
    data = os.path.join(work, "data")
    env = dict(os.environ, CANARYKEYS_ALERTS__COOLDOWN="0s",
               CANARYKEYS_ALERTS__ALLOW_PRIVATE_WEBHOOKS="true", CANARYKEYS_LOG="warn")
    out = subprocess.run([al.BIN, "--data-dir", data, "token", "create", "--memo", "drain",
                          "--webhook-url", f"http://127.0.0.1:{recv_port}/hook"],
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
    try:
        with arrived:
            arrived.wait_for(lambda: count[0] >= args.alerts, timeout=600)
        n, first, last = count
        total = (last or start) - start
        rate = n / max((last or start) - (first or start), 1e-9)
        print(f"drain: alerts={args.alerts} arrived={n} from_start_s={total:.2f} "
              f"first_to_last_per_s={rate:.0f} overall_per_s={n / max(total, 1e-9):.0f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
