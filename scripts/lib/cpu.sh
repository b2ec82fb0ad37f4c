# shellcheck shell=bash
# CPU time of processes from /proc, for the benchmark scripts (sourced).

# cpu_ticks PID...: the processes' user+sys time so far, in clock ticks.
cpu_ticks() {
    local pid total=0 stat rest
    for pid in "$@"; do
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        # Fields after the command name (which may hold spaces): state is
        # field 3, utime 14 and stime 15, so 12 and 13 of the rest.
        rest="${stat##*) }"
        total=$((total + $(awk '{ print $12 + $13 }' <<<"$rest")))
    done
    echo "$total"
}

# per_request_us TICKS COUNT
per_request_us() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { print t * 1e6 / hz / n }'; }
