#!/usr/bin/env bash
# Runner benchmarks (issue: the runner):
#  1. per-transition overhead — claim + worktree + handler + validate + clean — on a repository
#     with 1,000 files, no-op handler, `--jobs 1`, averaged over TASKS transitions;
#  2. an idle tick over BRANCHES branches in finished states, against
#     `git for-each-ref` reading the same trailer.
# Usage: bench/runner.sh [path/to/git-baton]   (env: TASKS=100 BRANCHES=10000 RUNS=5)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/git-baton}
[ -x "$bin" ] || cargo build --release --locked --manifest-path "$root/Cargo.toml" >&2
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
TASKS=${TASKS:-100} BRANCHES=${BRANCHES:-10000} RUNS=${RUNS:-5}

work=$(mktemp -d "${TMPDIR:-/tmp}/baton-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export HOME=$work GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com \
  GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com
export PATH="$(dirname "$bin"):$PATH"

ms() { echo $(( ($2 - $1) / 1000000 )); }
now() { date +%s%N; }
# best and median of RUNS timings of a command (ms)
timeit() {
  local t=() s e
  for _ in $(seq "$RUNS"); do s=$(now); "$@" >/dev/null 2>&1; e=$(now); t+=("$(ms "$s" "$e")"); done
  printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%d %d\n", a[1], a[int((NR+1)/2)]}'
}

# --- 1. per-transition overhead ------------------------------------------------------------
r1=$work/transitions
git init -q -b main "$r1" && cd "$r1"
mkdir -p src .dwp/command
for i in $(seq 1000); do echo "file $i" > "src/f$i.txt"; done
printf '#!/bin/sh\nexec git commit -q --allow-empty -m ok -m "dwp-state: done"\n' > .dwp/command/todo
chmod +x .dwp/command/todo
git add -A && git commit -q -m "1000 files + no-op handler"
tree=$(git rev-parse 'HEAD^{tree}') base=$(git rev-parse HEAD)
{
  for i in $(seq "$TASKS"); do
    printf 'commit refs/heads/task/%05d\ncommitter Bench <b@example.com> 1700000000 +0000\ndata <<EOM\ntask %d\n\ndwp-state: todo\nEOM\nfrom %s\nM 040000 %s \"\"\n\n' "$i" "$i" "$base" "$tree"
  done
} | git fast-import --quiet
s=$(now); git baton run --jobs 1 -q; e=$(now)
done_count=$(git for-each-ref --format='%(trailers:key=dwp-state,valueonly)' refs/heads/task/ | grep -c '^done$' || true)
[ "$done_count" = "$TASKS" ] || { echo "only $done_count of $TASKS tasks reached done" >&2; exit 1; }
total=$(ms "$s" "$e")
# The handler's own cost (one git commit in a 1,000-file worktree), to separate it out.
git worktree add -q "$work/probe" -b probe
cd "$work/probe"
s=$(now); for _ in $(seq 20); do git commit -q --allow-empty -m ok -m "dwp-state: done"; done; e=$(now)
handler=$(( $(ms "$s" "$e") / 20 ))
cd "$r1"
per=$(( total / TASKS ))
echo "| transition (claim+worktree+handler+validate+clean), 1,000 files, jobs 1 | $per ms each ($TASKS in $total ms) | handler alone ~$handler ms | overhead ~$((per - handler)) ms |"
s=$(now); git checkout -q -B parallel main >/dev/null; e=$(now)

# --- 2. idle tick over finished branches ---------------------------------------------------
r2=$work/idle
git init -q -b main "$r2" && cd "$r2"
mkdir -p .dwp/command && printf '#!/bin/sh\nexit 0\n' > .dwp/command/review && chmod +x .dwp/command/review
git add -A && git commit -q -m handlers
tree=$(git rev-parse 'HEAD^{tree}') base=$(git rev-parse HEAD)
{
  for i in $(seq "$BRANCHES"); do
    printf 'commit refs/heads/task/%05d\ncommitter Bench <b@example.com> 1700000000 +0000\ndata <<EOM\ntask %d\n\nbody of %d\n\ndwp-state: done\nEOM\nfrom %s\nM 040000 %s \"\"\n\n' "$i" "$i" "$i" "$base" "$tree"
  done
} | git fast-import --quiet
for layout in loose packed; do
  if [ $layout = packed ]; then git pack-refs --all; fi
  read -r bb bm < <(timeit git baton run --json)
  read -r gb gm < <(timeit git for-each-ref --format='%(refname) %(trailers:key=dwp-state,valueonly)' refs/heads/)
  echo "| idle tick, $BRANCHES finished branches, $layout refs | git-baton run: $bm ms (best $bb) | git for-each-ref: $gm ms (best $gb) | ratio $(awk -v a="$bm" -v b="$gm" 'BEGIN{printf "%.2f", a/(b?b:1)}') |"
done
left=$(git worktree list | wc -l)
[ "$left" = 1 ] || { echo "idle tick left $((left - 1)) worktrees" >&2; exit 1; }
