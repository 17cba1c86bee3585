#!/usr/bin/env bash
# Benchmark: git-baton's in-process reads against the git commands that do the same job.
#
#   bench/status_trailers.sh [path-to-git-baton-binary]
#
# Default binary: target/release/git-baton under the repository root (or under $CARGO_TARGET_DIR
# when that is set); when the default is missing it is built with `cargo build --release --locked`.
#
# Builds a throw-away repository (removed on exit) with
#   - `main`: a linear history of $COMMITS commits, each with trailers
#   - $BRANCHES branches task/00000 … each pointing to its own commit (a child of main's tip),
#   all sharing one tree that holds the executable handler .dwp/command/review,
# written by ONE `git fast-import` stream. Then it times, for loose refs (as fast-import leaves
# them) and again after `git pack-refs --all` + `git repack -ad`:
#   status:   git baton status --json
#        vs   git for-each-ref --format='%(refname) %(trailers:key=dwp-state,valueonly)' refs/heads/
#   trailers: git baton trailers <the $COMMITS ids of main>
#        vs   git log --no-walk=unsorted --format='%(trailers:only,unfold)' <same ids>
# and checks that git-baton's output agrees with git's. Prints a Markdown table.
#
# Environment: BRANCHES (default 10000), COMMITS (default 10000), RUNS (timed runs per command,
# default 5; one untimed warm-up run precedes them), BENCH_KEEP=1 keeps the temp dir for a look.
# Timing is wall clock of the whole process (bash's $EPOCHREALTIME, no fork; `date +%s%N` where
# that is missing), warm file cache.
set -euo pipefail

export LC_ALL=C

BRANCHES=${BRANCHES:-10000}
COMMITS=${COMMITS:-10000}
RUNS=${RUNS:-5}

die() { echo "status_trailers.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[[ $BRANCHES =~ ^[0-9]+$ && $BRANCHES -ge 1 ]] || die "BRANCHES must be a positive integer"
[[ $COMMITS =~ ^[0-9]+$ && $COMMITS -ge 1 ]] || die "COMMITS must be a positive integer"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || die "RUNS must be a positive integer"
command -v git >/dev/null || die "git not found"
command -v python3 >/dev/null || die "python3 not found (used to check the JSON output)"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export GIT_AUTHOR_DATE='1700000000 +0000' GIT_COMMITTER_DATE='1700000000 +0000'

# `git baton` must find this binary whatever it is called.
mkdir -p "$TMP/bin"
ln -s "$BATON" "$TMP/bin/git-baton"
export PATH=$TMP/bin:$PATH

REPO=$TMP/repo
git init -q -b main "$REPO"
cd "$REPO"
git config gc.auto 0
git config maintenance.auto false

note "git-baton: $(git baton --version 2>/dev/null || echo '?') ($BATON)"
note "$(git --version); $(nproc 2>/dev/null || echo '?') CPUs; BRANCHES=$BRANCHES COMMITS=$COMMITS RUNS=$RUNS"

gen_start=${EPOCHREALTIME:-}
# One fast-import stream: the handler blob, main's linear history, then one commit per task
# branch on top of main's tip (no file changes: every commit shares main's tree).
# States: 75% done, 15% review, 10% no trailers; every 50th message also has a folded trailer.
awk -v C="$COMMITS" -v B="$BRANCHES" '
function message(title, i,    k, tr, st) {
    k = i % 20
    if (k >= 18) return title " " i "\n\nbody of " title " " i ", no trailers\n"
    st = (k >= 15) ? "review" : "done"
    tr = "Reviewed-by: x\n"
    if (i % 50 == 0) tr = tr "Signed-off-by: A U Thor <author@example.com>\n  folded continuation\n"
    return title " " i "\n\nbody of " title " " i "\n\n" tr "dwp-state: " st "\n"
}
function commit(ref, mark, t, m) {
    printf "commit %s\n", ref
    if (mark) printf "mark :%d\n", mark
    printf "author Bench <bench@example.com> %d +0000\n", t
    printf "committer Bench <bench@example.com> %d +0000\n", t
    printf "data %d\n%s", length(m), m
}
BEGIN {
    h = "#!/bin/sh\nexit 0\n"
    printf "blob\nmark :1\ndata %d\n%s\n", length(h), h
    t = 1700000000
    for (i = 0; i < C; i++) {
        commit("refs/heads/main", i + 2, t + i, message("commit", i))
        if (i == 0) printf "M 100755 :1 .dwp/command/review\n"
        printf "\n"
    }
    width = length(B - 1 "") < 5 ? 5 : length(B - 1 "")
    for (j = 0; j < B; j++) {
        commit(sprintf("refs/heads/task/%0" width "d", j), 0, t + C + j, message("task", j))
        printf "from :%d\n\n", C + 1
    }
    print "done"
}' | git fast-import --quiet --done
git checkout -q -f main
[[ -n $gen_start ]] && note "repository generated in $(( (${EPOCHREALTIME/./} - ${gen_start/./}) / 1000 )) ms"

mapfile -t IDS < <(git rev-list main)
[[ ${#IDS[@]} -eq $COMMITS ]] || die "main has ${#IDS[@]} commits, expected $COMMITS"

# Pass the ids as arguments directly when they fit (10,000 shas are ~410 KB, well under Linux's
# ARG_MAX); otherwise both tools get the same xargs batches.
arg_max=$(getconf ARG_MAX 2>/dev/null || echo 131072)
env_bytes=$(env | wc -c)
per_batch=$(( (arg_max - env_bytes - 65536) / 41 ))
(( per_batch > 0 )) || die "ARG_MAX ($arg_max) too small"
if (( COMMITS <= per_batch )); then
    run_baton_trailers() { git baton trailers "${IDS[@]}"; }
    run_git_trailers() { git log --no-walk=unsorted --format='%(trailers:only,unfold)' "${IDS[@]}"; }
else
    note "ids do not fit one command line: xargs batches of $per_batch for both tools"
    printf '%s\n' "${IDS[@]}" >"$TMP/ids"
    run_baton_trailers() { xargs -n "$per_batch" git baton trailers <"$TMP/ids"; }
    run_git_trailers() {
        xargs -n "$per_batch" git log --no-walk=unsorted --format='%(trailers:only,unfold)' <"$TMP/ids"
    }
fi
run_baton_status() { git baton status --json; }
run_git_status() { git for-each-ref --format='%(refname) %(trailers:key=dwp-state,valueonly)' refs/heads/; }

# --- correctness: git-baton must agree with git -------------------------------------------------
check() {
    local label=$1
    run_baton_trailers >"$TMP/baton.trailers"
    run_git_trailers >"$TMP/git.trailers"
    if ! cmp -s "$TMP/baton.trailers" "$TMP/git.trailers"; then
        diff -u "$TMP/git.trailers" "$TMP/baton.trailers" | head -40 >&2 || true
        die "$label: git baton trailers differs from git log --format=%(trailers:only,unfold)"
    fi
    run_baton_status >"$TMP/status.json"
    run_git_status >"$TMP/for-each-ref.txt"
    python3 - "$TMP/status.json" "$TMP/for-each-ref.txt" "$BRANCHES" "$label" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]  # JSON Lines
branches, label = int(sys.argv[3]), sys.argv[4]
tasks = [r for r in rows if r["branch"].startswith("task/")]
if len(tasks) != branches:
    sys.exit(f"{label}: git baton status --json lists {len(tasks)} task branches, expected {branches}")
# for-each-ref prints each trailer value followed by a newline: "refname value\n\n", "refname \n".
git = {}
for line in open(sys.argv[2], encoding="utf-8"):
    line = line.rstrip("\n")
    if line.startswith("refs/heads/"):
        name, _, value = line.partition(" ")
        git[name[len("refs/heads/"):]] = value or None
baton = {r["branch"]: r["state"] for r in rows}
if baton != git:
    bad = sorted(k for k in set(baton) | set(git) if baton.get(k, "?") != git.get(k, "?"))
    sys.exit(f"{label}: states differ from git for {len(bad)} branch(es), e.g. "
             + ", ".join(f"{k}: baton={baton.get(k, '-')!r} git={git.get(k, '-')!r}" for k in bad[:5]))
PY
    note "$label: outputs agree (trailers of $COMMITS commits identical; $BRANCHES task branches, same states as git)"
}

# --- timing ------------------------------------------------------------------------------------
# time_cmd FUNCTION: one warm-up run, then $RUNS timed runs; sets MEDIAN and BEST (ms, 1 decimal).
time_cmd() {
    local fn=$1 r s e
    local -a us=()
    "$fn" >/dev/null
    for ((r = 0; r < RUNS; r++)); do
        if [[ -n ${EPOCHREALTIME:-} ]]; then
            s=${EPOCHREALTIME/./}
            "$fn" >/dev/null
            e=${EPOCHREALTIME/./}
        else
            s=$(( $(date +%s%N) / 1000 ))
            "$fn" >/dev/null
            e=$(( $(date +%s%N) / 1000 ))
        fi
        us+=($(( 10#$e - 10#$s )))
    done
    mapfile -t us < <(printf '%s\n' "${us[@]}" | sort -n)
    local n=${#us[@]} med
    if (( n % 2 )); then med=${us[n / 2]}; else med=$(( (us[n / 2 - 1] + us[n / 2]) / 2 )); fi
    MEDIAN=$(ms "$med")
    BEST=$(ms "${us[0]}")
    MEDIAN_US=$med
}

ROWS=()
bench_pair() { # label baton_fn git_fn
    local label=$1 b_med b_best b_us
    time_cmd "$2"; b_med=$MEDIAN; b_best=$BEST; b_us=$MEDIAN_US
    time_cmd "$3"
    local ratio
    ratio=$(awk -v a="$b_us" -v b="$MEDIAN_US" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    ROWS+=("| $label | $b_med / $b_best | $MEDIAN / $BEST | ${ratio}× |")
    note "$label: git-baton $b_med / $b_best ms, git $MEDIAN / $BEST ms"
}

bench_round() { # suffix
    bench_pair "status, $BRANCHES branches, $1" run_baton_status run_git_status
    bench_pair "trailers, $COMMITS commits, $1" run_baton_trailers run_git_trailers
}

check "loose refs"
note "loose refs: $(find .git/refs/heads -type f | wc -l) loose ref files, $(ls .git/objects/pack/*.pack | wc -l) pack(s) from fast-import"
bench_round "loose refs"

git pack-refs --all
git repack -adq
check "packed"
note "packed: $(find .git/refs/heads -type f | wc -l) loose ref files, $(ls .git/objects/pack/*.pack | wc -l) pack(s)"
bench_round "packed refs + repack -ad"

echo
echo "git-baton $(git baton --version 2>/dev/null | awk '{print $NF}'), $(git --version), $(nproc 2>/dev/null || echo '?') CPUs;" \
    "git-baton run as \`git baton …\`; wall clock per process, median / best of $RUNS runs after one warm-up, ms;" \
    "ratio = git-baton median / git median."
echo
echo "| case | git-baton ms (median / best) | git ms (median / best) | ratio |"
echo "| --- | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
[[ -n $SCRIPT_START ]] && note "total $(ms $(( (${EPOCHREALTIME/./} - ${SCRIPT_START/./}) / 1000 ))) s"
exit 0
