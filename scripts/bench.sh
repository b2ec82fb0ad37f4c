#!/usr/bin/env bash
# Benchmark fib-rpc beside its floor and print one markdown document on
# stdout (suitable for BENCHMARKS.md); progress and errors go to stderr.
#
# The floor (fib-client/examples/floor.rs) is the same connection code, the
# same declarations and message properties, with a server that echoes and a
# client that only waits. Every configuration runs both, alternating run by
# run, so fib-rpc's overhead is a ratio from one run of this script.
#
#   sequential:  --count BENCH_SEQ_COUNT, one request at a time, one server
#   pipelined:   --inflight 16 and 64 x server --prefetch 1 and 50 x one and
#                two servers, --count BENCH_PIPELINE_COUNT
#   fib(n):      the table of scripts/fib-vs-gmp.sh, if present
#   cluster:     fib-rpc on the default broker (classic queue) beside fib-rpc
#                on a local three-node cluster (scripts/cluster.sh, quorum
#                queue), sequential and 64 in flight against prefetch 50
#   cache:       sequential n = 100000 .. 100000+BENCH_WARMUP-1, asked again
#                after the warm-up asked them: server cache warm beside cache
#                off
#   metrics:     sequential, fib-server with --metrics and /metrics scraped
#                every second beside fib-server without, alternating
#
# Every fib-server runs with --cache-mb 0 (cache off) except in the cache
# section, so no other row depends on what an earlier run left cached.
#
# Each figure is the median over BENCH_REPS runs, column by column. Client CPU
# is the client process's user+sys time (bash `times`, ms resolution) divided
# by the request count; it includes connecting and declaring. Server and
# broker CPU are the growth of their processes' user+sys time (/proc, 10 ms
# ticks) over the client's run, divided by the request count; for a cluster,
# the broker is all three nodes.
#
# Env: BENCH_REPS (default 5), BENCH_SEQ_COUNT (2000),
#      BENCH_PIPELINE_COUNT (20000), BENCH_WARMUP (requests per client before
#      the timed runs of a configuration, 200; 0 for none),
#      BENCH_MEMORY_COUNT (requests of the server memory run, 100000),
#      BENCH_SECTIONS (which to run, default "seq pipe memory fib cluster cache
#      metrics"),
#      AMQP_URL.
# Exchanges and queues are named bench.<random>.*; all are deleted on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/cpu.sh
source scripts/lib/cpu.sh
export LC_ALL=C # decimal points in `times`, printf and sort
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

REPS="${BENCH_REPS:-5}"
SEQ_COUNT="${BENCH_SEQ_COUNT:-2000}"
PIPE_COUNT="${BENCH_PIPELINE_COUNT:-20000}"
WARMUP="${BENCH_WARMUP:-200}"
SECTIONS=" ${BENCH_SECTIONS:-seq pipe memory fib cluster cache metrics} "
section() { [[ "$SECTIONS" == *" $1 "* ]]; }

log() { echo "bench: $*" >&2; }
# fail MESSAGE: log it and return 1, for a run that may be retried.
fail() {
    echo "bench: $*" >&2
    return 1
}
die() {
    echo "bench: error: $*" >&2
    exit 1
}

for setting in "BENCH_REPS=$REPS" "BENCH_SEQ_COUNT=$SEQ_COUNT" "BENCH_PIPELINE_COUNT=$PIPE_COUNT"; do
    [[ "${setting#*=}" =~ ^[1-9][0-9]*$ ]] || die "${setting%%=*} must be a positive integer, got '${setting#*=}'"
done
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be an integer >= 0, got '$WARMUP'"

SERVER_BIN=target/release/fib-server
CLIENT_BIN=target/release/fib-client
FLOOR_BIN=target/release/examples/floor
READY_TIMEOUT=30 # seconds for a server to print its ready line
STOP_TIMEOUT=10  # seconds for a server to stop after SIGTERM

RUN_ID="bench.$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fib-bench.XXXXXX")"
SERVER_PIDS=()
SCRAPER_PIDS=() # the loops that scrape a fibmetrics server every second
declare -A KIND_PIDS=() # kind -> its servers' pids, for their CPU time
BROKER_PIDS=""         # the default broker's OS pid
CLUSTER_PIDS=""        # the cluster nodes' OS pids, once started
CLUSTER_URLS=""        # comma-separated, once started
CLUSTER_STARTED=0
SERVERS_STARTED=0 # names each server's log
TOPOLOGIES=() # "exchange queue" pairs to delete on exit

# --- the floor's configurations -------------------------------------------------

# The ablation: a bare echo, then one property of fib-rpc added at a time.
ABLATION=(bare persist mandatory confirm prefetch uuid compute check logging)
declare -A ABLATION_LABEL=(
    [bare]="bare echo: persistent requests, transient replies, prefetch 1"
    [persist]="+ persistent replies"
    [mandatory]="+ mandatory requests"
    [confirm]="+ reply confirmed before the ack"
    [prefetch]="+ fib-server's default prefetch"
    [uuid]="+ UUID correlation ids"
    [compute]="+ server computes F(n)"
    [check]="+ client checks F(n)"
    [logging]="+ server logs a line per request"
)

# floor_flags KIND: the floor's SERVER_FLAGS, CLIENT_FLAGS and FLOOR_PREFETCH
# (used where a configuration leaves the prefetch to the default) for KIND: an
# ablation step (every step up to it), or floor (the pipelined floor: a bare
# echo that replies with as many bytes as F(n) has digits).
floor_flags() {
    local step check=echo
    SERVER_FLAGS=()
    CLIENT_FLAGS=()
    FLOOR_PREFETCH=1
    if [ "$1" = floor ]; then
        SERVER_FLAGS=(--reply pad)
        CLIENT_FLAGS=(--check pad)
        return 0
    fi
    for step in "${ABLATION[@]}"; do
        case "$step" in
        persist) SERVER_FLAGS+=(--persistent-replies) ;;
        mandatory) CLIENT_FLAGS+=(--mandatory) ;;
        confirm) SERVER_FLAGS+=(--confirm) ;;
        prefetch) FLOOR_PREFETCH="$FIB_DEFAULT_PREFETCH" ;;
        uuid) CLIENT_FLAGS+=(--uuid) ;;
        compute)
            SERVER_FLAGS+=(--reply fib)
            check=none
            ;;
        check) check=fib ;;
        logging) SERVER_FLAGS+=(--log) ;;
        esac
        [ "$step" = "$1" ] && break
    done
    CLIENT_FLAGS+=(--check "$check")
}

# --- servers and clean-up --------------------------------------------------

stop_servers() {
    local pid waited
    for pid in "${SCRAPER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SCRAPER_PIDS=()
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        waited=0
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT * 10)) ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "server $pid did not stop within ${STOP_TIMEOUT}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
    KIND_PIDS=()
}

delete_topologies() {
    local pair
    [ -x "$FLOOR_BIN" ] || return 0
    for pair in "${TOPOLOGIES[@]}"; do
        # shellcheck disable=SC2086 # "exchange queue"
        set -- $pair
        "$FLOOR_BIN" delete --exchange "$1" --queue "$2" ||
            log "warning: could not delete queue $2 / exchange $1"
    done
    TOPOLOGIES=()
}

# shellcheck disable=SC2317 # invoked by trap
cleanup() {
    stop_servers
    delete_topologies
    if [ "$CLUSTER_STARTED" -eq 1 ]; then
        bash scripts/cluster.sh stop >&2 || log "warning: scripts/cluster.sh stop failed"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server KIND EXCHANGE QUEUE PREFETCH: KIND is fib or floor; returns
# once the server has printed its ready line, or 1 if it does not.
start_server() {
    local kind="$1" exchange="$2" queue="$3" prefetch="$4"
    local errlog="$WORK/server.$SERVERS_STARTED.$kind.log" pid deadline status
    local fib_prefetch=(--prefetch "$prefetch")
    SERVERS_STARTED=$((SERVERS_STARTED + 1))
    # "default": fib-server's own default; the floor's ablation step decides.
    if [ "$prefetch" = default ]; then fib_prefetch=(); fi
    : >"$errlog"
    case "$kind" in
    fib | fibdirect | fiblarge) "$SERVER_BIN" --quiet --cache-mb 0 --exchange "$exchange" --queue "$queue" "${fib_prefetch[@]}" 2>"$errlog" & ;;
    fibq) "$SERVER_BIN" --quiet --cache-mb 0 --url "$CLUSTER_URLS" --queue-type quorum --exchange "$exchange" --queue "$queue" "${fib_prefetch[@]}" 2>"$errlog" & ;;
    fiblog) "$SERVER_BIN" --cache-mb 0 --exchange "$exchange" --queue "$queue" "${fib_prefetch[@]}" 2>"$errlog" & ;;
    fibnc) "$SERVER_BIN" --quiet --cache-mb 0 --no-confirm --exchange "$exchange" --queue "$queue" "${fib_prefetch[@]}" 2>"$errlog" & ;;
    fibcache) "$SERVER_BIN" --quiet --exchange "$exchange" --queue "$queue" "${fib_prefetch[@]}" 2>"$errlog" & ;;
    fibmetrics) "$SERVER_BIN" --quiet --cache-mb 0 --metrics 127.0.0.1:0 --exchange "$exchange" --queue "$queue" "${fib_prefetch[@]}" 2>"$errlog" & ;;
    *)
        floor_flags "$kind"
        if [ "$prefetch" != default ]; then FLOOR_PREFETCH="$prefetch"; fi
        "$FLOOR_BIN" server --exchange "$exchange" --queue "$queue" --prefetch "$FLOOR_PREFETCH" "${SERVER_FLAGS[@]}" 2>"$errlog" &
        ;;
    esac
    pid=$!
    SERVER_PIDS+=("$pid")
    KIND_PIDS[$kind]="${KIND_PIDS[$kind]:-} $pid"
    deadline=$((SECONDS + READY_TIMEOUT))
    until grep -qw ready "$errlog"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            status=0
            wait "$pid" || status=$?
            cat "$errlog" >&2
            fail "$kind server exited (status $status) before it was ready"
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            cat "$errlog" >&2
            fail "$kind server not ready after ${READY_TIMEOUT}s"
            return 1
        fi
        sleep 0.05
    done
    if [ "$kind" = fibmetrics ]; then start_scraper "$errlog" || return 1; fi
}

# start_scraper ERRLOG: scrapes the /metrics of the server whose ready line
# is in ERRLOG once a second, as Prometheus would, until stop_servers; each
# scrape that got a complete answer adds a line to $WORK/scrapes.
start_scraper() {
    local addr
    addr="$(grep -o 'metrics at http://[^/]*' "$1" | head -n 1 | sed 's|.*http://||')"
    if [ -z "$addr" ]; then
        fail "fibmetrics server names no metrics address"
        return 1
    fi
    (
        while :; do
            if curl -sf --max-time 2 -o "$WORK/scrape.txt" "http://$addr/metrics" &&
                grep -q '^fib_server_requests_received_total ' "$WORK/scrape.txt"; then
                echo "$addr" >>"$WORK/scrapes"
            fi
            sleep 1
        done
    ) &
    SCRAPER_PIDS+=("$!")
}

# --- clients -----------------------------------------------------------------

# client_command KIND EXCHANGE COUNT INFLIGHT: the command line, in CMD.
client_command() {
    local kind="$1" exchange="$2" count="$3" inflight="$4"
    case "$kind" in
    fib | fibnc | fibdirect | fibq | fiblog | fiblarge | fibcache | fibmetrics)
        CMD=("$CLIENT_BIN" --quiet --json --count "$count" --exchange "$exchange")
        if [ "$kind" = fibq ]; then CMD+=(--url "$CLUSTER_URLS"); fi
        if [ "$kind" = fiblarge ] || [ "$kind" = fibcache ]; then CMD+=(--start "$CACHE_START"); fi
        if [ "$inflight" -gt 1 ]; then CMD+=(--inflight "$inflight"); fi
        if [ "$kind" = fibdirect ]; then CMD+=(--reply-to direct); fi
        ;;
    *)
        floor_flags "$kind"
        CMD=("$FLOOR_BIN" client --json --count "$count" --inflight "$inflight" --exchange "$exchange" "${CLIENT_FLAGS[@]}")
        ;;
    esac
}

# json_number JSON KEY: the number after the first "KEY": in a one-line JSON
# object.
# The first is the one meant: fib-client's corrected latency view comes before
# its as-sent one (the two agree in a closed loop).
json_number() { grep -o "\"$2\":[-0-9.eE+]*" <<<"$1" | head -n 1 | cut -d: -f2; }

# broker_pids KIND: the broker processes a kind's requests go through.
broker_pids() {
    if [ "$1" = fibq ]; then echo "$CLUSTER_PIDS"; else echo "$BROKER_PIDS"; fi
}


# run_client KIND EXCHANGE COUNT INFLIGHT RESULTS: one timed run; appends
# "mean p50 p99 req/s client-cpu server-cpu broker-cpu" (CPU in µs per
# request) to RESULTS and logs a line, or returns 1.
run_client() {
    local kind="$1" exchange="$2" count="$3" inflight="$4" results="$5"
    local out="$WORK/client.out" err="$WORK/client.err" cpu="$WORK/client.cpu" json seconds
    local server_before broker_before server_ticks broker_ticks
    client_command "$kind" "$exchange" "$count" "$inflight"
    # Word splitting is meant: these are lists of pids.
    # shellcheck disable=SC2046,SC2086
    server_before="$(cpu_ticks ${KIND_PIDS[$kind]:-})"
    # shellcheck disable=SC2046
    broker_before="$(cpu_ticks $(broker_pids "$kind"))"
    # The subshell's only child is the client, so the second line of `times`
    # is the client's user and sys CPU. The client bounds every wait itself
    # (--timeout, 10 s by default).
    if ! (
        rc=0
        "${CMD[@]}" >"$out" 2>"$err" || rc=$?
        times >"$cpu"
        exit "$rc"
    ); then
        cat "$err" >&2
        fail "$kind client failed: ${CMD[*]}"
        return 1
    fi
    # shellcheck disable=SC2046,SC2086
    server_ticks=$(($(cpu_ticks ${KIND_PIDS[$kind]:-}) - server_before))
    # shellcheck disable=SC2046
    broker_ticks=$(($(cpu_ticks $(broker_pids "$kind")) - broker_before))
    json="$(tail -n 1 "$out")"
    if [ "$(json_number "$json" failures)" != 0 ]; then
        fail "$kind client reported failures: $json"
        return 1
    fi
    seconds="$(awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$cpu")"
    printf '%s %s %s %s %s %s %s\n' \
        "$(json_number "$json" mean)" "$(json_number "$json" p50)" "$(json_number "$json" p99)" \
        "$(json_number "$json" requests_per_second)" \
        "$(awk -v s="$seconds" -v n="$count" 'BEGIN { print s * 1e6 / n }')" \
        "$(per_request_us "$server_ticks" "$count")" "$(per_request_us "$broker_ticks" "$count")" >>"$results"
    log "  $kind: $(tail -n 1 "$results" | awk '{ printf "mean %.0f us, p99 %.0f us, %.0f req/s, CPU us/req: client %.1f, server %.1f, broker %.1f", $1, $3, $4, $5, $6, $7 }')"
}

# warm_up KIND EXCHANGE INFLIGHT: an untimed short run, so that the first timed
# run does not pay for cold caches in the broker and the programs.
warm_up() {
    [ "$WARMUP" -gt 0 ] || return 0
    client_command "$1" "$2" "$WARMUP" "$3"
    if ! "${CMD[@]}" >/dev/null 2>"$WORK/warmup.err"; then
        cat "$WORK/warmup.err" >&2
        fail "$1 warm-up failed: ${CMD[*]}"
        return 1
    fi
}

# median FILE COLUMN
median() {
    awk -v c="$2" '{ print $c }' "$1" | sort -g |
        awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
round() { awk -v x="$1" -v d="${2:-0}" 'BEGIN { printf "%.*f", d, x }'; }

# bench_config NAME KINDS INFLIGHT PREFETCH SERVERS COUNT: starts SERVERS
# servers of each kind in KINDS ("fib floor" or "floor") on fresh topologies,
# then runs the clients REPS times, alternating kinds. Results in
# $WORK/NAME.KIND.tsv. A failed attempt (say the broker restarted under us) is
# retried once from scratch; a second failure ends the script.
bench_config() {
    local name="$1" kinds="$2" inflight="$3" prefetch="$4" servers="$5" count="$6"
    local attempt kind
    log "$name: in flight $inflight, prefetch $prefetch, $servers server(s), $count requests x $REPS"
    for attempt in 1 2; do
        for kind in $kinds; do rm -f "$WORK/$name.$kind.tsv"; done
        # Called as a condition, so errexit is off inside: every step checks.
        if attempt_config "$attempt" "$@"; then
            stop_servers
            delete_topologies
            return 0
        fi
        stop_servers
        delete_topologies
        log "$name: attempt $attempt failed"
    done
    die "$name failed twice; see the messages above"
}

attempt_config() {
    local attempt="$1" name="$2" kinds="$3" inflight="$4" prefetch="$5" servers="$6" count="$7"
    local kind i rep exchange queue
    for kind in $kinds; do
        exchange="$RUN_ID.$name.$attempt.$kind"
        queue="$exchange.requests"
        TOPOLOGIES+=("$exchange $queue")
        for ((i = 0; i < servers; i++)); do
            start_server "$kind" "$exchange" "$queue" "$prefetch" || return 1
        done
        warm_up "$kind" "$exchange" "$inflight" || return 1
    done
    for ((rep = 1; rep <= REPS; rep++)); do
        log " run $rep/$REPS"
        for kind in $kinds; do
            run_client "$kind" "$RUN_ID.$name.$attempt.$kind" "$count" "$inflight" "$WORK/$name.$kind.tsv" || return 1
        done
    done
}

# --- build and describe the machine ------------------------------------------

bash scripts/broker.sh >&2
log "building (release)"
cargo build --release -p fib-server -p fib-client --bins --examples >&2

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true </dev/null 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}
rabbitmq_version="$(as_root timeout 20 rabbitmqctl -q version 2>/dev/null </dev/null || true)"
cpu_model="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit (with uncommitted changes)"; fi
# shellcheck disable=SC2001 # needs a regex
masked_url="$(sed 's#^\([a-z]*://[^:@/]*\):[^@/]*@#\1:***@#' <<<"${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}")"

# fib-server's default --prefetch, as its --help says.
FIB_DEFAULT_PREFETCH="$("$SERVER_BIN" --help | sed -n '/--prefetch/,/default:/s/.*\[default: \([0-9]*\)\].*/\1/p' | head -n 1)"
[[ "$FIB_DEFAULT_PREFETCH" =~ ^[0-9]+$ ]] || die "cannot read fib-server's default --prefetch from its --help"

HAS_INFLIGHT=0
if "$CLIENT_BIN" --help 2>/dev/null | grep -q -- '--inflight'; then HAS_INFLIGHT=1; fi

# node_pid NODE: a RabbitMQ node's OS pid (empty if it cannot be asked).
node_pid() {
    as_root timeout 20 rabbitmqctl -q ${1:+-n "$1"} eval 'os:getpid().' 2>/dev/null </dev/null | tr -dc '0-9'
}
BROKER_PIDS="$(node_pid "")"
[ -n "$BROKER_PIDS" ] || log "warning: cannot find the broker's pid; broker CPU will read 0"

started=$SECONDS

# --- measure -------------------------------------------------------------------

if section seq; then
    bench_config seq "${ABLATION[*]} fiblog fib fibnc fibdirect" 1 default 1 "$SEQ_COUNT"
fi

PIPE_CONFIGS=()
for inflight in 16 64; do
    for prefetch in 1 50; do
        for servers in 1 2; do
            PIPE_CONFIGS+=("$inflight $prefetch $servers")
        done
    done
done
if [ "$HAS_INFLIGHT" -eq 1 ]; then pipe_kinds="fib floor"; else pipe_kinds="floor"; fi
if section pipe; then
    for config in "${PIPE_CONFIGS[@]}"; do
        # shellcheck disable=SC2086 # "inflight prefetch servers"
        set -- $config
        bench_config "pipe-$1-$2-$3" "$pipe_kinds" "$1" "$2" "$3" "$PIPE_COUNT"
    done
fi

if section cluster; then
    log "cluster: starting three local nodes (scripts/cluster.sh)"
    CLUSTER_STARTED=1
    CLUSTER_URLS="$(bash scripts/cluster.sh start | paste -sd, -)" || die "cluster: scripts/cluster.sh start failed"
    for i in 1 2 3; do CLUSTER_PIDS="$CLUSTER_PIDS $(node_pid "fibq$i@localhost")"; done
    # Both kinds alternate run by run: fib on the default broker (classic
    # queue), fibq on the cluster (quorum queue, server and client on node 1,
    # which leads the queue it declares).
    bench_config cluster-seq "fib fibq" 1 1 1 "$SEQ_COUNT"
    bench_config cluster-pipe "fib fibq" 64 50 1 "$PIPE_COUNT"
    bash scripts/cluster.sh stop >&2 || log "warning: scripts/cluster.sh stop failed"
    CLUSTER_STARTED=0
fi

# A repeated large n: the warm-up asks n = CACHE_START .. +WARMUP-1, then each
# timed run asks the same n again, so the cache is warm for every timed run.
CACHE_START=100000
if section cache; then
    if [ "$WARMUP" -gt 0 ]; then
        bench_config cache "fibcache fiblarge" 1 1 1 "$WARMUP"
    else
        log "cache: skipped, it needs BENCH_WARMUP > 0 to warm the cache"
    fi
fi

# Metrics on and scraped every second against metrics off, sequential.
if section metrics; then
    : >"$WORK/scrapes"
    bench_config metrics "fib fibmetrics" 1 default 1 "$SEQ_COUNT"
    scrapes="$(wc -l <"$WORK/scrapes")"
fi

# Server memory through a long pipelined run: the peak resident set (VmHWM).
MEM_COUNT="${BENCH_MEMORY_COUNT:-100000}"
if section memory; then
log "memory: fib-server through $MEM_COUNT requests, 64 in flight, prefetch 50"
mem_exchange="$RUN_ID.memory.fib"
TOPOLOGIES+=("$mem_exchange $mem_exchange.requests")
start_server fib "$mem_exchange" "$mem_exchange.requests" 50 || die "memory: server did not start"
mem_pid="${SERVER_PIDS[-1]}"
mem_start_kib="$(awk '/^VmRSS:/ { print $2 }' "/proc/$mem_pid/status")"
"$CLIENT_BIN" --quiet --json --count "$MEM_COUNT" --inflight 64 --exchange "$mem_exchange" >"$WORK/memory.json" ||
    die "memory: client failed"
mem_peak_kib="$(awk '/^VmHWM:/ { print $2 }' "/proc/$mem_pid/status")"
mem_end_kib="$(awk '/^VmRSS:/ { print $2 }' "/proc/$mem_pid/status")"
stop_servers
delete_topologies
fi

fib_table=""
fib_note=""
if ! section fib; then
    fib_note="Not measured in this run (BENCH_SECTIONS)."
elif [ -x scripts/fib-vs-gmp.sh ]; then
    log "fib(n): scripts/fib-vs-gmp.sh"
    if ! fib_table="$(scripts/fib-vs-gmp.sh)"; then
        fib_note="scripts/fib-vs-gmp.sh failed; see its messages on stderr."
        fib_table=""
    fi
else
    fib_note="Not measured: scripts/fib-vs-gmp.sh is missing or not executable."
fi

elapsed=$((SECONDS - started))

# --- report ---------------------------------------------------------------------

# seq_row LABEL CONFIG KIND: a table row of medians.
seq_row() {
    local f="$WORK/$2.$3.tsv"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |' "$1" \
        "$(round "$(median "$f" 1)")" "$(round "$(median "$f" 2)")" "$(round "$(median "$f" 3)")" \
        "$(round "$(median "$f" 4)")" "$(round "$(median "$f" 5)" 1)" "$(round "$(median "$f" 6)" 1)" \
        "$(round "$(median "$f" 7)" 1)"
}
# ablation_rows: the ablation table's rows, then fib-rpc as shipped.
ablation_rows() {
    local kind previous="" mean label
    for kind in "${ABLATION[@]}" fiblog; do
        mean="$(median "$WORK/seq.$kind.tsv" 1)"
        if [ "$kind" = fiblog ]; then label="fib-rpc as shipped"; else label="${ABLATION_LABEL[$kind]}"; fi
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(round "$mean")" \
            "$(if [ -n "$previous" ]; then awk -v a="$mean" -v b="$previous" 'BEGIN { printf "%+.0f", a - b }'; fi)" \
            "$(round "$(median "$WORK/seq.$kind.tsv" 2)")" "$(round "$(median "$WORK/seq.$kind.tsv" 3)")" \
            "$(round "$(median "$WORK/seq.$kind.tsv" 4)")" "$(round "$(median "$WORK/seq.$kind.tsv" 5)" 1)" \
            "$(round "$(median "$WORK/seq.$kind.tsv" 6)" 1)" "$(round "$(median "$WORK/seq.$kind.tsv" 7)" 1)"
        previous="$mean"
    done
}
# pair_ratio_row CONFIG KIND BASE: for each of the seven columns, the median
# over runs of KIND's figure over BASE's in the same round (runs alternate,
# so each pair saw nearly the same machine: steadier than a ratio of medians
# when other load comes and goes).
pair_ratio_row() {
    local c cells=() joined
    for c in 1 2 3 4 5 6 7; do
        cells+=("$(paste -d ' ' "$WORK/$1.$2.tsv" "$WORK/$1.$3.tsv" |
            awk -v c="$c" '{ if ($(c + 7) > 0) printf "%.4f\n", $c / $(c + 7) }' | sort -g |
            awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.2f", a[(NR + 1) / 2]; else printf "%.2f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }')")
    done
    joined="$(printf '%s | ' "${cells[@]}")"
    echo "${joined% | }"
}
# ratio_row CONFIG KIND BASE: the seven medians of KIND over BASE's.
ratio_row() {
    local c cells=()
    for c in 1 2 3 4 5 6 7; do
        cells+=("$(ratio "$(median "$WORK/$1.$2.tsv" "$c")" "$(median "$WORK/$1.$3.tsv" "$c")")")
    done
    local joined
    joined="$(printf '%s | ' "${cells[@]}")"
    echo "${joined% | }"
}

cat <<EOF
# fib-rpc benchmarks

$(date -u '+%Y-%m-%d %H:%M UTC') · $(uname -srm) · ${cpu_model:-unknown CPU} · $(nproc) cores · RabbitMQ ${rabbitmq_version:-unknown} · $(rustc --version)

Commit $commit; broker $masked_url.
Measured by \`scripts/bench.sh\` in ${elapsed} s; every figure is the median
of $REPS runs, column by column.

The *floor* is \`fib-client/examples/floor.rs\`: the same connection code
(TCP_NODELAY) and declarations, with a server that echoes and a client that
only waits; each property of fib-rpc can be switched on alone. Each
configuration runs its programs on their own fresh exchange and queue,
alternating run by run, after a warm-up of $WARMUP requests each. Client CPU
is the client process's user+sys time divided by the request count,
connection set-up included; server and broker CPU are their processes'
user+sys time over the client's run (10 ms ticks), divided likewise.
fib-server runs with \`--cache-mb 0\` (reply cache off) in every section but
the cache section, so no row depends on what an earlier run left cached.

EOF
if section seq; then
    cat <<EOF
## Sequential: $SEQ_COUNT requests, one at a time, one server, cache off

From a bare echo (\`fib-client/examples/floor.rs\` with no options: persistent
requests as the pika client sends them, transient replies, no mandatory flag,
no publisher confirms, prefetch 1, a counter for correlation ids, the same
amiquip connection with TCP_NODELAY) to fib-rpc as shipped, one property at a
time; every row alternates with every other, run by run. "+ mean" is the
increment of the mean over the row above.

| | mean µs | + mean µs | p50 µs | p99 µs | req/s | client CPU µs/req | server CPU µs/req | broker CPU µs/req |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
$(ablation_rows)
| fib-rpc / bare echo | $(ratio "$(median "$WORK/seq.fiblog.tsv" 1)" "$(median "$WORK/seq.bare.tsv" 1)") | | $(ratio "$(median "$WORK/seq.fiblog.tsv" 2)" "$(median "$WORK/seq.bare.tsv" 2)") | $(ratio "$(median "$WORK/seq.fiblog.tsv" 3)" "$(median "$WORK/seq.bare.tsv" 3)") | | | | |

Variants of fib-rpc (server \`--quiet\` in all three):

| | mean µs | p50 µs | p99 µs | req/s | client CPU µs/req | server CPU µs/req | broker CPU µs/req |
|---|---:|---:|---:|---:|---:|---:|---:|
$(seq_row "fib-rpc, server \`--quiet\`" seq fib)
$(seq_row "fib-rpc, server \`--quiet --no-confirm\`" seq fibnc)
$(seq_row "fib-rpc, server \`--quiet\`, client \`--reply-to direct\`" seq fibdirect)
| \`--quiet\` / bare echo | $(ratio_row seq fib bare) |

fib-client asks for n = 0 .. $((SEQ_COUNT - 1)) and checks each reply against its own
F(n); so do the floor's rows from "+ client checks F(n)" on.

EOF
fi
if section pipe; then
    cat <<EOF
## Pipelined: $PIPE_COUNT requests, K in flight, cache off

fib-client \`--inflight K\`, fib-server \`--prefetch P\`; the floor likewise.
fib-rpc replies are F(n) for n up to $((PIPE_COUNT - 1)), up to $(awk -v n="$PIPE_COUNT" 'BEGIN { printf "%d", (n - 1) * 0.20898764 + 1 }') digits;
the floor's replies are as many bytes as F(n) has digits (\`--reply pad\`),
not computed: the ratio is fib-rpc's own overhead, moving the same bytes.

| in flight | prefetch | servers | fib-rpc req/s | floor req/s | fib-rpc / floor | fib-rpc CPU µs/req | floor CPU µs/req |
|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
for config in "${PIPE_CONFIGS[@]}"; do
    # shellcheck disable=SC2086
    set -- $config
    name="pipe-$1-$2-$3"
    floor_rps="$(median "$WORK/$name.floor.tsv" 4)"
    floor_cpu="$(round "$(median "$WORK/$name.floor.tsv" 5)" 1)"
    if [ "$HAS_INFLIGHT" -eq 1 ]; then
        fib_rps="$(median "$WORK/$name.fib.tsv" 4)"
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" \
            "$(round "$fib_rps")" "$(round "$floor_rps")" "$(ratio "$fib_rps" "$floor_rps")" \
            "$(round "$(median "$WORK/$name.fib.tsv" 5)" 1)" "$floor_cpu"
    else
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" \
            "n/a (fib-client has no --inflight yet)" "$(round "$floor_rps")" "n/a" "n/a" "$floor_cpu"
    fi
done
echo
fi
if section cluster; then
    cat <<EOF
## Cluster: one node with a classic queue beside three nodes with a quorum queue, cache off

fib-rpc as shipped on the default broker (classic \`task_queue\`-like
queue), and on a local three-node cluster (\`scripts/cluster.sh\`) with
\`fib-server --queue-type quorum\`, server and client both on node 1 (the
queue's leader: the node that declared it), alternating run by run. All
three nodes share this machine's $(nproc) cores with the programs, so the
cluster's broker CPU is the sum over its three nodes.

| | mean µs | p50 µs | p99 µs | req/s | client CPU µs/req | server CPU µs/req | broker CPU µs/req |
|---|---:|---:|---:|---:|---:|---:|---:|
$(seq_row "sequential, 1 node, classic" cluster-seq fib)
$(seq_row "sequential, 3 nodes, quorum" cluster-seq fibq)
| quorum / classic | $(ratio_row cluster-seq fibq fib) |
$(seq_row "64 in flight, prefetch 50, 1 node, classic" cluster-pipe fib)
$(seq_row "64 in flight, prefetch 50, 3 nodes, quorum" cluster-pipe fibq)
| quorum / classic | $(ratio_row cluster-pipe fibq fib) |

EOF
fi
if section metrics; then
    cat <<EOF
## Metrics: on and scraped every second against off, $SEQ_COUNT sequential requests, cache off

fib-server \`--quiet --cache-mb 0\` alone, and the same with \`--metrics
127.0.0.1:0\` while a loop fetches its \`/metrics\` once a second with curl
($scrapes complete scrapes over the whole section), alternating run by run.
The scrapes' own cost is in the server's CPU (its HTTP thread); the request
path only updates atomics.

| | mean µs | p50 µs | p99 µs | req/s | client CPU µs/req | server CPU µs/req | broker CPU µs/req |
|---|---:|---:|---:|---:|---:|---:|---:|
$(seq_row "metrics off" metrics fib)
$(seq_row "metrics on, scraped every second" metrics fibmetrics)
| on / off (ratio of the medians) | $(ratio_row metrics fibmetrics fib) |
| on / off (median of the $REPS run-by-run ratios) | $(pair_ratio_row metrics fibmetrics fib) |

EOF
fi
if section memory; then
    cat <<EOF
## Server memory

fib-server (one, \`--prefetch 50\`, cache off) through $MEM_COUNT requests from
\`fib-client --inflight 64\`: resident $(mib "$mem_start_kib") MiB when ready,
peak $(mib "$mem_peak_kib") MiB (VmHWM), $(mib "$mem_end_kib") MiB at the end.

EOF
fi
if section cache && [ "$WARMUP" -gt 0 ]; then
    cat <<EOF
## Cache: a repeated large n, warm against off

fib-client asks n = $CACHE_START .. $((CACHE_START + WARMUP - 1)) (about 20,900
digits each) one at a time; the warm-up asked the same n, so with the cache
(default \`--cache-mb\`) every timed request is a lookup, and without it
(\`--cache-mb 0\`) a computation.

| | mean µs | p50 µs | p99 µs | req/s | client CPU µs/req | server CPU µs/req | broker CPU µs/req |
|---|---:|---:|---:|---:|---:|---:|---:|
$(seq_row "cache warm" cache fibcache)
$(seq_row "cache off" cache fiblarge)
| warm / off | $(ratio_row cache fibcache fiblarge) |

EOF
fi
cat <<EOF
## fib(n)

EOF
if [ -n "$fib_table" ]; then
    printf '%s\n' "$fib_table"
else
    printf '%s\n' "$fib_note"
fi
log "done in $((SECONDS - started)) s of measuring"
