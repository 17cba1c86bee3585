#!/usr/bin/env bash
# Hook overhead (issue: git hooks). git runs `reference-transaction` once per phase of every ref
# transaction, so the shim must cost next to nothing when no branch moved. Compares, median of
# RUNS:
#  1. `git fetch` of TAGS tags into a fresh repository,
#  2. `git tag` run TAGS times,
#  3. one `git commit` carrying a state on a branch (the git-baton tick starts in the background;
#     the time is what the user waits for),
# each with no hook, with an empty `reference-transaction` hook (`exit 0`, the floor any hook
# pays: git starting a shell), and with git-baton's hooks installed.
# Usage: bench/hooks.sh [path/to/git-baton]   (env: TAGS=100 RUNS=5)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/git-baton}
[ -x "$bin" ] || cargo build --release --locked --manifest-path "$root/Cargo.toml" >&2
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
TAGS=${TAGS:-100} RUNS=${RUNS:-5}

work=$(mktemp -d "${TMPDIR:-/tmp}/baton-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export HOME=$work GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com \
  GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com
unset BATON_HOOKS BATON_RUN_ID
export PATH="$(dirname "$bin"):$PATH"

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# A source with TAGS tags.
src=$work/src
git init -q -b main "$src"
git -C "$src" commit -q --allow-empty -m init
for i in $(seq "$TAGS"); do git -C "$src" tag "v$i"; done

# A fresh repository with the given hook setup: none | empty | baton.
fresh() {
  local dir=$1 setup=$2
  rm -rf "$dir"
  git init -q -b main "$dir"
  git -C "$dir" commit -q --allow-empty -m init
  mkdir -p "$dir/.dwp/command"
  case $setup in
  empty) printf '#!/bin/sh\nexit 0\n' > "$dir/.git/hooks/reference-transaction"
    chmod +x "$dir/.git/hooks/reference-transaction" ;;
  baton) (cd "$dir" && git baton hooks install >/dev/null) ;;
  esac
}

# How often git starts the hook for one fetch of TAGS tags (a counting hook, once).
fresh "$work/count" none
printf '#!/bin/sh\necho "$1" >> "%s/calls"\n' "$work" > "$work/count/.git/hooks/reference-transaction"
chmod +x "$work/count/.git/hooks/reference-transaction"
git -C "$work/count" fetch -q "$src" 'refs/tags/*:refs/tags/*'
calls=$(wc -l < "$work/calls")

declare -A fetch tag commit
for setup in none empty baton; do
  f=() t=() c=()
  for _ in $(seq "$RUNS"); do
    r=$work/r-$setup
    fresh "$r" "$setup"
    s=$(now); git -C "$r" fetch -q "$src" 'refs/tags/*:refs/tags/*'; e=$(now)
    f+=($(( (e - s) / 1000 )))
    s=$(now); for i in $(seq "$TAGS"); do git -C "$r" tag "t$i"; done; e=$(now)
    t+=($(( (e - s) / 1000 )))
    git -C "$r" checkout -q -b task
    s=$(now); git -C "$r" commit -q --allow-empty -m x -m 'dwp-state: todo'; e=$(now)
    c+=($(( (e - s) / 1000 )))
    # No tick may have been started by the tags: only the branch commands above.
    if [ "$setup" = baton ]; then
      started=$(grep -c 'hooks trigger (' "$r/.git/baton/hooks.log" || true)
      [ "$started" -le 3 ] || { echo "tags started $started triggers" >&2; exit 1; }
    fi
  done
  fetch[$setup]=$(printf '%s\n' "${f[@]}" | median)
  tag[$setup]=$(printf '%s\n' "${t[@]}" | median)
  commit[$setup]=$(printf '%s\n' "${c[@]}" | median)
done
sleep 1 # let the background ticks of the last round finish before the folder goes

ms() { awk -v u="$1" 'BEGIN{printf "%.1f ms", u/1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/(b?b:1)}'; }
echo "git $(git --version | cut -d' ' -f3), $TAGS tags, median of $RUNS; the fetch starts the hook $calls times"
echo "| case | no hook | empty hook | git-baton hooks | git-baton / empty |"
echo "|---|---:|---:|---:|---:|"
for row in fetch tag commit; do
  declare -n m=$row
  case $row in
  fetch) label="\`git fetch\` of $TAGS tags" ;;
  tag) label="\`git tag\` x $TAGS" ;;
  commit) label="one \`git commit\` with a state (tick in the background)" ;;
  esac
  echo "| $label | $(ms "${m[none]}") | $(ms "${m[empty]}") | $(ms "${m[baton]}") | $(ratio "${m[baton]}" "${m[empty]}") |"
done
