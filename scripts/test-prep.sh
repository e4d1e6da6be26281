#!/usr/bin/env bash
# Prepares this machine for Eddy's tests: build prerequisites and the test runner. Used by
# .ci/run and by the README's test command. Idempotent and quiet when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh

# Brokers the bus backends are tested against. Each test starts its own server process on an
# ephemeral port, so only the binaries are needed here.
need=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "test-prep: installing ${need[*]}"
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test-prep: installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi
