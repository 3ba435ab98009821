#!/usr/bin/env python3
"""Two replicas on one PostgreSQL database under the trips load: combined throughput, what was
stored against what was acknowledged, and duplicated alerts (there must be none).

    python3 bench/replicas.py [--database-url postgres://postgres@127.0.0.1:5432/postgres]
        [--seconds 15] [--repeats 3] [--conns 8] [--tokens 1000] [--bin PATH]

Each repeat makes a fresh database; replica A creates it and the tokens through the API, replica
B joins it with the same sealing key. wrk then runs against both at once (--conns each, the
same spread of the tokens' keys, so both replicas see uses of every token and race for each
token's alert and cooldown window); the floor is one server alone at --conns on its own fresh
database, in the same repeat. After both stop, the uses stored (hit rows plus folded uses) must
match the 2xx answers, and the duplicates are counted:
  - alert rows per hit (one by construction: the alert row shares the hit's id);
  - deliveries per (message, channel), and hits per event id (unique in the schema: a check
    that it stays so);
  - tokens alerted more than once: the default cooldown (5 min) outlasts a run, so each token's
    first use alerts once and every other use, on either replica, is summarized.
Prints one line per run and the median and spread. Figures only: nothing here asserts a time.
Needs wrk and psql. Cleans up its directories and databases.
"""
import argparse, os, statistics, subprocess, sys, threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402

DUPLICATES = {
    "deliveries per (message, channel) above one":
        "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM deliveries "
        "GROUP BY message_id, channel HAVING COUNT(*) > 1) d",
    # The default cooldown (5 min) outlasts a run: each token alerts once and its other uses
    # are summarized, whichever replica stored them. (The alerts table keeps only alerts still
    # to plan, so the messages themselves are counted.)
    "tokens alerted more than once":
        "SELECT COUNT(*) FROM (SELECT token_id FROM deliveries WHERE kind = 'hit' "
        "GROUP BY token_id HAVING COUNT(DISTINCT message_id) > 1) t",
    "hits per event id above one":
        "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM hits "
        "GROUP BY event_id HAVING COUNT(*) > 1) h",
}


def both(servers, keys, conns, seconds):
    """wrk against every server at once; returns their results in order."""
    out = [None] * len(servers)

    def run(i):
        out[i] = load.wrk(servers[i], keys, conns, seconds, 0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(servers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--conns", type=int, default=8, help="connections per replica")
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--bin")
    args = ap.parse_args()
    for tool in ("wrk", "psql"):
        if not load.shutil.which(tool):
            sys.exit(f"replicas.py: needs {tool}")
    binary = args.bin
    if not binary:
        if not os.environ.get("BENCH_NO_BUILD"):
            subprocess.run(["cargo", "build", "--release", "-q", "-p", "canarykeys-server",
                            "--bin", "canarykeys"], cwd=load.ROOT, check=True)
        binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(load.ROOT, "target")),
                              "release", "canarykeys")
    if not os.access(binary, os.X_OK):
        sys.exit(f"replicas.py: no binary at {binary}")
    print(f"replicas: {args.seconds} s per run, {args.repeats} repeats, {args.tokens} tokens, "
          f"{args.conns} connections per replica, PostgreSQL, binary {binary}", flush=True)
    rates, floors, failed = [], [], False
    for rep in range(1, args.repeats + 1):
        alone = load.Server(binary, args.database_url)
        try:
            floor = load.wrk(alone, alone.tokens(args.tokens), args.conns, args.seconds, 0)
            alone.stop()
            failed |= not load.check(alone, floor["acked"], args.conns)
        finally:
            alone.close()
        a = load.Server(binary, args.database_url)
        b = None
        try:
            keys = a.tokens(args.tokens)
            b = load.Server(binary, None, join=a)
            ra, rb = both([a, b], keys, args.conns, args.seconds)
            a.stop()
            b.stop()
            acked = ra["acked"] + rb["acked"]
            rate = ra["rate"] + rb["rate"]
            print(f"  repeat {rep} one server   : {load.fmt(floor)}", flush=True)
            print(f"  repeat {rep} two replicas : {rate:>10,.0f}/s  (A {load.fmt(ra)}; "
                  f"B {load.fmt(rb)})", flush=True)
            failed |= not load.check(a, acked, 2 * args.conns)
            for what, sql in DUPLICATES.items():
                n = int(load.psql(a.db_url, sql))
                print(f"    {what}: {n}{'' if n == 0 else '  DUPLICATES'}", flush=True)
                failed |= n != 0
            rates.append(rate)
            floors.append(floor["rate"])
        finally:
            if b is not None:
                b.close()
            a.close()
    print("\n| row | uses/s, median (min-max) |")
    print("|---|---|")
    print(f"| one server, {args.conns} connections | {load.spread(floors)} |")
    print(f"| two replicas, {args.conns} connections each | {load.spread(rates)} |")
    print(f"| two / one | {load.spread([r / f * 100 for r, f in zip(rates, floors)], 0, ' %')} |")
    if failed:
        sys.exit("replicas.py: stored uses did not match, or an alert was duplicated")


if __name__ == "__main__":
    main()
