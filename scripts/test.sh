#!/usr/bin/env bash
# The whole test suite: broker, prometheus and promtool, pika venv, fmt, clippy, cargo deny, cargo test,
# the Debian package, fault suite (with the broker restarts, the resource alarms and the cluster
# faults, each run alone).
# Extra arguments are passed to `cargo test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Each stage's header says when it began, so a slow run shows where its time went.
stage() {
    echo "== $* (at ${SECONDS} s)" >&2
}
trap 'echo "== ended after ${SECONDS} s" >&2' EXIT

stage "broker"
bash scripts/broker.sh

stage "prometheus (its own instance per test; the package's service is never started)"
bash scripts/prometheus.sh

stage "pika venv"
FIB_RPC_PYTHON="$(bash scripts/pika-venv.sh)"
export FIB_RPC_PYTHON
echo "FIB_RPC_PYTHON=$FIB_RPC_PYTHON" >&2

stage "cargo fmt"
cargo fmt --all -- --check

stage "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

stage "cargo deny (advisories, licences, bans, sources)"
bash scripts/deny.sh

stage "cargo test"
# The fault suite (faults/) runs the built binaries of both programs.
cargo build --workspace --bins
cargo test --workspace --exclude faults "$@"

stage "packaging (the .deb built, installed, serving a client, purged)"
FIB_DEB="$(bash scripts/package.sh | tail -n 1)"
FIB_DEB="$FIB_DEB" cargo test -p fib-server --test package -- --ignored --nocapture

stage "fault suite"
cargo test -p faults -- --nocapture

stage "broker restarts (alone: they take the broker from everyone)"
cargo test -p faults --test broker_restart -- --ignored --test-threads=1 --nocapture

stage "resource alarms and a hung broker (an extra node beside the default broker, stopped after)"
cargo test -p faults --test alarms -- --ignored --test-threads=1 --nocapture

stage "cluster faults (a three-node cluster beside the default broker, stopped after)"
cargo test -p faults --test cluster -- --ignored --test-threads=1 --nocapture
