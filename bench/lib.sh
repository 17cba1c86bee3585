# Shared set-up of the bench scripts: find (or build) the git-baton binary into $BATON, make a
# throw-away $TMP (kept with BENCH_KEEP=1) and a fixed git environment in which nothing from the
# caller's GIT_* variables leaks in. The caller defines die() and note() and sources this file.
# shellcheck shell=bash
SCRIPT_START=${EPOCHREALTIME:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- the binary -------------------------------------------------------------------------------
if [[ $# -ge 1 ]]; then
    BATON=$1
    [[ -x $BATON ]] || die "not an executable file: $BATON"
else
    target=${CARGO_TARGET_DIR:-target}
    [[ $target == /* ]] || target=$ROOT/$target
    BATON=$target/release/git-baton
    if [[ ! -x $BATON ]]; then
        note "building $BATON (cargo build --release --locked)"
        (cd "$ROOT" && cargo build --release --locked) >&2
        [[ -x $BATON ]] || die "build finished but $BATON is missing"
    fi
fi
BATON=$(cd "$(dirname "$BATON")" && pwd)/$(basename "$BATON")

# --- throw-away repository with a fixed environment ---------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/git-baton-bench.XXXXXX")
if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    trap 'echo "# kept $TMP" >&2' EXIT
else
    trap 'rm -rf "$TMP"' EXIT
fi
trap 'exit 130' INT
trap 'exit 143' TERM

# Nothing from the caller's git environment may leak in (e.g. when run from a hook).
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep -E '^GIT_' || true)
export HOME=$TMP XDG_CONFIG_HOME=$TMP/.config GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com
unset RUST_LOG BATON_ROLE

# --- timing helpers ------------------------------------------------------------------------------
# ms US: microseconds as milliseconds with one decimal.
ms() { printf '%d.%d' $(( ($1 + 50) / 1000 )) $(( ($1 + 50) % 1000 / 100 )); }
# median_best US...: "median best" in µs.
median_best() {
    local -a v
    mapfile -t v < <(printf '%s\n' "$@" | sort -n)
    local n=${#v[@]}
    if (( n % 2 )); then echo "${v[n / 2]} ${v[0]}"; else echo "$(( (v[n / 2 - 1] + v[n / 2]) / 2 )) ${v[0]}"; fi
}
