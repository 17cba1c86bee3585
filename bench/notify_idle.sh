#!/usr/bin/env bash
# Benchmark: what does the notification pass cost an idle tick?
#
#   bench/notify_idle.sh [path-to-git-baton-binary]
#
# Default binary: target/release/git-baton under the repository root (or under $CARGO_TARGET_DIR
# when that is set); when the default is missing it is built with `cargo build --release --locked`.
#
# Builds three throw-away repositories (removed on exit), each with $BRANCHES task branches
# written by ONE `git fast-import` stream, every branch its own `dwp-state: done` commit on top of
# `main` (shared tree):
#   old:  heads committed in 2023, no notifier configured — the pass skips every head by its time
#         (a comparison): the cost of a tick without notifications;
#   off:  recent heads, no notifier configured — within the first pass's window (no watermark
#         yet), so every head is decided and found to have no notifier;
#   on:   recent heads, `[defaults] notify = ["true"]`, every head already
#         delivered (one `git baton notify` pass over all of them first, timed) — each head costs
#         a lookup in the delivered set, loaded from $BRANCHES record refs.
# ("Recent" heads are dated 30 minutes ahead, so that they stay inside the window of a pass
# without a watermark — 5 minutes before the tick — for as long as the bench runs.)
# Then it times an idle tick, `git baton run --json` (nothing to claim, nothing to send: it must
# print nothing), on the three, interleaved, for loose branch refs (as fast-import leaves them;
# the records are packed by the pass that wrote them, as every pass does past 256 loose records)
# and again after `git pack-refs --all`.
#
# Environment: BRANCHES (default 10000), RUNS (timed ticks per repository and layout, default 11;
# one untimed warm-up each precedes them), BENCH_KEEP=1 keeps the temp dir. Timing is wall clock
# of the whole process (bash's $EPOCHREALTIME), and its CPU time (user + sys, median; steadier on
# a busy machine), warm file cache. Prints a Markdown table.
set -euo pipefail

export LC_ALL=C

BRANCHES=${BRANCHES:-10000}
RUNS=${RUNS:-11}

die() { echo "notify_idle.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[[ $BRANCHES =~ ^[0-9]+$ && $BRANCHES -ge 1 ]] || die "BRANCHES must be a positive integer"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || die "RUNS must be a positive integer"
[[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 is needed (\$EPOCHREALTIME)"
command -v git >/dev/null || die "git not found"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$TMP/bin"
ln -s "$BATON" "$TMP/bin/git-baton"
export PATH=$TMP/bin:$PATH

note "git-baton: $(git baton --version 2>/dev/null || echo '?') ($BATON)"
note "$(git --version); $(nproc 2>/dev/null || echo '?') CPUs; BRANCHES=$BRANCHES RUNS=$RUNS"

# make_repo DIR WHEN POLICY: BRANCHES done heads committed at WHEN (epoch seconds) on a main
# whose tree holds the handler .dwp/command/build and, when POLICY is not empty, .dwp/policy.toml.
make_repo() {
    local dir=$1 when=$2 policy=$3
    git init -q -b main "$dir"
    git -C "$dir" config gc.auto 0
    git -C "$dir" config maintenance.auto false
    awk -v B="$BRANCHES" -v W="$when" -v P="$policy" '
    function data(s) { printf "data %d\n%s", length(s), s }
    BEGIN {
        printf "blob\nmark :1\n"; data("#!/bin/sh\nexit 0\n"); printf "\n"
        if (P != "") { printf "blob\nmark :3\n"; data(P); printf "\n" }
        printf "commit refs/heads/main\nmark :2\n"
        printf "author Bench <bench@example.com> %d +0000\n", W - 60
        printf "committer Bench <bench@example.com> %d +0000\n", W - 60
        data("handlers\n")
        printf "M 100755 :1 .dwp/command/build\n"
        if (P != "") printf "M 100644 :3 .dwp/policy.toml\n"
        printf "\n"
        for (j = 0; j < B; j++) {
            printf "commit refs/heads/task/%05d\n", j
            printf "author Bench <bench@example.com> %d +0000\n", W
            printf "committer Bench <bench@example.com> %d +0000\n", W
            data(sprintf("task %d\n\nbody of task %d\n\ndwp-state: done\n", j, j))
            printf "from :2\n\n"
        }
        print "done"
    }' | git -C "$dir" fast-import --quiet --done
    git -C "$dir" checkout -q -f main
}

now=$(date +%s)
gen_start=$EPOCHREALTIME
make_repo "$TMP/old" 1700000000 ""
make_repo "$TMP/off" $((now + 1800)) ""
make_repo "$TMP/on" $((now + 1800)) $'[defaults]\nnotify = ["true"]\n'
note "repositories generated in $(( (${EPOCHREALTIME/./} - ${gen_start/./}) / 1000 )) ms"

records() { git -C "$1" for-each-ref refs/baton/notified/ | wc -l; }

# Deliver every head of "on" once (the real path: claim, run `true`, mark delivered).
s=$EPOCHREALTIME
(cd "$TMP/on" && git baton notify --json >"$TMP/first.json" 2>"$TMP/first.err") || die "first pass failed: $(tail -3 "$TMP/first.err")"
first_us=$(( ${EPOCHREALTIME/./} - ${s/./} ))
sent=$(grep -o '"result":"sent"' "$TMP/first.json" | wc -l)
[[ $sent == "$BRANCHES" ]] || die "first pass sent $sent of $BRANCHES"
[[ $(records "$TMP/on") == $((BRANCHES + 1)) ]] || die "on: $(records "$TMP/on") records"
note "first pass: $BRANCHES notifications delivered in $(( first_us / 1000 )) ms ($(( first_us / BRANCHES )) µs each)"

# An idle tick: it must succeed, print nothing, and write no record where none belongs.
tick() { (cd "$1" && git baton run --json 2>/dev/null); }
check_idle() {
    local dir=$1 out
    out=$(cd "$dir" && git baton run --json 2>"$TMP/tick.err") || die "$dir: git baton run failed: $(tail -3 "$TMP/tick.err")"
    [[ -z $out ]] || die "$dir: the idle tick did something: $(head -3 <<<"$out")"
    ! grep -q notified "$TMP/tick.err" || die "$dir: the idle tick notified: $(grep notified "$TMP/tick.err" | head -3)"
}

time_tick() { # DIR → wall µs in $US, CPU (user + sys) µs in $CPU
    local s e t
    s=${EPOCHREALTIME/./}
    t=$( { TIMEFORMAT='%3U %3S'; time tick "$1" >/dev/null; } 2>&1 )
    e=${EPOCHREALTIME/./}
    US=$(( 10#$e - 10#$s ))
    CPU=$(awk -v u="${t% *}" -v y="${t#* }" 'BEGIN { printf "%d", (u + y) * 1000000 }')
}

ROWS=()
CPUROWS=()
bench_layout() { # label
    local label=$1 r k
    local -a t_old=() t_off=() t_on=() c_old=() c_off=() c_on=() order
    for k in old off on; do check_idle "$TMP/$k"; tick "$TMP/$k" >/dev/null; done
    [[ $(records "$TMP/old") == 0 && $(records "$TMP/off") == 0 ]] || die "records written without a notifier"
    for ((r = 0; r < RUNS; r++)); do
        case $((r % 3)) in 0) order=(old off on) ;; 1) order=(off on old) ;; *) order=(on old off) ;; esac
        for k in "${order[@]}"; do
            time_tick "$TMP/$k"
            case $k in
                old) t_old+=("$US"); c_old+=("$CPU") ;;
                off) t_off+=("$US"); c_off+=("$CPU") ;;
                on) t_on+=("$US"); c_on+=("$CPU") ;;
            esac
        done
    done
    local om ob fm fb nm nb
    read -r om ob < <(median_best "${t_old[@]}")
    read -r fm fb < <(median_best "${t_off[@]}")
    read -r nm nb < <(median_best "${t_on[@]}")
    local oc fc nc x
    read -r oc x < <(median_best "${c_old[@]}")
    read -r fc x < <(median_best "${c_off[@]}")
    read -r nc x < <(median_best "${c_on[@]}")
    ROWS+=("| idle tick, $BRANCHES done branches, $label | $(ms "$om") / $(ms "$ob") | $(ms "$fm") / $(ms "$fb") | $(ms "$nm") / $(ms "$nb") |")
    CPUROWS+=("| CPU (user + sys), $label | $(ms "$oc") | $(ms "$fc") | $(ms "$nc") |")
    note "$label: old $(ms "$om"), off $(ms "$fm"), on $(ms "$nm") ms (medians)"
    note "$label: old, all runs (ms): $(for u in "${t_old[@]}"; do printf '%s ' "$(ms "$u")"; done)"
    note "$label: off, all runs (ms): $(for u in "${t_off[@]}"; do printf '%s ' "$(ms "$u")"; done)"
    note "$label: on,  all runs (ms): $(for u in "${t_on[@]}"; do printf '%s ' "$(ms "$u")"; done)"
}

bench_layout "loose refs"
for k in old off on; do git -C "$TMP/$k" pack-refs --all; done
bench_layout "packed refs"

echo
echo "git-baton $(git baton --version 2>/dev/null | awk '{print $NF}'), $(git --version), $(nproc 2>/dev/null || echo '?') CPUs;" \
    "\`git baton run --json\` with nothing to do; wall clock per process, median / best of $RUNS interleaved runs after" \
    "one warm-up, ms. First pass: $BRANCHES notifications delivered (\`true\` as the notifier) in $(( first_us / 1000 )) ms."
echo
echo "| case | old heads, no notifier | recent heads, no notifier | $BRANCHES delivered records |"
echo "| --- | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
printf '%s\n' "${CPUROWS[@]}"
note "total $(ms $(( ${EPOCHREALTIME/./} - ${SCRIPT_START/./} ))) ms"
