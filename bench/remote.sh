#!/usr/bin/env bash
# Throughput of runners sharing one bare remote: TASKS tasks (no-op handler), RUNNERS clones each
# running `git baton run --remote origin --jobs 2` in a loop until a tick claims nothing.
# Prints transitions per second for 1, 2 and 4 runners (override with RUNNER_COUNTS="1 2 4").
# Usage: bench/remote.sh [path/to/git-baton]   (env: TASKS=30)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/git-baton}
[ -x "$bin" ] || cargo build --release --locked --manifest-path "$root/Cargo.toml" >&2
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
TASKS=${TASKS:-30} RUNNER_COUNTS=${RUNNER_COUNTS:-"1 2 4"}
work=$(mktemp -d "${TMPDIR:-/tmp}/baton-remote-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export HOME=$work GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com \
  GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com
export PATH="$(dirname "$bin"):$PATH"
now() { date +%s%N; }

echo "| runners | tasks | wall ms | transitions/s | lost races |"
echo "|---:|---:|---:|---:|---:|"
for n in $RUNNER_COUNTS; do
  d=$work/r$n && mkdir -p "$d" && cd "$d"
  git init -q --bare -b main origin.git
  git clone -q origin.git seed 2>/dev/null
  (cd seed && mkdir -p .dwp/command &&
    printf '#!/bin/sh\nexec git commit -q --allow-empty -m ok -m "dwp-state: done"\n' > .dwp/command/todo &&
    chmod +x .dwp/command/todo && git add -A && git commit -q -m handlers && git push -q origin main &&
    for i in $(seq "$TASKS"); do git branch "task-$i" main; git baton send -q --branch "task-$i" todo >/dev/null; done &&
    git push -q origin 'refs/heads/task-*:refs/heads/task-*')
  for r in $(seq "$n"); do git clone -q origin.git "runner$r"; done
  s=$(now)
  for r in $(seq "$n"); do
    (cd "runner$r" && while :; do
        out=$(git baton run -q --remote origin --jobs 2 --json)
        printf '%s\n' "$out" >> ../events.jsonl
        printf '%s' "$out" | grep -q '"claimed"' || break
      done) &
  done
  wait
  e=$(now)
  done_count=$(git -C origin.git for-each-ref --format='%(trailers:key=dwp-state,valueonly)' 'refs/heads/task-*' | grep -c '^done$' || true)
  [ "$done_count" = "$TASKS" ] || { echo "only $done_count of $TASKS done with $n runners" >&2; exit 1; }
  ms=$(( (e - s) / 1000000 ))
  lost=$(grep -c '"lost-race"' events.jsonl || true)
  echo "| $n | $TASKS | $ms | $(awk -v t="$TASKS" -v ms="$ms" 'BEGIN{printf "%.1f", t*1000/ms}') | $lost |"
done
