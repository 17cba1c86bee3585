#!/usr/bin/env bash
# Benchmark: `git baton log` (runs folded from history) against `git log` printing the same
# commits' trailers.
#
#   bench/log.sh [path-to-git-baton-binary]
#
# Default binary: target/release/git-baton under the repository root (or under $CARGO_TARGET_DIR
# when that is set); when the default is missing it is built with `cargo build --release --locked`.
#
# Builds a throw-away repository (removed on exit) whose `main` is a linear workflow history of
# $COMMITS commits written by ONE `git fast-import` stream, in cycles of six commits:
#   send build (a person) -> claim (working, run id, runner id, lease) -> the handler's work
#   -> its answer `review` (every 10th cycle: the runner's failure record instead, with
#   dwp-exit-code and dwp-error) -> claim of review -> answer `done` (every 7th: `blocked`)
# and a branch `small` at the commit $SMALL commits from the root. Then it times, without and
# with a commit-graph (`git commit-graph write --reachable`):
#   git baton log main --json
#   git log --format='%H %ct %(trailers:only,unfold)' main
# checks that git-baton found exactly the runs the generator wrote, and reports the memory of
# both tools on `small` and on `main` (max RSS from /usr/bin/time -v when available, and the peak
# heap, RssAnon sampled from /proc) to show that git-baton's memory does not grow with the length
# of history (without a commit-graph it keeps up to 24 MiB of commit objects, a fixed cap).
# Prints a Markdown table.
#
# Environment: COMMITS (default 100000), SMALL (default 10000), RUNS (timed runs per command,
# default 5; one untimed warm-up run precedes them), BENCH_KEEP=1 keeps the temp dir.
# Timing is wall clock of the whole process, warm file cache.
set -euo pipefail

export LC_ALL=C

COMMITS=${COMMITS:-100000}
SMALL=${SMALL:-10000}
RUNS=${RUNS:-5}

die() { echo "log.sh: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

[[ $COMMITS =~ ^[0-9]+$ && $COMMITS -ge 12 ]] || die "COMMITS must be an integer >= 12"
[[ $SMALL =~ ^[0-9]+$ && $SMALL -ge 1 && $SMALL -le $COMMITS ]] || die "SMALL must be in 1..COMMITS"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || die "RUNS must be a positive integer"
command -v git >/dev/null || die "git not found"
command -v python3 >/dev/null || die "python3 not found (used to check the JSON output)"

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
note "$(git --version); $(nproc 2>/dev/null || echo '?') CPUs; COMMITS=$COMMITS SMALL=$SMALL RUNS=$RUNS"

gen_start=${EPOCHREALTIME:-}
# One fast-import stream; commit i (0-based) is at time T+i and has mark i+1. The generator also
# writes the number of runs it created (claims) for the check below.
awk -v C="$COMMITS" -v S="$SMALL" -v COUNT="$TMP/expected" '
function commit(who, t, m) {
    printf "commit refs/heads/main\nmark :%d\n", t - T + 1
    printf "author %s %d +0000\ncommitter %s %d +0000\n", who, t, who, t
    printf "data %d\n%s\n", length(m), m
}
function claim(state, n) {
    runs++
    return "baton: " state " claimed\n\ndwp-origin-state: " state "\ndwp-run-id: run-" n "-" state \
        "\ndwp-runner-id: bench:" (n % 3) "\ndwp-lease-seconds: 300\ndwp-state: working\n"
}
BEGIN {
    T = 1700000000
    human = "Ann <ann@example.com>"; bot = "Agent <agent@example.com>"; runner = "git-baton <git-baton@localhost>"
    for (i = 0; i < C; i++) {
        n = int(i / 6); k = i % 6; t = T + i
        if (k == 0) commit(human, t, "baton: build\n\nBuild task " n ".\n\nReviewed-by: Ann <ann@example.com>\ndwp-state: build\n")
        else if (k == 1) commit(runner, t, claim("build", n))
        else if (k == 2) commit(bot, t, "work on task " n "\n\nSome changes.\n")
        else if (k == 3 && n % 10 == 9) commit(runner, t, "baton: build failed\n\nThe handler for build failed: exit 2\n\n" \
            "dwp-origin-state: build\ndwp-run-id: run-" n "-build\ndwp-runner-id: bench:" (n % 3) \
            "\ndwp-exit-code: 2\ndwp-error: handler exited with status 2\ndwp-state: review\n")
        else if (k == 3) commit(bot, t, "built " n "\n\nSigned-off-by: Agent <agent@example.com>\ndwp-state: review\n")
        else if (k == 4) commit(runner, t, claim("review", n))
        else commit(bot, t, "reviewed " n "\n\ndwp-state: " (n % 7 == 6 ? "blocked" : "done") "\n")
        if (i == S - 1) printf "reset refs/heads/small\nfrom :%d\n\n", i + 1
    }
    print "done"
    print runs > COUNT
}' | git fast-import --quiet --done
EXPECTED_RUNS=$(cat "$TMP/expected")
[[ -n $gen_start ]] && note "repository generated in $(( (${EPOCHREALTIME/./} - ${gen_start/./}) / 1000 )) ms"
[[ $(git rev-list --count main) -eq $COMMITS ]] || die "main does not have $COMMITS commits"

run_baton() { git baton log main --json; }
run_git() { git log --format='%H %ct %(trailers:only,unfold)' main; }

# --- correctness: every run the generator wrote, with the right outcomes -------------------------
check() {
    local label=$1
    run_baton >"$TMP/log.json"
    python3 - "$TMP/log.json" "$EXPECTED_RUNS" "$label" <<'PY'
import json, sys
path, expected, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = events = failed = 0
for line in open(path, encoding="utf-8"):
    r = json.loads(line)
    if r["kind"] == "run":
        runs += 1
        failed += r["result"] == "failed"
        assert r["run_id"].endswith(r["state"]), r
    else:
        events += 1
if runs != expected:
    sys.exit(f"{label}: git baton log found {runs} runs, the generator wrote {expected}")
print(f"# {label}: {runs} runs ({failed} failed) and {events} events, as generated", file=sys.stderr)
PY
}

# --- timing ------------------------------------------------------------------------------------
time_cmd() {
    local fn=$1 r s e
    local -a us=()
    "$fn" >/dev/null
    for ((r = 0; r < RUNS; r++)); do
        s=${EPOCHREALTIME/./}
        "$fn" >/dev/null
        e=${EPOCHREALTIME/./}
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
bench_pair() { # label
    local label=$1 b_med b_best b_us ratio
    time_cmd run_baton; b_med=$MEDIAN; b_best=$BEST; b_us=$MEDIAN_US
    time_cmd run_git
    ratio=$(awk -v a="$b_us" -v b="$MEDIAN_US" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    ROWS+=("| log, $COMMITS commits, $label | $b_med / $b_best | $MEDIAN / $BEST | ${ratio}× |")
    note "$label: git-baton $b_med / $b_best ms, git $MEDIAN / $BEST ms"
}

# --- memory ------------------------------------------------------------------------------------
# Max RSS (from /usr/bin/time -v) counts the pages of the pack files that both tools map and
# touch, which grow with the history read; the anonymous memory (RssAnon: the heap, what the
# program itself holds) is sampled from /proc/PID/status while it runs.
MEM=()
anon_peak() { # command... -> peak RssAnon in KiB, sampled
    "$@" >/dev/null 2>&1 &
    local pid=$! max=0 a
    while kill -0 "$pid" 2>/dev/null; do
        a=$(awk '/^RssAnon/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        [[ -n $a ]] && (( a > max )) && max=$a
    done
    wait "$pid" || true
    echo "$max"
}
max_rss() { # command... -> max RSS in KiB
    /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ { print $2 }'
}
HAVE_TIME=0; HAVE_ANON=0
[[ -x /usr/bin/time ]] && /usr/bin/time -v true 2>/dev/null && HAVE_TIME=1
[[ -r /proc/self/status ]] && grep -q '^RssAnon' /proc/self/status && HAVE_ANON=1
(( HAVE_TIME )) || note "/usr/bin/time -v not available: max RSS not measured"
memory() { # label
    local rev n
    for rev in small main; do
        n=$([[ $rev == small ]] && echo "$SMALL" || echo "$COMMITS")
        if (( HAVE_TIME )); then
            MEM+=("| max RSS, $n commits, $1 | $(max_rss git-baton log "$rev" --json) KiB | $(max_rss git log --format='%H %ct %(trailers:only,unfold)' "$rev") KiB | |")
        fi
        if (( HAVE_ANON )); then
            MEM+=("| peak heap (RssAnon, sampled), $n commits, $1 | $(anon_peak git-baton log "$rev" --json) KiB | $(anon_peak git log --format='%H %ct %(trailers:only,unfold)' "$rev") KiB | |")
        fi
    done
}

check "no commit-graph"
bench_pair "no commit-graph"
memory "no commit-graph"
git commit-graph write --reachable
check "commit-graph"
bench_pair "commit-graph"
memory "commit-graph"
note "pack files: $(du -ck .git/objects/pack/*.pack .git/objects/pack/*.idx | tail -1 | cut -f1) KiB (mapped by both tools)"

echo
echo "git-baton $(git baton --version 2>/dev/null | awk '{print $NF}'), $(git --version), $(nproc 2>/dev/null || echo '?') CPUs;" \
    "wall clock per process, median / best of $RUNS runs after one warm-up, ms; ratio = git-baton median / git median."
echo
echo "| case | git-baton (median / best) | git log (median / best) | ratio |"
echo "| --- | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
(( ${#MEM[@]} )) && printf '%s\n' "${MEM[@]}"
[[ -n $SCRIPT_START ]] && note "total $(ms $(( (${EPOCHREALTIME/./} - ${SCRIPT_START/./}) / 1000 ))) s"
exit 0
