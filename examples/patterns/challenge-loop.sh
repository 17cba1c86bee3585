#!/usr/bin/env bash
# Pattern 2, challenge loop: produce -> challenge -> judge, round after round. The challenger must
# bring testable evidence (an input and the output it expects); the judge checks the evidence with
# its own oracle. A valid challenge sends the work back to produce with the evidence in the body;
# a round with no valid challenge ends the task (done). The loop is capped by policy: past
# loop.hard rounds of produce the runner does not run it again but blocks the task for a person
# (dwp-escalation: loop-cap, with a decision card).
#
# Two tasks share the handlers (the Problem trailer says which problem a branch works on):
#   claim/abs     converges: round 1's challenge (abs -2 is not 2) is valid, round 2's is not;
#   claim/primes  never converges (there is always another prime missing): capped after 3 rounds.
#
#   GIT_BATON=target/debug/git-baton examples/patterns/challenge-loop.sh [--clean]
PATTERN=challenge-loop
. "$(dirname "$0")/lib.sh"

policy <<'TOML'
# A challenge loop converges in a few rounds or not at all: the playbooks' caps are 3 (soft) and
# 10 (hard); this example blocks for a person after 3 rounds to keep it short.
[states.produce]
loop.soft = 2
loop.hard = 3
TOML

# produce: the fake agent. First round: a first attempt; later rounds: fix what the judge upheld.
handler produce <<'SH'
#!/bin/sh
set -e
echo "produce $BATON_BRANCH" >>"$PATTERN_LEDGER"
fix=$(sed -n 's/^Upheld: //p' "$BATON_BODY_FILE" | tail -1)
case "$BATON_TRAILER_PROBLEM" in
  abs)
    if [ -z "$fix" ]; then
      printf '#!/bin/sh\necho "$1"\n' >abs.sh
    else
      printf '#!/bin/sh\ncase "$1" in -*) echo "${1#-}" ;; *) echo "$1" ;; esac\n' >abs.sh
    fi
    chmod +x abs.sh
    git add abs.sh ;;
  primes)
    if [ -z "$fix" ]; then echo 2 >primes.txt; else echo "${fix%% *}" >>primes.txt; fi
    git add primes.txt ;;
  *) echo "unknown problem: $BATON_TRAILER_PROBLEM" >&2; exit 1 ;;
esac
git commit -q -m "produce: ${BATON_ROUND:+round $BATON_ROUND, }${fix:-first attempt}" \
  -m "Challenge this: find an input where it is wrong, with evidence." \
  -m "Problem: $BATON_TRAILER_PROBLEM
dwp-state: challenge"
SH

# challenge: look for a counterexample; evidence is an input and the expected output.
handler challenge <<'SH'
#!/bin/sh
set -e
echo "challenge $BATON_BRANCH" >>"$PATTERN_LEDGER"
input= expected=
case "$BATON_TRAILER_PROBLEM" in
  abs)
    for case in -2:2 0:0 7:7; do
      if [ "$(./abs.sh "${case%%:*}")" != "${case#*:}" ]; then
        input=${case%%:*} expected=${case#*:}
        break
      fi
    done ;;
  primes)
    n=2
    while :; do
      d=2 prime=1
      while [ $((d * d)) -le $n ]; do [ $((n % d)) -ne 0 ] || prime=0; d=$((d + 1)); done
      if [ $prime = 1 ] && ! grep -qx "$n" primes.txt; then input=$n expected=listed; break; fi
      n=$((n + 1))
    done ;;
esac
if [ -n "$input" ]; then
  git baton send judge --subject "challenge: $input" -m "Counterexample: $input should give $expected." \
    --trailer "Problem: $BATON_TRAILER_PROBLEM" \
    --trailer "Challenge-Input: $input" --trailer "Challenge-Expected: $expected" >/dev/null
else
  # Nothing testable left: a matter of taste, without evidence.
  git baton send judge --subject "challenge: style" -m "I would have written it differently." \
    --trailer "Problem: $BATON_TRAILER_PROBLEM" >/dev/null
fi
SH

# judge: a challenge counts only with evidence the judge's own oracle confirms.
handler judge <<'SH'
#!/bin/sh
set -e
echo "judge $BATON_BRANCH" >>"$PATTERN_LEDGER"
input=${BATON_TRAILER_CHALLENGE_INPUT-} valid=no why="no testable evidence"
if [ -n "$input" ]; then
  case "$BATON_TRAILER_PROBLEM" in
    abs)
      want=${input#-}
      if [ "$BATON_TRAILER_CHALLENGE_EXPECTED" != "$want" ]; then why="the expected output is wrong"
      elif [ "$(./abs.sh "$input")" = "$want" ]; then why="abs.sh already gives $want"
      else valid=yes why="abs.sh $input gives $(./abs.sh "$input"), not $want"; fi ;;
    primes)
      d=2 prime=1
      while [ $((d * d)) -le "$input" ]; do [ $((input % d)) -ne 0 ] || prime=0; d=$((d + 1)); done
      if [ $prime = 0 ]; then why="$input is not prime"
      elif grep -qx "$input" primes.txt; then why="$input is listed"
      else valid=yes why="$input is prime and missing"; fi ;;
  esac
fi
if [ $valid = yes ]; then
  git baton send produce --subject "judge: upheld" -m "Upheld: $input ($why)" \
    --trailer "Problem: $BATON_TRAILER_PROBLEM" >/dev/null
else
  git baton send done --subject "judge: no valid challenge" \
    -m "COMPLETED: the last round brought no valid challenge ($why)." >/dev/null
fi
SH

commit_handlers "challenge loop: produce -> challenge -> judge, capped at 3 rounds"
task claim/abs produce "abs N prints the absolute value of the integer N" --trailer "Problem: abs"
task claim/primes produce "primes.txt lists every prime number" --trailer "Problem: primes"
drive
report
