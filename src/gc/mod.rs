//! Garbage collection of git-baton's scratch space: which logs, worktree slots and `refs/baton/`
//! refs nothing needs any more. This module decides, purely (no git, no clock: `now` is given);
//! [`collect`] reads the inventory and the board and removes what was decided.
//!
//! The rules (docs/scratch.md, `git baton gc`):
//! - nothing of a run that is running (the run id of a `working` head) or of the run a branch head
//!   records (the head carries `dwp-run-id: R` and is not `working`: R's failure still needs a
//!   person; or `dwp-stalled-run: R`) is touched — its log, `rejected/<b>/<R>`,
//!   `conflicts/<b>/<R>`;
//! - logs go when they were last written before the cutoff;
//! - a slot some runner has locked is never touched; an idle slot goes after the cutoff; a slot
//!   kept with a failed run's leftovers goes after the cutoff only once its branch is gone or its
//!   head no longer records a run (its leftovers are saved to `refs/baton/salvage/…` first);
//! - `refs/baton/leases/<b>` goes as soon as the head of `b` is not the `working` commit of the
//!   lease's run, whatever its age;
//! - `salvage/…`, `rejected/…` and `conflicts/…` go when their commit is older than the cutoff;
//! - `spawn/<run-id>/<child>` goes as soon as no head is the `working` commit of that run (a run
//!   that no longer runs never publishes its children).
//!
//! Refs under `refs/baton/` of any other kind (breakers, notifications) are never touched.

pub mod collect;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::repo::ObjectId;
use crate::runner::clock::human_age;

/// One run log: `baton/logs/<branch_key>/<run_id>.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub path: PathBuf,
    pub branch_key: String,
    pub run_id: String,
    /// Last modification, seconds since the epoch.
    pub mtime: i64,
    pub bytes: u64,
}

/// One worktree slot: `baton/worktrees/slot-N` with its `.lock` and `.kept` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotEntry {
    /// `slot-N`.
    pub name: String,
    pub path: PathBuf,
    /// A runner holds its `flock`.
    pub locked: bool,
    /// The branch whose failed run's leftovers it keeps (`slot-N.kept`).
    pub kept_for: Option<String>,
    /// Last use (newest of the folder, the kept mark and git's admin files), seconds since the epoch.
    pub mtime: i64,
    /// Bytes in the folder and its git admin folder (symlinks not followed).
    pub bytes: u64,
}

/// The kinds of `refs/baton/` refs gc looks after; every other ref there is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefKind {
    /// `refs/baton/leases/<branch>`: a running run's lease renewal.
    Lease { branch: String },
    /// `refs/baton/salvage/<branch_key>/<nanos>`: uncommitted leftovers of a kept worktree.
    Salvage,
    /// `refs/baton/rejected/<branch>/<run-id>`: a handler result that did not descend from its lease.
    Rejected { branch: String, run_id: String },
    /// `refs/baton/conflicts/<branch>/<run-id>`: a result the remote refused.
    Conflict { branch: String, run_id: String },
    /// `refs/baton/spawn/<run-id>/<child>`: a child spawned by a run, published with its answer.
    Spawn { run_id: String },
}

impl RefKind {
    /// The kind of a full ref name, `None` for refs gc does not look after.
    pub fn parse(refname: &str) -> Option<RefKind> {
        let rest = refname.strip_prefix("refs/baton/")?;
        let (kind, rest) = rest.split_once('/')?;
        let branch_and_run = || {
            let (branch, run) = rest.rsplit_once('/')?;
            (!branch.is_empty() && !run.is_empty()).then(|| (branch.to_owned(), run.to_owned()))
        };
        match kind {
            "leases" if !rest.is_empty() => Some(RefKind::Lease { branch: rest.to_owned() }),
            "salvage" if !rest.is_empty() => Some(RefKind::Salvage),
            "rejected" => branch_and_run().map(|(branch, run_id)| RefKind::Rejected { branch, run_id }),
            "conflicts" => branch_and_run().map(|(branch, run_id)| RefKind::Conflict { branch, run_id }),
            "spawn" => match rest.split_once('/') {
                Some((run, child)) if !run.is_empty() && !child.is_empty() => {
                    Some(RefKind::Spawn { run_id: run.to_owned() })
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// One ref under `refs/baton/` of a kind gc looks after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEntry {
    pub name: String,
    /// The value read: deletion is a compare-and-swap on it.
    pub id: ObjectId,
    pub kind: RefKind,
    /// Committer time of the commit it points to.
    pub commit_time: i64,
    /// The `dwp-run-id` trailer of that commit (what a lease ref is for).
    pub run_id: Option<String>,
}

/// Everything in the scratch space, as read.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub logs: Vec<LogEntry>,
    pub slots: Vec<SlotEntry>,
    pub refs: Vec<RefEntry>,
}

/// What a branch head says about runs. A branch may appear more than once (a local branch and
/// remote-tracking ones in remote mode); each head protects what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadFacts {
    /// Short branch name (`feature/x`; a remote's branches without the remote's prefix).
    pub branch: String,
    /// The head's state is `working` (a live or an expired lease).
    pub working: bool,
    /// `dwp-run-id` of the head.
    pub run_id: Option<String>,
    /// `dwp-stalled-run` of the head (a `stalled` commit names the run that lost its lease).
    pub stalled_run: Option<String>,
}

/// What to do with one item, and why (the reason is shown to people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Remove(String),
    Keep(String),
}

impl Verdict {
    pub fn removes(&self) -> bool {
        matches!(self, Verdict::Remove(_))
    }
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Remove(r) | Verdict::Keep(r) => r,
        }
    }
}

/// One verdict per inventory item, in the inventory's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    pub logs: Vec<Verdict>,
    pub slots: Vec<Verdict>,
    pub refs: Vec<Verdict>,
}

/// Why each protected run is protected: run id → reason.
fn protected_runs(heads: &[HeadFacts]) -> HashMap<&str, String> {
    let mut out = HashMap::new();
    for h in heads {
        if let Some(run) = &h.run_id {
            let why = match h.working {
                true => format!("run {run} is running on {} (its head is the run's working commit)", h.branch),
                false => {
                    format!("run {run} is recorded at the head of {} (its failure still needs a person)", h.branch)
                }
            };
            out.entry(run.as_str()).or_insert(why);
        }
        if let Some(run) = &h.stalled_run {
            out.entry(run.as_str()).or_insert_with(|| format!("run {run} lost its lease at the head of {}", h.branch));
        }
    }
    out
}

/// Decide, for every item of `inv`, whether it goes. `older_than` is the age limit, `now` the
/// clock; an item is old when its age is at least the limit (so `0s` means "anything").
pub fn decide(inv: &Inventory, heads: &[HeadFacts], now: i64, older_than: Duration) -> Decisions {
    let limit = i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(limit);
    let protected = protected_runs(heads);
    let age = |t: i64| format!("{} old, limit {}", human_age(now - t), human_age(limit));
    let by_age = |t: i64, what: String| match t <= cutoff {
        true => Verdict::Remove(format!("{what}; {}", age(t))),
        false => Verdict::Keep(format!("newer than the limit ({})", age(t))),
    };
    let unprotected_run = |run: &str| format!("run {run} is neither running nor recorded at a branch head");

    let logs = inv
        .logs
        .iter()
        .map(|l| match protected.get(l.run_id.as_str()) {
            Some(why) => Verdict::Keep(why.clone()),
            None => by_age(l.mtime, unprotected_run(&l.run_id)),
        })
        .collect();

    let slots = inv
        .slots
        .iter()
        .map(|s| {
            if s.locked {
                return Verdict::Keep("in use by a runner".into());
            }
            let Some(branch) = &s.kept_for else {
                return by_age(s.mtime, "idle".into());
            };
            let heads_of: Vec<&HeadFacts> = heads.iter().filter(|h| &h.branch == branch).collect();
            if heads_of.is_empty() {
                return by_age(s.mtime, format!("kept for {branch}, which no longer exists"));
            }
            match heads_of.iter().find_map(|h| h.run_id.as_ref().or(h.stalled_run.as_ref())) {
                Some(run) => Verdict::Keep(format!("kept for {branch}, whose head still records run {run}")),
                None => by_age(s.mtime, format!("kept for {branch}, whose head has moved on")),
            }
        })
        .collect();

    let refs = inv
        .refs
        .iter()
        .map(|r| match &r.kind {
            RefKind::Lease { branch } => {
                let Some(run) = &r.run_id else {
                    return Verdict::Remove("a lease ref without a dwp-run-id".into());
                };
                let live = heads.iter().any(|h| &h.branch == branch && h.working && h.run_id.as_ref() == Some(run));
                match live {
                    true => Verdict::Keep(format!("run {run} is running on {branch}")),
                    false => {
                        Verdict::Remove(format!("lease of run {run}, but {branch}'s head is not its working commit"))
                    }
                }
            }
            RefKind::Salvage => by_age(r.commit_time, "saved leftovers".into()),
            // A spawned child waits for its run's answer; a run that no longer runs never publishes it.
            RefKind::Spawn { run_id } => match heads.iter().find(|h| h.working && h.run_id.as_ref() == Some(run_id)) {
                Some(h) => Verdict::Keep(format!("run {run_id} is running on {}", h.branch)),
                None => Verdict::Remove(format!("a child spawned by run {run_id}, which no longer runs")),
            },
            RefKind::Rejected { run_id, .. } | RefKind::Conflict { run_id, .. } => match protected.get(run_id.as_str())
            {
                Some(why) => Verdict::Keep(why.clone()),
                None => by_age(r.commit_time, unprotected_run(run_id)),
            },
        })
        .collect();

    Decisions { logs, slots, refs }
}

/// Parse an age limit: an integer and a unit, `30s`, `5m`, `2h`, `14d`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    crate::policy::duration::parse_seconds(text.trim()).map(Duration::from_secs).map_err(|_| {
        format!("invalid age {text:?}: expected a number and a unit (s, m, h, d), like 30s, 5m, 2h or 14d")
    })
}

/// The size of the scratch space, for `git baton status --scratch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScratchUsage {
    /// `<git common dir>/baton`.
    pub root: String,
    pub logs: LogUsage,
    pub slots: SlotUsage,
    /// Refs under `refs/baton/` by kind (the path step after `refs/baton/`); the kinds gc looks
    /// after (`leases`, `salvage`, `rejected`, `conflicts`) are always present.
    pub refs: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogUsage {
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SlotUsage {
    pub count: u64,
    pub kept: u64,
    pub locked: u64,
    pub bytes: u64,
}

/// Sum an inventory up; `baton_refs` are the names of every ref under `refs/baton/`.
pub fn usage(root: String, inv: &Inventory, baton_refs: &[String]) -> ScratchUsage {
    let mut refs: std::collections::BTreeMap<String, u64> =
        ["leases", "salvage", "rejected", "conflicts"].into_iter().map(|k| (k.to_owned(), 0)).collect();
    for name in baton_refs {
        let rest = name.strip_prefix("refs/baton/").unwrap_or(name);
        let kind = rest.split('/').next().unwrap_or(rest);
        *refs.entry(kind.to_owned()).or_default() += 1;
    }
    ScratchUsage {
        root,
        logs: LogUsage { count: inv.logs.len() as u64, bytes: inv.logs.iter().map(|l| l.bytes).sum() },
        slots: SlotUsage {
            count: inv.slots.len() as u64,
            kept: inv.slots.iter().filter(|s| s.kept_for.is_some()).count() as u64,
            locked: inv.slots.iter().filter(|s| s.locked).count() as u64,
            bytes: inv.slots.iter().map(|s| s.bytes).sum(),
        },
        refs,
    }
}

#[cfg(test)]
mod tests;
