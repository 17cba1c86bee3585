#!/usr/bin/env bash
# Pattern 6, map-reduce: a word count over a corpus, partitioned evenly.
#
#   wordcount (split)         cuts corpus.txt into 4 partitions (round-robin by line, committed
#                             under parts/), spawns wordcount-part-N (count) per partition and
#                             joins --then reduce;
#   wordcount-part-N (count)  the map: counts the words of its partition into counts/part-N.txt;
#   wordcount (reduce)        the reduce, the orchestrator's own job: sums the children's counts
#                             (read from their heads, named in $BATON_CHILDREN_JSON) into
#                             wordcount.txt, one "word count" line per word, sorted.
#
#   GIT_BATON=target/debug/git-baton examples/patterns/map-reduce.sh [--clean]
PATTERN=map-reduce
. "$(dirname "$0")/lib.sh"

cat >corpus.txt <<'TXT'
the quick brown fox jumps over the lazy dog
a branch is a task and the newest commit says whose turn it is
the runner claims the branch and runs the handler
the handler answers with a commit that names the next state
history is the audit trail and the database
a fox is quick and a dog is lazy
every step is a commit and every commit has a parent
the parent waits for its children and the children count words
the reduce sums the counts of the children
map the words reduce the counts
git is the board and the board is git
the end
TXT

handler split <<'SH'
#!/bin/sh
set -e
echo "split $BATON_BRANCH" >>"$PATTERN_LEDGER"
n=4
mkdir -p parts
awk -v n=$n '{ print > ("parts/part-" ((NR - 1) % n + 1) ".txt") }' corpus.txt
git add parts
git commit -q -m "split: corpus.txt into $n partitions"
i=1
while [ $i -le $n ]; do
  git baton spawn "$BATON_BRANCH-part-$i" count -m "Count the words of parts/part-$i.txt" >/dev/null
  i=$((i + 1))
done
git baton join --then reduce --all >/dev/null
SH

# count: the map. Lower-case words, one "word count" line each.
handler count <<'SH'
#!/bin/sh
set -e
echo "count $BATON_BRANCH" >>"$PATTERN_LEDGER"
part=$(sed -n 's/^Count the words of //p' "$BATON_BODY_FILE" | head -1)
out=counts/$(basename "$part")
mkdir -p counts
tr -cs 'A-Za-z' '\n' <"$part" | tr 'A-Z' 'a-z' | grep -v '^$' | sort | uniq -c | awk '{ print $2, $1 }' >"$out"
total=$(awk '{ s += $2 } END { print s }' "$out")
git add "$out"
git commit -q -m "count: $part" -m "COMPLETED: $total words in $part, $(wc -l <"$out" | tr -d ' ') distinct." -m "dwp-state: done"
SH

# reduce: sum the partitions' counts.
handler reduce <<'SH'
#!/bin/sh
set -e
echo "reduce $BATON_BRANCH" >>"$PATTERN_LEDGER"
heads=$(grep -o '"head": *"[0-9a-f]*"' "$BATON_CHILDREN_JSON" | grep -o '[0-9a-f]\{40,\}')
for head in $heads; do
  for f in $(git ls-tree --name-only "$head" counts/); do git show "$head:$f"; done
done | awk '{ s[$1] += $2 } END { for (w in s) print w, s[w] }' | sort >wordcount.txt
total=$(awk '{ s += $2 } END { print s }' wordcount.txt)
git add wordcount.txt
git commit -q -m "reduce: wordcount.txt" \
  -m "COMPLETED: $total words, $(wc -l <wordcount.txt | tr -d ' ') distinct, from $(echo $heads | wc -w | tr -d ' ') partitions." \
  -m "dwp-state: done"
SH

commit_handlers "map-reduce: split -> 4 x count -> reduce"
task wordcount split "Count the words of corpus.txt."
drive --jobs 4
report
