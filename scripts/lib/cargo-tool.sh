# shellcheck shell=bash
# Cargo subcommands the scripts need, installed when missing (sourced).

# ensure_cargo_tool NAME: makes `cargo NAME-without-cargo-prefix` work,
# installing the crate NAME with `cargo install --locked NAME` if it is not
# on PATH (a one-off of a few minutes on a fresh machine).
ensure_cargo_tool() {
    local tool="$1"
    local bin="${CARGO_HOME:-$HOME/.cargo}/bin"
    case ":$PATH:" in
        *":$bin:"*) ;;
        *) PATH="$bin:$PATH" ;;
    esac
    export PATH
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$tool: not installed; cargo install --locked $tool (once, a few minutes)" >&2
        cargo install --locked "$tool" >&2
    fi
}
