#!/usr/bin/env python3
"""Ingest load that cannot flatter: one-event ingests ("trips") or CloudTrail files ("batches")
posted by wrk over a fleet of tokens, each run on a fresh server, repeated, with what was stored
checked against what was acknowledged.

    python3 bench/load.py trips   [--seconds 15] [--repeats 3] [--conns 1,8,32] [--tokens 1000]
    python3 bench/load.py batches [--seconds 15] [--repeats 3] [--conns 1,8] [--records 1000]
        [--flooded] [--sustained SECONDS] [--database-url postgres://…] [--bin PATH]

Each (repeat, connection count) starts a release server on a new SQLite directory (or a new
PostgreSQL database under --database-url), creates --tokens tokens through the API, and runs:
  - live: wrk for --seconds, every record naming one of the tokens' keys in turn;
  - unknown: the same with a key of no token (parse and match, nothing stored): the floor beside
    it, on the same server and database.
The server is then stopped cleanly and the uses it stored (hit rows plus folded uses) are counted
in the database. The run fails (exit 1) unless stored >= acknowledged (wrk's 2xx answers times the
records per request) and stored <= acknowledged + the requests wrk may cut at its end (one per
connection). --flooded adds a row with all the load on one token (flood folding at work: its
figure counts uses, most folded into the window row). --sustained runs one server at 8
connections for that many seconds in 15 s slices and prints each slice, to show whether
throughput holds as the database grows.

Prints one line per run, then per row the median and spread (min-max) of the repeats and the
ratio of live to the floor. Cleans up its directories and databases. Figures only: nothing here
asserts a time. Needs wrk (Debian package `wrk`); with --database-url, psql.
"""
import argparse, concurrent.futures, json, os, shutil, signal, socket, sqlite3, statistics
import subprocess, sys, tempfile, time, urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-ingest-secret-0123456789"
UNKNOWN = "AKIAIOSFODNN7EXAMPLE"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A `canarykeys serve` on a throwaway directory (and database), stopped and cleaned on exit."""

    def __init__(self, binary, database_url, join=None):
        """`join`: another Server on PostgreSQL whose database this one shares (a replica); the
        database is then created and dropped by that one only."""
        self.dir = tempfile.mkdtemp(prefix="ck-load-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db_url = None
        self.owns_db = join is None
        env = dict(os.environ, CANARYKEYS_INGEST__SECRET=SECRET, CANARYKEYS_ACCESS__CREATE="open",
                   CANARYKEYS_RATE_LIMIT__CREATE_PER_MINUTE="0", CANARYKEYS_LOG="warn")
        if join is not None:
            self.admin_url, self.db_name, self.db_url = join.admin_url, join.db_name, join.db_url
            env["CANARYKEYS_DATABASE_URL"] = self.db_url
            # The replicas share one sealing key, as every replica of a deployment must.
            env["CANARYKEYS_ENCRYPTION_KEY_FILE"] = join.key_file()
        elif database_url:
            name = "ck_load_" + os.path.basename(self.dir).replace("-", "_").lower()
            psql(database_url, f"CREATE DATABASE {name}")
            self.admin_url, self.db_name = database_url, name
            self.db_url = urllib.parse.urlparse(database_url)._replace(path="/" + name).geturl()
            env["CANARYKEYS_DATABASE_URL"] = self.db_url
        self.env = env
        self.binary = binary
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.start()

    def start(self):
        """Starts the server on its directory and waits for /healthz; returns the seconds that
        took (the database, the key index and every start-up check come before the listener)."""
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "--data-dir", os.path.join(self.dir, "data"), "serve", "--listen",
             f"127.0.0.1:{self.port}"], env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 600
        while True:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    if self.db_url and self.owns_db:
                        psql(self.admin_url, f"DROP DATABASE IF EXISTS {self.db_name}")
                    sys.exit(f"load.py: the server did not start; see {self.dir}/server.log")
                time.sleep(0.02)

    def tokens(self, n):
        """Creates n tokens through the API; returns their access key ids."""
        return [aws["access_key_id"] for aws in self.created(n)]

    def created(self, n):
        """Creates n tokens through the API; returns their `aws` parts (key, account, user)."""
        body = json.dumps({"kind": "aws_keys", "memo": "bench", "email": "soc@example.com"}).encode()

        def one(_):
            req = urllib.request.Request(self.base + "/api/v1/tokens", data=body, method="POST",
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)["aws"]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(n)))

    def key_file(self):
        """The sealing key the server made on its first start."""
        return os.path.join(self.dir, "data", "secret.key")

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stored(self):
        """Uses the database holds: hit rows plus uses folded into window rows."""
        q = "SELECT (SELECT COUNT(*) FROM hits) + (SELECT COUNT(*) FROM folded_events)"
        if self.db_url:
            return int(psql(self.db_url, q))
        con = sqlite3.connect(os.path.join(self.dir, "data", "canarykeys.db"))
        try:
            return con.execute(q).fetchone()[0]
        finally:
            con.close()

    def close(self):
        try:
            self.stop()
            self.log.close()
            if self.db_url and self.owns_db:
                psql(self.admin_url, f"DROP DATABASE IF EXISTS {self.db_name}")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def psql(url, sql):
    out = subprocess.run(["psql", url, "-XtAq", "-c", sql], check=True, capture_output=True,
                         text=True)
    return out.stdout.strip()


def wrk(server, keys, conns, seconds, records):
    keys_file = os.path.join(server.dir, f"keys-{len(keys)}-{keys[0]}")
    with open(keys_file, "w") as f:
        f.write("\n".join(keys) + "\n")
    env = dict(os.environ, SECRET=SECRET, KEYS_FILE=keys_file, RECORDS=str(records),
               RUN=os.urandom(6).hex())
    cmd = ["wrk", f"-t{1 if conns < 2 else 2}", f"-c{conns}", f"-d{seconds}s", "--timeout", "30s",
           "-s", os.path.join(ROOT, "bench/lua/spread.lua"), server.base]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCH "))
    r = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    per_request = records or 1
    r["acked"] = int(r["requests"] - r["errors"]) * per_request
    r["rate"] = r["acked"] / r["seconds"]
    return r


def fmt(r):
    return (f"{r['rate']:>10,.0f}/s  p50 {r['p50_ms']:.2f}  p99 {r['p99_ms']:.2f}  "
            f"p99.9 {r['p999_ms']:.2f}  max {r['max_ms']:.1f} ms  errors {int(r['errors'])}")


def check(server, acked, slack):
    stored = server.stored()
    ok = acked <= stored <= acked + slack
    print(f"    stored {stored:,} uses for {acked:,} acknowledged "
          f"({'ok' if ok else 'MISMATCH'}, up to {slack:,} cut by wrk may be stored unanswered)",
          flush=True)
    return ok


def spread(values, digits=0, unit=""):
    return (f"{statistics.median(values):,.{digits}f}{unit} "
            f"({min(values):,.{digits}f}-{max(values):,.{digits}f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["trips", "batches"])
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--conns")
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--records", type=int, default=1000, help="records per batch")
    ap.add_argument("--flooded", action="store_true", help="also a row with one token flooded")
    ap.add_argument("--sustained", type=int, default=0, metavar="SECONDS")
    ap.add_argument("--database-url", help="PostgreSQL server URL; a fresh database per run")
    ap.add_argument("--bin", help="a canarykeys binary (default: build and use target/release)")
    args = ap.parse_args()
    if args.seconds < 15:
        print(f"load.py: {args.seconds} s runs are too short for the database to grow; "
              "figures from them are not for BENCHMARKS.md", file=sys.stderr)
    if not shutil.which("wrk"):
        sys.exit("load.py: needs wrk (apt-get install wrk)")
    if args.database_url and not shutil.which("psql"):
        sys.exit("load.py: --database-url needs psql")
    binary = args.bin
    if not binary:
        if not os.environ.get("BENCH_NO_BUILD"):
            subprocess.run(["cargo", "build", "--release", "-q", "-p", "canarykeys-server", "--bin",
                            "canarykeys"], cwd=ROOT, check=True)
        binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                              "release", "canarykeys")
    if not os.access(binary, os.X_OK):
        sys.exit(f"load.py: no binary at {binary}")
    records = 0 if args.mode == "trips" else args.records
    conns = [int(c) for c in (args.conns or ("1,8,32" if records == 0 else "1,8")).split(",")]
    per = records or 1
    print(f"{args.mode}: {args.seconds} s per run, {args.repeats} repeats, {args.tokens} tokens, "
          f"{'PostgreSQL' if args.database_url else 'SQLite'}, "
          f"{per} record(s) per request, binary {binary}", flush=True)
    rows = [("live", n, args.tokens) for n in conns]
    if args.flooded:
        rows.append(("one token flooded", 8, 1))
    results = {}
    failed = False
    for rep in range(1, args.repeats + 1):
        for label, c, ntokens in rows:
            server = Server(binary, args.database_url)
            try:
                keys = server.tokens(ntokens)
                live = wrk(server, keys, c, args.seconds, records)
                floor = wrk(server, [UNKNOWN], c, args.seconds, records)
                rss = server.rss_mib()
                print(f"  repeat {rep} {label:18} {c:>2} conns: {fmt(live)}", flush=True)
                print(f"  repeat {rep} {'unknown key':18} {c:>2} conns: {fmt(floor)}; RSS {rss:.0f} MiB",
                      flush=True)
                server.stop()
                failed |= not check(server, live["acked"], c * per)
                results.setdefault((label, c), []).append((live, floor))
            finally:
                server.close()
    print("\n| row | connections | per second, median (min-max) | floor (unknown key) | "
          "live / floor | p99 ms | p99.9 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    for (label, c), runs in results.items():
        live = [r[0] for r in runs]
        floor = [r[1] for r in runs]
        ratio = [l["rate"] / f["rate"] for l, f in runs]
        print(f"| {label} | {c} | {spread([r['rate'] for r in live])} | "
              f"{spread([r['rate'] for r in floor])} | {spread([x * 100 for x in ratio], 1, ' %')} | "
              f"{spread([r['p99_ms'] for r in live], 2)} | {spread([r['p999_ms'] for r in live], 2)} | "
              f"{spread([r['max_ms'] for r in live], 1)} |", flush=True)
    if args.sustained:
        failed |= not sustained(binary, args, records)
    if failed:
        sys.exit("load.py: what was stored does not match what was acknowledged")


def sustained(binary, args, records):
    """One server, 8 connections, back-to-back 15 s slices: does throughput hold as it grows?"""
    server = Server(binary, args.database_url)
    try:
        keys = server.tokens(args.tokens)
        acked, rates = 0, []
        print(f"\nsustained: {args.sustained} s at 8 connections in 15 s slices", flush=True)
        for i in range(max(1, args.sustained // 15)):
            r = wrk(server, keys, 8, 15, records)
            acked += r["acked"]
            rates.append(r["rate"])
            print(f"  slice {i + 1:>2} ({(i + 1) * 15:>4} s): {fmt(r)}; RSS {server.rss_mib():.0f} MiB",
                  flush=True)
        server.stop()
        size = sum(os.path.getsize(os.path.join(server.dir, "data", f))
                   for f in os.listdir(os.path.join(server.dir, "data")))
        stored = server.stored()
        print(f"  first slice {rates[0]:,.0f}/s, last {rates[-1]:,.0f}/s "
              f"({rates[-1] / rates[0] * 100:.0f} %), data directory {size / 2**20:,.0f} MiB "
              f"after the clean stop's checkpoint: {size / max(stored, 1):,.0f} bytes per stored use",
              flush=True)
        return check(server, acked, 8 * len(rates) * (records or 1))
    finally:
        server.close()


if __name__ == "__main__":
    main()
