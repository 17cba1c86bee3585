//! `git baton park` / `git baton unpark`: put a branch aside so no runner touches it, and bring
//! it back exactly as it was.
//!
//! Parking is one commit (same tree) in the reserved state `parked` that names the head it
//! parks (`dwp-parked-from: <sha>`); runners skip a `parked` head. Unparking writes a commit whose
//! message is the parked-from commit's message, byte for byte — state, trailers and body come back
//! as they were; the tree stays the current head's.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use super::output::usage;
use super::send::refuse_live_lease;
use super::Out;
use crate::protocol::message::validate_body;
use crate::protocol::state::last_text;
use crate::protocol::{compose, Key, Reserved, State, StateRead, TrailerArg};
use crate::repo::{Cas, ObjectId, Repo};
use crate::runner::clock;

/// Put a branch aside: no runner claims it until `git baton unpark`.
///
/// Writes one commit on BRANCH (same tree, nothing checked out changes): subject `baton: parked`,
/// body WHY, trailers `dwp-parked-from: <sha of the head it parks>` and `dwp-state: parked`.
/// Refused (exit 1, nothing written) when the branch is already parked, and while a runner holds
/// a live lease on it unless `--force` (the running handler's result then goes to
/// `refs/baton/rejected/<branch>/<run-id>`; unparking such a branch restores the task the run was
/// answering — the commit below its claim — not the claim, which would be a fresh lease of a run
/// that no longer holds the branch).
///
/// Prints the new commit id; `--json` prints
/// `{"branch","commit","parent","state":"parked","parked_from"}` (`parked_from` = `parent`).
#[derive(clap::Args, Debug)]
pub struct ParkArgs {
    /// The branch to park.
    #[arg(value_name = "BRANCH")]
    branch: String,
    /// Why it is parked (the commit's body).
    #[arg(short = 'm', long = "message", value_name = "WHY")]
    message: Option<String>,
    /// Park even though a runner holds a live lease on the branch.
    #[arg(long)]
    force: bool,
    /// Print one JSON object instead of the commit id.
    #[arg(long)]
    json: bool,
}

/// Bring a parked branch back exactly as it was before `git baton park`.
///
/// Writes one commit on BRANCH whose message is exactly the message of the commit named by the
/// head's `dwp-parked-from` (so its state, trailers and body come back); the tree stays the
/// current head's. When that commit was a runner's `working` claim (parked with `--force`), the
/// task commit below the claim is restored instead. Refused (exit 1, nothing written) when the head is not parked, or when its
/// `dwp-parked-from` does not name an ancestor of the head.
///
/// Prints the new commit id; `--json` prints
/// `{"branch","commit","parent","state","parked_from"}` — `state` is the restored `dwp-state`
/// (null when the restored message has none), `parked_from` the commit whose message was restored.
#[derive(clap::Args, Debug)]
pub struct UnparkArgs {
    /// The branch to unpark.
    #[arg(value_name = "BRANCH")]
    branch: String,
    /// Print one JSON object instead of the commit id.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Written {
    branch: String,
    commit: String,
    parent: String,
    state: Option<String>,
    parked_from: String,
}

fn print(json: bool, w: Written) -> Result<ExitCode> {
    let mut out = Out::new();
    if json {
        out.json(&w)?;
    } else {
        out.line(&w.commit)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn cmd_park(cwd: &Path, args: ParkArgs) -> Result<ExitCode> {
    let body = match &args.message {
        Some(m) => Some(validate_body(m.as_bytes()).map_err(|e| usage(e.to_string()))?.to_owned()),
        None => None,
    };
    let repo = Repo::discover(cwd)?;
    let (branch, refname, head) = super::send::branch_head(&repo, &args.branch)?;
    let commit = repo.commit(head)?;
    if matches!(commit.state(), StateRead::Valid(s) if s.is(Reserved::Parked)) {
        let from = last_text(&commit.trailers, Key::ParkedFrom).unwrap_or_else(|| "?".into());
        bail!("branch {branch:?} is already parked (from {from}); `git baton unpark {branch}` brings it back");
    }
    if !args.force {
        refuse_live_lease(&repo, &branch, head)?;
    }
    let parked = State::reserved_state(Reserved::Parked);
    let trailers = [TrailerArg::reserved(Key::ParkedFrom, head.to_string())];
    let message = compose("baton: parked", body.as_deref(), &trailers, &parked).map_err(|e| usage(e.to_string()))?;
    let (id, cas) = repo.append_commit(&refname, head, &message, clock::commit_time(), "baton: park")?;
    if let Cas::Moved { .. } = cas {
        return Err(anyhow!("branch {branch:?} moved while parking; nothing was written, try again"));
    }
    let head = head.to_string();
    let w = Written {
        branch,
        commit: id.to_string(),
        parent: head.clone(),
        state: Some(parked.to_string()),
        parked_from: head,
    };
    print(args.json, w)
}

pub fn cmd_unpark(cwd: &Path, args: UnparkArgs) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let (branch, refname, head) = super::send::branch_head(&repo, &args.branch)?;
    let commit = repo.commit(head)?;
    if !matches!(commit.state(), StateRead::Valid(s) if s.is(Reserved::Parked)) {
        bail!("branch {branch:?} is not parked; nothing was written");
    }
    let Some(from) = last_text(&commit.trailers, Key::ParkedFrom) else {
        bail!("branch {branch:?} is parked without a dwp-parked-from trailer; nothing to restore (send it a state instead)");
    };
    let from_id: ObjectId = from
        .trim()
        .parse()
        .map_err(|_| anyhow!("branch {branch:?}: dwp-parked-from {from:?} is not a commit id; nothing was written"))?;
    let restored = repo.commit(from_id).map_err(|e| {
        anyhow!("branch {branch:?}: the parked-from commit {from_id} cannot be read ({e:#}); nothing was written")
    })?;
    if !repo.descends_from(head, from_id)? {
        bail!("branch {branch:?}: dwp-parked-from {from_id} is not an ancestor of the head; nothing was written");
    }
    // A runner's `working` commit (parked with --force) is not restored as it was: written again
    // it would be a fresh lease of a run that no longer holds the branch. The task commit that
    // run answered — the first commit below the claim and its heartbeats — is restored instead.
    let mut restored = restored;
    for _ in 0..1000 {
        let working = matches!(restored.state(), StateRead::Valid(s) if s.is(Reserved::Working));
        let Some(parent) = restored.parents.first().copied().filter(|_| working) else { break };
        restored = repo.commit(parent)?;
    }
    if matches!(restored.state(), StateRead::Valid(s) if s.is(Reserved::Working)) {
        bail!("branch {branch:?}: no task commit below the parked claim; send it a state instead");
    }
    let (id, cas) = repo.append_commit(&refname, head, &restored.message, clock::commit_time(), "baton: unpark")?;
    if let Cas::Moved { .. } = cas {
        return Err(anyhow!("branch {branch:?} moved while unparking; nothing was written, try again"));
    }
    let state = match restored.state() {
        StateRead::Valid(s) => Some(s.to_string()),
        StateRead::Invalid(v) => Some(v),
        StateRead::None => None,
    };
    let w =
        Written { branch, commit: id.to_string(), parent: head.to_string(), state, parked_from: from_id.to_string() };
    print(args.json, w)
}
