#!/usr/bin/env bash
# The fault suite's long run: `bash scripts/faults.sh [KILLS]` (default 20 kills per backend).
# Runs every faults_* test binary, prints each test's `faults:` result line, and those lines are
# what RELIABILITY.md's table records. Needs what scripts/test.sh provides (PostgreSQL at
# CANARYKEYS_TEST_POSTGRES_URL or 127.0.0.1:5432, aiosmtpd, /usr/lib/postgresql/*/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
export CANARYKEYS_FAULT_KILLS="${1:-20}"
export CANARYKEYS_TEST_POSTGRES_URL="${CANARYKEYS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
echo "==> fault suite at $(git rev-parse --short HEAD) on $(date -u +%F), $CANARYKEYS_FAULT_KILLS kills per backend"
for t in faults_kill faults_replicas faults_postgres faults_frozen faults_outage; do
  cargo test --locked -p canarykeys-server --test "$t" -- --nocapture --test-threads=1 2>&1 \
    | grep -E '^faults:|^test |test result' || { echo "==> $t FAILED"; exit 1; }
done
