//! `git baton heartbeat`: a handler renews its lease (AYNIG's `set-working`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::send::{handler_branch, target_branch};
use super::Out;
use crate::protocol::{compose, Key, Lease, Reserved, State, StateRead, TrailerArg};
use crate::repo::{Cas, Repo};
use crate::runner::clock;

/// Renew the lease of the run that holds this branch: append a `working` commit that keeps
/// `dwp-origin-state`, `dwp-run-id` and `dwp-runner-id` (the tree is unchanged, so the handler's
/// files and index stay as they are). Inside a handler (detached worktree, `BATON_RUN_ID` and
/// `BATON_BRANCH` set by the runner) the
/// commit goes on the handler's HEAD and the branch is fast-forwarded to it by compare-and-swap
/// (pushed in remote mode). It refuses when the newest state is not a `working` lease (of
/// `BATON_RUN_ID`, when set). The runner renews its leases by itself; a handler needs this only to
/// publish progress or to park the branch. Prints the new commit id; `--json` one object:
/// `{"branch","commit","lease_seconds","run_id"}`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object instead of the bare commit id.
    #[arg(long)]
    json: bool,
    /// New lease length in seconds (default: the current lease's).
    #[arg(long, value_name = "N")]
    lease_seconds: Option<u64>,
    /// The new lease length as a bare number (`set-working 600`), the same as `--lease-seconds`.
    #[arg(value_name = "SECONDS", conflicts_with = "lease_seconds")]
    seconds: Option<u64>,
    /// Branch (default: `BATON_BRANCH`, else the checked-out branch).
    #[arg(short, long, env = "BATON_BRANCH")]
    branch: Option<String>,
    /// An optional note for the body of the renewal commit (`--prompt`: AYNIG's spelling).
    #[arg(short = 'm', long = "message", visible_alias = "prompt", group = "note")]
    message: Option<String>,
    /// Read the note from a file (AYNIG's `--prompt-file`).
    #[arg(long = "prompt-file", value_name = "FILE", group = "note")]
    prompt_file: Option<String>,
    /// Read the note from standard input (AYNIG's `--prompt-stdin`).
    #[arg(long = "prompt-stdin", group = "note")]
    prompt_stdin: bool,
    /// The subject line (default `baton: heartbeat`).
    #[arg(long, value_name = "S")]
    subject: Option<String>,
    /// An extra trailer `Key: value`, repeatable (not the lease's own keys).
    #[arg(long = "trailer", value_name = "K: V")]
    trailers: Vec<String>,
    /// AYNIG's push remote. Inside a handler the runner's remote decides (a different name is
    /// refused); outside one, the branch is pushed there after the renewal.
    #[arg(long = "dwp-remote", value_name = "NAME")]
    dwp_remote: Option<String>,
    /// The note when none is given (the `aynig` command line sets AYNIG's `Lease heartbeat`).
    #[arg(skip)]
    pub(crate) default_note: Option<String>,
}

impl Args {
    /// The note: `-m`, `--prompt-file`, `--prompt-stdin`, else the default.
    fn note(&self) -> Result<Option<String>> {
        if let Some(m) = &self.message {
            return Ok(Some(m.clone()));
        }
        if let Some(f) = &self.prompt_file {
            return std::fs::read_to_string(f).map(Some).map_err(|e| anyhow::anyhow!("reading {f}: {e}"));
        }
        if self.prompt_stdin {
            let mut buf = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf)
                .map_err(|e| anyhow::anyhow!("reading the note from standard input: {e}"))?;
            return Ok(Some(buf));
        }
        Ok(self.default_note.clone())
    }
}

/// Walk first-parent history from the head to the newest commit with a state: that is the lease.
fn current_lease(repo: &Repo, head: crate::repo::ObjectId) -> Result<(Lease, String)> {
    let mut next = Some(head);
    while let Some(id) = next {
        let commit = repo.commit(id)?;
        match commit.state() {
            StateRead::None => next = commit.parents.first().copied(),
            state => {
                return match Lease::from_commit(&commit.trailers, commit.committer_time) {
                    Some(lease) => Ok((lease, id.to_string())),
                    None => bail!("no lease to renew: the branch is in state {:?}", state.text().unwrap_or("")),
                };
            }
        }
    }
    bail!("no lease to renew: no commit on this branch carries a dwp-state")
}

pub fn cmd_heartbeat(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    // Inside a handler the worktree is detached at the run's work: the renewal goes on top of it
    // (so the handler's commits stay below it) and the branch is moved there by compare-and-swap —
    // a fast-forward push in remote mode. Refused if anyone else moved the branch.
    let in_handler = handler_branch(&repo, args.branch.as_deref())?;
    let remote = match std::env::var("BATON_REMOTE").ok().filter(|r| !r.is_empty() && in_handler.is_some()) {
        Some(r) => {
            crate::runner::remote::check_remote_name(&r).map_err(|e| anyhow::anyhow!("BATON_REMOTE: {e}"))?;
            Some(r)
        }
        None => None,
    };
    if let Some(r) = &args.dwp_remote {
        crate::runner::remote::check_remote_name(r).map_err(|e| super::output::usage(format!("--dwp-remote: {e}")))?;
        if in_handler.is_some() && remote.as_deref() != Some(r.as_str()) {
            // An unchanged AYNIG handler may always pass it: said, not refused.
            tracing::warn!(
                "--dwp-remote {r} not used: this run publishes {}; the runner decides where a handler's commits go",
                remote.as_deref().map(|x| format!("to {x}")).unwrap_or_else(|| "locally".into())
            );
        }
        if in_handler.is_none() && !crate::runner::remote::is_configured(&repo, r) {
            return Err(super::output::usage(format!("--dwp-remote: no remote named {r:?} in this repository")));
        }
    }
    let branch = match &in_handler {
        Some(b) => b.clone(),
        None => target_branch(&repo, args.branch.as_deref())?,
    };
    let in_handler = in_handler.is_some();
    let branch_ref = format!("refs/heads/{branch}");
    let refname = if in_handler { "HEAD".to_owned() } else { branch_ref.clone() };
    let Some(head) = repo.ref_id(&refname)? else {
        bail!("branch {branch:?} does not exist or has no commits yet");
    };
    let (lease, _) = current_lease(&repo, head)?;
    if let Ok(mine) = std::env::var("BATON_RUN_ID") {
        if lease.run_id.as_deref() != Some(mine.as_str()) {
            bail!("lease lost: the branch is held by run {:?}, not {mine:?}", lease.run_id.unwrap_or_default());
        }
    }
    let mut trailers = Vec::new();
    let mut keep = |key: Key, v: &Option<String>| {
        if let Some(v) = v {
            trailers.push(TrailerArg::reserved(key, v));
        }
    };
    keep(Key::OriginState, &lease.origin_state);
    keep(Key::RunId, &lease.run_id);
    keep(Key::RunnerId, &lease.runner_id);
    let seconds = args.lease_seconds.or(args.seconds).unwrap_or(lease.lease_seconds);
    trailers.push(TrailerArg::reserved(Key::LeaseSeconds, seconds.to_string()));
    for t in &args.trailers {
        let t: TrailerArg = t.parse().map_err(|e| super::output::usage(format!("{e}")))?;
        if Key::from_name_ignore_case(&t.key).is_some_and(|k| k.runner_only()) {
            return Err(super::output::usage(format!(
                "trailer {:?} belongs to the lease and is written by the renewal itself",
                t.key
            )));
        }
        trailers.push(t);
    }
    let working = State::reserved_state(Reserved::Working);
    let note = args.note()?;
    let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let subject = args.subject.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or("baton: heartbeat");
    let message = compose(subject, note, &trailers, &working).map_err(|e| super::output::usage(e.to_string()))?;
    let (id, cas) = repo.append_commit(&refname, head, &message, clock::now(), "baton: heartbeat")?;
    if let Cas::Moved { .. } = cas {
        bail!("branch {branch:?} moved while renewing the lease; nothing was written");
    }
    if in_handler {
        publish(&repo, remote.as_deref(), &branch, &branch_ref, id)?;
    } else if let Some(r) = &args.dwp_remote {
        use crate::runner::remote::{push, Pushed};
        match push(repo.common_dir(), r, &branch, id, None) {
            Pushed::Accepted => {}
            other => bail!("renewal written locally ({id}) but not pushed to {r}: {other:?}"),
        }
    }
    let mut out = Out::new();
    if args.json {
        out.json(&serde_json::json!({
            "branch": branch,
            "commit": id.to_string(),
            "lease_seconds": seconds,
            "run_id": lease.run_id,
        }))?;
    } else {
        out.line(&id.to_string())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Move the branch to a heartbeat made on the handler's HEAD: a fast-forward only (the branch must
/// still be this run's lease or an earlier heartbeat of it).
fn publish(repo: &Repo, remote: Option<&str>, branch: &str, branch_ref: &str, id: crate::repo::ObjectId) -> Result<()> {
    use crate::runner::remote::{push, Pushed};
    if let Some(remote) = remote {
        return match push(repo.common_dir(), remote, branch, id, None) {
            Pushed::Accepted => Ok(()),
            other => bail!("renewal written locally ({id}) but not pushed to {remote}: {other:?}"),
        };
    }
    let Some(current) = repo.ref_id(branch_ref)? else {
        bail!("lease lost: branch {branch:?} was deleted");
    };
    if !repo.descends_from(id, current)? {
        bail!("lease lost: branch {branch:?} was moved to {current} by someone else");
    }
    match repo.compare_and_swap(branch_ref, Some(current), id, "baton: heartbeat")? {
        Cas::Updated => Ok(()),
        Cas::Moved { .. } => bail!("lease lost: branch {branch:?} moved while renewing the lease"),
    }
}
