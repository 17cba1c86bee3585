//! `git baton tree`: the parent/child tree of tasks (`dwp-parent`, written by `spawn`).

use std::path::Path;
use std::process::ExitCode;

use std::collections::BTreeMap;

use anyhow::Result;

use super::Out;
use crate::history::tree::{draw, forest, Node};
use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved};
use crate::repo::{BranchSource, CommitInfo, ObjectId, Repo};
use crate::runner::join::{outcome, ChildHead, JoinSpec, Outcome};

/// Show the parent/child tree of tasks with their states: every family (a branch with a
/// `dwp-parent`, or one that others name as their parent), children under their parent, siblings
/// by name. With BRANCH, that branch and its descendants. `--all` adds the tasks that have neither
/// parent nor children.
///
/// A branch's parent is the `dwp-parent` of its head or, when the head has none (its handler
/// answered after `spawn` made it), of the newest commit of the task's own history that has one
/// (first parents down to where the task left the default branch — `main`, else `master` — or to
/// another branch's head; at most 2,000 commits). A parent that no longer
/// exists, or a loop of parents, is drawn as a root and says so.
///
/// `--json` prints one object per line, in the order drawn:
/// `{"branch","state","parent","correlation_id","role","note","depth","orphan"}` — `state` null
/// without a valid `dwp-state`; `orphan` is `"missing"` (the named parent is gone), `"loop"` or
/// null; `note` is e.g. `"join all: 2/3 done"` for a parent waiting on its children or
/// `"lease runner-1"` for a running task. No families: no lines (and `no parent/child tasks` on
/// stderr without `--json`). BRANCH that does not exist: exit 2.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this branch and its descendants.
    #[arg(value_name = "BRANCH")]
    branch: Option<String>,
    /// Also list tasks with neither parent nor children.
    #[arg(long)]
    all: bool,
    /// One JSON object per line instead of the drawing.
    #[arg(long)]
    json: bool,
}

pub fn cmd_tree(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let nodes = read_nodes(&repo)?;
    if let Some(b) = &args.branch {
        if !nodes.iter().any(|n| &n.branch == b) {
            return Err(super::output::usage(format!("no branch named {b:?}")));
        }
    }
    let placed = forest(&nodes, args.branch.as_deref(), args.all);
    let mut out = Out::new();
    if args.json {
        for p in &placed {
            out.json(p)?;
        }
    } else if placed.is_empty() {
        eprintln!("no parent/child tasks (`git baton spawn` makes them; `--all` lists every task)");
    } else {
        for line in draw(&placed) {
            out.line(&line)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Every local branch as a tree node.
pub(crate) fn read_nodes(repo: &Repo) -> Result<Vec<Node>> {
    let heads = repo.branches(&BranchSource::Local)?;
    let tips: std::collections::HashSet<ObjectId> = heads.iter().map(|h| h.id).collect();
    let mainline = mainline(repo);
    let mut nodes = Vec::with_capacity(heads.len());
    let mut child_heads: BTreeMap<String, ChildHead> = BTreeMap::new();
    let mut joins: Vec<(usize, JoinSpec)> = Vec::new();
    for h in heads {
        let Ok(commit) = repo.commit(h.id) else {
            tracing::warn!("{}: its head cannot be read", h.branch);
            continue;
        };
        let origin = family_commit(repo, &commit, &tips, &mainline);
        let family = origin.as_ref().unwrap_or(&commit);
        let text = |c: &CommitInfo, k: Key| last_text(&c.trailers, k).map(|v| v.trim().to_owned());
        let state = commit.state().valid().cloned();
        let note = match &state {
            Some(s) if s.is(Reserved::Working) => text(&commit, Key::RunnerId).map(|r| format!("lease {r}")),
            _ => None,
        };
        if let Some(Ok(spec)) = crate::runner::join::spec(&commit.trailers) {
            joins.push((nodes.len(), spec));
        }
        child_heads.insert(
            h.branch.clone(),
            ChildHead::Head {
                state: state.as_ref().map(|s| s.to_string()),
                dead_letter: last_text(&commit.trailers, Key::DeadLetter).is_some(),
            },
        );
        nodes.push(Node {
            branch: h.branch.clone(),
            state: state.map(|s| s.to_string()),
            parent: text(family, Key::Parent).filter(|p| !p.is_empty()),
            correlation_id: text(family, Key::CorrelationId),
            role: family
                .trailers
                .iter()
                .rev()
                .find(|t| t.key.eq_ignore_ascii_case(b"dwp-role"))
                .map(|t| String::from_utf8_lossy(&t.value).trim().to_owned()),
            note,
        });
    }
    // A parent waiting on a join says how far its children are.
    for (i, spec) in joins {
        let outcomes: Vec<Outcome> =
            spec.children.iter().map(|c| outcome(child_heads.get(c).unwrap_or(&ChildHead::Missing))).collect();
        let done = outcomes.iter().filter(|o| **o == Outcome::Done).count();
        let failed = outcomes.iter().filter(|o| o.is_failure()).count();
        let mut note = format!("join {}: {done}/{} done", spec.rule, outcomes.len());
        if failed > 0 {
            note.push_str(&format!(", {failed} failed"));
        }
        nodes[i].note = Some(note);
    }
    Ok(nodes)
}

/// How many commits of the default branch's first-parent history the walks stop at.
const MAINLINE_MAX: usize = 10_000;
/// How many commits of a task's own history are searched for its `dwp-parent`.
const OWN_HISTORY_MAX: usize = 2_000;

/// The newest [`MAINLINE_MAX`] commits of the default branch's first-parent history (`main`, else
/// `master`, else the checked-out branch): where tasks leave it. Read once per tree, not once per
/// task (a merge base per task costs a walk of everything the default branch gained since).
pub(crate) fn mainline(repo: &Repo) -> std::collections::HashSet<ObjectId> {
    let tip =
        ["refs/heads/main", "refs/heads/master"].iter().find_map(|r| repo.ref_id(r).ok().flatten()).or_else(|| {
            let b = repo.head_branch().ok().flatten()?;
            repo.ref_id(&format!("refs/heads/{b}")).ok().flatten()
        });
    let Some(tip) = tip else { return Default::default() };
    repo.first_parents(tip, None, MAINLINE_MAX).map(|cs| cs.into_iter().map(|c| c.id).collect()).unwrap_or_default()
}

/// The commit of a task's own history that names its parent: the head when it carries
/// `dwp-parent`, else the newest such commit on the first-parent chain below the head, stopping
/// at the default branch's history (where the task left it), at another branch's head (a task
/// started from another task's head is not that task's child), or after [`OWN_HISTORY_MAX`]
/// commits. Commits are read one at a time and the walk stops at the first hit.
fn family_commit(
    repo: &Repo,
    head: &CommitInfo,
    tips: &std::collections::HashSet<ObjectId>,
    mainline: &std::collections::HashSet<ObjectId>,
) -> Option<CommitInfo> {
    if last_text(&head.trailers, Key::Parent).is_some() {
        return None;
    }
    let mut next = head.parents.first().copied();
    for _ in 0..OWN_HISTORY_MAX {
        let id = next?;
        if tips.contains(&id) || mainline.contains(&id) {
            return None;
        }
        let c = repo.commit(id).ok()?;
        if last_text(&c.trailers, Key::Parent).is_some() {
            return Some(c);
        }
        next = c.parents.first().copied();
    }
    None
}
