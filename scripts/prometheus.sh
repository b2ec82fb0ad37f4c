#!/usr/bin/env bash
# Make sure Prometheus' `prometheus` and `promtool` binaries are installed,
# for the tests that run a Prometheus server of their own and check metrics
# and rules with promtool.
#
# When either is missing, Debian's `prometheus` package is installed
# (apt-get update once, then apt-get install). Its system service is never
# started: a policy-rc.d that refuses every service start is in place while
# the package installs (one already there is left as it is). The tests
# start their own instance with their own config, data folder and port.
#
# Prints one line on success: "prometheus: ready: <prometheus --version>".
# Needs root or password-less sudo when it has to install.
set -euo pipefail

log() { echo "prometheus: $*" >&2; }
die() {
    echo "prometheus: error: $*" >&2
    exit 1
}

PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "not root and no sudo: install Debian's prometheus package by hand"
        SUDO=(sudo -n)
    fi
    POLICY=/usr/sbin/policy-rc.d
    placed=""
    if [ ! -e "$POLICY" ]; then
        # 101: "action not allowed"; invoke-rc.d then starts nothing.
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
        "${SUDO[@]}" chmod 755 "$POLICY"
        placed=yes
    fi
    cleanup() { if [ -n "$placed" ]; then "${SUDO[@]}" rm -f "$POLICY"; fi; }
    trap cleanup EXIT
    log "installing Debian's prometheus package (its service is not started)"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq >&2
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus >&2
    command -v prometheus >/dev/null && command -v promtool >/dev/null ||
        die "the prometheus package is installed, yet prometheus or promtool is not on PATH"
fi
echo "prometheus: ready: $(prometheus --version 2>&1 | head -n 1)"
