#!/usr/bin/env python3
"""A million live tokens: what the server costs to start and hold, how fast it lists them, and
whether trips keep their rate, each beside the same run on a database with none (the floor).

    python3 bench/scale.py [--tokens 1000000] [--seconds 15] [--repeats 3] [--bin PATH]

For the floor (no extra tokens) and then the fleet, on a fresh SQLite directory each:
  1. a release server creates the database and 1,001 tokens through the API (1,000 for trips);
  2. stopped, the fleet example (`cargo run --example fleet`) adds --tokens live tokens through
     the store, sealed with the directory's key, and the CLI makes an API key;
  3. the server is started --repeats times: seconds until /healthz answers (the key index and
     every start-up check come before the listener) and resident memory once it does;
  4. `GET /api/v1/tokens?limit=50`, first and last page by offset, and the last page by cursor
     (`after`, the cursor read from the database), 50 requests each;
  5. `canarykeys token list --format json` beside the running server: seconds to its first
     line and to its end, and its peak memory;
  6. trips (bench/lua/spread.lua over the 1,000 keys) at 8 connections for --seconds, --repeats
     times; after the server stops, the uses stored must match what wrk got 2xx for.
Prints the figures side by side with the ratio fleet/floor. Target of the speed issue: resident
memory at most 20 MiB + 100 B per token, trips within 10 % of the floor, pages in 50 ms. Cleans up.
Figures only: nothing here asserts a time. Needs wrk.
"""
import argparse, json, os, sqlite3, statistics, subprocess, sys, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the Server, wrk and spread helpers)

ROOT = load.ROOT


def build(args):
    if os.environ.get("BENCH_NO_BUILD") != "1":
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "canarykeys-server",
                        "--bin", "canarykeys", "--example", "fleet"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    fleet = os.path.join(target, "release", "examples", "fleet")
    binary = args.bin or os.path.join(target, "release", "canarykeys")
    for path in (binary, fleet):
        if not os.access(path, os.X_OK):
            sys.exit(f"scale.py: {path} is missing; build it or unset BENCH_NO_BUILD")
    return binary, fleet


def api_key(binary, data):
    def cli(*a, stdin=None):
        return subprocess.run([binary, "--data-dir", data, *a], input=stdin, check=True,
                              capture_output=True, text=True).stdout.strip()
    cli("admin", "create-user", "--name", "bench", "--password-stdin",
        stdin="correct horse battery staple\n")
    return cli("admin", "create-api-key", "--user", "bench", "--name", "bench",
               "--per-minute", "1000000", "--scopes", "tokens:read").splitlines()[-1]


def last_cursor(data, total):
    """The cursor (`created_at.id`) of the token just before the last page of 50."""
    con = sqlite3.connect(os.path.join(data, "canarykeys.db"))
    try:
        row = con.execute("SELECT created_at, id FROM tokens ORDER BY created_at DESC, id "
                          "LIMIT 1 OFFSET ?", (max(total - 51, 0),)).fetchone()
    finally:
        con.close()
    return f"{row[0]}.{row[1]}"


def page_ms(server, key, query, n):
    times = []
    url = f"{server.base}/api/v1/tokens?limit=50&{query}"
    for _ in range(n):
        req = urllib.request.Request(url, headers={"authorization": f"Bearer {key}"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as r:
            body = json.load(r)
        times.append((time.perf_counter() - t) * 1000)
        assert len(body["tokens"]) > 0, body
    return body["total"], times


def token_list(binary, data):
    """Seconds to the first line and to the end, and peak memory, of `token list`."""
    t = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "PEAK %M", binary, "--data-dir", data,
                             "token", "list", "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = None
    lines = 0
    for _ in proc.stdout:
        lines += 1
        if first is None:
            first = time.perf_counter() - t
    err = proc.stderr.read()
    proc.wait()
    total = time.perf_counter() - t
    peak = next(int(l.split()[1]) for l in err.splitlines() if l.startswith("PEAK"))
    return first or total, total, peak / 1024, lines


def run(binary, fleet, extra, args):
    server = load.Server(binary, None)
    try:
        req = urllib.request.Request(
            server.base + "/api/v1/tokens", method="POST",
            data=json.dumps({"memo": "bench", "email": "soc@example.com"}).encode(),
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            account = json.load(r)["aws"]["account_id"]
        keys = server.tokens(1000)
        server.stop()
        data = os.path.join(server.dir, "data")
        added = 0.0
        if extra:
            t = time.monotonic()
            out = subprocess.run([fleet, data, str(extra), account], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"scale.py: the fleet example failed:\n{out.stderr}")
            added = time.monotonic() - t
            print(f"    {out.stdout.strip()}", flush=True)
        key = api_key(binary, data)
        starts, rss = [], []
        for i in range(args.repeats):
            if i:
                server.stop()
            starts.append(server.start())
            rss.append(server.rss_mib())
        total, first = page_ms(server, key, "offset=0", 50)
        _, last = page_ms(server, key, f"offset={max(total - 50, 0)}", 50)
        _, cursor = page_ms(server, key, f"after={last_cursor(data, total)}", 50)
        listing = token_list(binary, data)
        rates, p99, acked = [], [], 0
        for _ in range(args.repeats):
            r = load.wrk(server, keys, 8, args.seconds, 0)
            print(f"    {'fleet' if extra else 'floor'} trips {load.fmt(r)}", flush=True)
            rates.append(r["rate"])
            p99.append(r["p99_ms"])
            acked += r["acked"]
        rss_after = server.rss_mib()
        server.stop()
        ok = load.check(server, acked, 8 * args.repeats)
        return dict(total=total, added=added, starts=starts, rss=rss, rss_after=rss_after,
                    first=first, last=last, cursor=cursor, listing=listing, rates=rates, p99=p99, ok=ok)
    finally:
        server.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bin")
    args = ap.parse_args()
    binary, fleet = build(args)
    print(f"scale: {args.tokens:,} extra tokens, trips at 8 connections for {args.seconds} s, "
          f"{args.repeats} repeats", flush=True)
    floor = run(binary, fleet, 0, args)
    big = run(binary, fleet, args.tokens, args)
    print(f"fleet added through the store in {big['added']:.1f} s")
    s = load.spread
    rows = [
        ("tokens", f"{floor['total']:,}", f"{big['total']:,}", ""),
        ("start to /healthz", s(floor["starts"], 2, " s"), s(big["starts"], 2, " s"), ""),
        ("RSS when ready", s(floor["rss"], 1, " MiB"), s(big["rss"], 1, " MiB"),
         f"{(statistics.median(big['rss']) - statistics.median(floor['rss'])) * 1048576 / max(args.tokens, 1):.0f} B/token"),
        ("RSS after trips", f"{floor['rss_after']:.1f} MiB", f"{big['rss_after']:.1f} MiB", ""),
        ("API first page", s(floor["first"], 1, " ms"), s(big["first"], 1, " ms"), ""),
        ("API last page, offset", s(floor["last"], 1, " ms"), s(big["last"], 1, " ms"), ""),
        ("API last page, cursor", s(floor["cursor"], 1, " ms"), s(big["cursor"], 1, " ms"), ""),
        ("token list: first line", f"{floor['listing'][0]:.2f} s", f"{big['listing'][0]:.2f} s", ""),
        ("token list: all", f"{floor['listing'][1]:.2f} s", f"{big['listing'][1]:.2f} s", ""),
        ("token list: peak RSS", f"{floor['listing'][2]:.1f} MiB", f"{big['listing'][2]:.1f} MiB", ""),
        ("trips at 8", s(floor["rates"], 0, "/s"), s(big["rates"], 0, "/s"),
         f"{statistics.median(big['rates']) / statistics.median(floor['rates']):.2f}x"),
        ("trips p99", s(floor["p99"], 2, " ms"), s(big["p99"], 2, " ms"), ""),
    ]
    print(f"{'':24} {'floor':>28} {'fleet':>28}")
    for name, a, b, note in rows:
        print(f"{name:24} {a:>28} {b:>28}  {note}")
    if not (floor["ok"] and big["ok"]):
        sys.exit("scale.py: stored uses did not match what was acknowledged")


if __name__ == "__main__":
    main()
