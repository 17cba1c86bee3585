#!/usr/bin/env bash
# Benchmark: how long is the one tick that joins a parent with $CHILDREN finished children?
#
#   bench/fanout.sh [path-to-git-baton-binary]
#
# Default binary: target/release/git-baton under the repository root (or under $CARGO_TARGET_DIR
# when that is set); when the default is missing it is built with `cargo build --release --locked`.
#
# Builds a throw-away repository (removed on exit) with ONE `git fast-import` stream:
#   - $CHILDREN child branches `kid/NNNNN`, each one commit on top of `main` whose head is a
#     child's answer: `did kid/N`, a one-line body, `dwp-cost: 0.5`, `dwp-state: done`;
#   - the parent branch `parent`, whose head is the `waiting` commit `git baton join --then merge`
#     writes: `dwp-join-then: merge`, `dwp-join-rule: all`, `dwp-join-on-failure: fail`,
#     `dwp-join-correlation: bench-run`, and one `dwp-join-child: kid/NNNNN` per child.
# No handler exists (`merge` has none), so a tick's only work is the join.
#
# Then it times, interleaved so drift hits both alike:
#   join  — `git baton run --json` on that board: it must print exactly one `joined` event and
#           leave `parent` at a `merge` commit with $CHILDREN `dwp-joined-child` trailers; the
#           parent is put back on its waiting commit (`git update-ref`) before each run;
#   idle  — the same board with `parent` at a plain `done` commit: the tick reads every head and
#           does nothing (the cost of reading the board, for comparison).
# For loose refs (as fast-import leaves them) and again after `git pack-refs --all`.
#
# Environment: CHILDREN (default 1000), RUNS (timed ticks per case, default 7; one untimed
# warm-up precedes them), BENCH_KEEP=1 keeps the temp dir. Wall clock of the whole process
# (bash's $EPOCHREALTIME), warm file cache. Prints a Markdown table.
set -euo pipefail

export LC_ALL=C

CHILDREN=${CHILDREN:-1000}
RUNS=${RUNS:-7}

die() { echo "fanout.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[[ $CHILDREN =~ ^[0-9]+$ && $CHILDREN -ge 1 ]] || die "CHILDREN must be a positive integer"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || die "RUNS must be a positive integer"
[[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 is needed (\$EPOCHREALTIME)"
command -v git >/dev/null || die "git not found"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export GIT_AUTHOR_DATE='1700000000 +0000' GIT_COMMITTER_DATE='1700000000 +0000'

mkdir -p "$TMP/bin"
ln -s "$BATON" "$TMP/bin/git-baton"
export PATH=$TMP/bin:$PATH

note "git-baton: $(git baton --version 2>/dev/null || echo '?') ($BATON)"
note "$(git --version); $(nproc 2>/dev/null || echo '?') CPUs; CHILDREN=$CHILDREN RUNS=$RUNS"

R=$TMP/repo
git init -q -b main "$R"
git -C "$R" config gc.auto 0
git -C "$R" config maintenance.auto false
gen_start=$EPOCHREALTIME
awk -v N="$CHILDREN" '
function data(s) { printf "data %d\n%s", length(s), s }
BEGIN {
    printf "commit refs/heads/main\nmark :1\n"
    printf "author Bench <bench@example.com> 1700000000 +0000\n"
    printf "committer Bench <bench@example.com> 1700000000 +0000\n"
    data("start\n")
    printf "M 100644 inline README\n"; data("project\n"); printf "\n"
    join = "baton: join " N " children (all) -> merge\n\nwaiting for the children\n\n" \
        "dwp-join-then: merge\ndwp-join-rule: all\ndwp-join-on-failure: fail\ndwp-join-correlation: bench-run\n"
    for (j = 0; j < N; j++) {
        printf "commit refs/heads/kid/%05d\n", j
        printf "author Bench <bench@example.com> %d +0000\n", 1700000001 + j
        printf "committer Bench <bench@example.com> %d +0000\n", 1700000001 + j
        data(sprintf("did kid/%05d\n\nthe answer of kid/%05d\n\ndwp-cost: 0.5\ndwp-state: done\n", j, j))
        printf "from :1\n\n"
        join = join sprintf("dwp-join-child: kid/%05d\n", j)
    }
    join = join "dwp-state: waiting\n"
    printf "commit refs/heads/parent\nmark :2\n"
    printf "author Bench <bench@example.com> 1700000000 +0000\n"
    printf "committer Bench <bench@example.com> 1700000000 +0000\n"
    data(join)
    printf "from :1\n\n"
    printf "commit refs/heads/parent-done\nmark :3\n"
    printf "author Bench <bench@example.com> 1700000000 +0000\n"
    printf "committer Bench <bench@example.com> 1700000000 +0000\n"
    data("finished\n\ndwp-state: done\n")
    printf "from :1\n\n"
    print "done"
}' | git -C "$R" fast-import --quiet --done
git -C "$R" checkout -q -f main
WAITING=$(git -C "$R" rev-parse parent)
DONE=$(git -C "$R" rev-parse parent-done)
git -C "$R" update-ref -d refs/heads/parent-done
note "repository generated in $(( (${EPOCHREALTIME/./} - ${gen_start/./}) / 1000 )) ms"
n=$(git -C "$R" for-each-ref --format='%(trailers:key=dwp-state,valueonly,separator=)' refs/heads/kid/ | grep -c '^done$')
[[ $n == "$CHILDREN" ]] || die "$n children done, expected $CHILDREN"

# set_parent ID: put the parent back on ID (the waiting commit, or the plain done commit).
set_parent() { git -C "$R" update-ref refs/heads/parent "$1"; }

time_tick() { # → µs in $US, output in $OUT
    local s e
    s=${EPOCHREALTIME/./}
    OUT=$(cd "$R" && git baton run --json 2>"$TMP/tick.err") || die "git baton run failed: $(tail -3 "$TMP/tick.err")"
    e=${EPOCHREALTIME/./}
    US=$(( 10#$e - 10#$s ))
}

check_join() {
    [[ $(grep -c '"action":"joined"' <<<"$OUT") == 1 ]] || die "the join tick did not join once: $(head -3 <<<"$OUT")"
    local state kids
    state=$(git -C "$R" log -1 --format='%(trailers:key=dwp-state,valueonly,separator=)' parent)
    kids=$(git -C "$R" log -1 --format='%(trailers:key=dwp-joined-child,valueonly)' parent | grep -c ' done$')
    [[ $state == merge && $kids == "$CHILDREN" ]] || die "after the join: state $state, $kids children recorded"
}

ROWS=()
bench_layout() { # label
    local label=$1 r
    local -a t_join=() t_idle=()
    set_parent "$WAITING"; time_tick; check_join
    set_parent "$DONE"; time_tick; [[ -z $OUT ]] || die "the idle tick did something: $(head -3 <<<"$OUT")"
    for ((r = 0; r < RUNS; r++)); do
        if (( r % 2 == 0 )); then
            set_parent "$WAITING"; time_tick; check_join; t_join+=("$US")
            set_parent "$DONE"; time_tick; t_idle+=("$US")
        else
            set_parent "$DONE"; time_tick; t_idle+=("$US")
            set_parent "$WAITING"; time_tick; check_join; t_join+=("$US")
        fi
    done
    local jm jb im ib
    read -r jm jb < <(median_best "${t_join[@]}")
    read -r im ib < <(median_best "${t_idle[@]}")
    ROWS+=("| $CHILDREN children, $label | $(ms "$jm") / $(ms "$jb") | $(ms "$im") / $(ms "$ib") | $(ms $(( jm - im ))) |")
    note "$label: join $(ms "$jm") / $(ms "$jb") ms, idle $(ms "$im") / $(ms "$ib") ms (median / best)"
    note "$label: join, all runs (ms): $(for u in "${t_join[@]}"; do printf '%s ' "$(ms "$u")"; done)"
}

bench_layout "loose refs"
git -C "$R" pack-refs --all
bench_layout "packed refs"

echo
echo "git-baton $(git baton --version 2>/dev/null | awk '{print $NF}'), $(git --version), $(nproc 2>/dev/null || echo '?') CPUs;" \
    "\`git baton run --json\`, wall clock per process, median / best of $RUNS interleaved runs after one warm-up, ms."
echo
echo "| board | the tick that joins, ms | idle tick (same board, nothing to join), ms | join's own cost (median difference), ms |"
echo "| --- | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
note "total $(ms $(( ${EPOCHREALTIME/./} - ${SCRIPT_START/./} ))) ms"
exit 0
