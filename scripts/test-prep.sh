#!/usr/bin/env bash
# Prepares this machine for Eddy's tests: build prerequisites and the test runner. Used by
# .ci/run and by the README's test command. Idempotent and quiet when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test-prep: installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi
