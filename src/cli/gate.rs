//! `git baton approve` / `reject` / `request-changes`: a person's decision at a gate (a state
//! with `tier = "gate"` in the policy file), written as one commit on top of the gated head.

use std::io::Write;
use std::path::Path;
use std::process::{ExitCode, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use super::output::usage;
use super::send::refuse_live_lease;
use super::Out;
use crate::humans::card;
use crate::humans::gate::{
    approval_message, changes_message, parse_letter, rejection_message, Approval, Changes, GateStatus, Rejection,
};
use crate::policy::{HumansPolicy, Tier};
use crate::protocol::message::{body_of, validate_body};
use crate::protocol::state::last_text;
use crate::protocol::{Key, Lease, Reserved, State, StateRead};
use crate::repo::worktree::git;
use crate::repo::{Cas, CommitInfo, ObjectId, Repo};
use crate::runner::{clock, gates, source};

/// Approve the gated head of BRANCH: its state (with `tier = "gate"`) may then run.
///
/// Writes one commit on top of the head (same tree, same `dwp-state`, the head's body and task
/// trailers) with `dwp-approved-by: <your email>`, `dwp-approves: <sha of the head>` and, with
/// `--option X`, `dwp-decision: X`; `-m NOTE` goes into its body under `## Approved`. Your
/// identity (git's committer email) must be in the state's `gate.approvers`. With
/// `gate.require_signed`, pass `--sign` (or set `commit.gpgSign`): the commit is written by
/// `git commit-tree -S` with your configured key. Refused (nothing written): a branch whose state
/// is not gated or that is already approved, an option that is not a letter of the head's
/// decision card, a branch a runner holds.
///
/// Prints the new commit id; `--json`: `{"branch","commit","parent","state","approved_by",
/// "approves","decision","signed"}`.
#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    /// The branch whose gated head you approve.
    #[arg(value_name = "BRANCH")]
    branch: String,
    /// The option you choose (a letter of the head's decision card: A, B, …).
    #[arg(long, value_name = "X")]
    option: Option<String>,
    /// A note for the handler and the history (under `## Approved` in the body).
    #[arg(short = 'm', long = "message", value_name = "NOTE")]
    message: Option<String>,
    /// Sign the approval (`git commit-tree -S`, with `user.signingKey` / `gpg.format`).
    #[arg(long)]
    sign: bool,
    /// Print one JSON object instead of the commit id.
    #[arg(long)]
    json: bool,
}

/// Reject the gated head of BRANCH: the task moves to the state's `gate.on_reject` (default
/// `canceled`) with WHY as its body (under `## Rejected`) and `dwp-decision: reject`.
///
/// Prints the new commit id; `--json`: `{"branch","commit","parent","state","decision"}`.
#[derive(clap::Args, Debug)]
pub struct RejectArgs {
    #[arg(value_name = "BRANCH")]
    branch: String,
    /// Why (required).
    #[arg(short = 'm', long = "message", value_name = "WHY")]
    message: Option<String>,
    #[arg(long)]
    json: bool,
}

/// Send the gated work of BRANCH back for changes: to the state's `gate.on_changes`, else to the
/// state whose run produced the gated head (the `dwp-origin-state` of that run's claim), with the
/// gated head's body, a `## Changes requested` section holding WHAT, and `dwp-decision: changes`.
///
/// Prints the new commit id; `--json`: `{"branch","commit","parent","state","decision"}`.
#[derive(clap::Args, Debug)]
pub struct RequestChangesArgs {
    #[arg(value_name = "BRANCH")]
    branch: String,
    /// What to change (required).
    #[arg(short = 'm', long = "message", value_name = "WHAT")]
    message: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Approved {
    branch: String,
    commit: String,
    parent: String,
    state: String,
    approved_by: String,
    approves: String,
    decision: Option<String>,
    signed: bool,
}

#[derive(Serialize)]
struct Decided {
    branch: String,
    commit: String,
    parent: String,
    state: String,
    decision: &'static str,
}

/// A branch whose head is in a gated state, and who is deciding.
struct Gated {
    repo: Repo,
    branch: String,
    refname: String,
    head: ObjectId,
    commit: CommitInfo,
    state: State,
    humans: HumansPolicy,
    /// The committer email of the configured identity.
    me: String,
}

/// Most approvals stacked on a head that a decision looks through for the gated work.
const APPROVAL_STACK_LIMIT: usize = 100;
/// Most commits walked back from the gated work to find the run that produced it.
const PRODUCER_WALK_LIMIT: usize = 10_000;

fn load(cwd: &Path, branch: &str) -> Result<Gated> {
    let repo = Repo::discover(cwd)?;
    let (branch, refname, head) = super::send::branch_head(&repo, branch)?;
    refuse_live_lease(&repo, &branch, head)?;
    let commit = repo.commit(head)?;
    let state = match commit.state() {
        StateRead::Valid(s) if !s.is(Reserved::Working) => s,
        StateRead::Valid(s) => {
            bail!("branch {branch:?} is {s} (its lease expired); no gate waits; nothing was written")
        }
        _ => bail!("branch {branch:?} has no valid dwp-state; no gate waits on it; nothing was written"),
    };
    let tree = source::configured(&repo, None, None)?.tree_for(commit.tree);
    let humans = match crate::policy::load::load(&repo, tree) {
        Ok(Some(p)) => p.humans(state.as_str()),
        Ok(None) => HumansPolicy::built_in(),
        Err(e) => bail!("the policy is broken, so the gate cannot be read: {}", format!("{e:#}").replace('\n', " ")),
    };
    if humans.tier.value != Tier::Gate {
        bail!(
            "branch {branch:?} waits for no decision: state {state} is not gated (tier = {}); nothing was written",
            serde_json::to_value(humans.tier.value)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        );
    }
    let Some(me) = repo.identity_email() else {
        bail!("no committer identity: set user.email");
    };
    if !humans.may_approve(&me) {
        bail!(
            "{me} is not in gate.approvers of {state} ({}); nothing was written",
            humans.gate_approvers.value.join(", ")
        );
    }
    Ok(Gated { repo, branch, refname, head, commit, state, humans, me })
}

fn note(arg: &Option<String>, what: &str, cmd: &str) -> Result<String> {
    let Some(m) = arg else {
        return Err(usage(format!("{cmd} needs -m {what}")));
    };
    let m = validate_body(m.as_bytes()).map_err(|e| usage(e.to_string()))?.trim();
    if m.is_empty() {
        return Err(usage(format!("{cmd} needs -m {what}, not an empty one")));
    }
    Ok(m.to_owned())
}

/// The gated work under a head: the head, or — when the head is an approval — the first commit
/// below it that is not one.
fn gated_work(repo: &Repo, head: &CommitInfo) -> Result<CommitInfo> {
    let mut c = head.clone();
    for _ in 0..APPROVAL_STACK_LIMIT {
        if last_text(&c.trailers, Key::Approves).is_none() {
            return Ok(c);
        }
        let Some(p) = c.parents.first().copied() else { break };
        c = repo.commit(p)?;
    }
    Ok(c)
}

/// The state whose run produced `work`: the origin state of the nearest claim below it, looking
/// through commits of the gated state itself (approvals, retries and their claims) and commits
/// without a state (the handler's own). None when another state comes first (a person sent the
/// gated state).
fn producer(repo: &Repo, work: &CommitInfo, gated: &State) -> Result<Option<String>> {
    let Some(start) = work.parents.first().copied() else { return Ok(None) };
    for c in repo.first_parents(start, None, PRODUCER_WALK_LIMIT)? {
        match c.state() {
            StateRead::None => continue,
            StateRead::Invalid(_) => return Ok(None),
            StateRead::Valid(s) if s.is(Reserved::Working) => {
                let origin = Lease::from_commit(&c.trailers, c.committer_time)
                    .and_then(|l| l.origin_state)
                    .or_else(|| last_text(&c.trailers, Key::OriginState));
                match origin.map(|o| o.trim().to_owned()) {
                    Some(o) if o == gated.as_str() => continue,
                    Some(o) => return Ok(Some(o)),
                    None => continue,
                }
            }
            StateRead::Valid(s) if s == *gated => continue,
            StateRead::Valid(_) => return Ok(None),
        }
    }
    Ok(None)
}

/// Move the branch from the gated head to `id`, by compare-and-swap.
fn publish(g: &Gated, id: ObjectId, what: &str) -> Result<()> {
    match g.repo.compare_and_swap(&g.refname, Some(g.head), id, &format!("baton: {what}"))? {
        Cas::Updated => Ok(()),
        Cas::Moved { .. } => {
            Err(anyhow!("branch {:?} moved while writing the {what}; nothing was written, try again", g.branch))
        }
    }
}

/// A signed commit, written by git (gix cannot sign): `git commit-tree -S`.
fn signed_commit(repo: &Repo, tree: ObjectId, parent: ObjectId, message: &[u8]) -> Result<ObjectId> {
    let dir = repo.workdir().unwrap_or(repo.common_dir());
    let mut cmd = gates::with_gpg_env(git(dir));
    cmd.args(["commit-tree", "-S", &tree.to_string(), "-p", &parent.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("running git commit-tree -S")?;
    child.stdin.take().context("git commit-tree: no stdin")?.write_all(message).context("writing the message")?;
    let out = child.wait_with_output().context("running git commit-tree -S")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        bail!("could not sign the approval (git commit-tree -S): {why}; nothing was written");
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    id.parse().map_err(|_| anyhow!("git commit-tree printed {id:?}, not a commit id"))
}

fn print<T: Serialize>(json: bool, value: &T, commit: &str) -> Result<ExitCode> {
    let mut out = Out::new();
    if json {
        out.json(value)?;
    } else {
        out.line(commit)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn cmd_approve(cwd: &Path, args: ApproveArgs) -> Result<ExitCode> {
    let note = match &args.message {
        Some(m) => Some(validate_body(m.as_bytes()).map_err(|e| usage(e.to_string()))?.to_owned()),
        None => None,
    };
    let decision = match &args.option {
        None => None,
        Some(o) => Some(
            parse_letter(&o.to_ascii_uppercase())
                .ok_or_else(|| usage(format!("--option {o:?}: one option letter, such as A or B")))?,
        ),
    };
    let g = load(cwd, &args.branch)?;
    let facts = gates::approval_facts(&g.repo, &g.commit);
    match crate::humans::gate::status(&gates::head_facts(&g.commit, facts.as_ref()), &g.humans, clock::now()) {
        GateStatus::Approved { by, .. } => {
            bail!("branch {:?} is already approved by {by}; nothing was written", g.branch)
        }
        GateStatus::NeedsSignatureCheck { by, .. }
            if gates::verify_signature(g.repo.common_dir(), g.head, &by).is_ok() =>
        {
            bail!("branch {:?} is already approved by {by} (signed); nothing was written", g.branch)
        }
        _ => {}
    }
    if let (Some(d), Some(letters)) = (decision, card::letters(&body_of(&g.commit.message))) {
        if !letters.contains(&d) {
            let list: Vec<String> = letters.iter().map(char::to_string).collect();
            return Err(usage(format!(
                "option {d} is not on the decision card of {} (options: {})",
                g.branch,
                if list.is_empty() { "none".to_owned() } else { list.join(", ") }
            )));
        }
    }
    let sign = args.sign || g.repo.gix().config_snapshot().boolean("commit.gpgSign").unwrap_or(false);
    if g.humans.gate_require_signed.value && !sign {
        return Err(usage(format!(
            "the gate of {} requires a signed approval (gate.require_signed): pass --sign",
            g.state
        )));
    }
    let message = approval_message(&Approval {
        gated_message: &g.commit.message,
        gated_trailers: &g.commit.trailers,
        gated: g.head,
        state: &g.state,
        by: &g.me,
        decision,
        note: note.as_deref(),
        runner: Vec::new(),
    })
    .map_err(|e| usage(e.to_string()))?;
    let id = if sign {
        signed_commit(&g.repo, g.commit.tree, g.head, &message)?
    } else {
        g.repo.write_commit(g.commit.tree, &[g.head], &message, clock::commit_time())?
    };
    publish(&g, id, "approval")?;
    let v = Approved {
        branch: g.branch.clone(),
        commit: id.to_string(),
        parent: g.head.to_string(),
        state: g.state.to_string(),
        approved_by: g.me.clone(),
        approves: g.head.to_string(),
        decision: decision.map(String::from),
        signed: sign,
    };
    print(args.json, &v, &v.commit)
}

pub fn cmd_reject(cwd: &Path, args: RejectArgs) -> Result<ExitCode> {
    let why = note(&args.message, "WHY", "reject")?;
    let g = load(cwd, &args.branch)?;
    let to = State::parse(&g.humans.gate_on_reject.value)
        .ok()
        .filter(|s| !s.is(Reserved::Working))
        .ok_or_else(|| anyhow!("gate.on_reject {:?} is not a state to move to", g.humans.gate_on_reject.value))?;
    let work = gated_work(&g.repo, &g.commit)?;
    let message = rejection_message(&Rejection {
        gated_trailers: &work.trailers,
        gated: work.id,
        state: &g.state,
        to: &to,
        by: &g.me,
        why: &why,
        runner: Vec::new(),
    })
    .map_err(|e| usage(e.to_string()))?;
    let id = g.repo.write_commit(g.commit.tree, &[g.head], &message, clock::commit_time())?;
    publish(&g, id, "reject")?;
    let v = Decided {
        branch: g.branch.clone(),
        commit: id.to_string(),
        parent: g.head.to_string(),
        state: to.to_string(),
        decision: "reject",
    };
    print(args.json, &v, &v.commit)
}

pub fn cmd_request_changes(cwd: &Path, args: RequestChangesArgs) -> Result<ExitCode> {
    let what = note(&args.message, "WHAT", "request-changes")?;
    let g = load(cwd, &args.branch)?;
    let work = gated_work(&g.repo, &g.commit)?;
    let to = match &g.humans.gate_on_changes.value {
        Some(s) => s.clone(),
        None => producer(&g.repo, &work, &g.state)?.ok_or_else(|| {
            anyhow!(
                "cannot tell which state produced the gated work {} (it is not a run's answer); set gate.on_changes for {}, or use git baton send; nothing was written",
                &work.id.to_string()[..12],
                g.state
            )
        })?,
    };
    let to = State::parse(&to)
        .ok()
        .filter(|s| !s.is(Reserved::Working))
        .ok_or_else(|| anyhow!("{to:?} is not a state to send the changes to"))?;
    let message = changes_message(&Changes {
        gated_message: &work.message,
        gated_trailers: &work.trailers,
        gated: work.id,
        state: &g.state,
        to: &to,
        by: &g.me,
        what: &what,
    })
    .map_err(|e| usage(e.to_string()))?;
    let id = g.repo.write_commit(g.commit.tree, &[g.head], &message, clock::commit_time())?;
    publish(&g, id, "request for changes")?;
    let v = Decided {
        branch: g.branch.clone(),
        commit: id.to_string(),
        parent: g.head.to_string(),
        state: to.to_string(),
        decision: "changes",
    };
    print(args.json, &v, &v.commit)
}
