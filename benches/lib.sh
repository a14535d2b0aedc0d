# Sourced by the measuring scripts in benches/ (compare.sh, refit_p99.sh),
# not run: what every one of them needs before its first round.

# Stops the script unless taskset exists and this process may use 2 cores
# (server on one, load generator on the other). $1: the script's name.
need_two_cores() {
    command -v taskset >/dev/null || { echo "$1: taskset not found (apt-get install util-linux)" >&2; exit 1; }
    if [ "$(nproc)" -lt 2 ]; then
        echo "$1: needs 2 cores (server on one, load generator on the other); this process may use $(nproc)" >&2
        exit 1
    fi
}

# Builds prescient and the example $1 in $PROFILE (release unless set;
# PROFILE=dev tries a script on a debug build, whose figures mean
# nothing); sets $bin (the output directory) and $prescient.
build_with_example() {
    PROFILE=${PROFILE:-release}
    cargo build --profile "$PROFILE" --quiet --bin prescient --example "$1"
    bin=${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
    prescient=$bin/prescient
}

# A scratch directory $work, removed on exit with the server ($server)
# still running, if any.
scratch() {
    work=$(mktemp -d)
    server=""
    trap 'cleanup_scratch' EXIT
}

cleanup_scratch() {
    if [ -n "$server" ] && kill "$server" 2>/dev/null; then
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
