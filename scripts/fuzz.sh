#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ for a while each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
#
# SECONDS defaults to 600; the targets default to all four (config, list,
# decide, location). FUZZ_SEED fixes libFuzzer's random seed, so a run from
# the committed inputs takes the same path every time (the test script does
# that for its short smoke run). Each target runs on one core, one after another, with its
# corpus in fuzz/corpus/TARGET seeded from fuzz/seeds/TARGET. A crash stops
# the run with the input in fuzz/artifacts/TARGET/; replay it with
# `cargo fuzz run TARGET FILE` and keep it under fuzz/regressions/TARGET/
# (tests/fuzz_regressions.rs replays every file there).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(config list decide location)
fi

bash scripts/ensure-deps.sh
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# cargo-fuzz passes -Z flags (the address sanitizer); a stable toolchain
# accepts them when told it is bootstrapping.
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

cd fuzz
for t in "${targets[@]}"; do
    cargo fuzz build -O "$t"
done
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== fuzz target $t for ${secs}s"
    log="$(mktemp)"
    status=0
    dirs=("corpus/$t" "seeds/$t")
    if [ -d "regressions/$t" ]; then dirs+=("regressions/$t"); fi
    cargo fuzz run -O "$t" "${dirs[@]}" -- -max_total_time="$secs" \
        -print_final_stats=1 -max_len=16384 ${FUZZ_SEED:+-seed="$FUZZ_SEED"} >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb|Done |INFO: seed corpus|#[0-9]+ +DONE)|panicked|SUMMARY|Test unit written' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        echo "fuzz target $t failed: the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    rm -f "$log"
done
