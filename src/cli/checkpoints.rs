//! `git baton checkpoints`: the commits of a branch that carry `dwp-checkpoint: NAME`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use serde::Serialize;

use super::send::target_branch;
use super::Out;
use crate::history::checkpoints::Finder;
use crate::repo::Repo;
use crate::runner::clock::iso_utc;

/// List the checkpoints on the first-parent history of BRANCH (default: the checked-out
/// branch), newest first: the commits carrying a `dwp-checkpoint: NAME` trailer, with the state
/// they set and their time. When several commits carry the same name, the newest is the one
/// `git baton resume --checkpoint NAME` uses; older ones are marked `shadowed`.
///
/// Text: `<sha> <time> <name> <state>`. `--json`: one object per line,
/// `{"branch","name","commit","state","time","current"}` (`time` in seconds since the epoch,
/// `state` null without a `dwp-state`, `current` false when shadowed by a newer one).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The branch (default: the checked-out branch).
    #[arg(value_name = "BRANCH")]
    branch: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row<'a> {
    branch: &'a str,
    name: &'a str,
    commit: String,
    state: Option<&'a str>,
    time: i64,
    current: bool,
}

pub fn cmd_checkpoints(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let branch = target_branch(&repo, args.branch.as_deref())?;
    let Some(head) = repo.ref_id(&format!("refs/heads/{branch}"))? else {
        bail!("branch {branch:?} does not exist or has no commits yet");
    };
    let mut out = Out::new();
    let mut finder = Finder::default();
    let mut next = Some(head);
    while let Some(id) = next {
        let commit = repo.commit(id)?;
        next = commit.parents.first().copied();
        for cp in finder.checkpoints(&commit) {
            if args.json {
                out.json(&Row {
                    branch: &branch,
                    name: &cp.name,
                    commit: cp.commit.to_string(),
                    state: cp.state.as_deref(),
                    time: cp.time,
                    current: cp.current,
                })?;
            } else {
                out.line(&format!(
                    "{} {} {:16} {}{}",
                    cp.commit,
                    iso_utc(cp.time),
                    cp.name,
                    cp.state.as_deref().unwrap_or("-"),
                    if cp.current { "" } else { " (shadowed)" }
                ))?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
