#!/usr/bin/env bash
# Acquire with 10,000 series refitting (issue 15: "with 10,000 series
# refitting in the background, Acquire p99 within 10% of idle").
#
# One policy of SERIES_TENANTS tenants x 2 rate resources, every Acquire
# granted (examples/refit_snapshot.rs), served by `prescient serve` (the
# default layout) pinned to core 0, under the same load from
# `prescient bench` on core 1 (CONNECTIONS x STREAMS, TENANTS of the
# generated tenants), in alternating rounds:
#
#   idle       the policy with an empty state dir: the same series and ticks,
#              no history, so nothing is refit (a series needs 10 minutes).
#   refitting  the same policy with 3 days of history restored for every
#              series: all are due a refit at once, and the refit worker
#              spends its whole budget (planner.refit_budget) through the
#              measured window.
#
# Each round reads the refit count (prescient_refit_duration_seconds_count
# on the admin port) before and after the measured window and prints how
# many refits ran in it; an idle round that refits, or a refitting round
# that does not, stops the script. Prints medians over ROUNDS and the ratio
# refitting / idle.
#
#   benches/refit_p99.sh                        # about 4 minutes
#   ROUNDS=5 DURATION=20s benches/refit_p99.sh
#   REFIT_PRIORITY=nice:0 benches/refit_p99.sh  # or idle: renice the refit
#                                               # thread (compare priorities);
#                                               # PLANNER_PRIORITY: the tick's
#
# It measures: not run in CI. Needs taskset (util-linux), 2 cores and
# about 1 GB of disk for the snapshot.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-8}
STREAMS=${STREAMS:-16}
TENANTS=${TENANTS:-8}
SERIES_TENANTS=${SERIES_TENANTS:-10000}
REFIT_PRIORITY=${REFIT_PRIORITY:-}
PLANNER_PRIORITY=${PLANNER_PRIORITY:-}

# shellcheck source=benches/lib.sh
. benches/lib.sh
need_two_cores refit_p99.sh
build_with_example refit_snapshot
scratch

"$bin/examples/refit_snapshot" "$SERIES_TENANTS" "$work/gen" >&2
policy=$work/gen/policy.yaml
"$prescient" check "$policy" >/dev/null
tenants=$(seq -s, -f 't%g' 0 $((TENANTS - 1)))

# Starts the daemon on core 0 with a fresh state dir (the snapshot linked
# in for MODE refitting: the daemon replaces it by rename, never in place);
# sets $server, $addr and $admin.
start() {
    local mode=$1 log=$work/server.log state=$work/state
    rm -rf "$state" && mkdir "$state"
    [ "$mode" = refitting ] && ln "$work/gen/history.snapshot" "$state/history.snapshot"
    : >"$log"
    RUST_LOG=warn,prescient=info taskset -c 0 "$prescient" serve --policy "$policy" \
        --state-dir "$state" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --log-format text >"$log" 2>&1 &
    server=$!
    await_listening "refit_p99.sh: serve" "$log" 1200
}

# Sets the scheduling of the daemon's thread named $1 as $2 says (nice:N,
# or idle for SCHED_IDLE); empty leaves it as the daemon set it.
reprioritize() {
    [ -z "$2" ] && return 0
    local task
    for task in /proc/"$server"/task/*; do
        [ "$(cat "$task/comm")" = "$1" ] || continue
        case $2 in
            nice:*) renice -n "${2#nice:}" -p "${task##*/}" >/dev/null ;;
            idle) chrt -i -p 0 "${task##*/}" ;;
            *) echo "refit_p99.sh: a priority is nice:N or idle, not $2" >&2; exit 1 ;;
        esac
        return 0
    done
    echo "refit_p99.sh: no $1 thread in $server" >&2
    exit 1
}

refits() {
    local n
    n=$(curl -sf "http://$admin/metrics" | sed -n 's/^prescient_refit_duration_seconds_count \([0-9]*\).*/\1/p')
    echo "${n:-0}"
}

bench() {
    taskset -c 1 "$prescient" bench --target "$addr" --connections "$CONNECTIONS" \
        --streams "$STREAMS" --tenants "$tenants" --resource api --duration "$1" --json
}


: >"$work/results"
for round in $(seq "$ROUNDS"); do
    for mode in idle refitting; do
        start "$mode"
        reprioritize prescient-refit "$REFIT_PRIORITY"
        reprioritize prescient-plann "$PLANNER_PRIORITY" # comm keeps 15 bytes
        bench "$WARMUP" >/dev/null
        before=$(refits)
        report=$(bench "$DURATION")
        after=$(refits)
        stop
        if [ "$(echo "$report" | field errors)" != 0 ] || [ "$(echo "$report" | field denied)" != 0 ]; then
            echo "refit_p99.sh: $mode answered errors or denials: $report" >&2
            exit 1
        fi
        n=$((after - before))
        if { [ "$mode" = idle ] && [ "$n" != 0 ]; } || { [ "$mode" = refitting ] && [ "$n" = 0 ]; }; then
            echo "refit_p99.sh: $mode round ran $n refits in the window" >&2
            exit 1
        fi
        echo "$mode $(echo "$report" | field requests_per_second) $(echo "$report" | field p50_us) $(echo "$report" | field p99_us) $(echo "$report" | field p999_us) $n" >>"$work/results"
        echo "  round $round: $mode done, $n refits in the window" >&2
    done
done

echo
echo "serve on core 0, bench on core 1${REFIT_PRIORITY:+, refit thread $REFIT_PRIORITY}${PLANNER_PRIORITY:+, planner thread $PLANNER_PRIORITY}; $SERIES_TENANTS tenants x 2 resources; $CONNECTIONS connections x $STREAMS streams, $TENANTS tenants; medians of $ROUNDS x $DURATION"
printf '| %-10s | %10s | %8s | %8s | %8s | %14s |\n' mode requests/s "p50 µs" "p99 µs" "p99.9 µs" "refits/window"
printf '|%s|%s:|%s:|%s:|%s:|%s:|\n' ------------ ----------- --------- --------- --------- ---------------
col() { awk -v m="$1" -v c="$2" '$1 == m { print $c }' "$work/results" | median; }
for mode in idle refitting; do
    printf '| %-10s | %10.0f | %8d | %8d | %8d | %14d |\n' "$mode" "$(col "$mode" 2)" "$(col "$mode" 3)" \
        "$(col "$mode" 4)" "$(col "$mode" 5)" "$(col "$mode" 6)"
done
awk -v r1="$(col idle 2)" -v r2="$(col refitting 2)" -v p1="$(col idle 4)" -v p2="$(col refitting 4)" \
    -v q1="$(col idle 5)" -v q2="$(col refitting 5)" \
    'BEGIN { printf "refitting / idle: requests/s %.2f, p99 %.2f, p99.9 %.2f\n", r2 / r1, p2 / p1, q2 / q1 }'
