#!/usr/bin/env bash
# Pattern 5, expert panel: three reviewers with distinct roles look at the same change, each from
# its own angle, then a synthesis weighs their findings into one verdict.
#
#   panel (convene)       spawns panel-security, panel-performance and panel-architecture, all in
#                         state review, each with --role <its role>, then joins --then synthesize;
#   panel-<role> (review) the role's own handler, .dwp/roles/<role>/command/review, run by a runner
#                         started with --role <role> (one runner per role, side by side);
#   panel (synthesize)    reads the three findings from the children's heads and writes VERDICT.md.
#
# There is no .dwp/command/review: a review can only run under a runner that has a role.
#
#   GIT_BATON=target/debug/git-baton examples/patterns/expert-panel.sh [--clean]
PATTERN=expert-panel
. "$(dirname "$0")/lib.sh"

cat >transfer.sh <<'SH'
#!/bin/sh
# transfer FROM TO AMOUNT: move money between two accounts.
for account in $(cat accounts.txt); do    # reads every account for one transfer
  [ "$account" = "$1" ] && echo "debit $1 $3"
done
eval "echo credit $2 $3"                   # the amount reaches eval unchecked
SH

handler convene <<'SH'
#!/bin/sh
set -e
echo "convene $BATON_BRANCH" >>"$PATTERN_LEDGER"
for role in security performance architecture; do
  git baton spawn "$BATON_BRANCH-$role" review --role "$role" -m "Review transfer.sh as the $role expert." >/dev/null
done
git baton join --then synthesize --all >/dev/null
SH

# One review handler per role; each writes its finding and a severity into its answer.
for role in security performance architecture; do
  case $role in
    security) check="grep -n eval" finding="user input reaches eval" severity=high ;;
    performance) check="grep -n 'for account'" finding="every transfer scans all accounts" severity=medium ;;
    architecture) check="grep -n 'accounts.txt'" finding="storage is wired into the transfer logic" severity=low ;;
  esac
  handler review "$role" <<SH
#!/bin/sh
set -e
echo "review/$role \$BATON_BRANCH" >>"\$PATTERN_LEDGER"
line=\$($check transfer.sh | head -1 | cut -d: -f1)
git commit -q --allow-empty -m "review: $role" \\
  -m "FINDING: $role: $finding (transfer.sh line \$line)" \\
  -m "Severity: $severity
Reviewer-Role: $role
dwp-state: done"
SH
done

handler synthesize <<'SH'
#!/bin/sh
set -e
echo "synthesize $BATON_BRANCH" >>"$PATTERN_LEDGER"
heads=$(grep -o '"head": *"[0-9a-f]*"' "$BATON_CHILDREN_JSON" | grep -o '[0-9a-f]\{40,\}')
{
  echo "# Panel verdict on transfer.sh"
  for head in $heads; do
    severity=$(git log -1 --format='%(trailers:key=Severity,valueonly,unfold)' "$head" | head -1)
    finding=$(git log -1 --format=%b "$head" | sed -n 's/^FINDING: //p')
    echo "- [$severity] $finding"
  done
} >VERDICT.md
if grep -q '^- \[high\]' VERDICT.md; then verdict="changes required (a high-severity finding)"; else verdict="approved"; fi
echo "Verdict: $verdict" >>VERDICT.md
git add VERDICT.md
git commit -q -m "synthesize: $verdict" -m "COMPLETED: $(grep -c '^- ' VERDICT.md) findings weighed; $verdict." -m "dwp-state: done"
SH

commit_handlers "expert panel: convene -> security, performance, architecture -> synthesize"
task panel convene "Review the transfer change before it ships."
# One runner without a role (it has no review handler, so it runs only the panel's own steps),
# and one per role, each for its own reviewer's branch.
drive_runners "" \
  "--role security --branch panel-security" \
  "--role performance --branch panel-performance" \
  "--role architecture --branch panel-architecture"
report
