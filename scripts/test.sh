#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need when it is missing,
# then runs every test of the workspace. Usage: scripts/test.sh  (CI runs exactly this.)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use (tshark checks that our pcap files parse).
# Lab packages (iproute2, ping, curl, nc, iperf3, python3) are added here as the lab lands.
need=()
command -v tshark >/dev/null 2>&1 || need+=(tshark)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: installing missing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "scripts/test.sh: missing ${need[*]} and cannot install (not root or no apt); tests needing them will skip"
  fi
fi

cargo test --workspace --all-targets
