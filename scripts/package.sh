#!/usr/bin/env bash
# Builds the Debian package of fib-server and fib-client (fib-rpc_*.deb):
# one release build of both programs, their man pages and completions
# (cargo xtask assets), then cargo-deb without building again. cargo-deb is
# installed with `cargo install --locked cargo-deb` if missing.
# Prints the path of the package on its last line.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=lib/cargo-tool.sh
source scripts/lib/cargo-tool.sh
ensure_cargo_tool cargo-deb

echo "package: release build of fib-server and fib-client" >&2
cargo build --locked --release -p fib-server -p fib-client >&2
echo "package: man pages and completions" >&2
cargo xtask assets --out target/assets >/dev/null
echo "package: cargo deb" >&2
deb="$(cargo deb --locked -p fib-server --no-build 2>&2 | tail -n 1)"
if [ ! -f "$deb" ]; then
    echo "package: cargo deb printed no package path (got '$deb')" >&2
    exit 1
fi
echo "$deb"
