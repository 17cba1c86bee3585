//! Walking a branch's history for `log`, `metrics` and `graph`, oldest first in bounded memory.
//!
//! git hands history out newest first; the folds in `history/` need it oldest first. Holding whole
//! parsed commits until the walk ends would cost memory in proportion to the history (AYNIG's
//! 7-second `events --history` is the cautionary tale for the other extreme: one process per
//! commit). So a walk has two passes, like `git log --reverse`:
//! 1. collect the ids, newest first: 21 bytes per commit (100,000 commits: ~2 MB). A commit in
//!    the commit-graph (`git commit-graph write --reachable`, or `git maintenance`) costs a
//!    lookup there, no object is opened. Any other commit object must be inflated to find its
//!    parent; the walk then keeps the last objects it inflated — the oldest, which pass 2 wants
//!    first — as raw bytes, up to [`KEEP_BYTES`] (a fixed cap: memory grows with history only
//!    until it is reached), so that most commits are inflated once, as `git log` does;
//! 2. hand the commits to the caller oldest first, parsed (and, past the kept ones, read) by
//!    worker threads on all cores in chunks, while the caller folds and prints in order
//!    (see [`Repo::for_each_oldest_first`]).
//!
//! The commits handed out carry **no message** (`message` is empty): the folds read trailers,
//! author, time and parents, never bodies, and not copying bodies keeps pass 2 and the kept
//! commits small.
//!
//! Where the caller only wants part of the history (`--since`, or a branch whose older history an
//! earlier branch already covered), the walk still goes back to the newest *state* commit before
//! that point, marked not visible: the fold needs it to know the state, and the open run, that
//! the visible part starts from.

use std::collections::{HashSet, VecDeque};

use anyhow::{anyhow, Context, Result};
use gix::bstr::ByteSlice;
use gix::revision::walk::Sorting;
use gix::traverse::commit::simple::CommitTimeOrder;

use super::{CommitInfo, ObjectId, Repo};
use crate::protocol::{trailers, StateRead};

/// What part of a branch's history to walk.
#[derive(Debug)]
pub struct HistoryWalk<'a> {
    /// Follow every parent of merges (default: the first parent only).
    pub all_parents: bool,
    /// Commits older than this (committer time) are not visible; on a first-parent walk the
    /// walk ends at the first of them (as `git log --since` does), after the context it needs.
    pub since: Option<i64>,
    /// Commits already walked for an earlier branch (every walk adds to it). They are not
    /// visible; on a first-parent walk the first of them ends the walk, after the context.
    pub seen: Option<&'a mut HashSet<ObjectId>>,
    /// Without a commit-graph, keep up to this many bytes of the commit objects the walk inflated
    /// (normally [`KEEP_BYTES`]; 0 reads every commit twice).
    pub keep_bytes: usize,
}

impl Default for HistoryWalk<'_> {
    /// A first-parent walk of everything, keeping [`KEEP_BYTES`].
    fn default() -> Self {
        HistoryWalk { all_parents: false, since: None, seen: None, keep_bytes: KEEP_BYTES }
    }
}

/// A commit id and whether it is in the part of history the caller asked for.
pub type WalkedId = (ObjectId, bool);

/// Pass 1's result: the ids newest first, and the oldest of them already read.
#[derive(Debug, Default)]
pub struct Walked {
    pub ids: Vec<WalkedId>,
    /// The raw objects of the last `kept.len()` entries of `ids`, in the same (newest-first)
    /// order.
    kept: VecDeque<Vec<u8>>,
}

/// Commit objects inflated by a walk without a commit-graph are kept up to this many bytes: at
/// a few hundred bytes per commit, the oldest 50,000–100,000 commits of the walk. Measured on
/// 100,000 commits (bench/log.sh): 8 MiB kept is 2–5 % slower than `git log`, 24 MiB ~8 % faster.
pub const KEEP_BYTES: usize = 24 << 20;

/// Commits per chunk handed from a reader thread to the fold.
const CHUNK: usize = 512;
/// Reader threads at most (beyond a few, the single consumer is the bottleneck).
const MAX_READERS: usize = 4;

/// Decides, commit by commit newest first, what is visible and where the walk ends.
struct Cutoff {
    context: bool,
}

enum Step {
    Visible,
    Context,
    /// Context, and the last commit the walk needs.
    Last,
}

impl Cutoff {
    fn step(
        &mut self,
        walk: &mut HistoryWalk<'_>,
        id: ObjectId,
        old: bool,
        has_state: impl FnOnce() -> Result<bool>,
    ) -> Result<Step> {
        let seen = match walk.seen.as_deref_mut() {
            Some(set) => !set.insert(id),
            None => false,
        };
        if !self.context && !old && !seen {
            return Ok(Step::Visible);
        }
        if walk.all_parents && !old {
            return Ok(Step::Context); // another parent line may still hold unseen commits
        }
        // From here on everything is context: go on to the newest state commit, then stop
        // (reaching the root first is fine too).
        self.context = true;
        Ok(if has_state()? { Step::Last } else { Step::Context })
    }
}

impl Repo {
    /// One commit as the history walk hands it out: everything but the message.
    fn history_commit(&self, id: ObjectId) -> Result<CommitInfo> {
        let commit = self.inner.find_commit(id).with_context(|| format!("reading commit {id}"))?;
        parse_history_commit(id, &commit.data)
    }

    /// Pass 1: the ids of `tip`'s history, newest first, each with its visibility.
    pub fn history_ids(&self, tip: ObjectId, walk: &mut HistoryWalk<'_>) -> Result<Walked> {
        if !walk.all_parents {
            return self.first_parent_ids(tip, walk);
        }
        // All parents: gix's date-ordered walk (commit-graph used when present), then a
        // topological fix-up. Memory here is O(commits) anyway (the fold keeps every lineage).
        let platform = self.inner.rev_walk([tip]).sorting(Sorting::ByCommitTime(CommitTimeOrder::NewestFirst));
        let iter = platform.all().with_context(|| format!("walking the history of {tip}"))?;
        let mut ids = Vec::new();
        let mut parents = Vec::new();
        let mut cutoff = Cutoff { context: false };
        for info in iter {
            let info = info.with_context(|| format!("walking the history of {tip}"))?;
            let id = info.id;
            parents.push(info.parent_ids.to_vec());
            let old = match (walk.since, info.commit_time) {
                (Some(since), Some(t)) => t < since,
                (Some(since), None) => self.history_commit(id)?.committer_time < since,
                (None, _) => false,
            };
            let step = cutoff.step(walk, id, old, || Ok(self.history_commit(id)?.state() != StateRead::None))?;
            ids.push((id, matches!(step, Step::Visible)));
            if let Step::Last = step {
                break;
            }
        }
        Ok(Walked { ids: parents_before_children(ids, &parents), kept: VecDeque::new() })
    }

    /// Pass 1 on first parents: a commit in the commit-graph costs a lookup in it (no object is
    /// opened); any other commit object is inflated to find its parent, and the last ones
    /// inflated — the oldest, which pass 2 wants first — are kept as they are, up to
    /// `walk.keep_bytes`, so that pass 2 only parses them.
    fn first_parent_ids(&self, tip: ObjectId, walk: &mut HistoryWalk<'_>) -> Result<Walked> {
        let graph = self.commit_graph();
        let mut walked = Walked::default();
        let mut kept_bytes = 0;
        let mut cutoff = Cutoff { context: false };
        let mut next = Some(tip);
        while let Some(id) = next {
            if let Some(c) = graph.as_ref().and_then(|g| g.commit_by_id(id)) {
                next = match c.parent1().with_context(|| format!("reading the commit-graph entry of {id}"))? {
                    Some(pos) => graph.as_ref().map(|g| g.id_at(pos).to_owned()),
                    None => None,
                };
                let old = walk.since.is_some_and(|s| (c.committer_timestamp() as i64) < s);
                let step = cutoff.step(walk, id, old, || Ok(self.history_commit(id)?.state() != StateRead::None))?;
                walked.ids.push((id, matches!(step, Step::Visible)));
                // What is kept must stay the oldest entries of the walk.
                walked.kept.clear();
                kept_bytes = 0;
                if let Step::Last = step {
                    break;
                }
                continue;
            }
            let mut object = self.inner.find_commit(id).with_context(|| format!("reading commit {id}"))?;
            let data = std::mem::take(&mut object.data);
            let step = {
                let commit = gix::objs::CommitRef::from_bytes(&data, id.kind())
                    .map_err(|e| anyhow!("decoding commit {id}: {e}"))?;
                next = commit.parents().next();
                let time = commit.committer().map(|s| s.seconds()).unwrap_or(0);
                let old = walk.since.is_some_and(|s| time < s);
                let has_state = || Ok(StateRead::from_trailers(&trailers::parse(commit.message)) != StateRead::None);
                cutoff.step(walk, id, old, has_state)?
            };
            walked.ids.push((id, matches!(step, Step::Visible)));
            kept_bytes += data.capacity();
            walked.kept.push_back(data);
            while kept_bytes > walk.keep_bytes {
                match walked.kept.pop_front() {
                    Some(d) => kept_bytes -= d.capacity(),
                    None => break,
                }
            }
            if let Step::Last = step {
                break;
            }
        }
        Ok(walked)
    }

    /// Pass 2: hand the commits of a [`Repo::history_ids`] walk to `f` oldest first (without
    /// their messages, see the module documentation).
    ///
    /// Reading is inflating and parsing, the bulk of the work; the fold and the printing in `f`
    /// are cheap and must stay in order. So on long walks, worker threads (one per core, at most
    /// [`MAX_READERS`]) parse (the kept objects) or read and parse (the others) chunks of
    /// [`CHUNK`] commits in turn, each through a channel that holds at most two chunks; `f` takes
    /// them in order on the caller's thread. Memory stays bounded by the chunks in flight.
    pub fn for_each_oldest_first(
        &self,
        walked: Walked,
        mut f: impl FnMut(&CommitInfo, bool) -> Result<()>,
    ) -> Result<()> {
        let Walked { ids, kept } = walked;
        let n = ids.len();
        let first_kept = n - kept.len();
        // The commit at walk position `p` (0 = newest), parsed from what pass 1 kept or read now.
        let get = |repo: &Repo, p: usize| -> Result<CommitInfo> {
            let id = ids[p].0;
            match p.checked_sub(first_kept) {
                Some(k) => parse_history_commit(id, &kept[k]),
                None => repo.history_commit(id),
            }
        };
        let readers = super::cores().min(MAX_READERS);
        if readers < 2 || n < 4 * CHUNK {
            for p in (0..n).rev() {
                f(&get(self, p)?, ids[p].1)?;
            }
            return Ok(());
        }
        // Chunk k holds walk positions n-(k+1)*CHUNK .. n-k*CHUNK, read oldest first.
        let chunks = n.div_ceil(CHUNK);
        let sync = self.inner.clone().into_sync();
        std::thread::scope(|scope| {
            let mut inboxes = Vec::with_capacity(readers);
            for w in 0..readers {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<CommitInfo>>>(2);
                inboxes.push(rx);
                let (sync, get) = (&sync, &get);
                scope.spawn(move || {
                    let repo = Repo::from_sync(sync);
                    for k in (w..chunks).step_by(readers) {
                        let range = n.saturating_sub((k + 1) * CHUNK)..n - k * CHUNK;
                        let read = range.rev().map(|p| get(&repo, p)).collect::<Result<Vec<_>>>();
                        let failed = read.is_err();
                        if tx.send(read).is_err() || failed {
                            return; // the consumer stopped (error or closed pipe), or we did
                        }
                    }
                });
            }
            let mut p = n;
            for k in 0..chunks {
                let chunk = inboxes[k % readers].recv().map_err(|_| anyhow!("a history reader thread stopped"))??;
                for commit in &chunk {
                    p -= 1;
                    f(commit, ids[p].1)?;
                }
            }
            Ok(())
        })
    }
}

/// A commit object's bytes as the history walk hands them out: everything but the message.
fn parse_history_commit(id: ObjectId, data: &[u8]) -> Result<CommitInfo> {
    let decoded =
        gix::objs::CommitRef::from_bytes(data, id.kind()).map_err(|e| anyhow!("decoding commit {id}: {e}"))?;
    let author =
        decoded.author().map(|a| format!("{} <{}>", a.name.to_str_lossy(), a.email.to_str_lossy())).unwrap_or_default();
    Ok(CommitInfo {
        id,
        tree: decoded.tree(),
        parents: decoded.parents().collect(),
        message: Vec::new(),
        trailers: trailers::parse(decoded.message),
        committer_time: decoded.committer().map(|s| s.seconds()).unwrap_or(0),
        author,
    })
}

/// Reorder a newest-first walk so that, read backwards, every commit comes after all of its
/// parents that are in it. A date-ordered walk already almost is; commits with equal committer
/// times (scripts, rebases, `GIT_COMMITTER_DATE`) can come out in any order, and the fold must
/// see a parent before its children. Depth-first from the oldest end, first parents first.
fn parents_before_children(ids: Vec<WalkedId>, parents: &[Vec<ObjectId>]) -> Vec<WalkedId> {
    let index: std::collections::HashMap<ObjectId, usize> =
        ids.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    let mut done = vec![false; ids.len()];
    let mut oldest_first = Vec::with_capacity(ids.len());
    let mut stack = Vec::new();
    for start in (0..ids.len()).rev() {
        stack.push((start, false));
        while let Some((i, parents_done)) = stack.pop() {
            if done[i] {
                continue;
            }
            if parents_done {
                done[i] = true;
                oldest_first.push(ids[i]);
                continue;
            }
            stack.push((i, true));
            for p in parents[i].iter().rev() {
                if let Some(&j) = index.get(p) {
                    if !done[j] {
                        stack.push((j, false));
                    }
                }
            }
        }
    }
    oldest_first.reverse();
    oldest_first
}
