#!/usr/bin/env bash
# Build Eddy (release) and run `eddy up`: the demo origin and an edge on loopback. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh
exec cargo run --release --locked -p eddy -- up "$@"
