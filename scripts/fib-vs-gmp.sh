#!/usr/bin/env bash
# Time F(n) with its decimal digits in fib-rpc (common::fibonacci_decimal)
# and, when gmpy2 is available, in GMP (str(gmpy2.fib(n))) on the same n in
# the same run, and print one markdown table with the ratio.
#
# Usage: scripts/fib-vs-gmp.sh [N...]   (default: 1000 10000 100000 1000000 10000000)
#
# Env:
#   FIB_RPC_PYTHON  python that has (or may get) gmpy2; default python3. If it
#                   cannot import gmpy2 and the venv target/pika-venv exists,
#                   gmpy2 is pip-installed there and its python is used.
#   REPS            samples per figure, each figure is their median (default 7)
#   THREADS         threads for fib-rpc (default: all cores; the table also
#                   shows the one-thread figure)
#
# Each figure is the median of REPS samples; a sample repeats the call until
# it has run about 300/REPS ms, so small n are timed reliably. The GMP figure
# includes Python's call overhead (well under a microsecond), which matters
# only at n = 10^3. Both sides' digits are compared (length, first and last
# 20 digits) before the table is printed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REPS="${REPS:-7}"
if [ "$#" -gt 0 ]; then
    NS=("$@")
else
    NS=(1000 10000 100000 1000000 10000000)
fi

log() { echo "fib-vs-gmp: $*" >&2; }

log "building the fib_timing example (release)"
cargo build --release --quiet -p fib-math --example fib_timing
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
TIMING="$TARGET_DIR/release/examples/fib_timing"
THREADS="${THREADS:-$(nproc)}"

# A python that can import gmpy2, or none.
has_gmpy2() { "$1" -c 'import gmpy2' >/dev/null 2>&1; }
PY="${FIB_RPC_PYTHON:-python3}"
if ! has_gmpy2 "$PY"; then
    VENV_PY="$ROOT/target/pika-venv/bin/python"
    if [ -x "$VENV_PY" ]; then
        if ! has_gmpy2 "$VENV_PY"; then
            log "installing gmpy2 into target/pika-venv"
            "$VENV_PY" -m pip install --quiet gmpy2 >&2 || log "pip install gmpy2 failed"
        fi
        if has_gmpy2 "$VENV_PY"; then
            PY="$VENV_PY"
        fi
    fi
fi
if has_gmpy2 "$PY"; then
    log "GMP: $("$PY" -c 'import gmpy2; print("gmpy2", gmpy2.version(), gmpy2.mp_version())') via $PY"
else
    log "gmpy2 is missing (tried $PY and target/pika-venv): printing fib-rpc figures only"
    PY=""
fi

# Prints "n digits first20 last20 ms" per n, tab-separated.
gmp_times() {
    "$PY" - "$REPS" "$@" <<'EOF'
import statistics, sys, time
import gmpy2

reps = int(sys.argv[1])
for n in map(int, sys.argv[2:]):
    start = time.perf_counter()
    digits = str(gmpy2.fib(n))
    once = max(time.perf_counter() - start, 1e-7)
    calls = int(min(max((0.3 / reps) / once, 1), 1e6))
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(calls):
            str(gmpy2.fib(n))
        samples.append((time.perf_counter() - start) * 1e3 / calls)
    print(n, len(digits), digits[:20], digits[-20:], statistics.median(samples), sep="\t")
EOF
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# One n at a time, fib-rpc and GMP back to back, so both see the same load.
: >"$TMP/ours" && : >"$TMP/ours1" && : >"$TMP/gmp"
for n in "${NS[@]}"; do
    log "n = $n"
    "$TIMING" --reps "$REPS" --threads "$THREADS" "$n" | tail -n +2 >>"$TMP/ours"
    if [ "$THREADS" != 1 ]; then
        "$TIMING" --reps "$REPS" --threads 1 "$n" | tail -n +2 >>"$TMP/ours1"
    fi
    if [ -n "$PY" ]; then
        gmp_times "$n" >>"$TMP/gmp"
    fi
done

python3 - "$TMP/ours" "$TMP/ours1" "$TMP/gmp" "$THREADS" <<'EOF'
import sys

def rows(path):
    with open(path) as f:
        return {int(cols[0]): cols for cols in (line.rstrip("\n").split("\t") for line in f) if cols[0]}

ours, ours1, gmp = rows(sys.argv[1]), rows(sys.argv[2]), rows(sys.argv[3])
threads = sys.argv[4]
one = bool(ours1)
head = ["n", "digits", f"fib-rpc ms ({threads} threads)" if one else "fib-rpc ms"]
if gmp:
    head += ["GMP ms", "ratio"]
if one:
    head += ["fib-rpc ms (1 thread)"] + (["ratio (1 thread)"] if gmp else [])
print("| " + " | ".join(head) + " |")
print("|" + "|".join("---:" for _ in head) + "|")
bad = []
for n, cols in ours.items():
    ms = float(cols[5])
    row = [f"{n:,}", f"{int(cols[1]):,}", f"{ms:.4g}"]
    if gmp:
        g = gmp[n]
        if g[1:4] != cols[1:4]:
            bad.append(n)
        gms = float(g[4])
        row += [f"{gms:.4g}", f"{ms / gms:.2f}"]
    if one:
        ms1 = float(ours1[n][5])
        row += [f"{ms1:.4g}"] + ([f"{ms1 / float(gmp[n][4]):.2f}"] if gmp else [])
    print("| " + " | ".join(row) + " |")
if bad:
    sys.exit(f"fib-vs-gmp: digits of F(n) differ from GMP's for n = {bad}")
EOF
