//! `git baton resume`: put a branch back in a checkpoint's state with one new commit.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use super::Out;
use crate::history::checkpoints::{names, resume_message};
use crate::repo::{Cas, CommitInfo, ObjectId, Repo};
use crate::runner::clock;

/// Resume a workflow from a checkpoint: append one commit to BRANCH that sets the checkpoint's
/// state again, with its body and its request trailers (not the lease, run and failure trailers
/// of past runs, nor `dwp-checkpoint`), plus `dwp-resumed-from: <sha>`. Nothing is rewritten:
/// the work done since stays in history. The tree stays the branch head's unless
/// `--restore-tree`, which takes the checkpoint commit's tree (files back as they were).
///
/// Refused (exit 1, nothing written): an unknown checkpoint name, a commit that is not on the
/// branch, a checkpoint whose state is `working` or invalid or missing, and a branch a runner
/// holds with a live lease (renewals included; `--force` overrides). Prints the new commit id (`--json`:
/// `{"branch","commit","parent","state","resumed_from","tree_restored"}`).
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["checkpoint", "commit"])))]
pub struct Args {
    /// The branch to resume.
    #[arg(value_name = "BRANCH")]
    branch: String,
    /// The checkpoint name (`dwp-checkpoint: NAME`); the newest commit carrying it wins.
    #[arg(long, value_name = "NAME")]
    checkpoint: Option<String>,
    /// Resume from this commit instead (it must be on the branch's history and carry a state).
    #[arg(long, value_name = "REV")]
    commit: Option<String>,
    /// Restore the checkpoint commit's tree instead of keeping the head's. A checkout of the
    /// branch is not updated: its files then differ from the new head.
    #[arg(long)]
    restore_tree: bool,
    /// Print a JSON object instead of the commit id.
    #[arg(long)]
    json: bool,
    /// Resume even though a runner holds a live lease (its result then goes to
    /// `refs/baton/rejected/<branch>/<run-id>`).
    #[arg(long)]
    force: bool,
}

#[derive(Serialize)]
struct Resumed {
    branch: String,
    commit: String,
    parent: String,
    state: String,
    resumed_from: String,
    tree_restored: bool,
}

/// The newest commit on the first-parent history of `head` carrying checkpoint `name`.
fn find_checkpoint(repo: &Repo, head: ObjectId, name: &str) -> Result<Option<CommitInfo>> {
    let mut next = Some(head);
    while let Some(id) = next {
        let commit = repo.commit(id)?;
        if names(&commit).iter().any(|n| n == name) {
            return Ok(Some(commit));
        }
        next = commit.parents.first().copied();
    }
    Ok(None)
}

pub fn cmd_resume(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let branch = args.branch.strip_prefix("refs/heads/").unwrap_or(&args.branch).to_owned();
    super::send::check_branch_name(&branch)?;
    let refname = format!("refs/heads/{branch}");
    let Some(head) = repo.ref_id(&refname)? else {
        bail!("branch {branch:?} does not exist or has no commits yet");
    };
    let (from, label) = match (&args.checkpoint, &args.commit) {
        (Some(name), _) => {
            let c = find_checkpoint(&repo, head, name)?
                .ok_or_else(|| anyhow!("no commit on branch {branch:?} carries checkpoint {name:?}"))?;
            (c, format!("checkpoint {name}"))
        }
        (None, Some(rev)) => {
            let id = repo.resolve_commit(rev)?;
            if !repo.descends_from(head, id)? {
                bail!("commit {id} is not on the history of branch {branch:?}");
            }
            let short = id.to_hex_with_len(12).to_string();
            (repo.commit(id)?, format!("commit {short}"))
        }
        (None, None) => unreachable!("clap requires --checkpoint or --commit"),
    };
    if !args.force {
        super::send::refuse_live_lease(&repo, &branch, head)?;
    }
    let (state, message) =
        resume_message(&from, &label).with_context(|| format!("cannot resume branch {branch:?} from {label}"))?;
    let reflog = format!("baton: resume {state} from {label}");
    let now = clock::commit_time();
    let (id, cas) = if args.restore_tree {
        let id = repo.write_commit(from.tree, &[head], &message, now)?;
        (id, repo.compare_and_swap(&refname, Some(head), id, &reflog)?)
    } else {
        repo.append_commit(&refname, head, &message, now, &reflog)?
    };
    if let Cas::Moved { .. } = cas {
        bail!("branch {branch:?} moved while resuming; nothing was written, try again");
    }
    if args.restore_tree && repo.head_branch()?.as_deref() == Some(branch.as_str()) {
        tracing::warn!(
            "{branch} is checked out here: its files and index still hold the old tree (`git status` shows the difference)"
        );
    }
    let mut out = Out::new();
    if args.json {
        out.json(&Resumed {
            branch,
            commit: id.to_string(),
            parent: head.to_string(),
            state: state.to_string(),
            resumed_from: from.id.to_string(),
            tree_restored: args.restore_tree,
        })?;
    } else {
        out.line(&id.to_string())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
