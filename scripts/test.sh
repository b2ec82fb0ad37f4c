#!/usr/bin/env bash
# The whole test suite: broker, prometheus and promtool, pika venv, fmt, clippy, cargo deny, cargo test,
# the Debian package, fault suite (with the broker restarts, the resource alarms and the cluster
# faults, each run alone).
# Extra arguments are passed to `cargo test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== broker" >&2
bash scripts/broker.sh

echo "== prometheus (its own instance per test; the package's service is never started)" >&2
bash scripts/prometheus.sh

echo "== pika venv" >&2
FIB_RPC_PYTHON="$(bash scripts/pika-venv.sh)"
export FIB_RPC_PYTHON
echo "FIB_RPC_PYTHON=$FIB_RPC_PYTHON" >&2

echo "== cargo fmt" >&2
cargo fmt --all -- --check

echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo deny (advisories, licences, bans, sources)" >&2
bash scripts/deny.sh

echo "== cargo test" >&2
# The fault suite (faults/) runs the built binaries of both programs.
cargo build --workspace --bins
cargo test --workspace --exclude faults "$@"

echo "== packaging (the .deb built, installed, serving a client, purged)" >&2
FIB_DEB="$(bash scripts/package.sh | tail -n 1)"
FIB_DEB="$FIB_DEB" cargo test -p fib-server --test package -- --ignored --nocapture

echo "== fault suite" >&2
cargo test -p faults -- --nocapture

echo "== broker restarts (alone: they take the broker from everyone)" >&2
cargo test -p faults --test broker_restart -- --ignored --test-threads=1 --nocapture

echo "== resource alarms and a hung broker (an extra node beside the default broker, stopped after)" >&2
cargo test -p faults --test alarms -- --ignored --test-threads=1 --nocapture

echo "== cluster faults (a three-node cluster beside the default broker, stopped after)" >&2
cargo test -p faults --test cluster -- --ignored --test-threads=1 --nocapture
