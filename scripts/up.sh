#!/usr/bin/env bash
# Build Eddy (release) and run `eddy up`: demo origin, shield, three edges, router, control plane and
# dashboard on loopback, on one embedded bus. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh
exec cargo run --release --locked -p eddy -- up "$@"
