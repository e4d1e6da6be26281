#!/usr/bin/env bash
# The test command: prepare the machine, then run every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-prep.sh
exec cargo nextest run --workspace --no-fail-fast "$@"
