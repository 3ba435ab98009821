#!/usr/bin/env bash
# The GitHub Action's step (action.yml): installs canarykeys for the runner (from the release,
# SHA-256 checked, cached) and plants a per-run decoy, or, with INPUT_CONFIRM=true, closes the
# expected-use window of the decoy planted earlier in the job. Inputs come as INPUT_* variables,
# the run's identity from GitHub's own (GITHUB_REPOSITORY, GITHUB_WORKFLOW, GITHUB_JOB,
# GITHUB_SHA, GITHUB_RUN_ID). Nothing here prints a secret.
set -euo pipefail

die() { echo "::error::$*" >&2; exit 1; }

# The state lives in the job's temp dir: the confirm step finds it, and it goes with the job.
state_dir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/sessions"
export CANARYKEYS_PLANT_STATE="$state_dir/state.json"
export CANARYKEYS_URL="${INPUT_SERVER:?the server input is required}"
export CANARYKEYS_API_KEY="${INPUT_API_KEY:?the api-key input is required}"
echo "::add-mask::$CANARYKEYS_API_KEY"

target_triple() {
  local os arch
  case "$(uname -s)" in
    Linux) os=unknown-linux-musl ;;
    Darwin) os=apple-darwin ;;
    *) die "unsupported runner OS: $(uname -s)" ;;
  esac
  case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) die "unsupported runner architecture: $(uname -m)" ;;
  esac
  echo "$arch-$os"
}

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

# The release archive canarykeys-<version>-<target>.tar.gz, checked against INPUT_SHA256 or
# the release's SHA256SUMS, unpacked once per runner into the tool cache.
install_release() {
  local version="${INPUT_VERSION:?}" target base cache archive want got
  target="$(target_triple)"
  cache="${RUNNER_TOOL_CACHE:-$HOME/.cache}/canarykeys/$version/$target"
  archive="canarykeys-$version-$target.tar.gz"
  # In the runner's temp directory, and gone however this ends (this runs in $(...), a subshell
  # of its own, so its EXIT trap is its own): a bad checksum must not leave the archive behind.
  local parent="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"
  mkdir -p "$parent"
  install_tmp="$(mktemp -d "$parent/canarykeys-install.XXXXXX")"
  trap 'rm -rf "$install_tmp"' EXIT
  local tmp="$install_tmp"
  if [ -x "$cache/canarykeys" ]; then
    # A job on a self-hosted runner can write the tool cache. With a pinned sha256 the cached
    # archive is checked again on every run and the binary is put back from it if it changed;
    # without a pin the cache is trusted (pin sha256 on self-hosted runners).
    if [ -z "${INPUT_SHA256:-}" ]; then
      echo "$cache/canarykeys"
      return
    fi
    if [ -f "$cache/$archive" ] && [ "$(sha256_of "$cache/$archive")" = "$INPUT_SHA256" ]; then
      tar -xzf "$cache/$archive" -C "$tmp"
      local fresh
      fresh="$(find "$tmp" -type f -name canarykeys | head -n1)"
      if ! cmp -s "$fresh" "$cache/canarykeys"; then
        echo "canarykeys: the cached binary differs from its checked archive; putting it back" >&2
        cp "$fresh" "$cache/canarykeys.new"
        chmod 0755 "$cache/canarykeys.new"
        mv "$cache/canarykeys.new" "$cache/canarykeys"
      fi
      echo "$cache/canarykeys"
      return
    fi
  fi
  base="${INPUT_RELEASE_URL:-https://github.com/${ACTION_REPOSITORY:?}/releases/download}/v$version"
  curl -fsSL --retry 3 -o "$tmp/$archive" "$base/$archive" || die "cannot download $base/$archive"
  want="${INPUT_SHA256:-}"
  if [ -z "$want" ]; then
    curl -fsSL --retry 3 -o "$tmp/SHA256SUMS" "$base/SHA256SUMS" || die "cannot download $base/SHA256SUMS"
    want="$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1 }' "$tmp/SHA256SUMS")"
  fi
  got="$(sha256_of "$tmp/$archive")"
  [ -n "$want" ] && [ "$got" = "$want" ] || die "SHA-256 of $archive is $got, expected ${want:-(none listed)}"
  mkdir -p "$cache"
  tar -xzf "$tmp/$archive" -C "$tmp"
  cp "$(find "$tmp" -type f -name canarykeys | head -n1)" "$cache/canarykeys.new"
  chmod 0755 "$cache/canarykeys.new"
  mv "$cache/canarykeys.new" "$cache/canarykeys"
  # Kept beside it, so a run with a pinned sha256 can check the cache again.
  cp "$tmp/$archive" "$cache/$archive.new" && mv "$cache/$archive.new" "$cache/$archive"
  rm -rf "$tmp"
  echo "$cache/canarykeys"
}

bin="${INPUT_BINARY:-}"
if [ -z "$bin" ]; then
  bin="$(install_release)"
fi
[ -x "$bin" ] || die "no canarykeys binary at $bin"

if [ "${INPUT_CONFIRM:-false}" = "true" ]; then
  "$bin" plant --confirm
  exit 0
fi

memo="ci ${GITHUB_REPOSITORY:-?} workflow=${GITHUB_WORKFLOW:-?} job=${GITHUB_JOB:-?} commit=${GITHUB_SHA:-?} run=${GITHUB_RUN_ID:-?}"
args=(plant --memo "$memo" --expires-in "${INPUT_EXPIRES_IN:-6h}")
case "${INPUT_KIND:-session}" in
  session) args+=(--session) ;;
  keys) ;;
  *) die "kind is session or keys" ;;
esac
case "${INPUT_EXPECTED_USE:-none}" in
  none) ;;
  until-confirm) args+=(--expected-use until-confirm) ;;
  *) die "expected-use is none or until-confirm" ;;
esac
[ -n "${INPUT_EMAIL:-}" ] && args+=(--email "$INPUT_EMAIL")
[ -n "${INPUT_WEBHOOK_URL:-}" ] && args+=(--webhook-url "$INPUT_WEBHOOK_URL")

case "${INPUT_TARGET:-credentials}" in
  credentials) "$bin" "${args[@]}" ;;
  # Prefixed (`<PROFILE>_AWS_ACCESS_KEY_ID`), so the job's own AWS_* stay as they are.
  env) "$bin" "${args[@]}" --stdout github-env >>"${GITHUB_ENV:?}" ;;
  *) die "target is credentials or env" ;;
esac

token="$(sed -n 's/.*"token_id": *"\([^"]*\)".*/\1/p' "$CANARYKEYS_PLANT_STATE" | tail -n1)"
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "token-id=$token" >>"$GITHUB_OUTPUT"
fi
