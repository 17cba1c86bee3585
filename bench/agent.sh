#!/usr/bin/env bash
# Agent handler overhead (issue 12: the agent handler). TASKS transitions with `--jobs 1` through
#  1. a plain handler that commits (`git commit … dwp-state: done`), and
#  2. `exec git baton agent` with an instant agent (`printf 'COMPLETED: …'`): prompt building,
#     the agent's process group, reply parsing, `git add -A` and the answer commit,
# on a repository with 1,000 files. The difference is what the agent handler adds to a run
# before any real agent starts thinking.
# Usage: bench/agent.sh [path/to/git-baton]   (env: TASKS=50)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/git-baton}
[ -x "$bin" ] || cargo build --release --locked --manifest-path "$root/Cargo.toml" >&2
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
TASKS=${TASKS:-50}

work=$(mktemp -d "${TMPDIR:-/tmp}/baton-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export HOME=$work GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com \
  GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com
unset BATON_AGENT_CMD BATON_AGENT_TIMEOUT BATON_NEXT_STATE
export PATH="$(dirname "$bin"):$PATH"

ms() { echo $(( ($2 - $1) / 1000000 )); }
now() { date +%s%N; }

# TASKS tasks in state `todo` through the handler script $2; prints ms per transition.
transitions() {
  local dir=$work/$1 handler=$2
  git init -q -b main "$dir" && cd "$dir"
  mkdir -p src .dwp/command
  for i in $(seq 1000); do echo "file $i" > "src/f$i.txt"; done
  printf '%s' "$handler" > .dwp/command/todo && chmod +x .dwp/command/todo
  git add -A && git commit -q -m "1000 files + handler"
  local tree base s e n
  tree=$(git rev-parse 'HEAD^{tree}') base=$(git rev-parse HEAD)
  {
    for i in $(seq "$TASKS"); do
      printf 'commit refs/heads/task/%05d\ncommitter Bench <b@example.com> 1700000000 +0000\ndata <<EOM\ntask %d\n\nDo task %d.\n\ndwp-state: todo\nEOM\nfrom %s\nM 040000 %s \"\"\n\n' "$i" "$i" "$i" "$base" "$tree"
    done
  } | git fast-import --quiet
  s=$(now); git baton run --jobs 1 -q; e=$(now)
  n=$(git for-each-ref --format='%(trailers:key=dwp-state,valueonly)' refs/heads/task/ | grep -c '^done$' || true)
  [ "$n" = "$TASKS" ] || { echo "$1: only $n of $TASKS tasks reached done" >&2; exit 1; }
  echo $(( $(ms "$s" "$e") / TASKS ))
}

plain=$(transitions plain $'#!/bin/sh\nexec git commit -q --allow-empty -m ok -m "dwp-state: done"\n')
agent=$(transitions agent $'#!/bin/sh\nexport BATON_AGENT_CMD="printf \'COMPLETED: did it\\\\n\'"\nexec git baton agent\n')
echo "| transition, 1,000 files, jobs 1 | plain committing handler $plain ms | agent handler, instant agent $agent ms | agent handler adds ~$((agent - plain)) ms |"
