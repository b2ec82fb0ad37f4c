#!/usr/bin/env bash
# Our decimal conversion (fib_math::decimal) against num-bigint's own
# BigUint::to_string, on F(n) of 10^3 .. 10^7 digits, in one interleaved run;
# prints one markdown table of medians, then (with valgrind) a table of
# one-thread instruction counts, which the machine's load does not move.
#
# Usage: scripts/decimal-vs-library.sh [DIGITS...]   (default: 1000 10000 100000 1000000 10000000)
#
# Env:
#   REPS                samples per figure, each figure is their median (default 7)
#   CALLGRIND_MAX       largest DIGITS counted under callgrind (default 1000000;
#                       10^7 takes about ten minutes there; 0 skips callgrind)
#
# Methods (see fib-math/examples/decimal_vs_library.rs): ours on one thread,
# ours on two threads, num-bigint's to_string; and F(n) with its digits as
# the server computes it (fibonacci_decimal_threads(n, 2), powers of ten
# computed while the doubling runs) against fibonacci_threads(n, 2).to_string().
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REPS="${REPS:-7}"
CALLGRIND_MAX="${CALLGRIND_MAX:-1000000}"
if [ "$#" -gt 0 ]; then
    SIZES=("$@")
else
    SIZES=(1000 10000 100000 1000000 10000000)
fi

log() { echo "decimal-vs-library: $*" >&2; }

log "building the decimal_vs_library example (release)"
cargo build --release --quiet -p fib-math --example decimal_vs_library
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
BIN="$TARGET_DIR/release/examples/decimal_vs_library"
NUM_BIGINT="$(grep -A1 '^name = "num-bigint"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"

log "timing (REPS=$REPS, interleaved)"
TSV="$("$BIN" --reps "$REPS" "${SIZES[@]}")"

echo "Wall time, median of $REPS interleaved samples; num-bigint $NUM_BIGINT; $(nproc) cores."
echo
echo "| digits | n | ours 1 thread ms | ours 2 threads ms | to_string ms | to_string / ours 1 | to_string / ours 2 | F(n) digits, ours ms | F(n) then to_string ms | ratio |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
echo "$TSV" | tail -n +2 | while IFS=$'\t' read -r digits n o1 o2 lib r1 r2 f2 f2lib rf; do
    echo "| $digits | $n | $o1 | $o2 | $lib | $r1 | $r2 | $f2 | $f2lib | $rf |"
done

if [ "$CALLGRIND_MAX" = 0 ] || ! command -v valgrind >/dev/null; then
    log "no callgrind table (CALLGRIND_MAX=0 or valgrind missing)"
    exit 0
fi
# Instructions of the conversion alone: callgrind collects only inside
# measured_call, on the thread that calls it; so only one-thread conversions
# are counted (a helper thread's work would be missed).
count() {
    local out
    out="$(mktemp)"
    valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
        --toggle-collect='*measured_call*' "$BIN" --once "$1" "$2" >/dev/null 2>&1
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
    rm -f "$out"
}
echo
echo "Instructions of one conversion on one thread (valgrind --tool=callgrind)."
echo
echo "| digits | ours 1 thread | to_string | to_string / ours 1 |"
echo "|---:|---:|---:|---:|"
for digits in "${SIZES[@]}"; do
    if [ "$digits" -gt "$CALLGRIND_MAX" ]; then
        continue
    fi
    log "callgrind: $digits digits"
    o1="$(count ours1 "$digits")"
    lib="$(count lib "$digits")"
    ratio="$(python3 -c "print(f'{$lib / $o1:.3f}')")"
    echo "| $digits | $o1 | $lib | $ratio |"
done
