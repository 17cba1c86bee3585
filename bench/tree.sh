#!/usr/bin/env bash
# Benchmark: how long does `git baton tree` take on a board of $CHILDREN answered children?
#
#   bench/tree.sh [path-to-git-baton-binary]
#
# Default binary: target/release/git-baton under the repository root (or under $CARGO_TARGET_DIR
# when that is set); when the default is missing it is built with `cargo build --release --locked`.
#
# Builds a throw-away repository (removed on exit) with ONE `git fast-import` stream:
#   - `main`: $MAIN_BEFORE commits;
#   - 20 parents `root-NN` (each one `waiting` commit on main);
#   - $CHILDREN children `child-NNNNN` off main: the spawn commit (`dwp-parent: root-NN`,
#     `dwp-correlation-id`, `dwp-state: build`) then three answers without `dwp-parent` (`review`,
#     `review`, `done`) — so `tree` must look below each head to find its parent;
#   - then `main` gains $MAIN_AFTER more commits (the default branch moved on since the tasks
#     left it).
# It checks that `tree --json` places every child under its parent, then times `git baton tree`
# $RUNS times (after one untimed warm-up): wall clock of the whole process (bash's
# $EPOCHREALTIME), warm file cache. Prints a Markdown table row.
#
# Environment: CHILDREN (default 2000), MAIN_BEFORE (default 300), MAIN_AFTER (default 5000),
# RUNS (default 5), BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail

export LC_ALL=C

CHILDREN=${CHILDREN:-2000}
MAIN_BEFORE=${MAIN_BEFORE:-300}
MAIN_AFTER=${MAIN_AFTER:-5000}
RUNS=${RUNS:-5}

die() { echo "tree.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

for v in CHILDREN MAIN_BEFORE MAIN_AFTER RUNS; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || die "$v must be a positive integer"
done
[[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 is needed (\$EPOCHREALTIME)"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

repo=$TMP/repo
git init -q -b main "$repo"
cd "$repo"
gen_start=$EPOCHREALTIME
{
    t=1700000000
    data() { printf 'data %d\n%s\n' "${#1}" "$1"; }
    echo "reset refs/heads/main"
    for ((i = 0; i < MAIN_BEFORE; i++)); do
        echo "commit refs/heads/main"
        echo "mark :$((i + 1))"
        echo "committer Bench <bench@example.com> $((t + i)) +0000"
        data "main $i"
    done
    for ((r = 0; r < 20; r++)); do
        printf 'commit refs/heads/root-%02d\ncommitter Bench <bench@example.com> %d +0000\n' "$r" $((t + 100000))
        data "$(printf 'root %d\n\ndwp-state: waiting' "$r")"
        echo "from :$MAIN_BEFORE"
    done
    for ((c = 0; c < CHILDREN; c++)); do
        b=$(printf 'child-%05d' "$c")
        printf 'commit refs/heads/%s\ncommitter Bench <bench@example.com> %d +0000\n' "$b" $((t + 200000))
        data "$(printf 'spawn %d\n\ndwp-parent: root-%02d\ndwp-correlation-id: c%d\ndwp-state: build' "$c" $((c % 20)) $((c % 20)))"
        echo "from :$MAIN_BEFORE"
        for s in review review done; do
            printf 'commit refs/heads/%s\ncommitter Bench <bench@example.com> %d +0000\n' "$b" $((t + 300000))
            data "$(printf 'answer\n\ndwp-state: %s' "$s")"
        done
    done
    for ((i = 0; i < MAIN_AFTER; i++)); do
        echo "commit refs/heads/main"
        echo "committer Bench <bench@example.com> $((t + 400000 + i)) +0000"
        data "later $i"
    done
} | git fast-import --quiet
note "repository generated in $(( (${EPOCHREALTIME/./} - ${gen_start/./}) / 1000 )) ms"

placed=$("$BATON" tree --json | grep -c '"parent":"root-' || true)
[[ $placed == "$CHILDREN" ]] || die "tree placed $placed of $CHILDREN children under their parent"

"$BATON" tree >/dev/null
times=()
for ((i = 0; i < RUNS; i++)); do
    s=${EPOCHREALTIME/./}
    "$BATON" tree >/dev/null
    e=${EPOCHREALTIME/./}
    times+=($((e - s)))
done
read -r med best < <(median_best "${times[@]}")
echo "| branches | main commits after | tree, median / best of $RUNS (ms) |"
echo "| ---: | ---: | ---: |"
echo "| $((CHILDREN + 21)) | $MAIN_AFTER | $(ms "$med") / $(ms "$best") |"
note "total $(ms $(( ${EPOCHREALTIME/./} - ${SCRIPT_START/./} ))) ms"
