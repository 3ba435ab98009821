#!/usr/bin/env bash
# The project's test command: `bash scripts/test.sh [extra cargo test args]`.
#
# Works on a fresh Debian 12 machine as root: first installs what the tests need
# and is missing (Chromium + ChromeDriver for the browser test, the AWS CLI that
# the browser test hands the downloaded credentials file to), then runs every
# test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Root needs no sudo; anyone else needs it for apt-get.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi

apt_install() {
  echo "==> apt-get install $*"
  "${SUDO[@]}" apt-get update
  # Wait for another apt/dpkg run (e.g. unattended-upgrades) instead of failing.
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -o DPkg::Lock::Timeout=600 "$@"
}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt_install chromium chromium-driver
fi

if ! command -v aws >/dev/null; then
  if python3 -m pip --version >/dev/null 2>&1; then
    echo "==> python3 -m pip install awscli"
    python3 -m pip install --disable-pip-version-check --no-input \
      --root-user-action=ignore awscli
    # pip puts `aws` in the interpreter's scripts dir, which need not be on PATH
    # (pyenv's shims normally cover it; a plain interpreter's may not).
    scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
    export PATH="$PATH:$scripts_dir"
  else
    # No pip (e.g. Debian's own python3): Debian packages the CLI too.
    apt_install awscli
  fi
fi

# moto's server stands in for S3 and IAM in crates/aws's tests (they fail without it).
if ! command -v moto_server >/dev/null; then
  echo "==> python3 -m pip install 'moto[server]'"
  python3 -m pip install --disable-pip-version-check --no-input \
    --root-user-action=ignore 'moto[server]'
  # Same as for `aws` above: pip's scripts dir need not be on PATH.
  scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  export PATH="$PATH:$scripts_dir"
fi

# aiosmtpd is the real SMTP server crates/server's email tests send to (they fail without it).
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  echo "==> python3 -m pip install aiosmtpd"
  python3 -m pip install --disable-pip-version-check --no-input \
    --root-user-action=ignore aiosmtpd
fi

# chromium's launcher warns on stderr about /dev/shm; only the version matters.
echo "==> using: $(chromium --version 2>/dev/null) | $(chromedriver --version) | $(aws --version 2>&1)"

# Keep the committed Cargo.lock authoritative when there is one.
locked=()
if [ -f Cargo.lock ]; then
  locked=(--locked)
fi
echo "==> cargo test --workspace ${locked[*]} $*"
cargo test --workspace "${locked[@]}" "$@"
