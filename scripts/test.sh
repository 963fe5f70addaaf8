#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need when it is missing,
# then runs every test of the workspace. Usage: scripts/test.sh  (CI runs exactly this.)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: the lab (a private network namespace with a veth pair or a TAP)
# needs iproute2 and ethtool; the kernel's own clients talk to ringstack there (ping, arping,
# curl, nc, iperf3, python3, wrk, ab); tshark checks pcap captures; the adversarial suite sends
# crafted packets with scapy (Debian's python3-scapy, run by /usr/bin/python3), nmap and hping3.
declare -A pkg=(
  [ip]=iproute2 [ethtool]=ethtool [ping]=iputils-ping [arping]=arping [curl]=curl
  [nc]=netcat-openbsd [iperf3]=iperf3 [tshark]=tshark [python3]=python3 [wrk]=wrk
  [ab]=apache2-utils [valgrind]=valgrind [scapy]=python3-scapy [nmap]=nmap [hping3]=hping3
)
need=()
for tool in "${!pkg[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || need+=("${pkg[$tool]}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: installing missing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "scripts/test.sh: missing ${need[*]} and cannot install them (not root, or no apt);"
    echo "  lab tests will skip (or fail under RINGSTACK_REQUIRE_LAB=1)"
  fi
fi

cargo test --workspace --all-targets

# The fuzz targets (their own Cargo workspace): replay the committed corpus and every crash
# found so far, then a deterministic bounded run of each target (installs cargo-fuzz if needed).
(cd fuzz && cargo test)
FUZZ_RUNS=20000 FUZZ_SEED=1 scripts/fuzz.sh

# A quick run of the benchmark harness (no targets enforced), so that it cannot rot.
cargo build --release -p ringstack -p ringstack-bench
"${CARGO_TARGET_DIR:-target}/release/ringstack-bench" --quick
