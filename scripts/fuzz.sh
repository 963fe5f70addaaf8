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
#
# Deterministic mode (what the test suite runs): FUZZ_RUNS=N [FUZZ_SEED=S] scripts/fuzz.sh
# runs exactly N inputs per target from libFuzzer seed S (default 1), starting from the
# committed seeds only, so a pass here is a pass everywhere.
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
    if [ -n "${FUZZ_RUNS:-}" ]; then
        work=$(mktemp -d)
        limit=(-runs="$FUZZ_RUNS" -seed="${FUZZ_SEED:-1}")
        echo "fuzz.sh: $t for $FUZZ_RUNS runs (seed ${FUZZ_SEED:-1})"
    else
        work="fuzz/work/$t"
        limit=(-max_total_time="$seconds")
        echo "fuzz.sh: $t for ${seconds}s"
    fi
    if cargo fuzz run -s none "$t" "$work" "fuzz/corpus/$t" -- \
        "${limit[@]}" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^#[0-9]+ +DONE|^stat::(number_of_executed_units|new_units_added)' "$log" | sed 's/^/    /'
    else
        grep -E "panicked|ERROR: libFuzzer|^Failing input" -A2 "$log" | head -n 20 | sed 's/^/    /'
        echo "fuzz.sh: $t CRASHED; input in fuzz/artifacts/$t/, log in $log" >&2
        status=1
    fi
    if [ -n "${FUZZ_RUNS:-}" ]; then rm -rf "$work"; fi
done
if [ "$status" -eq 0 ]; then
    echo "fuzz.sh: ${#targets[@]} target(s), no crash"
fi
exit "$status"
