//! `git baton spawn CHILD STATE`: make a child task — a new branch whose head is a state commit
//! carrying `dwp-parent` and `dwp-correlation-id`. Inside a handler the child waits on
//! `refs/baton/spawn/<run-id>/<child>` and the runner creates it together with the parent's answer
//! (all or nothing); outside a handler the branch is created at once.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use serde::Serialize;

use super::output::usage;
use super::send::{check_branch_name, handler_branch, Draft, SendOptions};
use super::Out;
use crate::protocol::{Key, Reserved, State, TrailerArg};
use crate::repo::{Cas, Repo};
use crate::runner::fanout::{clashing_branch, spawn_prefix};
use crate::runner::join::ROLE;
use crate::runner::{clock, remote};

/// Spawn a child task. Inside a handler (`BATON_RUN_ID`, `BATON_BRANCH` set, HEAD detached) the
/// child's commit sits on the handler's HEAD (or `--from REV`) and the branch appears only when the
/// runner publishes the handler's answer — together with every other child of the run, or none of
/// them if the run fails. Outside a handler `--from REV` is required and the branch is created at
/// once (and pushed with `--remote NAME`). Prints the child's commit (`--json`:
/// `{"child","commit","parent_branch","correlation_id","state","pending"}`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The child branch to create (must not exist).
    #[arg(value_name = "CHILD")]
    child: String,
    /// The child's first state.
    #[arg(value_name = "STATE")]
    state: String,
    /// The role that should handle the child (`dwp-role: R`).
    #[arg(long, value_name = "R")]
    role: Option<String>,
    /// The commit the child starts from (inside a handler: default its HEAD).
    #[arg(long, value_name = "REV")]
    from: Option<String>,
    /// The correlation id shared by the siblings (default: the spawning run's id inside a
    /// handler; the `--from` commit outside one).
    #[arg(long, value_name = "ID")]
    correlation: Option<String>,
    /// Outside a handler: also create the branch on this remote (expected absent there).
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    #[command(flatten)]
    common: SendOptions,
}

#[derive(Serialize)]
struct Spawned {
    child: String,
    commit: String,
    parent_branch: Option<String>,
    correlation_id: String,
    state: String,
    /// True inside a handler: the branch appears when the runner publishes the run's answer.
    pending: bool,
}

fn one_line_value(flag: &str, v: &str) -> Result<String> {
    let v = v.trim();
    if v.is_empty() || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(usage(format!("{flag} must be one word, not {v:?}")));
    }
    Ok(v.to_owned())
}

pub fn cmd_spawn(cwd: &Path, args: Args) -> Result<ExitCode> {
    let child = args.child.strip_prefix("refs/heads/").unwrap_or(&args.child).to_owned();
    check_branch_name(&child)?;
    let state = State::parse(&args.state).map_err(|e| usage(format!("invalid state: {e}")))?;
    if state.is(Reserved::Working) {
        return Err(usage("state 'working' is written only by runners"));
    }
    if let Some(r) = &args.role {
        crate::runner::tick::check_role(Some(r)).map_err(|e| usage(format!("{e:#}")))?;
    }
    let correlation = args.correlation.as_deref().map(|c| one_line_value("--correlation", c)).transpose()?;
    let (branch_flag, force, json) = args.common.target();
    if branch_flag.is_some() || force {
        return Err(usage("spawn takes the child as CHILD; --branch and --force do not apply"));
    }
    let mut draft = Draft::new(&args.common, &state)?;
    draft.set_default_subject(&args.common, format!("baton: spawn {child} ({state})"));
    if let Some(r) = &args.remote {
        remote::check_remote_name(r).map_err(usage)?;
    }

    let repo = Repo::discover(cwd)?;
    let parent_branch = handler_branch(&repo, None)?;
    let run_id = std::env::var("BATON_RUN_ID").ok().filter(|_| parent_branch.is_some());
    let base = match (&args.from, &run_id) {
        (Some(rev), _) => repo.resolve_commit(rev).map_err(|e| anyhow::anyhow!("--from {rev}: {e:#}"))?,
        (None, Some(_)) => match repo.ref_id("HEAD")? {
            Some(h) => h,
            None => bail!("the handler's HEAD has no commit"),
        },
        (None, None) => return Err(usage("spawn outside a handler needs --from REV")),
    };
    // Outside a handler the parent is `--from` when it names a branch.
    let parent = match &parent_branch {
        Some(p) => Some(p.clone()),
        None => args
            .from
            .as_deref()
            .map(|f| f.strip_prefix("refs/heads/").unwrap_or(f))
            .filter(|f| matches!(repo.ref_id(&format!("refs/heads/{f}")), Ok(Some(_))))
            .map(str::to_owned),
    };
    let correlation = correlation.unwrap_or_else(|| match &run_id {
        Some(r) => r.clone(),
        None => base.to_string(),
    });
    let board_remote = if run_id.is_some() {
        std::env::var("BATON_REMOTE").ok().filter(|r| !r.is_empty())
    } else {
        args.remote.clone()
    };
    if repo.ref_id(&format!("refs/heads/{child}"))?.is_some() {
        bail!("branch {child:?} already exists; nothing was spawned");
    }
    if let Some(r) = &board_remote {
        if repo.ref_id(&format!("refs/remotes/{r}/{child}"))?.is_some() {
            bail!("branch {child:?} already exists on {r}; nothing was spawned");
        }
    }
    let clash = match &board_remote {
        Some(r) => clashing_branch(&repo, &format!("refs/remotes/{r}/"), &child),
        None => None,
    };
    if let Some(other) = clash.or_else(|| clashing_branch(&repo, "refs/heads/", &child)) {
        bail!("branch {child:?} cannot be created next to branch {other:?} (git keeps branches as paths); nothing was spawned");
    }
    let mut more = Vec::new();
    if let Some(p) = &parent {
        more.push(TrailerArg::reserved(Key::Parent, p));
    }
    more.push(TrailerArg::reserved(Key::CorrelationId, &correlation));
    if let Some(r) = &args.role {
        more.push(TrailerArg::new(ROLE, r.as_str()).map_err(|e| usage(e.to_string()))?);
    }
    let message = draft.message(&state, &child, &more)?;
    let tree = repo.commit(base)?.tree;
    let id = repo.write_commit(tree, &[base], &message, clock::commit_time())?;
    let pending = match &run_id {
        Some(run) => {
            let refname = format!("{}{child}", spawn_prefix(run));
            match repo.compare_and_swap(&refname, None, id, "baton: spawn")? {
                Cas::Updated => true,
                Cas::Moved { .. } => bail!("child {child:?} was already spawned in this run; nothing was spawned"),
            }
        }
        None => {
            let refname = format!("refs/heads/{child}");
            if let Cas::Moved { .. } = repo.compare_and_swap(&refname, None, id, "baton: spawn")? {
                bail!("branch {child:?} already exists; nothing was spawned");
            }
            if let Some(r) = &args.remote {
                let refused = match remote::push_ref(repo.common_dir(), r, &refname, Some(id), Some(None)) {
                    remote::Pushed::Accepted => None,
                    remote::Pushed::Rejected(w) => Some(format!("{r} refused it ({w}): it exists there")),
                    remote::Pushed::Failed(w) => Some(w),
                };
                if let Some(why) = refused {
                    let _ = repo.delete_ref(&refname, id);
                    bail!("could not create {child:?} on {r}: {why}; nothing was spawned");
                }
            }
            false
        }
    };
    let mut out = Out::new();
    if json {
        out.json(&Spawned {
            child,
            commit: id.to_string(),
            parent_branch: parent,
            correlation_id: correlation,
            state: state.to_string(),
            pending,
        })?;
    } else {
        out.line(&id.to_string())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
