#!/usr/bin/env bash
# Pattern 1, pipeline: spec -> implement -> test -> review -> done. Each step needs the previous
# step's output and gets only what it needs: the files on the branch, the body of the commit that
# handed it the work, and trailers (Spec-File, Implementation, Revision, Tests). Review sends the
# work back to implement once, with what to change in the body; the second review accepts.
#
#   GIT_BATON=target/debug/git-baton examples/patterns/pipeline.sh [--clean]
PATTERN=pipeline
. "$(dirname "$0")/lib.sh"

# spec: turn the request (the body) into a spec file; name it in a trailer for the next step.
handler spec <<'SH'
#!/bin/sh
set -e
echo "spec $BATON_BRANCH" >>"$PATTERN_LEDGER"
{
  echo "# Spec"
  echo "Request: $BATON_BODY"
  echo "greet NAME prints: Hello, NAME"
} >SPEC.md
git add SPEC.md
git commit -q -m "spec: greet" \
  -m "Implement greet as SPEC.md says: greet NAME prints a greeting." \
  -m "Spec-File: SPEC.md
dwp-state: implement"
SH

# implement: write greet.sh from the spec; on a second pass, apply the review's notes (the body).
handler implement <<'SH'
#!/bin/sh
set -e
echo "implement $BATON_BRANCH" >>"$PATTERN_LEDGER"
spec=${BATON_TRAILER_SPEC_FILE:?the spec step names the spec in Spec-File}
test -f "$spec"
revision=$(( ${BATON_TRAILER_REVISION:-0} + 1 ))
if grep -q "Review: end the greeting with '!'" "$BATON_BODY_FILE"; then
  printf '#!/bin/sh\necho "Hello, $1!"\n' >greet.sh
else
  printf '#!/bin/sh\necho "Hello, $1"\n' >greet.sh
fi
chmod +x greet.sh
git add greet.sh
git commit -q -m "implement: greet.sh revision $revision" \
  -m "Test greet.sh against $spec." \
  -m "Spec-File: $spec
Implementation: greet.sh
Revision: $revision
dwp-state: test"
SH

# test: run the implementation; the result goes to review in a trailer, the output in the body.
handler test <<'SH'
#!/bin/sh
set -e
echo "test $BATON_BRANCH" >>"$PATTERN_LEDGER"
out=$(./"$BATON_TRAILER_IMPLEMENTATION" World)
case "$out" in
  "Hello, World"*) result=pass ;;
  *) result=fail ;;
esac
git baton send review --subject "test: $result" \
  -m "Output of ./$BATON_TRAILER_IMPLEMENTATION World: $out" \
  --trailer "Spec-File: $BATON_TRAILER_SPEC_FILE" \
  --trailer "Implementation: $BATON_TRAILER_IMPLEMENTATION" \
  --trailer "Revision: $BATON_TRAILER_REVISION" \
  --trailer "Tests: $result" >/dev/null
SH

# review: revision 1 goes back to implement with a note; a later revision that passed is done.
handler review <<'SH'
#!/bin/sh
set -e
echo "review $BATON_BRANCH" >>"$PATTERN_LEDGER"
if [ "$BATON_TRAILER_TESTS" != pass ]; then
  git baton send implement --subject "review: tests failed" -m "$BATON_BODY" \
    --trailer "Spec-File: $BATON_TRAILER_SPEC_FILE" --trailer "Revision: $BATON_TRAILER_REVISION" >/dev/null
elif [ "$BATON_TRAILER_REVISION" = 1 ]; then
  git baton send implement --subject "review: changes requested" \
    -m "Review: end the greeting with '!' (seen: $BATON_BODY)" \
    --trailer "Spec-File: $BATON_TRAILER_SPEC_FILE" --trailer "Revision: $BATON_TRAILER_REVISION" >/dev/null
else
  git baton send done --subject "review: approved revision $BATON_TRAILER_REVISION" \
    -m "COMPLETED: greet.sh revision $BATON_TRAILER_REVISION passed its test and the review." >/dev/null
fi
SH

commit_handlers "pipeline: spec -> implement -> test -> review"
task feature/greet spec "a command that greets a person by name"
drive
report
