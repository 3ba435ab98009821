#!/usr/bin/env bash
# `release` against `dist` (LTO, one codegen unit, stripped): the binary's size, and the cold
# start (exec to the first 200 from /healthz on a fresh SQLite directory) over RUNS starts of
# each, interleaved so that the machine's noise falls on both alike. Prints median and range.
#
#   bash bench/dist.sh [RUNS]      (default 15; builds both profiles first)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-15}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p canarykeys-server --bin canarykeys
cargo build --profile dist -q -p canarykeys-server --bin canarykeys
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
RUNS=$runs WORK=$work RELEASE="$target/release/canarykeys" DIST="$target/dist/canarykeys" python3 - <<'PY'
import os, socket, statistics, subprocess, time, urllib.request

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start_ms(binary, data):
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "--data-dir", data, "serve", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return (time.perf_counter() - t0) * 1000
            except OSError:
                time.sleep(0.001)
    finally:
        proc.terminate(); proc.wait()

bins = {"release": os.environ["RELEASE"], "dist": os.environ["DIST"]}
times = {k: [] for k in bins}
for i in range(int(os.environ["RUNS"])):
    for name, b in bins.items():
        times[name].append(start_ms(b, os.path.join(os.environ["WORK"], f"{name}{i}")))
for name, b in bins.items():
    size = os.path.getsize(b) / (1 << 20)
    t = times[name]
    print(f"{name:8} size {size:6.1f} MiB  cold start median {statistics.median(t):6.1f} ms "
          f"(min {min(t):.1f}, max {max(t):.1f}, {len(t)} runs)")
PY
