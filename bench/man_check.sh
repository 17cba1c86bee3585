#!/usr/bin/env bash
# Cost of the manual-page check every run makes (see docs/cli.md): `git-baton --version` from an
# installed layout D/bin, pages current in D/share/man/man1, against the same run with the check
# turned off (BATON_NO_MAN_INSTALL=1). Median of RUNS runs, microseconds; plus the first run,
# which writes the pages. The check itself is 5 system calls (readlink /proc/self/exe, open, one
# 512-byte read, close): below the noise of process start (strace -c: 84 vs 79 calls).
# Usage: bench/man_check.sh [path/to/git-baton]   (env: RUNS=200)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/git-baton}
[ -x "$bin" ] || cargo build --release --locked --manifest-path "$root/Cargo.toml" >&2
RUNS=${RUNS:-200}
work=$(mktemp -d "${TMPDIR:-/tmp}/baton-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
cp "$bin" "$work/bin/git-baton"
exe=$work/bin/git-baton
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t0=$(now); "$exe" --version >/dev/null; t1=$(now)
echo "first run (writes $(ls "$work/share/man/man1" | wc -l) pages): $(( (t1 - t0) / 1000 )) us"
measure() {
  for _ in $(seq "$RUNS"); do
    a=$(now); "$@" >/dev/null; b=$(now); echo $(( (b - a) / 1000 ))
  done | median
}
with=$(measure "$exe" --version)
without=$(measure env BATON_NO_MAN_INSTALL=1 "$exe" --version)
env_only=$(measure env "$exe" --version)
echo "git-baton --version, median of $RUNS: check on ${with} us; through env: check on ${env_only} us, check off ${without} us"
