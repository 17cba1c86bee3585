#!/usr/bin/env bash
# git-baton quickstart: a throw-away repository with a two-step workflow (plan -> build -> done),
# run end to end by the real runner. Each command is printed before it runs ("$ …"), and the
# repository is kept, so you can look around afterwards; its path is printed at the start and at
# the end. Nothing outside that new temp dir is touched.
#
#   examples/quickstart.sh           # run the demo, keep the repository
#   examples/quickstart.sh --clean   # run the demo, then remove the repository
set -euo pipefail

clean=false
case "${1-}" in
  "") ;;
  --clean) clean=true ;;
  -h | --help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) echo "quickstart.sh: unknown argument '$1' (use --clean or nothing)" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v git-baton >/dev/null 2>&1; then
  # Not installed: use the build in this checkout.
  [ -x "$here/target/release/git-baton" ] || cargo build --release --locked --manifest-path "$here/Cargo.toml" >&2
  export PATH="$here/target/release:$PATH"
fi

demo=$(mktemp -d "${TMPDIR:-/tmp}/baton-quickstart.XXXXXX")
if $clean; then trap 'rm -rf "$demo"' EXIT; fi
cd "$demo"
# A fixed identity, so the demo works on a machine where git has none configured.
export GIT_AUTHOR_NAME="Quick Start" GIT_AUTHOR_EMAIL="quick@example.com"
export GIT_COMMITTER_NAME="Quick Start" GIT_COMMITTER_EMAIL="quick@example.com"

# Print a command as you would type it (arguments quoted where the shell needs it), then run it.
run() {
  local line="$" arg
  for arg in "$@"; do
    case "$arg" in
      *[!A-Za-z0-9_./:=@%+,-]* | "") line+=" '${arg//\'/\'\\\'\'}'" ;;
      *) line+=" $arg" ;;
    esac
  done
  printf '%s\n' "$line"
  "$@"
}
# Print a file as the heredoc that writes it, then write it (the text comes on stdin).
write() {
  local text
  text=$(cat)
  printf "$ cat > %s <<'SH'\n%s\nSH\n" "$1" "$text"
  printf '%s\n' "$text" > "$1"
}
note() { printf '\n# %s\n' "$*"; }

echo "quickstart: the demo repository is $demo"
note "A repository, and git-baton's folder for handlers."
run git init -q -b main
run git baton init

note "Step 1: 'plan' writes a plan from the task's body and hands over to 'build'."
write .dwp/command/plan <<'SH'
#!/bin/sh
set -e
printf 'Plan for: %s\n1. write hello.txt\n' "$BATON_BODY" > plan.md
git add plan.md
git commit -q -m "plan: written" -m "Build what plan.md says." -m "dwp-state: build"
SH
note "Step 2: 'build' does the work and finishes."
write .dwp/command/build <<'SH'
#!/bin/sh
set -e
echo "hello from run $BATON_RUN_ID" > hello.txt
git add hello.txt
git commit -q -m "build: hello.txt" -m "dwp-state: done"
SH
run chmod +x .dwp/command/plan .dwp/command/build
run git add -A
run git commit -q -m "workflow: plan -> build -> done"

note "A task: a branch whose newest commit says whose turn it is."
run git branch task/greet
run git baton send --branch task/greet plan -m "greet the world"
run git baton status

note "Each run is one tick: it moves every branch that has a handler for its state one step."
for _ in 1 2; do
  run git baton run
done
run git baton status
run git baton log task/greet
run git show task/greet:hello.txt
test "$(git log -1 --format='%(trailers:key=dwp-state,valueonly)' task/greet | head -1)" = done
echo
echo "quickstart: task/greet went plan -> build -> done"
if $clean; then
  echo "quickstart: removing $demo (--clean)"
else
  echo "quickstart: the repository is kept: cd $demo"
  echo "quickstart: try 'git log --graph --all --format=\"%h %s\"' or 'git baton events --history task/greet' there"
fi
