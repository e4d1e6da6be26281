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
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
# rdkafka builds its bundled librdkafka with make and zlib (never install librdkafka-dev: too old).
command -v make >/dev/null 2>&1 || need+=(make)
[ -f /usr/include/zlib.h ] || need+=(zlib1g-dev)
# The dashboard's browser test: Debian's chromium driven by playwright-core under Node.js.
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
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

# tansu, a Kafka-protocol broker, for the Kafka backend's tests (each test starts its own).
# Built once (about 10 minutes on 2 cores) and kept in ~/.cargo/bin.
if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  echo "test-prep: installing tansu 0.6.0 (about 10 minutes, once)"
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql >/dev/null
fi

# The browser tests' packages, pinned by their package-lock.json: playwright-core (no browser
# download: it drives /usr/bin/chromium) for the dashboard, and with hls.js and dash.js for the
# players. Installed again when the lock file changes.
for browser_dir in crates/eddy-admin/tests/browser crates/eddy/tests/browser; do
  if ! cmp -s "$browser_dir/package-lock.json" "$browser_dir/node_modules/.package-lock.json.installed"; then
    echo "test-prep: installing the npm packages of $browser_dir"
    (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null \
      && cp package-lock.json node_modules/.package-lock.json.installed)
  fi
done

# RabbitMQ: the machine's broker on 127.0.0.1:5672 serves the RabbitMQ tests in a vhost of their
# own, emptied at every run (tests that restart a broker start a private node instead).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! port_open 5672; then
  echo "test-prep: starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  rabbitmqctl -q await_startup --timeout 120 >/dev/null
fi
rabbitmqctl -q delete_vhost eddy-test >/dev/null 2>&1 || true
rabbitmqctl -q add_vhost eddy-test >/dev/null
rabbitmqctl -q set_permissions -p eddy-test guest ".*" ".*" ".*" >/dev/null
