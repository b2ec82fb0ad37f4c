#!/usr/bin/env bash
# Demo: start fib-server, run fib-client --count 2000 against it, stop the
# server. Exits with the client's exit code.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/broker.sh
cargo build --release -p fib-server -p fib-client

SERVER_PID=""
LOG="$(mktemp "${TMPDIR:-/tmp}/fib-server.XXXXXX.log")"

# shellcheck disable=SC2317 # invoked by trap
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -f "$LOG"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

target/release/fib-server --quiet 2>"$LOG" &
SERVER_PID=$!

# Wait (bounded) for the server to log that it is ready.
deadline=$((SECONDS + 30))
until grep -qw ready "$LOG"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        status=0
        wait "$SERVER_PID" || status=$?
        SERVER_PID=""
        echo "demo: fib-server exited (status $status) before it was ready; its log:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "demo: fib-server not ready after 30s; its log:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.1
done

client_status=0
target/release/fib-client --count 2000 || client_status=$?

kill -TERM "$SERVER_PID" 2>/dev/null || true
server_status=0
wait "$SERVER_PID" || server_status=$?
SERVER_PID=""
if [ "$server_status" -ne 0 ]; then
    echo "demo: note: fib-server exited with status $server_status; its log:" >&2
    cat "$LOG" >&2
fi

exit "$client_status"
