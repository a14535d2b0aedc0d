#!/usr/bin/env bash
# One run, side by side (issue 15): the empty Acquire handler built from our
# proto (examples/empty_acquire.rs, current-thread and multi-thread tokio
# runtimes), `prescient serve` in each runtime layout (grpc.runtime), and
# Envoy's rate-limit service twice: prescient's own Envoy face (default
# layout) and the limitador crate's in-memory limiter behind our build of
# the RLS service (examples/limitador_rls.rs, as limitador-server does it).
# All under the same load from `prescient bench` (`--protocol envoy` for
# the two RLS rows): CONNECTIONS connections x STREAMS requests in flight,
# TENANTS tenants, every call granted.
#
# First the servers on core 0 and the load generator on core 1; then the
# servers on cores 0-1 with the load generator sharing them (a 2-core
# machine has no third core). Servers take turns, ROUNDS times, and the
# table shows each one's medians, with ratios to the faster empty handler;
# under it, prescient (default layout) over limitador-rls in requests/s.
#
#   benches/compare.sh                  # about 5 minutes
#   ROUNDS=5 DURATION=10s benches/compare.sh
#
# It measures: not run in CI. Needs taskset (util-linux) and 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONNECTIONS=${CONNECTIONS:-8}
STREAMS=${STREAMS:-16}
TENANTS=${TENANTS:-8}

# shellcheck source=benches/lib.sh
. benches/lib.sh
need_two_cores compare.sh
build_with_example empty_acquire limitador_rls
empty=$bin/examples/empty_acquire
limitador=$bin/examples/limitador_rls
# The layout `prescient serve` runs when none is set.
default_layout=$(sed -n 's/^  runtime: *\([a-z_]*\).*/\1/p' config/prescient.yaml)
[ -n "$default_layout" ] || { echo "compare.sh: no grpc.runtime in config/prescient.yaml" >&2; exit 1; }
scratch

# Every call is granted: capacity far beyond what one machine can ask.
# Envoy's domain `prescient` (bench's default) charges the descriptor's
# tenant; limitador_rls holds the same domain to 10^11 per tenant per second.
tenants=$(seq -s, -f 't%g' 0 $((TENANTS - 1)))
{
    echo "resources:"
    echo "  api: { kind: rate, capacity: 1000000000 }"
    echo "tenants:"
    for t in ${tenants//,/ }; do
        echo "  $t: { qos: gold, limits: { api: { guaranteed: 100000000 } } }"
    done
    echo "envoy:"
    echo "  domains:"
    echo "    prescient:"
    echo "      - { resource: api, tenant_key: tenant }"
} >"$work/policy.yaml"
"$prescient" check "$work/policy.yaml" >/dev/null

# Starts server NAME pinned to CPUS; sets $server (pid) and $addr.
start() {
    local name=$1 cpus=$2 log=$work/server.log
    : >"$log"
    case $name in
        empty-current) taskset -c "$cpus" "$empty" --flavor current_thread --listen 127.0.0.1:0 >"$log" 2>&1 & ;;
        empty-multi) taskset -c "$cpus" "$empty" --flavor multi_thread --listen 127.0.0.1:0 >"$log" 2>&1 & ;;
        limitador-rls)
            taskset -c "$cpus" "$limitador" --flavor multi_thread --domain prescient \
                --listen 127.0.0.1:0 >"$log" 2>&1 &
            ;;
        prescient-envoy)
            PRESCIENT_GRPC__RUNTIME=$default_layout RUST_LOG=warn,prescient=info taskset -c "$cpus" "$prescient" serve --policy "$work/policy.yaml" \
                --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --log-format text >"$log" 2>&1 &
            ;;
        prescient-*)
            PRESCIENT_GRPC__RUNTIME=${name#prescient-} RUST_LOG=warn,prescient=info \
                taskset -c "$cpus" "$prescient" serve --policy "$work/policy.yaml" \
                --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --log-format text >"$log" 2>&1 &
            ;;
    esac
    server=$!
    await_listening "compare.sh: $name" "$log" 200
}

# One bench run of server $3 against $addr; prints its JSON report.
bench() {
    local protocol=acquire
    case $3 in prescient-envoy | limitador-rls) protocol=envoy ;; esac
    taskset -c "$1" "$prescient" bench --target "$addr" --connections "$CONNECTIONS" \
        --streams "$STREAMS" --tenants "$tenants" --resource api --duration "$2" \
        --protocol "$protocol" --domain prescient --json
}


servers="empty-current empty-multi prescient-multi_thread prescient-per_core prescient-envoy limitador-rls"

# run LABEL SERVER_CPUS LOAD_CPUS: the rounds, then the table.
run() {
    local label=$1 scpus=$2 lcpus=$3 round name
    : >"$work/results"
    for round in $(seq "$ROUNDS"); do
        for name in $servers; do
            start "$name" "$scpus"
            bench "$lcpus" "$WARMUP" "$name" >/dev/null
            local report
            report=$(bench "$lcpus" "$DURATION" "$name")
            if [ "$(echo "$report" | field errors)" != 0 ] || [ "$(echo "$report" | field denied)" != 0 ]; then
                echo "compare.sh: $name answered errors or denials: $report" >&2
                exit 1
            fi
            echo "$name $(echo "$report" | field requests_per_second) $(echo "$report" | field p50_us) $(echo "$report" | field p99_us) $(echo "$report" | field p999_us)" >>"$work/results"
            stop
            echo "  $label round $round: $name done" >&2
        done
    done
    echo
    echo "$label; $CONNECTIONS connections x $STREAMS streams, $TENANTS tenants, medians of $ROUNDS x $DURATION"
    local rows="" best_rps=0 best_p99=0
    for name in $servers; do
        local rps p50 p99 p999
        rps=$(awk -v n="$name" '$1 == n { print $2 }' "$work/results" | median)
        p50=$(awk -v n="$name" '$1 == n { print $3 }' "$work/results" | median)
        p99=$(awk -v n="$name" '$1 == n { print $4 }' "$work/results" | median)
        p999=$(awk -v n="$name" '$1 == n { print $5 }' "$work/results" | median)
        rows+="$name $rps $p50 $p99 $p999"$'\n'
        case $name in empty-*)
            if awk -v a="$rps" -v b="$best_rps" 'BEGIN { exit !(a > b) }'; then
                best_rps=$rps best_p99=$p99
            fi
            ;;
        esac
    done
    printf '| %-24s | %10s | %8s | %8s | %8s | %9s | %9s |\n' server requests/s "p50 µs" "p99 µs" "p99.9 µs" "× req/s" "× p99"
    printf '|%s|%s:|%s:|%s:|%s:|%s:|%s:|\n' -------------------------- ----------- --------- --------- --------- ---------- ----------
    printf '%s' "$rows" | while read -r name rps p50 p99 p999; do
        awk -v n="$name" -v r="$rps" -v a="$p50" -v b="$p99" -v c="$p999" -v br="$best_rps" -v bp="$best_p99" \
            'BEGIN { printf "| %-24s | %10.0f | %8d | %8d | %8d | %9.2f | %9.2f |\n", n, r, a, b, c, r / br, b / bp }'
    done
    # Against Limitador's RLS: our Acquire (the issue's target, >= 1.5) and
    # our own Envoy face (the same protocol), in requests/s.
    local acquire envoy limitador
    acquire=$(printf '%s' "$rows" | awk -v n="prescient-$default_layout" '$1 == n { print $2 }')
    envoy=$(printf '%s' "$rows" | awk '$1 == "prescient-envoy" { print $2 }')
    limitador=$(printf '%s' "$rows" | awk '$1 == "limitador-rls" { print $2 }')
    echo
    awk -v a="$acquire" -v e="$envoy" -v l="$limitador" -v d="$default_layout" 'BEGIN {
        printf "prescient-%s (Acquire) ÷ limitador-rls: %.2f× requests/s (target ≥ 1.5)\n", d, a / l
        printf "prescient-envoy ÷ limitador-rls: %.2f× requests/s (both Envoy RLS)\n", e / l }'
}

run "server on core 0, load generator on core 1" 0 1
run "server on cores 0-1, load generator sharing them" 0,1 0,1
