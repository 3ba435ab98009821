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

# check-jsonschema validates the GitHub Action (action.yml) and the GitLab CI template against
# their published schemas (bundled with it: no network).
if ! command -v check-jsonschema >/dev/null; then
  echo "==> python3 -m pip install check-jsonschema"
  python3 -m pip install --disable-pip-version-check --no-input \
    --root-user-action=ignore check-jsonschema
  scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  export PATH="$PATH:$scripts_dir"
fi
echo "==> check-jsonschema: action.yml, deploy/ci/gitlab-plant.yml"
check-jsonschema --builtin-schema vendor.github-actions action.yml
check-jsonschema --builtin-schema vendor.gitlab-ci deploy/ci/gitlab-plant.yml
# rsyslog is the real syslog receiver of crates/server's streams_syslog test (UDP, TCP, and TLS
# through its gtls driver, from rsyslog-gnutls); openssl makes that test's certificates.
if ! command -v rsyslogd >/dev/null || ! command -v openssl >/dev/null \
  || ! ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1; then
  apt_install rsyslog rsyslog-gnutls openssl
fi

# chromium's launcher warns on stderr about /dev/shm; only the version matters.
echo "==> using: $(chromium --version 2>/dev/null) | $(chromedriver --version) | $(aws --version 2>&1)"

# PostgreSQL: every test reads CANARYKEYS_TEST_POSTGRES_URL (an admin URL; each test creates and
# drops its own database there). Given, it is used as is. Otherwise the machine's server on
# 127.0.0.1:${PGPORT:-5432} is used when it answers; else a throwaway cluster is started (its own data
# directory under a temp dir, its own port, trust auth) and stopped on exit.
pg_stop=()
cleanup() {
  if [ "${#pg_stop[@]}" -gt 0 ]; then
    "${pg_stop[@]}" >/dev/null 2>&1 || true
  fi
  if [ -n "${pg_tmp:-}" ]; then
    rm -rf "$pg_tmp"
  fi
}
trap cleanup EXIT
start_throwaway_postgres() {
  local bin port run_as=()
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  if [ -z "$bin" ]; then
    apt_install postgresql
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  fi
  port="${CANARYKEYS_TEST_PG_PORT:-55432}"
  pg_tmp="$(mktemp -d)"
  # initdb refuses to run as root: run the cluster as the postgres (or nobody) user.
  if [ "$(id -u)" -eq 0 ]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    chown "$user" "$pg_tmp"
    run_as=(runuser -u "$user" --)
  fi
  echo "==> starting a throwaway PostgreSQL ($bin) on 127.0.0.1:$port in $pg_tmp"
  "${run_as[@]}" "$bin/initdb" -D "$pg_tmp/data" -U postgres --auth=trust >"$pg_tmp/initdb.log"
  pg_stop=("${run_as[@]}" "$bin/pg_ctl" -D "$pg_tmp/data" -m immediate stop)
  "${run_as[@]}" "$bin/pg_ctl" -D "$pg_tmp/data" -l "$pg_tmp/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_tmp" start
  export CANARYKEYS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}
if [ -z "${CANARYKEYS_TEST_POSTGRES_URL:-}" ]; then
  local_port="${PGPORT:-5432}"
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p "$local_port"; then
    export CANARYKEYS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$local_port/postgres"
  else
    start_throwaway_postgres
  fi
fi
echo "==> PostgreSQL for the tests: $CANARYKEYS_TEST_POSTGRES_URL"

# Keep the committed Cargo.lock authoritative when there is one.
locked=()
if [ -f Cargo.lock ]; then
  locked=(--locked)
fi
echo "==> cargo test --workspace ${locked[*]} $*"
cargo test --workspace "${locked[@]}" "$@"

# The API contract against a running server (bounded; see the script).
bash scripts/schemathesis.sh
