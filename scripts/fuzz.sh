#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS each (default 30), on the stable toolchain
# (`-s none`: no sanitizer, which needs nightly; debug assertions and overflow checks stay on).
# Installs cargo-fuzz when missing. Fails on the first crash, leaving the input in
# fuzz/artifacts/<target>/ (reproduce: cargo fuzz run -s none <target> <file>).
#
# The committed seeds in fuzz/corpus/<target>/ are only read: what the fuzzer learns goes to
# fuzz/work/<target>/ (ignored by git), reused by the next run.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame tcp_options reassembly script)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (cargo install cargo-fuzz)"
    cargo install --locked cargo-fuzz
fi

cargo fuzz build -s none
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/work/$t"
    log="fuzz/work/$t.log"
    echo "fuzz.sh: $t for ${seconds}s"
    if cargo fuzz run -s none "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^#[0-9]+ +DONE|^stat::(number_of_executed_units|new_units_added)' "$log" | sed 's/^/    /'
    else
        grep -E "panicked|ERROR: libFuzzer|^Failing input" -A2 "$log" | head -n 20 | sed 's/^/    /'
        echo "fuzz.sh: $t CRASHED; input in fuzz/artifacts/$t/, log in $log" >&2
        status=1
    fi
done
if [ "$status" -eq 0 ]; then
    echo "fuzz.sh: ${#targets[@]} target(s), ${seconds}s each, no crash"
fi
exit "$status"
