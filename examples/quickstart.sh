#!/usr/bin/env bash
# git-baton quickstart: a throw-away repository with a two-step workflow (plan -> build -> done),
# run end to end by the real runner. Nothing outside a temp dir is touched.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v git-baton >/dev/null 2>&1; then
  # Not installed: use the build in this checkout.
  [ -x "$here/target/release/git-baton" ] || cargo build --release --locked --manifest-path "$here/Cargo.toml" >&2
  export PATH="$here/target/release:$PATH"
fi

demo=$(mktemp -d "${TMPDIR:-/tmp}/baton-quickstart.XXXXXX")
trap 'rm -rf "$demo"' EXIT
cd "$demo"
export GIT_AUTHOR_NAME="Quick Start" GIT_AUTHOR_EMAIL="quick@example.com"
export GIT_COMMITTER_NAME="Quick Start" GIT_COMMITTER_EMAIL="quick@example.com"

git init -q -b main
git baton init >/dev/null

# Step 1: `plan` writes a plan from the task's body and hands over to `build`.
cat > .dwp/command/plan <<'SH'
#!/bin/sh
set -e
printf 'Plan for: %s\n1. write hello.txt\n' "$BATON_BODY" > plan.md
git add plan.md
git commit -q -m "plan: written" -m "Build what plan.md says." -m "dwp-state: build"
SH
# Step 2: `build` does the work and finishes.
cat > .dwp/command/build <<'SH'
#!/bin/sh
set -e
echo "hello from run $BATON_RUN_ID" > hello.txt
git add hello.txt
git commit -q -m "build: hello.txt" -m "dwp-state: done"
SH
chmod +x .dwp/command/plan .dwp/command/build
git add -A && git commit -q -m "workflow: plan -> build -> done"

# A task: a branch whose newest commit says whose turn it is.
git branch task/greet
git baton send --branch task/greet plan -m "greet the world" >/dev/null

echo "== before"; git baton status
for tick in 1 2 3; do
  echo "== tick $tick"; git baton run
done
echo "== after"; git baton status
echo "== history of task/greet (newest first)"; git baton events --history task/greet
echo "== files on task/greet"; git show task/greet:hello.txt
test "$(git log -1 --format='%(trailers:key=dwp-state,valueonly)' task/greet | head -1)" = done
echo "quickstart: task/greet went plan -> build -> done"
