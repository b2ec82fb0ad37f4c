#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers at AMQP_URL
# (default amqp://guest:guest@127.0.0.1:5672/%2f).
#
# For a local URL host (127.0.0.1, localhost, ::1) the local broker is
# installed from Debian's packages if missing and started if it is not
# running. For a remote host the script only waits for the AMQP port.
#
# Env: AMQP_URL, BROKER_TIMEOUT (seconds, default 60).
# Prints one line on success: "broker: ready at HOST:PORT".
# The password in AMQP_URL is never printed.
set -euo pipefail

# rabbitmq-server/rabbitmqctl live in /usr/sbin, which is not always on PATH.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

TIMEOUT="${BROKER_TIMEOUT:-60}"
if ! [[ "$TIMEOUT" =~ ^[0-9]+$ ]] || [ "$TIMEOUT" -lt 1 ]; then
    echo "broker: BROKER_TIMEOUT must be a positive integer (seconds), got '$TIMEOUT'" >&2
    exit 2
fi
DEADLINE=$((SECONDS + TIMEOUT))

log() { echo "broker: $*" >&2; }
die() {
    echo "broker: error: $*" >&2
    exit 1
}
remaining() {
    local r=$((DEADLINE - SECONDS))
    if [ "$r" -lt 1 ]; then r=1; fi
    echo "$r"
}

# --- parse host and port out of AMQP_URL (never keep the user info) -------
URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
SCHEME=amqp
REST="$URL"
if [[ "$URL" == *://* ]]; then
    SCHEME="${URL%%://*}"
    REST="${URL#*://}"
fi
REST="${REST%%/*}"
REST="${REST%%\?*}"
REST="${REST%%#*}"
HOSTPORT="${REST##*@}" # drop "user:password@"
case "$SCHEME" in
amqps) DEFAULT_PORT=5671 ;;
*) DEFAULT_PORT=5672 ;;
esac
if [[ "$HOSTPORT" == \[* ]]; then # [ipv6]:port
    HOST="${HOSTPORT#\[}"
    HOST="${HOST%%\]*}"
    PORT="${HOSTPORT#*\]}"
    PORT="${PORT#:}"
elif [[ "$HOSTPORT" == *:* ]]; then
    HOST="${HOSTPORT%%:*}"
    PORT="${HOSTPORT##*:}"
else
    HOST="$HOSTPORT"
    PORT=""
fi
HOST="${HOST:-localhost}"
PORT="${PORT:-$DEFAULT_PORT}"
if ! [[ "$PORT" =~ ^[0-9]+$ ]]; then
    die "cannot parse the port of AMQP_URL (host '$HOST')"
fi
if [[ "$HOST" == *:* ]]; then
    WHERE="[$HOST]:$PORT"
else
    WHERE="$HOST:$PORT"
fi

case "$HOST" in
localhost | 127.* | ::1 | 0:0:0:0:0:0:0:1) LOCAL=1 ;;
*) LOCAL=0 ;;
esac

port_answers() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$HOST" "$PORT" 2>/dev/null
}

wait_for_port() {
    while ! port_answers; do
        if [ "$SECONDS" -ge "$DEADLINE" ]; then
            return 1
        fi
        sleep 0.5
    done
}

ready() {
    echo "broker: ready at $WHERE"
    exit 0
}

# --- remote broker: only wait for its port ---------------------------------
if [ "$LOCAL" -eq 0 ]; then
    wait_for_port || die "no AMQP broker answered at $WHERE within ${TIMEOUT}s (remote host: not managed by this script)"
    ready
fi

# --- local broker ----------------------------------------------------------
# The Debian wrappers (rabbitmqctl, rabbitmq-server) only work as root or as
# the rabbitmq user.
SUDO=()
if [ "$(id -u)" -ne 0 ] && [ "$(id -un)" != rabbitmq ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true </dev/null >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        # Cannot manage the local broker: accept one that already answers.
        if port_answers; then
            ready
        fi
        die "nothing answers at $WHERE and managing the local RabbitMQ broker needs root or password-less sudo; run as root or start the broker yourself"
    fi
fi
as_root() { "${SUDO[@]}" "$@"; }

INSTALLED_NOW=0
if ! command -v rabbitmq-server >/dev/null 2>&1; then
    if port_answers; then
        # Something (a container, another install) already serves AMQP here.
        ready
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "rabbitmq-server is not installed and apt-get is not available to install it"
    log "rabbitmq-server not installed; installing Debian's package rabbitmq-server"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q >&2 || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server </dev/null >&2 ||
        die "apt-get install rabbitmq-server failed"
    command -v rabbitmq-server >/dev/null 2>&1 ||
        die "rabbitmq-server still not found after installing the package"
    INSTALLED_NOW=1
fi

# CLI calls, bounded in time so that a wedged node cannot hang the script.
ctl() {
    local t="$1"
    shift
    as_root timeout "$t" "$@" </dev/null
}
node_running() { ctl 20 rabbitmq-diagnostics -q check_running >/dev/null 2>&1; }
# The Erlang node is up (registered with epmd) even if the app is still booting.
node_process_up() {
    if ctl 20 rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
        return 0
    fi
    local f pid
    for f in /var/lib/rabbitmq/mnesia/*.pid; do
        [ -r "$f" ] || continue
        pid="$(tr -dc '0-9' <"$f")"
        if [ -n "$pid" ] && [ -d "/proc/$pid" ] &&
            grep -qs beam "/proc/$pid/cmdline"; then
            return 0
        fi
    done
    return 1
}

show_logs() {
    local f
    for f in /var/log/rabbitmq/startup_err /var/log/rabbitmq/startup_log /var/log/rabbitmq/rabbit@*[!e].log; do
        if [ -s "$f" ]; then
            echo "--- tail of $f ---" >&2
            tail -n 20 "$f" >&2 || true
        fi
    done
}

if ! node_running; then
    if node_process_up; then
        log "local RabbitMQ node is starting; waiting for it"
    else
        if [ "$INSTALLED_NOW" -eq 1 ] && [ -d /etc/rabbitmq ] &&
            ! grep -qs NODENAME /etc/rabbitmq/rabbitmq-env.conf; then
            # Fresh install: a fixed node name avoids depending on the
            # machine's hostname resolving; listen on loopback only.
            printf '%s\n' 'NODENAME=rabbit@localhost' 'ERL_EPMD_ADDRESS=127.0.0.1' |
                as_root tee -a /etc/rabbitmq/rabbitmq-env.conf >/dev/null || true
            if [ ! -e /etc/rabbitmq/rabbitmq.conf ]; then
                echo "listeners.tcp.local = 127.0.0.1:$PORT" |
                    as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null || true
            fi
        fi
        log "starting local RabbitMQ (rabbitmq-server -detached)"
        if ! ctl 30 rabbitmq-server -detached >/dev/null 2>&1; then
            # It may have lost a race with another starter; the wait decides.
            log "rabbitmq-server -detached returned an error; waiting anyway"
        fi
    fi
    # await_startup fails at once while the node is not yet registered, so
    # retry it until the deadline.
    until ctl "$(remaining)" rabbitmqctl -q await_startup >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$DEADLINE" ]; then
            show_logs
            die "local RabbitMQ did not finish starting within ${TIMEOUT}s (BROKER_TIMEOUT)"
        fi
        sleep 1
    done
fi

if ! wait_for_port; then
    show_logs
    die "RabbitMQ is running but nothing answers at $WHERE within ${TIMEOUT}s; check its listeners (rabbitmq-diagnostics listeners)"
fi
ready
