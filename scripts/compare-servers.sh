#!/usr/bin/env bash
# Compare fib-server configurations on sequential round trips, interleaved
# run by run, with the CPU of server and broker beside the wall time.
#
#   scripts/compare-servers.sh REPS COUNT "LABEL|SERVER FLAGS" ...
#   e.g. scripts/compare-servers.sh 7 2000 "p1|--prefetch 1" "p2|--prefetch 2"
#
# Each configuration gets its own fib-server (release build, --cache-mb 0
# unless the flags say otherwise) on its own exchange and queue; every
# repetition runs `fib-client --count COUNT` against each in turn. Prints,
# per configuration, the medians of mean and p99 round trip (µs) and of the
# client's, server's and broker's CPU per request (µs; server and broker
# from /proc in 10 ms ticks). Exchanges and queues are deleted on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/cpu.sh
source scripts/lib/cpu.sh
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export LC_ALL=C

die() {
    echo "compare-servers: error: $*" >&2
    exit 2
}
[ "$#" -ge 3 ] || die "usage: $0 REPS COUNT 'LABEL|SERVER FLAGS' ..."
REPS="$1" COUNT="$2"
shift 2
[[ "$REPS" =~ ^[1-9][0-9]*$ && "$COUNT" =~ ^[1-9][0-9]*$ ]] || die "REPS and COUNT must be positive integers"

bash scripts/broker.sh >&2
cargo build --release -q -p fib-server -p fib-client --bins --examples >&2
WORK="$(mktemp -d "${TMPDIR:-/tmp}/compare-servers.XXXXXX")"
RUN_ID="compare.$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
LABELS=() PIDS=() EXCHANGES=()
cleanup() {
    local pid exchange
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for exchange in "${EXCHANGES[@]}"; do
        target/release/examples/floor delete --exchange "$exchange" --queue "$exchange.q" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

for spec in "$@"; do
    label="${spec%%|*}" flags="${spec#*|}"
    exchange="$RUN_ID.${#LABELS[@]}"
    log="$WORK/server.${#LABELS[@]}.log"
    # shellcheck disable=SC2086 # the flags are words
    target/release/fib-server --quiet --cache-mb 0 $flags --exchange "$exchange" --queue "$exchange.q" 2>"$log" &
    PIDS+=("$!") LABELS+=("$label") EXCHANGES+=("$exchange")
    for _ in $(seq 300); do grep -qw ready "$log" && break; sleep 0.1; done
    grep -qw ready "$log" || die "fib-server $flags did not get ready: $(cat "$log")"
done

broker_pid="$(timeout 20 rabbitmqctl -q eval 'os:getpid().' 2>/dev/null | tr -dc '0-9' || true)"

for k in "${!LABELS[@]}"; do # warm-up
    target/release/fib-client --quiet --count 200 --exchange "${EXCHANGES[$k]}" >/dev/null
done
for ((rep = 1; rep <= REPS; rep++)); do
    for k in "${!LABELS[@]}"; do
        server0="$(cpu_ticks "${PIDS[$k]}")"
        # shellcheck disable=SC2086 # empty when unknown
        broker0="$(cpu_ticks $broker_pid)"
        out="$( (target/release/fib-client --quiet --json --count "$COUNT" --exchange "${EXCHANGES[$k]}"; times >"$WORK/times") )"
        server1="$(cpu_ticks "${PIDS[$k]}")"
        # shellcheck disable=SC2086
        broker1="$(cpu_ticks $broker_pid)"
        client_seconds="$(awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$WORK/times")"
        printf '%s %s %s %s %s %s\n' "${LABELS[$k]}" \
            "$(grep -o '"mean":[0-9.]*' <<<"$out" | head -n 1 | cut -d: -f2)" \
            "$(grep -o '"p99":[0-9.]*' <<<"$out" | head -n 1 | cut -d: -f2)" \
            "$(awk -v s="$client_seconds" -v n="$COUNT" 'BEGIN { print s * 1e6 / n }')" \
            "$(per_request_us $((server1 - server0)) "$COUNT")" "$(per_request_us $((broker1 - broker0)) "$COUNT")" >>"$WORK/results"
    done
done
printf '%-12s %8s %8s %10s %10s %10s\n' "" "mean µs" "p99 µs" "client µs" "server µs" "broker µs"
for label in "${LABELS[@]}"; do
    awk -v l="$label" '$1 == l { for (c = 2; c <= 6; c++) v[c, ++n[c]] = $c }
        END {
            printf "%-12s", l
            for (c = 2; c <= 6; c++) {
                for (i = 1; i <= n[c]; i++) a[i] = v[c, i]
                m = n[c]; asort(a)
                printf " %10.1f", (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
                delete a
            }
            printf "\n"
        }' "$WORK/results"
done
