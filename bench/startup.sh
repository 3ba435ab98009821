#!/usr/bin/env bash
# Cold start and idle memory: starts `canarykeys serve` on a fresh SQLite data directory RUNS
# times (default 10) and prints, per run, the milliseconds from exec to the first 200 from
# /healthz, then the median, and the server's resident memory after 2 s idle with one token.
#
#   bash bench/startup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
source bench/lib.sh
RUNS=$runs BIN=$bin WORK=$work python3 - <<'PY'
import os, statistics, subprocess, time, urllib.request, socket, json

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

times = []
for i in range(int(os.environ["RUNS"])):
    port = free_port()
    data = os.path.join(os.environ["WORK"], f"run{i}")
    t0 = time.perf_counter()
    proc = subprocess.Popen([os.environ["BIN"], "--data-dir", data, "serve", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.001)
    times.append((time.perf_counter() - t0) * 1000)
    if i == 0:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/tokens", method="POST",
            data=json.dumps({"kind": "aws_keys", "memo": "bench", "email": "soc@example.com"}).encode(),
            headers={"content-type": "application/json"})
        urllib.request.urlopen(req).read()
        time.sleep(2)
        idle = rss_mib(proc.pid)
    proc.terminate(); proc.wait()
print("cold start to a 200 from /healthz (ms):", ", ".join(f"{t:.1f}" for t in times))
print(f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms over {len(times)} runs (fresh database each)")
print(f"idle RSS with one token, 2 s after start: {idle:.1f} MiB")
PY
