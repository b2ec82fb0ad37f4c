#!/usr/bin/env bash
# The dependency gate: `cargo deny check` (advisories, licences, bans,
# sources) with deny.toml, against the offline RustSec snapshot.
#
# The snapshot is looked for as shared/advisory-db in the repository's parent
# folder, or its parent, and so on up (/work/shared beside /work/main), or
# given as FIB_ADVISORY_DB. It is copied into target/advisory-db, never
# written to. cargo-deny is installed with `cargo install --locked` if
# missing. Extra arguments go to `cargo deny check` (e.g. `licenses`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=lib/cargo-tool.sh
source scripts/lib/cargo-tool.sh

# The folder cargo-deny reads for db-urls = ["https://github.com/rustsec/advisory-db"].
DB_DIR=advisory-db-3157b0e258782691
# The snapshot's commit date: cargo-deny counts staleness from FETCH_HEAD's time.
DB_DATE=2026-08-21T06:28:40Z

snapshot="${FIB_ADVISORY_DB:-}"
if [ -z "$snapshot" ]; then
    dir="$(cd .. && pwd)"
    while :; do
        if [ -d "$dir/shared/advisory-db/$DB_DIR" ]; then
            snapshot="$dir/shared/advisory-db"
            break
        fi
        [ "$dir" = / ] && break
        dir="$(dirname "$dir")"
    done
fi
if [ -z "$snapshot" ] || [ ! -d "$snapshot/$DB_DIR" ]; then
    echo "deny: no RustSec snapshot: expected shared/advisory-db/$DB_DIR beside the repository" >&2
    echo "deny: (in $(cd .. && pwd) or above), or FIB_ADVISORY_DB=DIR naming the folder that holds $DB_DIR" >&2
    exit 1
fi
echo "deny: advisories from $snapshot" >&2

ensure_cargo_tool cargo-deny

rm -rf target/advisory-db
mkdir -p target/advisory-db
cp -r "$snapshot/$DB_DIR" target/advisory-db/
# A real (empty) repository, not a bare .git folder: cargo-deny must never
# find the enclosing repository (see the snapshot's README).
git init -q "target/advisory-db/$DB_DIR"
touch -d "$DB_DATE" "target/advisory-db/$DB_DIR/.git/FETCH_HEAD"

cargo fetch --locked
cargo deny --offline check --hide-inclusion-graph "$@"
