#!/usr/bin/env bash
# Prepares this machine for Eddy's tests: installs the system packages they need (cmake for
# pingora's build), and starts the local services the later tests talk to if they are down.
# Used by .ci/run and by the README's test command. Idempotent and quiet when all is in place.
set -euo pipefail

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test-prep: installing ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  echo "test-prep: installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi
