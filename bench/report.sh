#!/usr/bin/env bash
# Benchmark: `git baton report` (the static HTML page) on a big board.
#
#   bench/report.sh [path-to-git-baton-binary]
#
# Default binary: target/release/git-baton under the repository root (or under $CARGO_TARGET_DIR
# when that is set); when the default is missing it is built with `cargo build --release --locked`.
#
# Builds a throw-away repository (removed on exit) with ONE `git fast-import` stream: `main` with
# a README, and $BRANCHES task branches off it, each with $RUNS_PER runs:
#   send build (a person) -> [claim (working, run id, runner id, lease) -> answer] x RUNS_PER
# Claims alternate between build and review; every 10th answer is the runner's failure record
# (dwp-exit-code, dwp-error) sending the task back to build; answers report dwp-cost. The final
# heads vary: done, review, waiting (a person), blocked, failed, and a `dwp-parent` on every 50th
# branch (naming the branch before it) and a `dwp-depends-on` on every 40th.
# Then it times `git baton report -o FILE` (loose refs, then packed refs with a commit-graph),
# checks the page (size, that it says it aggregated), and prints a Markdown table.
#
# Environment: BRANCHES (default 10000), RUNS_PER (default 10: 100,000 runs), TIMES (timed runs
# per case, default 3, after one warm-up), BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail

export LC_ALL=C

BRANCHES=${BRANCHES:-10000}
RUNS_PER=${RUNS_PER:-10}
TIMES=${TIMES:-3}

die() { echo "report.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[[ $BRANCHES =~ ^[0-9]+$ && $BRANCHES -ge 2 ]] || die "BRANCHES must be an integer >= 2"
[[ $RUNS_PER =~ ^[0-9]+$ && $RUNS_PER -ge 1 ]] || die "RUNS_PER must be a positive integer"
[[ $TIMES =~ ^[0-9]+$ && $TIMES -ge 1 ]] || die "TIMES must be a positive integer"
command -v git >/dev/null || die "git not found"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$TMP/bin"
ln -s "$BATON" "$TMP/bin/git-baton"
export PATH=$TMP/bin:$PATH

REPO=$TMP/repo
git init -q -b main "$REPO"
cd "$REPO"
git config gc.auto 0
git config maintenance.auto false

note "git-baton: $(git baton --version 2>/dev/null || echo '?') ($BATON)"
note "$(git --version); $(nproc 2>/dev/null || echo '?') CPUs; BRANCHES=$BRANCHES RUNS_PER=$RUNS_PER TIMES=$TIMES"

gen_start=${EPOCHREALTIME/./}
awk -v B="$BRANCHES" -v R="$RUNS_PER" '
function commit(ref, who, t, m, from) {
    mark++
    printf "commit %s\nmark :%d\n", ref, mark
    printf "author %s %d +0000\ncommitter %s %d +0000\n", who, t, who, t
    printf "data %d\n%s\n", length(m), m
    if (from != "") printf "from %s\n", from
    printf "\n"
}
BEGIN {
    T = 1700000000
    human = "Ann <ann@example.com>"; bot = "Agent <agent@example.com>"; runner = "git-baton <git-baton@localhost>"
    printf "blob\nmark :1\ndata 8\nproject\n\n"
    mark = 1
    printf "commit refs/heads/main\nmark :%d\nauthor %s %d +0000\ncommitter %s %d +0000\ndata 7\nproject\nM 100644 :1 README\n\n", ++mark, human, T, human, T
    root = mark
    for (b = 0; b < B; b++) {
        ref = sprintf("refs/heads/task/%05d", b)
        t = T + 100 + b * 3
        extra = ""
        if (b % 50 == 49) extra = extra sprintf("dwp-parent: task/%05d\n", b - 1)
        if (b % 40 == 39) extra = extra sprintf("dwp-depends-on: task/%05d\n", b - 2)
        commit(ref, human, t, "baton: build\n\nBuild task " b ".\n\n" extra "dwp-state: build\n", ":" root)
        state = "build"
        for (k = 0; k < R; k++) {
            n++
            t += 7
            id = "run-" b "-" k
            commit(ref, runner, t, "baton: " state " claimed\n\ndwp-origin-state: " state "\ndwp-run-id: " id \
                "\ndwp-runner-id: bench:" (n % 3) "\ndwp-lease-seconds: 300\ndwp-state: working\n", "")
            t += 5 + (n * 7919) % 300
            if ((n + b) % 10 == 0) {
                commit(ref, runner, t, "baton: " state " failed\n\nThe handler for " state " failed: exit 2\n\n" \
                    "dwp-origin-state: " state "\ndwp-run-id: " id "\ndwp-runner-id: bench:" (n % 3) \
                    "\ndwp-exit-code: 2\ndwp-error: handler exited with status 2 <tests failed>\ndwp-state: build\n", "")
                state = "build"
            } else {
                next_state = (state == "build") ? "review" : "build"
                if (k == R - 1) {
                    f = b % 10
                    next_state = (f < 5) ? "done" : (f == 5) ? "waiting" : (f == 6) ? "blocked" : (f == 7) ? "failed" : "review"
                }
                commit(ref, bot, t, "answer " id "\n\ndwp-cost: 0.0" (1 + n % 9) "\ndwp-state: " next_state "\n", "")
                state = next_state
            }
        }
    }
    print "done"
}' | git fast-import --quiet --done
gen_end=${EPOCHREALTIME/./}
note "repository generated in $(( (gen_end - gen_start) / 1000 )) ms: $(git rev-list --all --count) commits, $(git for-each-ref refs/heads | wc -l) branches"

OUT=$TMP/report.html
run_report() { git baton report -o "$OUT" 2>/dev/null; }

time_it() {
    local r s e
    local -a us=()
    run_report
    for ((r = 0; r < TIMES; r++)); do
        s=${EPOCHREALTIME/./}
        run_report
        e=${EPOCHREALTIME/./}
        us+=($(( 10#$e - 10#$s )))
    done
    read -r MED BEST < <(median_best "${us[@]}")
}

# CPU seconds (user + system) of one run: on a machine shared with other work the wall clock
# says more about the neighbours than about git-baton.
cpu_of() {
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%U %S' git baton report -o "$OUT" 2>&1 >/dev/null | tail -1 | awk '{ printf "%.2f s", $1 + $2 }'
    else
        echo "?"
    fi
}
LOAD() { awk '{ print $1 }' /proc/loadavg 2>/dev/null || echo "?"; }

check_page() {
    local bytes
    bytes=$(wc -c <"$OUT")
    grep -q 'class="note limit"\|class="limit"' "$OUT" || die "the page does not say it aggregated"
    grep -q "of $BRANCHES tasks shown" "$OUT" || note "warning: board count line not found"
    PAGE_KB=$(( bytes / 1024 ))
}

ROWS=()
time_it; check_page
ROWS+=("| report, $BRANCHES branches, $(( BRANCHES * RUNS_PER )) runs, loose refs | $(ms "$MED") / $(ms "$BEST") ms | $(cpu_of) | $(LOAD) | $PAGE_KB KiB |")
note "loose refs: $(ms "$MED") / $(ms "$BEST") ms, page $PAGE_KB KiB"
git pack-refs --all
git commit-graph write --reachable
time_it; check_page
ROWS+=("| report, $BRANCHES branches, $(( BRANCHES * RUNS_PER )) runs, packed refs + commit-graph | $(ms "$MED") / $(ms "$BEST") ms | $(cpu_of) | $(LOAD) | $PAGE_KB KiB |")
note "packed + commit-graph: $(ms "$MED") / $(ms "$BEST") ms, page $PAGE_KB KiB"

echo
echo "git-baton $(git baton --version 2>/dev/null | awk '{print $NF}'), $(git --version), $(nproc 2>/dev/null || echo '?') CPUs;" \
    "wall clock per process, median / best of $TIMES runs after one warm-up; CPU of one more run; the 1-minute load average then."
echo
echo "| case | wall (median / best) | CPU (user + sys) | load average | page size |"
echo "| --- | ---: | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
