#!/usr/bin/env bash
# Pattern 4, supervisor/worker: the supervisor hands out one piece of work at a time, waits for
# it (spawn, then join), reads what the worker reported, and decides the next piece from that.
#
#   release (supervise)  no piece done yet: spawn release-survey (work) and join --then supervise;
#   release-survey       the worker lists the files that still say TODO, in its answer's body;
#   release (supervise)  the join is back: for each file the survey named, one at a time, spawn
#                        release-fix-N (work) and join; when none is left, write NOTES.md: done.
#
# What is done lives on the supervisor's branch (PROGRESS.md): a supervisor that is restarted
# resumes where history says it was. Workers never spawn: only the supervisor decides.
#
#   GIT_BATON=target/debug/git-baton examples/patterns/supervisor.sh [--clean]
PATTERN=supervisor
. "$(dirname "$0")/lib.sh"

printf 'Install with make.\n' >INSTALL.md
printf 'Usage: TODO\n' >USAGE.md
printf 'Changes: TODO\n' >CHANGES.md
printf 'License: MIT\n' >LICENSE.md

# supervise: the only place that decides. One worker at a time.
handler supervise <<'SH'
#!/bin/sh
set -e
echo "supervise $BATON_BRANCH" >>"$PATTERN_LEDGER"
if [ -n "${BATON_CHILDREN_JSON-}" ]; then
  # A worker came back: take its work (a merge) and record its report (the body of its answer).
  head=$(grep -o '"head": *"[0-9a-f]*"' "$BATON_CHILDREN_JSON" | grep -o '[0-9a-f]\{40,\}')
  git merge -q --no-ff --no-edit -m "supervise: take the work of $head" "$head"
  git log -1 --format=%b "$head" | sed -n 's/^REPORT: //p' >>PROGRESS.md
  git add PROGRESS.md
  git commit -q -m "supervise: recorded $(tail -1 PROGRESS.md)"
fi
# Decide the next piece from what the workers reported so far.
touch PROGRESS.md
if ! grep -q '^survey:' PROGRESS.md; then
  next="survey" what="Survey: list the files that still say TODO."
else
  next= what=
  for f in $(sed -n 's/^survey: needs //p' PROGRESS.md); do
    if ! grep -q "^fixed: $f\$" PROGRESS.md; then
      next="fix-$(grep -c '^fixed:' PROGRESS.md | awk '{print $1 + 1}')" what="Fix: $f"
      break
    fi
  done
fi
if [ -n "$next" ]; then
  git baton spawn "$BATON_BRANCH-$next" work -m "$what" >/dev/null
  git baton join --then supervise --all >/dev/null
else
  cp PROGRESS.md NOTES.md
  git add NOTES.md
  git commit -q -m "supervise: release notes" \
    -m "COMPLETED: $(grep -c '^fixed:' PROGRESS.md) file(s) fixed, one worker at a time." -m "dwp-state: done"
fi
SH

# work: the worker does the one piece its body names and reports back in its answer's body.
handler work <<'SH'
#!/bin/sh
set -e
echo "work $BATON_BRANCH" >>"$PATTERN_LEDGER"
case "$BATON_BODY" in
  Survey:*)
    report="survey: needs $(git grep -l TODO -- '*.md' | tr '\n' ' ' | sed 's/ $//')" ;;
  Fix:*)
    f=${BATON_BODY#Fix: }
    sed 's/TODO/see the manual/' "$f" >"$f.new" && mv "$f.new" "$f"
    git add "$f"
    report="fixed: $f" ;;
  *) echo "no piece named in the body" >&2; exit 1 ;;
esac
git commit -q --allow-empty -m "work: ${BATON_BODY%%:*}" -m "REPORT: $report" -m "dwp-state: done"
SH

commit_handlers "supervisor/worker: supervise -> work, one piece at a time"
task release supervise "Get the docs ready for a release."
drive
report
