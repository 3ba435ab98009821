#!/usr/bin/env bash
# Fuzz every decoder of outside bytes: `bash scripts/fuzz.sh [seconds per target] [target …]`.
#
# CI runs it with a short time (a smoke run that keeps the targets building and catches shallow
# crashes); RELIABILITY.md records long runs. The corpus is seeded from the real CloudTrail corpus
# in testdata/cloudtrail (the vendored corpus). A crash leaves its input under
# fuzz/artifacts/<target>/ and fails this script; turn each into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-20}"
shift || true

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

seed_dir() {
  local target=$1 dir="fuzz/corpus/$1"
  mkdir -p "$dir"
  # Committed seeds: raw files per target, and for webhook_url a list of URLs, one a line, each
  # written twice behind the target's flag byte ('0': private addresses refused, '1': allowed).
  if [ -d "fuzz/seeds/$target" ]; then
    cp -n fuzz/seeds/"$target"/* "$dir"/ 2>/dev/null || true
  fi
  if [ -f "fuzz/seeds/$target.txt" ]; then
    local n=0 line flag
    while IFS= read -r line; do
      n=$((n + 1))
      for flag in 0 1; do
        printf '%s%s' "$flag" "$line" >"$dir/seed-list-$n-$flag"
      done
    done <"fuzz/seeds/$target.txt"
  fi
  local shared=testdata/cloudtrail
  [ -d "$shared" ] || return 0
  case "$target" in
    cloudtrail_parse | awslogs_layers | cloudtrail_stream)
      # Copy at most a few hundred real files (the small ones: libFuzzer's default max_len).
      find "$shared" -type f \( -name '*.json' -o -name '*.gz' -o -name '*.ndjson' \) -size -64k |
        sort | head -n 300 | while read -r f; do
          cp -n "$f" "$dir/seed-$(sha1sum "$f" | cut -c1-16)" 2>/dev/null || true
        done
      ;;
  esac
}

for target in "${targets[@]}"; do
  seed_dir "$target"
  echo "==> cargo +nightly fuzz run $target (${secs}s)"
  log="fuzz/last-$target.log"
  mkdir -p fuzz/artifacts
  rc=0
  (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1 || rc=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)' "$log" || true
  if [ "$rc" -ne 0 ]; then
    echo "fuzz.sh: $target failed (exit $rc); the end of its log:" >&2
    tail -n 40 "$log" >&2
    ls fuzz/artifacts/"$target"/ 2>/dev/null >&2 || true
    exit 1
  fi
done
echo "fuzz.sh: ${#targets[@]} targets ran ${secs}s each without a failure"
