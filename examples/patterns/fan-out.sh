#!/usr/bin/env bash
# Pattern 3, fan-out/fan-in: document six modules with three workers at a time, then synthesise.
#
#   docs (plan)      spawns docs-<module> (document) for each of the six modules under src/, then
#                    `git baton join --then synthesize --all`: the parent waits;
#   docs-<module>    a worker writes docs/<module>.md and finishes (done);
#   docs (synthesize) once every child is terminal the runner writes the join commit; the
#                    synthesis reads the children's heads from $BATON_CHILDREN_JSON and puts their
#                    pages together in DOCS.md.
#
# The runner runs with --jobs 3: at most three workers at once (each records its start and end
# in $PATTERN_LEDGER.jobs, so the test can check it).
#
#   GIT_BATON=target/debug/git-baton examples/patterns/fan-out.sh [--clean]
PATTERN=fan-out
. "$(dirname "$0")/lib.sh"

mkdir src
for m in auth billing cache mailer search storage; do
  printf '# %s: the %s module.\n%s() { :; }\n' "$m" "$m" "$m" >"src/$m.sh"
done

# plan: one child per module; the parent then waits for all of them.
handler plan <<'SH'
#!/bin/sh
set -e
echo "plan $BATON_BRANCH" >>"$PATTERN_LEDGER"
for f in src/*.sh; do
  m=$(basename "$f" .sh)
  git baton spawn "$BATON_BRANCH-$m" document -m "Document $f" >/dev/null
done
git baton join --then synthesize --all >/dev/null
SH

# document: the worker. No spawning here: workers never spawn (the playbooks' rule).
handler document <<'SH'
#!/bin/sh
set -e
echo "document $BATON_BRANCH" >>"$PATTERN_LEDGER"
echo "start $BATON_BRANCH" >>"$PATTERN_LEDGER.jobs"
file=$(sed -n 's/^Document //p' "$BATON_BODY_FILE" | head -1)
m=$(basename "$file" .sh)
mkdir -p docs
{
  echo "## $m"
  sed -n '1s/^# //p' "$file"
  echo "($(wc -l <"$file") lines in $file)"
} >"docs/$m.md"
sleep 0.3 # a slow agent: lets the three job slots fill up
git add "docs/$m.md"
git commit -q -m "document: $m" -m "COMPLETED: docs/$m.md written." -m "dwp-state: done"
echo "end $BATON_BRANCH" >>"$PATTERN_LEDGER.jobs"
SH

# synthesize: fan-in. The join's file names every child's head; the pages are read from there.
handler synthesize <<'SH'
#!/bin/sh
set -e
echo "synthesize $BATON_BRANCH" >>"$PATTERN_LEDGER"
heads=$(grep -o '"head": *"[0-9a-f]*"' "$BATON_CHILDREN_JSON" | grep -o '[0-9a-f]\{40,\}')
echo "# Modules" >DOCS.md
n=0
for head in $heads; do
  for page in $(git ls-tree --name-only "$head" docs/); do
    git show "$head:$page" >>DOCS.md
    n=$((n + 1))
  done
done
git add DOCS.md
git commit -q -m "synthesize: DOCS.md" -m "COMPLETED: $n module pages put together in DOCS.md." -m "dwp-state: done"
SH

commit_handlers "fan-out/fan-in: plan -> 6 x document -> synthesize"
task docs plan "Document every module under src/."
drive --jobs 3
report
