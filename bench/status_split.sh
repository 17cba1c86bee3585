#!/usr/bin/env bash
# Benchmark: where `status` and an idle tick spend their time over many LOOSE refs, against
# `git for-each-ref` reading the same trailer (docs/performance.md).
#
#   bench/status_split.sh [path-to-git-baton-binary] [path-to-another-binary-to-compare]
#
# Builds a throw-away repository (removed on exit; BENCH_KEEP=1 keeps it) with $BRANCHES branches
# task/00001 … in the finished state `done` (one commit each on top of main, which holds the
# handler .dwp/command/review), refs loose as `git fast-import` leaves them. Then, interleaved
# ($ROUNDS rounds, each command once per round, so a busy machine slows all of them alike):
#   startup     git-baton --version
#   names       git-baton status --json --branch no-such   (lists branch names, opens no ref file)
#   status      git-baton status --json
#   idle tick   git-baton run --json                        (nothing to claim)
#   git names   git for-each-ref --format='%(refname)' refs/heads/
#   git         git for-each-ref --format='%(refname) %(trailers:key=dwp-state,valueonly)' refs/heads/
# and prints wall clock (min / median, ms) and, when `perf` is available, CPU time (task-clock
# summed over threads, ms) per command. The binaries run directly (no `git baton` dispatch).
# The CPU column is what a machine with no spare core pays; the wall column on an idle machine
# with several cores is what a person waits.
#
# Environment: BRANCHES (default 2000), ROUNDS (default 30).
set -euo pipefail
export LC_ALL=C

BRANCHES=${BRANCHES:-2000}
ROUNDS=${ROUNDS:-30}
die() { echo "status_split.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }
[[ $BRANCHES =~ ^[0-9]+$ && $BRANCHES -ge 1 ]] || die "BRANCHES must be a positive integer"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "ROUNDS must be a positive integer"
OTHER=${2:-}
[[ -z $OTHER || -x $OTHER ]] || die "not an executable file: $OTHER"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO=$TMP/repo
git init -q -b main "$REPO"
cd "$REPO"
git config gc.auto 0
mkdir -p .dwp/command && printf '#!/bin/sh\nexit 0\n' >.dwp/command/review && chmod +x .dwp/command/review
git add -A && git commit -q -m handlers
tree=$(git rev-parse 'HEAD^{tree}') base=$(git rev-parse HEAD)
for ((i = 1; i <= BRANCHES; i++)); do
    printf 'commit refs/heads/task/%05d\ncommitter Bench <b@example.com> 1700000000 +0000\ndata <<EOM\ntask %d\n\nbody of %d\n\ndwp-state: done\nEOM\nfrom %s\nM 040000 %s ""\n\n' \
        "$i" "$i" "$i" "$base" "$tree"
done | git fast-import --quiet
loose=$(find .git/refs/heads -type f | wc -l)
note "$(git --version); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); $loose loose refs under refs/heads"

# Correctness first: the same branches and states as git.
"$BATON" status --json | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
states = {r["branch"]: r["state"] for r in rows}
n = int(sys.argv[1])
assert len(states) == n + 1, f"{len(states)} rows, expected {n + 1}"
assert all(s == "done" for b, s in states.items() if b.startswith("task/")), "a task is not done"
' "$BRANCHES" || die "git baton status --json disagrees with the repository"
[[ $("$BATON" run --json 2>/dev/null | wc -l) -eq 0 ]] || die "the idle tick did something"

LABELS=() CMDS=()
add() { LABELS+=("$1"); CMDS+=("$2"); }
add "git-baton startup (--version)" "$BATON --version"
add "git-baton names only" "$BATON status --json --branch no-such"
add "git-baton status --json" "$BATON status --json"
add "git-baton idle tick (run --json)" "$BATON run --json"
if [[ -n $OTHER ]]; then
    add "other status --json" "$OTHER status --json"
    add "other idle tick" "$OTHER run --json"
fi
add "git for-each-ref (names)" "git for-each-ref --format=%(refname) refs/heads/"
add "git for-each-ref (with trailer)" "git for-each-ref --format=%(refname)%(trailers:key=dwp-state,valueonly) refs/heads/"

declare -A WALL
for ((r = 0; r < ROUNDS; r++)); do
    for i in "${!CMDS[@]}"; do
        s=${EPOCHREALTIME/./}
        ${CMDS[$i]} >/dev/null 2>&1
        e=${EPOCHREALTIME/./}
        WALL[$i]+="$((10#$e - 10#$s)) "
    done
done

cpu_ms() { # perf's task-clock mean over ROUNDS runs, ms
    command -v perf >/dev/null || { echo "-"; return; }
    perf stat -r "$ROUNDS" -x, -e task-clock $1 2>&1 >/dev/null | awk -F, '/task-clock/ { printf "%.1f", $1; found = 1 } END { if (!found) printf "-" }'
}

echo
echo "$BRANCHES loose refs, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS interleaved rounds"
echo
echo "| command | wall ms (min / median) | CPU ms (task-clock) |"
echo "| --- | ---: | ---: |"
for i in "${!CMDS[@]}"; do
    # shellcheck disable=SC2086
    read -r mn md < <(printf '%s\n' ${WALL[$i]} | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f %.1f\n", a[1] / 1000, a[int((NR + 1) / 2)] / 1000 }')
    echo "| ${LABELS[$i]} | $mn / $md | $(cpu_ms "${CMDS[$i]}") |"
done
