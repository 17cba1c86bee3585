#!/usr/bin/env bash
# Benchmark: does a board full of retry timers cost an idle tick anything?
#
#   bench/retry_idle.sh [path-to-git-baton-binary]
#
# Default binary: target/release/git-baton under the repository root (or under $CARGO_TARGET_DIR
# when that is set); when the default is missing it is built with `cargo build --release --locked`.
#
# Builds two throw-away repositories (removed on exit), each with $BRANCHES task branches written
# by ONE `git fast-import` stream, every branch its own commit on top of `main`, whose tree holds
# the executable handler .dwp/command/build:
#   timers: $TIMERS of the branches (every BRANCHES/TIMERS-th) wait for a retry timer: their head
#           carries `dwp-state: build`, `dwp-not-before: <year 2100>` and `dwp-retry-of: x`, and
#           the `build` handler exists; the others are `dwp-state: done`;
#   done:   all $BRANCHES branches `dwp-state: done` (`task N`, a one-line body, one trailer).
# Then it times an idle tick, `git baton run --json` (nothing to do: it must claim nothing and
# print nothing), on both, interleaved (timers, done, done, timers, …, so drift hits both alike),
# for loose refs (as fast-import leaves them) and again after `git pack-refs --all`.
#
# HEADS says what the $TIMERS heads look like:
#   minimal (default)  `task N`, a one-line body, the three trailers above;
#   retry              the commit a runner writes for a retry: a body with the failed attempt's
#                      section and ten trailers (`dwp-attempt`, `dwp-max-attempts`,
#                      `dwp-not-before`, `dwp-retry-of`, `dwp-runner-id`, `dwp-exit-code`,
#                      `dwp-error`, `dwp-error-type`, `dwp-state: build`), ~450 bytes;
#   retry-done         the same message with `dwp-state: done`: no timer, no handler — the
#                      control that separates the cost of the message from the cost of the timer.
#
# With TREES=distinct every task commit also adds a file of its own, so no two branches share a
# tree (as real task branches do): handler and policy lookups are cached per tree, so this is the
# case where the tick pays one lookup per branch — in both repositories alike.
#
# Environment: BRANCHES (default 10000), TIMERS (default 2000), RUNS (timed ticks per repository
# and layout, default 11; one untimed warm-up each precedes them), HEADS (see above), TREES
# (shared | distinct, default shared), BENCH_KEEP=1 keeps the temp dir. Timing is wall clock of the whole process
# (bash's $EPOCHREALTIME), warm file cache. Prints a Markdown table.
set -euo pipefail

export LC_ALL=C

BRANCHES=${BRANCHES:-10000}
TIMERS=${TIMERS:-2000}
RUNS=${RUNS:-11}
TREES=${TREES:-shared}
HEADS=${HEADS:-minimal}

die() { echo "retry_idle.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[[ $BRANCHES =~ ^[0-9]+$ && $BRANCHES -ge 1 ]] || die "BRANCHES must be a positive integer"
[[ $TIMERS =~ ^[0-9]+$ && $TIMERS -ge 1 && $TIMERS -le $BRANCHES ]] || die "TIMERS must be 1..BRANCHES"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || die "RUNS must be a positive integer"
[[ $TREES == shared || $TREES == distinct ]] || die "TREES must be shared or distinct"
[[ $HEADS == minimal || $HEADS == retry || $HEADS == retry-done ]] || die "HEADS must be minimal, retry or retry-done"
[[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 is needed (\$EPOCHREALTIME)"
command -v git >/dev/null || die "git not found"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export GIT_AUTHOR_DATE='1700000000 +0000' GIT_COMMITTER_DATE='1700000000 +0000'

mkdir -p "$TMP/bin"
ln -s "$BATON" "$TMP/bin/git-baton"
export PATH=$TMP/bin:$PATH

note "git-baton: $(git baton --version 2>/dev/null || echo '?') ($BATON)"
note "$(git --version); $(nproc 2>/dev/null || echo '?') CPUs; BRANCHES=$BRANCHES TIMERS=$TIMERS RUNS=$RUNS HEADS=$HEADS TREES=$TREES"

# make_repo DIR TIMERS: the repository, with TIMERS branches waiting for a retry timer.
make_repo() {
    local dir=$1 timers=$2
    git init -q -b main "$dir"
    git -C "$dir" config gc.auto 0
    git -C "$dir" config maintenance.auto false
    awk -v B="$BRANCHES" -v T="$timers" -v HEADS="$HEADS" -v DISTINCT="$([[ $TREES == distinct ]] && echo 1 || echo 0)" '
    function data(s) { printf "data %d\n%s", length(s), s }
    BEGIN {
        h = "#!/bin/sh\nexit 0\n"
        printf "blob\nmark :1\n"; data(h); printf "\n"
        printf "commit refs/heads/main\nmark :2\n"
        printf "author Bench <bench@example.com> 1700000000 +0000\n"
        printf "committer Bench <bench@example.com> 1700000000 +0000\n"
        data("handlers\n")
        printf "M 100755 :1 .dwp/command/build\n\n"
        step = (T > 0) ? int(B / T) : 0
        timers = 0
        for (j = 0; j < B; j++) {
            if (step > 0 && j % step == 0 && timers < T) {
                timers++
                if (HEADS == "minimal") {
                    m = sprintf("task %d\n\nbody of task %d\n\ndwp-not-before: 4102444800\ndwp-retry-of: x\ndwp-state: build\n", j, j)
                } else {
                    m = sprintf("baton: retry build (attempt 2 of 4)\n\ntask %d\n\n## Attempt 1 failed\n\n" \
                        "- error type: transient\n- error: handler exited with status 75\n- exit code: 75\n" \
                        "- run: 6f1d6c2e-0b7a-4c1e-9d55-3f0a2b9c8e41\n\nLast 40 lines of its output:\n\n" \
                        "    rate limited, try again later\n\n" \
                        "dwp-attempt: 2\ndwp-max-attempts: 4\ndwp-not-before: 4102444800\n" \
                        "dwp-retry-of: 6f1d6c2e-0b7a-4c1e-9d55-3f0a2b9c8e41\ndwp-runner-id: bench:1\n" \
                        "dwp-exit-code: 75\ndwp-error: handler exited with status 75\ndwp-error-type: transient\n" \
                        "dwp-state: %s\n", j, (HEADS == "retry" ? "build" : "done"))
                }
            } else {
                m = sprintf("task %d\n\nbody of task %d\n\ndwp-state: done\n", j, j)
            }
            printf "commit refs/heads/task/%05d\n", j
            printf "author Bench <bench@example.com> %d +0000\n", 1700000001 + j
            printf "committer Bench <bench@example.com> %d +0000\n", 1700000001 + j
            data(m)
            printf "from :2\n"
            if (DISTINCT) { printf "M 100644 inline task.txt\n"; data("task " j "\n") }
            printf "\n"
        }
        print "done"
    }' | git -C "$dir" fast-import --quiet --done
    git -C "$dir" checkout -q -f main
}

# states DIR: "build N, done M" of the task branches, as git reads them.
states() {
    git -C "$1" for-each-ref --format='%(trailers:key=dwp-state,valueonly,separator=)' refs/heads/task/ |
        sort | uniq -c | awk '{printf "%s%s %d", (NR > 1 ? ", " : ""), $2, $1}'
}

gen_start=$EPOCHREALTIME
make_repo "$TMP/timers" "$TIMERS"
make_repo "$TMP/done" 0
note "repositories generated in $(( (${EPOCHREALTIME/./} - ${gen_start/./}) / 1000 )) ms"
want_timers="build $TIMERS, done $((BRANCHES - TIMERS))"
[[ $HEADS == retry-done ]] && want_timers="done $BRANCHES"
want_done="done $BRANCHES"
[[ $(states "$TMP/timers") == "$want_timers" ]] || die "timers repo: $(states "$TMP/timers"), expected $want_timers"
[[ $(states "$TMP/done") == "$want_done" ]] || die "done repo: $(states "$TMP/done"), expected $want_done"

# tick DIR: one idle tick; it must succeed, print nothing and leave the board as it was.
tick() { (cd "$1" && git baton run --json 2>/dev/null); }
check_idle() {
    local dir=$1 want=$2 out
    out=$(cd "$dir" && git baton run --json 2>"$TMP/tick.err") || die "$dir: git baton run failed: $(tail -3 "$TMP/tick.err")"
    [[ -z $out ]] || die "$dir: the idle tick did something: $(head -3 <<<"$out")"
    [[ $(states "$dir") == "$want" ]] || die "$dir: states changed to $(states "$dir")"
    [[ $(git -C "$dir" worktree list | wc -l) == 1 ]] || die "$dir: the idle tick left a worktree"
}

time_tick() { # DIR → µs in $US
    local s e
    s=${EPOCHREALTIME/./}
    tick "$1" >/dev/null
    e=${EPOCHREALTIME/./}
    US=$(( 10#$e - 10#$s ))
}

ROWS=()
bench_layout() { # label
    local label=$1 r
    local -a t_timers=() t_done=()
    check_idle "$TMP/timers" "$want_timers"
    check_idle "$TMP/done" "$want_done"
    tick "$TMP/timers" >/dev/null
    tick "$TMP/done" >/dev/null
    for ((r = 0; r < RUNS; r++)); do
        if (( r % 2 == 0 )); then
            time_tick "$TMP/timers"; t_timers+=("$US")
            time_tick "$TMP/done"; t_done+=("$US")
        else
            time_tick "$TMP/done"; t_done+=("$US")
            time_tick "$TMP/timers"; t_timers+=("$US")
        fi
    done
    local tm tb dm db
    read -r tm tb < <(median_best "${t_timers[@]}")
    read -r dm db < <(median_best "${t_done[@]}")
    local ratio
    ratio=$(awk -v a="$tm" -v b="$dm" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    ROWS+=("| idle tick, $BRANCHES branches, $label, $HEADS heads, $TREES trees | $(ms "$tm") / $(ms "$tb") | $(ms "$dm") / $(ms "$db") | ${ratio}× |")
    note "$label: $TIMERS $HEADS heads $(ms "$tm") / $(ms "$tb") ms, all done $(ms "$dm") / $(ms "$db") ms (median / best)"
    note "$label: timers, all runs (ms): $(for u in "${t_timers[@]}"; do printf '%s ' "$(ms "$u")"; done)"
    note "$label: done,   all runs (ms): $(for u in "${t_done[@]}"; do printf '%s ' "$(ms "$u")"; done)"
}

bench_layout "loose refs"
git -C "$TMP/timers" pack-refs --all
git -C "$TMP/done" pack-refs --all
bench_layout "packed refs"

echo
echo "git-baton $(git baton --version 2>/dev/null | awk '{print $NF}'), $(git --version), $(nproc 2>/dev/null || echo '?') CPUs;" \
    "\`git baton run --json\` with nothing to do; wall clock per process, median / best of $RUNS interleaved runs after" \
    "one warm-up, ms; ratio = timers median / all-done median."
echo
echo "| case | $TIMERS $HEADS heads (timers repo), ms | all done, ms | ratio |"
echo "| --- | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
note "total $(ms $(( ${EPOCHREALTIME/./} - ${SCRIPT_START/./} ))) ms"
exit 0
