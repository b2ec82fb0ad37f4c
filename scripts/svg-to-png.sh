#!/usr/bin/env bash
# Renders an --export-svg file to PNG, to look at it: svg-to-png.sh IN.svg [OUT.png]
# Needs rsvg-convert (Debian: librsvg2-bin), installed here if missing.
set -euo pipefail
in="${1:?usage: svg-to-png.sh IN.svg [OUT.png]}"
out="${2:-${in%.svg}.png}"
if ! command -v rsvg-convert >/dev/null; then
    apt-get update -qq && apt-get install -y -qq librsvg2-bin
fi
rsvg-convert --background-color=white -o "$out" "$in"
echo "$out"
