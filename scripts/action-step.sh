#!/usr/bin/env bash
# The git-baton GitHub Actions step, called by action.yml (and by
# examples/github-actions/simulate.sh, which runs it without GitHub).
#
# Runs `git baton run --remote REMOTE --json` tick after tick until a tick claims nothing (no
# `claimed`, `took-over` or `joined` event) or INPUT_MAX_TICKS ticks ran. It has to loop: a push made with
# the job's GITHUB_TOKEN does not start another workflow run, so the result of one handler (say
# plan -> build) would otherwise wait for the next unrelated push.
#
# For every failed handler or runner error it prints an `::error` annotation (notices and
# take-overs: `::warning`) and the end of the handler's log in a collapsed group; at the end it
# appends a Markdown table of everything the ticks did, and of the branches' states, to
# $GITHUB_STEP_SUMMARY and writes the counts to $GITHUB_OUTPUT.
#
# Inputs (environment; empty means the default):
#   INPUT_REMOTE          remote to tick against (origin)
#   INPUT_BRANCH          branch globs separated by spaces or newlines (every branch)
#   INPUT_MAX_TICKS       cap on ticks in this job (20)
#   INPUT_JOBS            handlers of different branches at once (4)
#   INPUT_TIMEOUT         seconds before a handler is killed (3600)
#   INPUT_LEASE_SECONDS   lease written on claim (the timeout + 300: no other runner takes a
#                         branch over while its handler may still be running)
#   INPUT_GRACE           on cancellation: seconds running handlers get before they are killed
#                         and their failure recorded (5; GitHub kills the step ~10 s after SIGINT)
#   INPUT_ROLE            prefer .dwp/roles/ROLE/command/ (none)
#   INPUT_TRUSTED_REF     branch whose handlers and policy run (the remote's default branch;
#                         "none": each task's own, AYNIG's behaviour)
#   INPUT_PASS_ENV        variables (names or globs) passed to handlers besides the base (none)
#   INPUT_FAIL_ON_ERROR   true: exit 1 if a handler failed or the runner reported an error (false)
#   INPUT_GIT_BATON_PATH  the git-baton binary (git-baton on PATH)
#   INPUT_GIT_USER_NAME, INPUT_GIT_USER_EMAIL
#                         identity for commits when the repository has none configured
#                         (github-actions[bot])
#
# Cancellation: GitHub sends SIGINT (then SIGTERM) to the step's entry process only, so action.yml
# `exec`s this script and it forwards the signal to git-baton, which stops claiming, gives running
# handlers INPUT_GRACE seconds, then kills them and pushes their failure. No further tick starts.
#
# Exit status: 0; 1 when fail-on-error is set and a handler failed or the runner reported an
# error, or when git-baton itself could not run a tick (no repository, remote unreachable, …);
# 2 for a bad input; 130/143 when stopped by SIGINT/SIGTERM.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
report=(python3 "$here/action_report.py")

die() { # MESSAGE [STATUS]
  local msg=${1//'%'/%25}
  msg=${msg//$'\r'/%0D}
  printf '::error title=git-baton::%s\n' "${msg//$'\n'/%0A}"
  exit "${2:-1}"
}

remote=${INPUT_REMOTE:-origin}
globs=${INPUT_BRANCH:-}
max_ticks=${INPUT_MAX_TICKS:-20}
jobs=${INPUT_JOBS:-4}
timeout=${INPUT_TIMEOUT:-3600}
lease_seconds=${INPUT_LEASE_SECONDS:-}
grace=${INPUT_GRACE:-5}
role=${INPUT_ROLE:-}
trusted_ref=${INPUT_TRUSTED_REF:-}
pass_env=${INPUT_PASS_ENV:-}
fail_on_error=$(printf '%s' "${INPUT_FAIL_ON_ERROR:-false}" | tr '[:upper:]' '[:lower:]')
baton=${INPUT_GIT_BATON_PATH:-}
user_name=${INPUT_GIT_USER_NAME:-github-actions[bot]}
user_email=${INPUT_GIT_USER_EMAIL:-41898282+github-actions[bot]@users.noreply.github.com}

whole() { # NAME VALUE
  [[ $2 =~ ^[1-9][0-9]{0,8}$ ]] || die "input $1 must be a positive whole number, got '$2'" 2
}
whole max-ticks "$max_ticks"
whole jobs "$jobs"
whole timeout "$timeout"
[ -n "$lease_seconds" ] || lease_seconds=$((timeout + 300))
whole lease-seconds "$lease_seconds"
[[ $grace =~ ^[0-9]{1,6}(\.[0-9]+)?$ ]] || die "input grace must be a number of seconds, got '$grace'" 2
case $fail_on_error in
  true | yes | on | 1) fail_on_error=true ;;
  false | no | off | 0 | '') fail_on_error=false ;;
  *) die "input fail-on-error must be true or false, got '${INPUT_FAIL_ON_ERROR:-}'" 2 ;;
esac
[[ $remote =~ ^[A-Za-z0-9][A-Za-z0-9._/-]*$ ]] || die "input remote must be a remote name, got '$remote'" 2

if [ -n "$baton" ]; then
  [ -f "$baton" ] && [ -x "$baton" ] || die "git-baton-path '$baton' is not an executable file" 2
elif ! baton=$(command -v git-baton); then
  die "git-baton is not on PATH (install it, or set git-baton-path)"
fi
command -v python3 >/dev/null || die "python3 is needed to read git-baton's JSON output"

git rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
  die "$(pwd) is not a git checkout: run actions/checkout first (with fetch-depth: 0)"
git remote get-url "$remote" >/dev/null 2>&1 ||
  die "this checkout has no remote '$remote'"

# Handlers see the whole history; a shallow checkout (fetch-depth: 1) would cut it.
if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  echo "::notice title=git-baton::shallow checkout: fetching the full history (use fetch-depth: 0 in actions/checkout)"
  git fetch --quiet --unshallow --no-tags "$remote"
fi

# Lease commits and the handlers' own commits need an identity; runners have none configured.
# Repository config is shared by the handlers' worktrees.
git config user.name >/dev/null || git config user.name "$user_name"
git config user.email >/dev/null || git config user.email "$user_email"

args=(run --remote "$remote" --json --jobs "$jobs" --timeout "$timeout" --lease-seconds "$lease_seconds" --grace "$grace")
[ -z "$role" ] || args+=(--role "$role")
if [ -z "$trusted_ref" ]; then
  # The remote's default branch: from the checkout's refs/remotes/REMOTE/HEAD, else asked.
  trusted_ref=$(git symbolic-ref -q --short "refs/remotes/$remote/HEAD" 2>/dev/null || true)
  trusted_ref=${trusted_ref#"$remote"/}
  [ -n "$trusted_ref" ] || trusted_ref=$({ git ls-remote --symref "$remote" HEAD 2>/dev/null || true; } |
    sed -n 's|^ref: refs/heads/\(.*\)\tHEAD$|\1|p')
  [ -n "$trusted_ref" ] || die "could not find the default branch of '$remote' for trusted-ref; set the input"
fi
[ "$trusted_ref" = none ] || args+=(--trusted-ref "$trusted_ref")
set -f
for v in $pass_env; do args+=(--pass-env "$v"); done
set +f
select=() # --branch GLOB..., shared with the final `status`
set -f    # globs are for git-baton, not for the shell
for g in $globs; do select+=(--branch "$g"); done
set +f
args+=(${select[@]+"${select[@]}"})

work=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/git-baton.XXXXXX")
events=$work/events.jsonl
: >"$events"

# SIGINT/SIGTERM: pass it on to the running tick (as SIGTERM: a background job of a script
# ignores SIGINT) and start no other tick.
stopped=""
child=""
on_signal() {
  stopped=$1
  [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

ticks=0
capped=false
runner_status=0
while [ -z "$stopped" ]; do
  ticks=$((ticks + 1))
  tick_out=$work/tick-$ticks.jsonl
  echo "::group::git-baton tick $ticks"
  "$baton" "${args[@]}" >"$tick_out" &
  child=$!
  while :; do
    # A trapped signal interrupts `wait` (status > 128) while git-baton winds down: wait again.
    wait "$child" && runner_status=0 || runner_status=$?
    kill -0 "$child" 2>/dev/null || break
  done
  child=""
  echo "::endgroup::"
  "${report[@]}" annotate "$ticks" "$tick_out" "$events"
  if [ -n "$stopped" ]; then
    echo "::warning title=git-baton::stopped by SIG$stopped in tick $ticks; running handlers got ${grace}s, then their failures were recorded"
    break
  fi
  if [ "$runner_status" -ne 0 ]; then
    echo "::error title=git-baton::git-baton run stopped with exit status $runner_status in tick $ticks (its message is in the group above)"
    break
  fi
  moved=$("${report[@]}" moved "$tick_out")
  [ "$moved" -gt 0 ] || break
  if [ "$ticks" -ge "$max_ticks" ]; then
    capped=true
    echo "::warning title=git-baton::stopped after max-ticks=$max_ticks ticks while branches were still moving; the next run continues"
    break
  fi
done

board=$work/board.json
"$baton" status --remote "$remote" --json ${select[@]+"${select[@]}"} >"$board" 2>/dev/null || rm -f "$board"

summary=$("${report[@]}" summary "$events" "$board" "$remote" "$ticks" "$capped")
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  printf '%s\n' "$summary" >>"$GITHUB_STEP_SUMMARY"
else
  printf '%s\n' "$summary"
fi

counts=$("${report[@]}" counts "$events")
failed=$(sed -n 's/^failed=//p' <<<"$counts")
errors=$(sed -n 's/^errors=//p' <<<"$counts")
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  {
    printf '%s\n' "$counts"
    echo "ticks=$ticks"
    echo "capped=$capped"
    echo "events=$events"
  } >>"$GITHUB_OUTPUT"
fi
echo "git-baton: $ticks tick(s), $failed failed, $errors error(s); events in $events" >&2

case $stopped in
  INT) exit 130 ;;
  TERM) exit 143 ;;
esac
[ "$runner_status" -eq 0 ] || exit 1
if [ "$fail_on_error" = true ] && [ $((failed + errors)) -gt 0 ]; then
  echo "::error title=git-baton::$failed handler(s) failed and $errors runner error(s) (fail-on-error is set)"
  exit 1
fi
exit 0
