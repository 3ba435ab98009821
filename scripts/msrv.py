#!/usr/bin/env python3
"""MSRV check: the toolchain is at least the workspace's `rust-version`, and no locked dependency
built for this host declares a `rust-version` above ours, so the code and its dependencies still
build with that older Rust. Cheap: reads `cargo metadata`, compiles nothing."""

import json
import os
import re
import subprocess
import sys


def key(version):
    """`1.85` and `1.85.0` compare equal; a pre-release suffix is ignored."""
    parts = [int(re.match(r"\d+", p).group()) for p in version.split("-")[0].split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    rustc = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    fields = dict(line.split(": ", 1) for line in rustc.splitlines() if ": " in line)
    cmd = ["cargo", "metadata", "--format-version", "1", "--filter-platform", fields["host"]]
    if os.path.exists("Cargo.lock"):
        cmd.append("--locked")
    meta = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    members = set(meta["workspace_members"])
    ours = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
    if len(ours) != 1 or None in ours:
        sys.exit(f"every workspace member takes the workspace rust-version; found {sorted(map(str, ours))}")
    msrv = ours.pop()
    print(f"==> MSRV {msrv}; rustc {fields['release']}")
    if key(fields["release"]) < key(msrv):
        sys.exit(f"rustc {fields['release']} is older than the workspace rust-version {msrv}")

    deps = [p for p in meta["packages"] if p["id"] not in members]
    too_new = sorted(
        f"{p['name']} {p['version']} needs Rust {p['rust_version']}"
        for p in deps
        if p.get("rust_version") and key(p["rust_version"]) > key(msrv)
    )
    if too_new:
        sys.exit(f"dependencies need a newer Rust than our MSRV {msrv}:\n  " + "\n  ".join(too_new))
    print(f"==> all {len(deps)} dependencies build with Rust {msrv}")


if __name__ == "__main__":
    main()
