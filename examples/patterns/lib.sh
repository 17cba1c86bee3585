# Shared by the pattern examples (sourced, not run). Each example:
#   1. makes a throw-away repository (mktemp, a fixed identity, no user or system git config),
#   2. installs deterministic fake-agent handlers in .dwp/command/ (shell, no network),
#   3. sends one or more tasks, drives them with `git baton watch --max-ticks N` until the board
#      stops moving,
#   4. prints the board (`git baton tree --all`: every task, children under their parent) and
#      `git baton log --all`.
# The repository is kept and its path printed; `--clean` removes it when the example ends.
#
# The binary: $GIT_BATON, else `git-baton` on PATH. A link to it named git-baton is put first on
# PATH so that `git baton …` (and the handlers, which get the runner's PATH) use that build.
#
# Every fake handler appends one line, "<state> <branch>", to $PATTERN_LEDGER (a file outside the
# repository; the runner passes the variable to handlers with --pass-env): the examples' tests
# count on it that every step ran exactly once.

set -euo pipefail

pattern_usage() {
  echo "usage: $0 [--clean]   (binary: \$GIT_BATON, else git-baton on PATH)" >&2
  exit 2
}

clean=0
case "${1-}" in
  "") ;;
  --clean) clean=1 ;;
  -h | --help) pattern_usage ;;
  *) echo "$0: unknown argument: $1" >&2; pattern_usage ;;
esac

baton=${GIT_BATON:-$(command -v git-baton || true)}
if [ -z "$baton" ] || [ ! -x "$baton" ]; then
  echo "$0: no git-baton binary: set GIT_BATON or put git-baton on PATH (cargo build, then GIT_BATON=target/debug/git-baton)" >&2
  exit 1
fi
baton=$(cd "$(dirname "$baton")" && pwd)/$(basename "$baton")

# A fixed identity and no user or system configuration (a global commit.gpgsign or hook would
# change what the example does). Dates are real: leases are measured from committer times.
demo=$(mktemp -d "${TMPDIR:-/tmp}/baton-${PATTERN:-pattern}.XXXXXX")
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$demo/gitconfig"
: >"$GIT_CONFIG_GLOBAL"
export GIT_AUTHOR_NAME="Pattern Example" GIT_AUTHOR_EMAIL="pattern@example.com"
export GIT_COMMITTER_NAME="Pattern Example" GIT_COMMITTER_EMAIL="pattern@example.com"
export LANG=C LC_ALL=C
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE BATON_ROLE AYNIG_ROLE BATON_RUN_ID BATON_BRANCH
# `git baton` (here and in handlers, which get the runner's PATH) is this binary, whatever its
# file is called.
mkdir "$demo/bin"
ln -s "$baton" "$demo/bin/git-baton"
export PATH="$demo/bin:$PATH"
export PATTERN_LEDGER="$demo/ledger"
: >"$PATTERN_LEDGER"
repo="$demo/repo"
if [ "$clean" = 1 ]; then
  trap 'rm -rf "$demo"' EXIT
fi

mkdir "$repo"
cd "$repo"
git init -q -b main
git baton init >/dev/null # .dwp/, .gitignore, baton.trustedRef = main
rm -f .dwp/command/hello

# handler STATE [ROLE]: the script on stdin becomes .dwp/command/STATE (or the role's).
handler() {
  local dir=.dwp/command
  if [ -n "${2-}" ]; then dir=.dwp/roles/$2/command; fi
  mkdir -p "$dir"
  cat >"$dir/$1"
  chmod +x "$dir/$1"
}

# policy: the TOML on stdin becomes .dwp/policy.toml.
policy() { cat >.dwp/policy.toml; }

# commit_handlers MESSAGE: commit .dwp on main, the trusted ref the runner reads handlers from.
commit_handlers() {
  git add -A
  git commit -q -m "$1"
}

# task BRANCH STATE BODY [send options…]: a task branch off main, handed to STATE.
task() {
  local branch=$1 state=$2 body=$3
  shift 3
  git branch "$branch" main
  git baton send --branch "$branch" "$state" -m "$body" "$@" >/dev/null
}

heads() { git for-each-ref --format='%(objectname) %(refname)' refs/heads/; }

# drive [WATCH OPTIONS…]: `git baton watch` in rounds of a few short ticks until a whole round
# moved no branch. watch finishes its running handlers before it exits, so a round that moved
# nothing means the board is idle: nothing actionable, nothing running. Capped at 40 rounds.
drive() { drive_runners "$*"; }

# drive_runners 'OPTIONS' 'OPTIONS'…: as drive, with one `git baton watch` per argument running
# side by side in every round (several runners on one board, e.g. one per --role). The options
# are split on spaces and not glob-expanded: '--role security --branch */security'.
drive_runners() {
  local before after rounds=0 spec pids pid failed
  while :; do
    before=$(heads)
    pids=()
    for spec in "$@"; do
      set -f
      # shellcheck disable=SC2086 # the options are meant to be split
      git baton watch --interval 0.1 --max-ticks 5 --lease-seconds 30 --timeout 60 \
        --pass-env PATTERN_LEDGER -q $spec &
      set +f
      pids+=($!)
    done
    failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    if [ "$failed" = 1 ]; then
      echo "$0: git baton watch failed" >&2
      exit 1
    fi
    after=$(heads)
    rounds=$((rounds + 1))
    [ "$before" != "$after" ] || break
    if [ "$rounds" -ge 40 ]; then
      echo "$0: the board still moves after $rounds rounds of watch; giving up" >&2
      exit 1
    fi
  done
}

# report: the board and the whole history, for people; then where the repository is.
report() {
  echo "== board"
  git baton tree --all
  echo "== log"
  git baton log --all
  echo "== steps run (ledger)"
  cat "$PATTERN_LEDGER"
  if [ "$clean" = 1 ]; then
    echo "== repository: $repo (removed on exit: --clean)"
  else
    echo "== repository: $repo (kept; remove with: rm -rf $demo)"
  fi
}
