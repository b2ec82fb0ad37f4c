#!/usr/bin/env bash
# Create (if missing) a Python virtual environment with pika for the interop
# tests and print the path of its python as the only line on stdout.
#
# Env: FIB_RPC_VENV (default <repo>/target/pika-venv),
#      PYTHON (interpreter used to create the venv, default python3).
# Progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FIB_RPC_VENV:-$ROOT/target/pika-venv}"
BASE_PY="${PYTHON:-python3}"
PY="$VENV/bin/python"
PIKA_SPEC='pika>=1.3,<2'

log() { echo "pika-venv: $*" >&2; }
die() {
    echo "pika-venv: error: $*" >&2
    exit 1
}

have_pika() {
    [ -x "$PY" ] && "$PY" - >/dev/null 2>&1 <<'EOF'
import sys
import pika
major, minor = (int(x) for x in pika.__version__.split(".")[:2])
sys.exit(0 if (major, minor) >= (1, 3) and major < 2 else 1)
EOF
}

# Fast path: nothing to do.
if have_pika; then
    echo "$PY"
    exit 0
fi

mkdir -p "$(dirname "$VENV")"
# Serialise concurrent runs on the same venv.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV.lock"
    flock -w 600 9 || die "timed out waiting for the lock $VENV.lock"
    if have_pika; then
        echo "$PY"
        exit 0
    fi
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root or sudo to run: $*"
    fi
}

# A venv is usable when its python runs and has pip.
venv_ok() { [ -x "$PY" ] && "$PY" -m pip --version >/dev/null 2>&1; }

remove_venv() {
    # Only ever remove something that looks like a virtual environment.
    if [ -e "$VENV/pyvenv.cfg" ] || { [ -d "$VENV" ] && [ -z "$(ls -A "$VENV")" ]; }; then
        log "removing unusable virtual environment at $VENV"
        rm -rf "$VENV"
    else
        die "$VENV exists but is not a usable virtual environment; remove it or set FIB_RPC_VENV"
    fi
}

create_venv() { "$BASE_PY" -m venv "$VENV" >&2; }

if ! venv_ok; then
    command -v "$BASE_PY" >/dev/null 2>&1 || die "$BASE_PY not found (set PYTHON to a Python 3 interpreter)"
    if [ -e "$VENV" ]; then
        remove_venv
    fi
    log "creating virtual environment at $VENV"
    if ! create_venv || ! venv_ok; then
        # Debian's python3 needs the python3-venv package (ensurepip).
        [ -e "$VENV" ] && remove_venv
        command -v apt-get >/dev/null 2>&1 ||
            die "'$BASE_PY -m venv' failed and apt-get is not available to install python3-venv"
        log "'$BASE_PY -m venv' failed; installing Debian's python3-venv and retrying"
        as_root apt-get update -q >&2 || die "apt-get update failed"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv </dev/null >&2 ||
            die "apt-get install python3-venv failed"
        create_venv || die "'$BASE_PY -m venv $VENV' failed even after installing python3-venv"
        venv_ok || die "the virtual environment at $VENV has no working pip"
    fi
fi

log "installing $PIKA_SPEC into $VENV"
"$PY" -m pip install --disable-pip-version-check -q "$PIKA_SPEC" </dev/null >&2 ||
    die "pip install '$PIKA_SPEC' failed"
have_pika || die "pika is still not importable from $PY"
echo "$PY"
