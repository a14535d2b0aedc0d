# Sourced by the measuring scripts in benches/ (compare.sh, refit_p99.sh),
# not run: what every one of them needs around its rounds.

# Stops the script unless taskset exists and this process may use 2 cores
# (server on one, load generator on the other). $1: the script's name.
need_two_cores() {
    command -v taskset >/dev/null || { echo "$1: taskset not found (apt-get install util-linux)" >&2; exit 1; }
    if [ "$(nproc)" -lt 2 ]; then
        echo "$1: needs 2 cores (server on one, load generator on the other); this process may use $(nproc)" >&2
        exit 1
    fi
}

# Builds prescient and the examples named in $@ in $PROFILE (release unless
# set; PROFILE=dev tries a script on a debug build, whose figures mean
# nothing); sets $bin (the output directory) and $prescient.
build_with_example() {
    PROFILE=${PROFILE:-release}
    local examples=() name
    for name in "$@"; do examples+=(--example "$name"); done
    cargo build --profile "$PROFILE" --quiet --bin prescient "${examples[@]}"
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

# Waits until the server just started ($server, logging to $2) logs its
# gRPC address, polling every 50 ms at most $3 times; sets $addr, and
# $admin when the log names one. $1 names the server in the error.
await_listening() {
    local name=$1 log=$2 polls=$3
    addr=""
    for _ in $(seq "$polls"); do
        addr=$(sed -n -e 's/.*listening on \([0-9.:]*\).*/\1/p' \
            -e 's/.*prescient listening.* grpc=\([0-9.:]*\).*/\1/p' "$log" | head -n1)
        admin=$(sed -n 's/.*prescient listening.* admin=\([0-9.:]*\).*/\1/p' "$log" | head -n1)
        [ -n "$addr" ] && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.05
    done
    echo "$name did not start:" >&2
    cat "$log" >&2
    exit 1
}

# Stops the server and waits for it to go.
stop() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
}

# The number under key $1 of the JSON report on stdin (prescient bench's).
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
# The median of the numbers on stdin, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
