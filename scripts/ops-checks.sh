#!/usr/bin/env bash
# Checks of what ships beside the binary (run by .ci/run before the tests):
#   - every systemd unit in deploy/systemd passes `systemd-analyze verify`, and every service
#     scores at most 2.5 in `systemd-analyze security --offline=true`;
#   - the container smoke test (scripts/container.sh) when podman is present;
#   - the book builds and its internal links resolve (scripts/check-book.py).
# Usage: bash scripts/ops-checks.sh [BINARY]   (default: a debug build)
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-}"
if [ -z "$bin" ]; then
  cargo build -p canarykeys-server --bin canarykeys
  bin="$PWD/target/debug/canarykeys"
fi

echo "==> systemd units"
if ! command -v systemd-analyze >/dev/null; then
  echo "systemd: SKIPPED (systemd-analyze is not installed)"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # verify runs `man` for Documentation=man:…: give it our generated page.
  mkdir -p "$tmp/man/man1"
  "$bin" man > "$tmp/man/man1/canarykeys.1"
  for unit in deploy/systemd/*.service deploy/systemd/*.timer; do
    [ -e "$unit" ] || continue
    name="$(basename "$unit")"
    # A template is checked as one instance of it; ExecStart points at the binary just built.
    case "$name" in *@.*) name="${name/@./@ci.}" ;; esac
    sed "s|/usr/local/bin/canarykeys|$bin|g" "$unit" > "$tmp/$name"
  done
  for unit in "$tmp"/*.service "$tmp"/*.timer; do
    [ -e "$unit" ] || continue
    MANPATH="$tmp/man" SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$unit"
    echo "verify $(basename "$unit"): ok"
  done
  for unit in "$tmp"/*.service; do
    [ -e "$unit" ] || continue
    score="$(systemd-analyze security --offline=true "$unit" 2>&1 |
      sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')"
    echo "security $(basename "$unit"): $score"
    python3 -c "import sys; sys.exit(0 if float('$score') <= 2.5 else 1)" || {
      echo "FAILED: $(basename "$unit") scores $score, above 2.5"; exit 1; }
  done
fi

echo "==> container smoke test"
bash scripts/container.sh smoke "$bin"

echo "==> the book"
if command -v mdbook >/dev/null; then
  rm -rf target/book
  mdbook build docs/book -d "$PWD/target/book"
  python3 scripts/check-book.py target/book
else
  echo "book: SKIPPED (mdbook is not installed; .ci/run installs it)"
fi
