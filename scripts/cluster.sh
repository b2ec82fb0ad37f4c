#!/usr/bin/env bash
# A local three-node RabbitMQ cluster for tests, beside the default broker
# (rabbit@localhost on 5672), which it never stops or reconfigures; or, with
# FIB_CLUSTER_NODES=1, a single extra node for tests that must disturb a
# broker (alarms, SIGSTOP) without touching the shared one.
#
# Nodes fibq1@localhost, fibq2@localhost, fibq3@localhost run as user
# rabbitmq (same Erlang cookie as the default broker), each with its own
# config file, mnesia, log folder and pid file under FIB_CLUSTER_DIR, AMQP
# on 127.0.0.1 only. Their beam command lines carry
# "-fib_rpc_cluster fibqI@localhost", so `pgrep -af fibq` lists them.
#
# Usage: scripts/cluster.sh COMMAND [ARG]
#   start          Start the three nodes, join fibq2 and fibq3 to fibq1 and
#                  wait until every node sees all three running in one
#                  cluster; then print the AMQP URLs on stdout, one a line
#                  (amqp://guest:guest@127.0.0.1:5681/%2f ...). Idempotent:
#                  a complete running cluster is left as it is; remains of
#                  an incomplete one are stopped and wiped first. A failed
#                  start prints the tails of the nodes' logs, stops the
#                  nodes and exits 1.
#   stop           Stop the three nodes (rabbitmqctl stop; SIGKILL through
#                  the pid file if that fails), wait until their ports are
#                  closed, remove FIB_CLUSTER_DIR. Exits 0 when nothing runs.
#   status         Each node's name, AMQP port and state, and the cluster
#                  membership as a running node (fibq1 first) sees it.
#                  Exits 0 if all three run in one cluster, 1 otherwise.
#   urls           Print the three AMQP URLs (no check that anything runs).
#   kill I         SIGKILL node I's Erlang VM (I = 1, 2 or 3) and wait
#                  until it is gone.
#   stop-node I    Stop node I gracefully (the whole node, `rabbitmqctl
#                  stop`), as a node going down for maintenance would.
#   stop-app I     Stop the RabbitMQ application on node I (`rabbitmqctl
#                  stop_app`: its connections close, its Erlang VM stays),
#                  as an operator does before maintenance.
#   start-node I   Start node I again (after kill or stop-node; a node whose
#                  app alone was stopped gets start_app) and wait until it
#                  runs in the cluster again.
#   pause I        SIGSTOP node I's Erlang VM: a hung node, not a dead one.
#   resume I       SIGCONT node I's Erlang VM (after pause).
#   ctl I ARGS...  rabbitmqctl ARGS against node I (as user rabbitmq, bounded
#                  to 60 s), e.g. `ctl 1 set_vm_memory_high_watermark 0.4`.
#   leader QUEUE   Print the index (1-3) of the node that leads quorum queue
#                  QUEUE of vhost /, as a running node sees it.
#   members QUEUE  Print the number of online members of quorum queue QUEUE.
#
# Env:
#   FIB_CLUSTER_DIR        state folder, default /tmp/fib-rpc-cluster
#   FIB_CLUSTER_BASE_PORT  node I listens for AMQP on BASE+I, default 5680
#                          (5681-5683); its Erlang distribution port is that
#                          plus 20000 (25681-25683)
#   FIB_CLUSTER_TIMEOUT    seconds a start, start-node or stop may take,
#                          default 120
#   FIB_CLUSTER_NODES      how many nodes, 1 to 3, default 3
#   FIB_CLUSTER_NAME       node name prefix, default fibq (nodes fibq1@localhost
#                          ...): another prefix, folder and base port give a
#                          second set of nodes beside the first
#
# Needs root, the rabbitmq user or password-less sudo. Debian's
# rabbitmq-server is installed with apt-get if missing (start only).
# Logs go to stderr, prefixed "cluster:".
set -euo pipefail

# rabbitmq-server/rabbitmqctl live in /usr/sbin, which is not always on PATH.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

log() { echo "cluster: $*" >&2; }
die() {
    echo "cluster: error: $*" >&2
    exit 1
}
usage() {
    # The header comment above, without its "#".
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}" >&2
    exit 2
}

STATE="${FIB_CLUSTER_DIR:-/tmp/fib-rpc-cluster}"
BASE_PORT="${FIB_CLUSTER_BASE_PORT:-5680}"
TIMEOUT="${FIB_CLUSTER_TIMEOUT:-120}"
[[ "$STATE" == /?* ]] || die "FIB_CLUSTER_DIR must be an absolute path other than /, got '$STATE'"
STATE="${STATE%/}"
if ! [[ "$BASE_PORT" =~ ^[0-9]+$ ]] || [ "$BASE_PORT" -lt 1024 ] || [ "$BASE_PORT" -gt 45530 ]; then
    die "FIB_CLUSTER_BASE_PORT must be an integer in 1024..45530, got '$BASE_PORT'"
fi
if ! [[ "$TIMEOUT" =~ ^[0-9]+$ ]] || [ "$TIMEOUT" -lt 1 ]; then
    die "FIB_CLUSTER_TIMEOUT must be a positive integer (seconds), got '$TIMEOUT'"
fi
NODE_COUNT="${FIB_CLUSTER_NODES:-3}"
NAME="${FIB_CLUSTER_NAME:-fibq}"
[[ "$NODE_COUNT" =~ ^[123]$ ]] || die "FIB_CLUSTER_NODES must be 1, 2 or 3, got '$NODE_COUNT'"
[[ "$NAME" =~ ^[a-z][a-z0-9]{0,15}$ ]] ||
    die "FIB_CLUSTER_NAME must be a lower-case letter and up to 15 letters or digits, got '$NAME'"
DEADLINE=$((SECONDS + TIMEOUT))
remaining() {
    local r=$((DEADLINE - SECONDS))
    if [ "$r" -lt 1 ]; then r=1; fi
    echo "$r"
}

RMQ_BIN=/usr/lib/rabbitmq/bin
mapfile -t NODES < <(seq 1 "$NODE_COUNT")
MARKER=.fib-rpc-cluster # in STATE: `stop` removes only a folder that has it

node_name() { echo "$NAME$1@localhost"; }
amqp_port() { echo $((BASE_PORT + $1)); }
dist_port() { echo $((BASE_PORT + $1 + 20000)); }
node_dir() { echo "$STATE/$NAME$1"; }
pid_file() { echo "$STATE/$NAME$1/$NAME$1.pid"; }
url() { echo "amqp://guest:guest@127.0.0.1:$(amqp_port "$1")/%2f"; }
print_urls() {
    local i
    for i in "${NODES[@]}"; do url "$i"; done
}
check_index() {
    [[ "${1:-}" =~ ^[1-9]$ ]] && [ "$1" -le "$NODE_COUNT" ] ||
        die "node index must be 1 to $NODE_COUNT, got '${1:-}'"
}

# --- privileges ------------------------------------------------------------
# Nodes and CLI tools run as user rabbitmq; folders are made as root.
SUDO=()
if [ "$(id -u)" -ne 0 ] && [ "$(id -un)" != rabbitmq ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true </dev/null >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        die "managing RabbitMQ nodes needs root, the rabbitmq user or password-less sudo"
    fi
fi
as_root() { "${SUDO[@]}" "$@"; }
# HOME is the rabbitmq user's, where its Erlang cookie is.
as_rabbitmq() {
    local home
    home="$(getent passwd rabbitmq | cut -d: -f6)"
    home="${home:-/var/lib/rabbitmq}"
    if [ "$(id -un)" = rabbitmq ]; then
        (cd / && env HOME="$home" "$@")
    elif [ "$(id -u)" -eq 0 ]; then
        # shellcheck disable=SC2016 # expanded by the inner sh
        (cd / && su -s /bin/sh -c 'exec "$@"' -- rabbitmq sh env HOME="$home" "$@")
    else
        (cd / && sudo -n -u rabbitmq env HOME="$home" "$@")
    fi
}

installed() { [ -x "$RMQ_BIN/rabbitmq-server" ] && getent passwd rabbitmq >/dev/null; }

install_rabbitmq() {
    installed && return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "rabbitmq-server is not installed and apt-get is not available to install it"
    log "rabbitmq-server not installed; installing Debian's package rabbitmq-server"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server </dev/null >&2 ||
        die "apt-get install rabbitmq-server failed"
    installed || die "rabbitmq-server still not found after installing the package"
}

# ctl SECONDS TOOL I ARGS...: a RabbitMQ CLI tool against node I, bounded.
ctl() {
    local t="$1" tool="$2" i="$3"
    shift 3
    as_rabbitmq timeout "$t" "$RMQ_BIN/$tool" -n "$(node_name "$i")" "$@" </dev/null
}

# --- probes ----------------------------------------------------------------
port_answers() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}
port_listening() { [ -n "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]; }

# Is PID the beam of our node I? Its command line carries our marker.
is_our_beam() {
    local pid="$1" i="$2" cmdline
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    cmdline="$(as_root cat "/proc/$pid/cmdline" 2>/dev/null | tr '\0' '\n')" || return 1
    grep -q 'beam' <<<"$cmdline" &&
        grep -qxF -- "-fib_rpc_cluster" <<<"$cmdline" &&
        grep -qxF -- "$(node_name "$i")" <<<"$cmdline"
}

# The OS pid of node I's beam, from its pid file or else from its marker on
# a command line (the pid file may be gone while the VM is still exiting);
# fails if there is none.
node_pid() {
    local i="$1" pid
    pid="$(as_root cat "$(pid_file "$i")" 2>/dev/null | tr -dc '0-9')" || true
    if is_our_beam "$pid" "$i"; then
        echo "$pid"
        return 0
    fi
    for pid in $(pgrep -f -- "-fib_rpc_cluster $(node_name "$i")( |\$)" || true); do
        if is_our_beam "$pid" "$i"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

node_up() { node_pid "$1" >/dev/null; } # the Erlang VM runs
app_running() { ctl 20 rabbitmq-diagnostics "$1" -q check_running >/dev/null 2>&1; }

# The cluster as node I sees it, one CLI call: two lines, the members and
# the nodes whose app runs, each a space-separated list of node names.
cluster_view() {
    local out
    out="$(ctl 20 rabbitmqctl "$1" -q eval \
        '{rabbit_nodes:all(), rabbit_nodes:all_running()}.' 2>/dev/null)" || return 1
    # {[fibq1@localhost,...],\n [fibq1@localhost,...]}
    out="$(tr -d ' \n' <<<"$out")"
    [[ "$out" == '{['*']}' ]] || return 1
    out="${out#\{\[}"
    out="${out%\]\}}"
    [[ "$out" == *'],['* ]] || return 1
    tr ',' '\n' <<<"${out%%\],\[*}" | sort | paste -sd ' '
    tr ',' '\n' <<<"${out#*\],\[}" | sort | paste -sd ' '
}
count_words() { wc -w <<<"$1"; }
# Node I sees every node as a member and running.
sees_full_cluster() {
    local view
    view="$(cluster_view "$1")" || return 1
    [ "$(count_words "$(sed -n 1p <<<"$view")")" -eq "$NODE_COUNT" ] &&
        [ "$(count_words "$(sed -n 2p <<<"$view")")" -eq "$NODE_COUNT" ]
}
cluster_complete() {
    local i
    for i in "${NODES[@]}"; do
        port_answers "$(amqp_port "$i")" || return 1
    done
    for i in "${NODES[@]}"; do
        sees_full_cluster "$i" || return 1
    done
}

# --- starting --------------------------------------------------------------
prepare_state() {
    local i dir port
    as_root mkdir -p "$STATE"
    as_root touch "$STATE/$MARKER"
    for i in "${NODES[@]}"; do
        dir="$(node_dir "$i")"
        port="$(amqp_port "$i")"
        as_root mkdir -p "$dir/mnesia" "$dir/log"
        printf '%s\n' \
            "# fib-rpc test cluster node $(node_name "$i"); made by scripts/cluster.sh" \
            "listeners.tcp.local = 127.0.0.1:$port" |
            as_root tee "$dir/rabbitmq.conf" >/dev/null
        echo '[].' | as_root tee "$dir/enabled_plugins" >/dev/null
    done
    as_root chown -R rabbitmq:rabbitmq "$STATE"
}

start_node_process() {
    local i="$1" dir
    dir="$(node_dir "$i")"
    # shellcheck disable=SC2016 # expanded by the inner sh
    as_rabbitmq env \
        RABBITMQ_NODENAME="$(node_name "$i")" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$(amqp_port "$i")" \
        RABBITMQ_DIST_PORT="$(dist_port "$i")" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$(pid_file "$i")" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-fib_rpc_cluster $(node_name "$i")" \
        sh -c 'log="$1"; shift; exec timeout 30 "$@" >>"$log" 2>&1' sh \
        "$dir/log/startup_log" "$RMQ_BIN/rabbitmq-server" -detached 9>&-
}

# Waits until node I's app has booted (await_startup fails at once while the
# node is not registered yet, hence the retries).
await_node() {
    local i="$1"
    until ctl "$(remaining)" rabbitmqctl "$i" -q await_startup >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$DEADLINE" ] || return 1
        sleep 0.5
    done
}

wait_for() { # wait_for WHAT COMMAND...: poll until COMMAND succeeds or the deadline
    local what="$1"
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$DEADLINE" ] || {
            log "timed out (${TIMEOUT}s, FIB_CLUSTER_TIMEOUT) waiting for $what"
            return 1
        }
        sleep 0.5
    done
}

show_logs() {
    local f
    for f in "$STATE/$NAME"*/log/startup_log "$STATE/$NAME"*/log/"$NAME"*@localhost.log; do
        if as_root test -s "$f"; then
            echo "--- tail of $f ---" >&2
            as_root tail -n 20 "$f" >&2 || true
        fi
    done
}

STARTING=0
on_exit() {
    local status=$?
    if [ "$STARTING" -eq 1 ] && [ "$status" -ne 0 ]; then
        log "start failed; the nodes' logs:"
        show_logs
        log "stopping what was started"
        DEADLINE=$((SECONDS + (TIMEOUT > 60 ? TIMEOUT : 60)))
        do_stop || log "could not stop every node; see 'scripts/cluster.sh status'"
    fi
}
trap on_exit EXIT

do_start() {
    local i port begun=$SECONDS
    if cluster_complete 2>/dev/null; then
        log "cluster already running"
        print_urls
        return 0
    fi
    for i in "${NODES[@]}"; do
        if node_up "$i" || [ -e "$STATE" ]; then
            log "an incomplete cluster is left from before; stopping and wiping it"
            do_stop
            DEADLINE=$((SECONDS + TIMEOUT))
            break
        fi
    done
    for i in "${NODES[@]}"; do
        for port in "$(amqp_port "$i")" "$(dist_port "$i")"; do
            ! port_listening "$port" ||
                die "port $port is taken by another program; choose other ports with FIB_CLUSTER_BASE_PORT"
        done
    done
    STARTING=1
    prepare_state
    for i in "${NODES[@]}"; do
        log "starting $(node_name "$i") on 127.0.0.1:$(amqp_port "$i")"
        start_node_process "$i" || die "rabbitmq-server -detached failed for $(node_name "$i")"
    done
    for i in "${NODES[@]}"; do
        await_node "$i" || die "$(node_name "$i") did not start within ${TIMEOUT}s"
    done
    [ "$NODE_COUNT" -eq 1 ] || log "nodes up after $((SECONDS - begun))s; joining the others to $(node_name 1)"
    for i in "${NODES[@]:1}"; do
        if ! { ctl "$(remaining)" rabbitmqctl "$i" -q stop_app >&2 &&
            ctl "$(remaining)" rabbitmqctl "$i" -q join_cluster "$(node_name 1)" >&2 &&
            ctl "$(remaining)" rabbitmqctl "$i" -q start_app >&2; }; then
            die "$(node_name "$i") could not join $(node_name 1)"
        fi
    done
    for i in "${NODES[@]}"; do
        wait_for "$(node_name "$i") to see three running nodes" sees_full_cluster "$i" ||
            die "the cluster did not form within ${TIMEOUT}s"
    done
    for i in "${NODES[@]}"; do
        wait_for "port $(amqp_port "$i")" port_answers "$(amqp_port "$i")" ||
            die "port $(amqp_port "$i") does not answer"
    done
    STARTING=0
    log "cluster of $NODE_COUNT running after $((SECONDS - begun))s"
    print_urls
}

# Starts node I again (after kill or stop-node) and waits until it runs in
# the cluster.
do_start_node() {
    local i="$1" j
    [ -e "$STATE/$MARKER" ] || die "no cluster state in $STATE: run 'scripts/cluster.sh start'"
    if node_up "$i"; then
        app_running "$i" || ctl "$(remaining)" rabbitmqctl "$i" -q start_app >&2 ||
            die "start_app on $(node_name "$i") failed"
    else
        port_listening "$(amqp_port "$i")" &&
            die "port $(amqp_port "$i") is taken by another program"
        log "starting $(node_name "$i") again"
        start_node_process "$i" || die "rabbitmq-server -detached failed for $(node_name "$i")"
    fi
    if ! await_node "$i"; then
        show_logs
        die "$(node_name "$i") did not start within ${TIMEOUT}s"
    fi
    # Every running node must see it back.
    for j in "${NODES[@]}"; do
        app_running "$j" || continue
        wait_for "$(node_name "$j") to see $(node_name "$i") running" node_sees_running "$j" "$i" ||
            die "$(node_name "$i") did not rejoin the cluster within ${TIMEOUT}s"
    done
    wait_for "port $(amqp_port "$i")" port_answers "$(amqp_port "$i")" || die "port $(amqp_port "$i") does not answer"
    log "$(node_name "$i") runs in the cluster again"
}
node_sees_running() {
    local view
    view="$(cluster_view "$1")" || return 1
    sed -n 2p <<<"$view" | tr ' ' '\n' | grep -qxF "$(node_name "$2")"
}

# --- stopping --------------------------------------------------------------
node_gone() {
    local i="$1"
    ! node_up "$i" && ! port_listening "$(amqp_port "$i")" && ! port_listening "$(dist_port "$i")"
}

kill_node() {
    local i="$1" pid
    pid="$(node_pid "$i")" || return 0
    log "SIGKILL $(node_name "$i") (pid $pid)"
    as_root kill -KILL "$pid" || true
}

# Stops node I: rabbitmqctl stop, SIGKILL if that fails; waits until gone.
stop_node() {
    local i="$1"
    if ! node_up "$i"; then
        return 0
    fi
    log "stopping $(node_name "$i")"
    if ! ctl "$(remaining)" rabbitmqctl "$i" -q stop >/dev/null 2>&1; then
        log "rabbitmqctl stop failed for $(node_name "$i")"
        kill_node "$i"
    fi
    if ! wait_for "$(node_name "$i") to go" node_gone "$i"; then
        kill_node "$i"
        DEADLINE=$((SECONDS + 10))
        wait_for "$(node_name "$i") to go after SIGKILL" node_gone "$i" || return 1
    fi
}

do_stop() {
    local i failed=0
    installed || return 0
    for i in "${NODES[@]}"; do
        stop_node "$i" || failed=1
    done
    [ "$failed" -eq 0 ] || die "some node would not stop; its pid file is under $STATE"
    if [ -e "$STATE" ]; then
        as_root test -e "$STATE/$MARKER" ||
            die "$STATE has no $MARKER file: not removing a folder this script did not make"
        as_root rm -rf -- "$STATE"
    fi
    log "stopped"
}

# --- queues ----------------------------------------------------------------
# The first node whose app runs.
running_node() {
    local i
    for i in "${NODES[@]}"; do
        if app_running "$i"; then
            echo "$i"
            return 0
        fi
    done
    return 1
}

# queue_field QUEUE COLUMN: one column of list_queues for quorum queue QUEUE.
queue_field() {
    local queue="$1" column="$2" i out
    i="$(running_node)" || die "no node of the cluster runs"
    out="$(ctl 30 rabbitmqctl "$i" -q list_queues --no-table-headers name type "$column")" ||
        die "list_queues on $(node_name "$i") failed"
    out="$(awk -F '\t' -v q="$queue" '$1 == q { print $2 "\t" $3; exit }' <<<"$out")"
    [ -n "$out" ] || die "no queue '$queue' in vhost /"
    [ "${out%%$'\t'*}" = quorum ] || die "queue '$queue' is not a quorum queue (type ${out%%$'\t'*})"
    echo "${out#*$'\t'}"
}

do_leader() {
    local field leader
    field="$(queue_field "$1" leader)" || exit 1
    leader="$(grep -o "$NAME[123]@localhost" <<<"$field" | head -n 1)" || true
    [ -n "$leader" ] || die "quorum queue '$1' has no leader now"
    leader="${leader#"$NAME"}"
    echo "${leader%%@*}"
}

do_members() {
    local field
    field="$(queue_field "$1" online)" || exit 1
    grep -o "$NAME[123]@localhost" <<<"$field" | sort -u | wc -l
}

# --- status ----------------------------------------------------------------
do_status() {
    local i state seen view ok=0
    for i in "${NODES[@]}"; do
        if app_running "$i"; then
            state=running
        elif node_up "$i"; then
            state="up, app stopped"
            ok=1
        else
            state="not running"
            ok=1
        fi
        printf '%s\t127.0.0.1:%s\t%s\n' "$(node_name "$i")" "$(amqp_port "$i")" "$state"
    done
    if seen="$(running_node)" && view="$(cluster_view "$seen")"; then
        printf 'members (seen by %s):\t%s\n' "$(node_name "$seen")" "$(sed -n 1p <<<"$view")"
        printf 'running (seen by %s):\t%s\n' "$(node_name "$seen")" "$(sed -n 2p <<<"$view")"
        [ "$(count_words "$(sed -n 1p <<<"$view")")" -eq "$NODE_COUNT" ] &&
            [ "$(count_words "$(sed -n 2p <<<"$view")")" -eq "$NODE_COUNT" ] || ok=1
    else
        echo "no node runs"
        ok=1
    fi
    return "$ok"
}

# --- main ------------------------------------------------------------------
COMMAND="${1:-}"
ARG="${2:-}"
case "$COMMAND" in
start | stop | kill | stop-node | stop-app | start-node | pause | resume)
    # One mutating command at a time.
    exec 9>>"$STATE.lock"
    flock -w "$TIMEOUT" 9 || die "another scripts/cluster.sh holds $STATE.lock"
    ;;
esac
case "$COMMAND" in
start)
    install_rabbitmq
    do_start
    ;;
stop)
    do_stop
    ;;
status)
    installed || die "rabbitmq-server is not installed"
    do_status
    ;;
urls)
    print_urls
    ;;
kill)
    check_index "$ARG"
    node_up "$ARG" || die "$(node_name "$ARG") is not running"
    kill_node "$ARG"
    wait_for "$(node_name "$ARG") to go" node_gone "$ARG" || die "$(node_name "$ARG") is still there"
    ;;
stop-node)
    check_index "$ARG"
    node_up "$ARG" || die "$(node_name "$ARG") is not running"
    stop_node "$ARG" || die "$(node_name "$ARG") would not stop"
    ;;
stop-app)
    check_index "$ARG"
    node_up "$ARG" || die "$(node_name "$ARG") is not running"
    log "stop_app on $(node_name "$ARG")"
    ctl "$(remaining)" rabbitmqctl "$ARG" -q stop_app >&2 || die "stop_app on $(node_name "$ARG") failed"
    ;;
start-node)
    check_index "$ARG"
    do_start_node "$ARG"
    ;;
pause | resume)
    check_index "$ARG"
    pid="$(node_pid "$ARG")" || die "$(node_name "$ARG") is not running"
    if [ "$COMMAND" = pause ]; then signal=STOP; else signal=CONT; fi
    log "SIG$signal $(node_name "$ARG") (pid $pid)"
    as_root kill "-$signal" "$pid" || die "kill -$signal $pid failed"
    ;;
ctl)
    check_index "$ARG"
    node_up "$ARG" || die "$(node_name "$ARG") is not running"
    shift 2
    ctl 60 rabbitmqctl "$ARG" "$@"
    ;;
leader)
    [ -n "$ARG" ] || usage
    do_leader "$ARG"
    ;;
members)
    [ -n "$ARG" ] || usage
    do_members "$ARG"
    ;;
*)
    usage
    ;;
esac
