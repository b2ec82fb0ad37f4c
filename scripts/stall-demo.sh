#!/usr/bin/env bash
# Coordinated omission, shown: fib-client sends at a fixed rate while the
# server is paused for one second (SIGSTOP, then SIGCONT), and prints the
# corrected and as-sent percentiles side by side; the percentile spectrum is
# written to docs/stall-spectrum.svg (and the run's JSON beside it).
#
# Env: STALL_RATE (requests/s, default 1000), STALL_SECONDS (run length, 10),
#      STALL_INFLIGHT (outstanding at most, 8), STALL_AT (seconds into the run
#      when the server is paused, 3), AMQP_URL.
# The exchange and queue are named stall.<random>; both are deleted on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RATE="${STALL_RATE:-1000}"
SECONDS_="${STALL_SECONDS:-10}"
INFLIGHT="${STALL_INFLIGHT:-8}"
AT="${STALL_AT:-3}"
NAME="stall.$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fib-stall.XXXXXX")"
SVG=docs/stall-spectrum.svg
JSON=docs/stall-run.json

log() { echo "stall-demo: $*" >&2; }

cargo build --release -q -p fib-server -p fib-client --bins --examples
SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -CONT "$SERVER_PID" 2>/dev/null || true
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    target/release/examples/floor delete --exchange "$NAME" --queue "$NAME" >/dev/null 2>&1 ||
        log "warning: could not delete queue and exchange $NAME"
    rm -rf "$WORK"
}
trap cleanup EXIT

# Cache off: every request asks F(1000), which a warm cache would answer
# by a lookup; the figures in BENCHMARKS.md were measured without a cache.
target/release/fib-server --exchange "$NAME" --queue "$NAME" --cache-mb 0 -q 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 300); do
    grep -qw ready "$WORK/server.log" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
grep -qw ready "$WORK/server.log" || { log "server not ready after 30 s"; exit 1; }

COMMAND=(target/release/fib-client --exchange "$NAME" --rate "$RATE" --duration "$SECONDS_"
    --inflight "$INFLIGHT" --fixed-n 1000 --warmup 500 --interval 1
    --export-svg "$SVG" --export-json "$JSON")
log "running: ${COMMAND[*]}"
"${COMMAND[@]}" >"$WORK/summary.txt" 2>"$WORK/client.log" &
CLIENT_PID=$!
# The pause is the experiment itself: timed by the wall clock on purpose.
sleep "$AT"
kill -STOP "$SERVER_PID"
log "server paused"
sleep 1
kill -CONT "$SERVER_PID"
log "server resumed"
status=0
wait "$CLIENT_PID" || status=$?
cat "$WORK/client.log" >&2
echo '```console'
echo "\$ ${COMMAND[*]}"
cat "$WORK/summary.txt"
echo '```'
log "client exit status $status; spectrum in $SVG, run in $JSON"
exit "$status"
