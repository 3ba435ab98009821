#!/usr/bin/env python3
"""Trips and alert latency with a receiver down and N alerts waiting behind it, against the same
figures with an idle outbox, interleaved in one session.

    python3 bench/backlog.py [--backlog 200000] [--repeats 3] [--seconds 15] [--probes 50]
                             [--delivered] [--bin LABEL=PATH ...]

First builds two data directories with the release server (SQLite, cooldown 0s so every hit is
its own alert): "idle" holds a probe token and a trips token; "backlog" holds the same plus a
token whose webhook answers 503, with N hits on its key, each a pending delivery behind the
first one's retry (the script waits until the planner has turned every alert into a delivery).
Then, for each repeat and each mode in turn, it copies the mode's directory, starts the server on
the copy, and measures:
  - trips: wrk posts one-event ingests for the trips token at 8 connections for --seconds, then
    the script checks that the hits stored for that token match the 2xx answers wrk counted;
  - alert latency: --probes one-event ingests for the probe token, one at a time, each timed from
    the ingest's 200 to the webhook's arrival at the loopback receiver.
Prints one line per run and, per mode, the median and spread (min-max) of the repeats, and the
ratio backlog/idle. With --delivered, a third mode runs on the backlog directory with every
delivery marked delivered: the same database size with nothing waiting, which tells the
backlog's cost from the bigger database's. With several --bin (for example an earlier commit's release build and this
one's), each binary gets its own data directories and the runs interleave binary by binary
within each repeat, so a before and an after are measured side by side. Figures only: nothing
here asserts a time.
"""
import argparse, json, os, shutil, sqlite3, subprocess, sys, tempfile, threading, time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alert_latency as al  # the receiver, the event shape and the helpers

ROOT = al.ROOT
BIN = al.BIN
SECRET = al.SECRET
HEADERS = {"content-type": "application/json", "authorization": "Bearer " + SECRET}


def start(data, port, binary):
    env = dict(os.environ, CANARYKEYS_INGEST__SECRET=SECRET, CANARYKEYS_ACCESS__CREATE="open",
               CANARYKEYS_ALERTS__ALLOW_PRIVATE_WEBHOOKS="true", CANARYKEYS_LOG="warn",
               CANARYKEYS_ALERTS__COOLDOWN="0s")
    log = open(os.path.join(os.path.dirname(data), "server.log"), "a")
    proc = subprocess.Popen([binary, "--data-dir", data, "serve", "--listen", f"127.0.0.1:{port}"],
                            env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return proc, base
        except Exception:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def stop(proc):
    proc.terminate()
    proc.wait()


def token(base, memo, webhook):
    body = {"kind": "aws_keys", "memo": memo}
    body["webhook_url" if webhook else "email"] = webhook or "soc@example.com"
    _, out = al.post(base + "/api/v1/tokens", json.dumps(body).encode(),
                     {"content-type": "application/json"})
    doc = json.loads(out)
    return doc["id"], doc["aws"]["access_key_id"]


def waiting_alerts(c):
    """Alerts the planner has not planned yet: rows in `new` before 0023, every row after."""
    try:
        return c.execute("SELECT COUNT(*) FROM alerts WHERE state = 'new'").fetchone()[0]
    except sqlite3.OperationalError:
        return c.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]


def db(data):
    return sqlite3.connect(f"file:{os.path.join(data, 'canarykeys.db')}?mode=ro", uri=True,
                           timeout=30)


def prepare(root, recv_port, backlog, binary):
    """The two data directories under `root`, and each one's keys."""
    keys = {}
    for mode in ("idle", "backlog"):
        data = os.path.join(root, mode, "data")
        os.makedirs(os.path.dirname(data))
        proc, base = start(data, al.free_port(), binary)
        try:
            _, keys["probe"] = token(base, "probe", f"http://127.0.0.1:{recv_port}/hook")
            keys["trips_id"], keys["trips"] = token(base, "trips", None)
            if mode == "backlog":
                _, down = token(base, "down", f"http://127.0.0.1:{recv_port}/down")
                al.queue_backlog(base, down, backlog)
                # Wait for the planner: every alert a delivery, pending behind the first.
                while True:
                    with db(data) as c:
                        new = waiting_alerts(c)
                        pending = c.execute(
                            "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'").fetchone()[0]
                    if new == 0 and pending >= backlog:
                        break
                    time.sleep(1)
                print(f"backlog ready: {pending} pending deliveries behind a receiver that "
                      "answers 503", flush=True)
        finally:
            stop(proc)
        # Each mode keeps its own tokens: the keys differ, so remember them per mode.
        keys[mode] = {"probe": keys.pop("probe"), "trips": keys.pop("trips"),
                      "trips_id": keys.pop("trips_id")}
    return keys


def mark_delivered(data):
    """Nothing waiting, same size: every pending delivery delivered, every lane idle."""
    c = sqlite3.connect(os.path.join(data, "canarykeys.db"))
    c.execute("UPDATE deliveries SET state = 'delivered' WHERE state = 'pending'")
    c.execute("UPDATE delivery_lanes SET next_at = NULL")
    c.commit()
    c.close()


def trips(base, key, secs):
    out = subprocess.run(["wrk", "-t2", "-c8", f"-d{secs}s", "--latency", "-s",
                          "bench/lua/one_event.lua", base], cwd=ROOT, check=True, text=True,
                         capture_output=True, env=dict(os.environ, KEY=key, SECRET=SECRET)).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCH"))
    return dict((k, float(v)) for k, v in (f.split("=") for f in line.split()[1:]))


def latency(base, key, probes):
    answered = {}
    for i in range(probes):
        eid = f"probe-{i}-{time.time_ns()}"
        status, _ = al.post(base + "/ingest/v1/cloudtrail", al.event(key, eid), HEADERS)
        answered[eid] = time.monotonic()
        assert status == 200, status
        with al.arrived:
            al.arrived.wait_for(lambda: eid in al.arrivals, timeout=30)
    lat = [(al.arrivals[e] - t) * 1000 for e, t in answered.items() if e in al.arrivals]
    return al.pct(lat, 50), al.pct(lat, 99), len(answered) - len(lat)


def spread(values):
    v = sorted(values)
    return f"{v[len(v) // 2]:.1f} ({v[0]:.1f}-{v[-1]:.1f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backlog", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--probes", type=int, default=50)
    ap.add_argument("--delivered", action="store_true",
                    help="also run on the backlog directory with nothing waiting")
    ap.add_argument("--bin", action="append", default=[],
                    help="LABEL=PATH of a release binary; default: this checkout's build")
    args = ap.parse_args()
    bins = [tuple(b.split("=", 1)) for b in args.bin] or [("this", BIN)]
    if not args.bin and not os.environ.get("BENCH_NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "-q", "--bin", "canarykeys"], cwd=ROOT,
                       check=True)
    recv_port = al.free_port()
    srv = al.http.server.ThreadingHTTPServer(("127.0.0.1", recv_port), al.Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    root = tempfile.mkdtemp(prefix="bench-backlog-")
    modes = ("idle", "backlog", "delivered") if args.delivered else ("idle", "backlog")
    results = {(label, mode): [] for label, _ in bins for mode in modes}
    try:
        keys = {label: prepare(os.path.join(root, label), recv_port, args.backlog, binary)
                for label, binary in bins}
        print("| repeat | binary | outbox | trips req/s | trips p50 ms | trips p99 ms | "
              "stored/acked | alert p50 ms | alert p99 ms | missing |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in range(args.repeats):
            for label, binary in bins:
                for mode in modes:
                    source = "backlog" if mode == "delivered" else mode
                    k = keys[label][source]
                    run = os.path.join(root, f"run-{label}-{mode}")
                    shutil.copytree(os.path.join(root, label, source), run)
                    data = os.path.join(run, "data")
                    if mode == "delivered":
                        mark_delivered(data)
                    proc, base = start(data, al.free_port(), binary)
                    try:
                        t = trips(base, k["trips"], args.seconds)
                        p50, p99, missing = latency(base, k["probe"], args.probes)
                    finally:
                        stop(proc)
                    acked = int(t["requests"] - t["errors"])
                    with db(data) as c:
                        stored = c.execute("SELECT COUNT(*) FROM hits WHERE token_id = ?",
                                           (k["trips_id"],)).fetchone()[0]
                    shutil.rmtree(run)
                    # wrk counts answered requests; one cut at the end may be stored unanswered.
                    if not acked <= stored <= acked + 8:
                        raise SystemExit(f"stored {stored} hits but wrk counted {acked} answers")
                    results[(label, mode)].append((t["rps"], t["p50_ms"], t["p99_ms"], p50, p99))
                    print(f"| {r + 1} | {label} | {mode} | {t['rps']:.0f} | {t['p50_ms']:.2f} "
                          f"| {t['p99_ms']:.2f} | {stored}/{acked} | {p50:.1f} | {p99:.1f} "
                          f"| {missing} |", flush=True)
        print()
        print("| binary | outbox | trips req/s | trips p50 ms | trips p99 ms | alert p50 ms "
              "| alert p99 ms |")
        print("|---|---|---|---|---|---|---|")
        for (label, mode), rows in results.items():
            cols = list(zip(*rows))
            print(f"| {label} | {mode} | " + " | ".join(spread(c) for c in cols) + " |")
        for label, _ in bins:
            med = lambda mode, i: sorted(x[i] for x in results[(label, mode)])[args.repeats // 2]
            print(f"{label}: backlog/idle (medians): trips req/s "
                  f"{med('backlog', 0) / med('idle', 0):.2f}, trips p50 "
                  f"{med('backlog', 1) / med('idle', 1):.2f}, trips p99 "
                  f"{med('backlog', 2) / med('idle', 2):.2f}, alert p50 "
                  f"{med('backlog', 3) / med('idle', 3):.2f}, alert p99 "
                  f"{med('backlog', 4) / med('idle', 4):.2f}")
    finally:
        srv.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
