//! `git baton join --then STATE`: inside a handler, answer with a `waiting` commit that parks the
//! parent until its children are finished; the runner then writes the join commit (see
//! `runner::join` for the rules, `runner::fanout` for the commit).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use serde::Serialize;

use super::output::usage;
use super::send::handler_branch;
use super::Out;
use crate::protocol::message::validate_body;
use crate::protocol::state::last_text;
use crate::protocol::{compose, Key, Reserved, State, TrailerArg};
use crate::repo::worktree::run_git;
use crate::repo::{BranchSource, Cas, ObjectId, Repo};
use crate::runner::fanout::spawned;
use crate::runner::join::{self, OnFailure, Rule};
use crate::runner::select::glob_match;
use crate::runner::{clock, join::Selector};

/// Park this task until its children are finished, then go to `--then`. Only inside a handler:
/// writes the handler's answer (on its detached HEAD, with whatever is staged) with state
/// `waiting` and the join trailers. The children: by default those this run spawned (and any
/// branch whose head names this branch as `dwp-parent` with this run's correlation id); with
/// `--children GLOB` the branches matching it; with `--correlation ID` those carrying that
/// `dwp-correlation-id`. At least one must match. Prints the commit (`--json`:
/// `{"branch","commit","then","rule","on_child_failure","children"}`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The state the task goes to when the join is complete.
    #[arg(long, value_name = "STATE")]
    then: String,
    /// Wait until every child is finished (done, failed, canceled or a dead letter). The default.
    #[arg(long, group = "rule")]
    all: bool,
    /// Go on as soon as one child is done.
    #[arg(long, group = "rule")]
    any: bool,
    /// Go on as soon as N children are done.
    #[arg(long, value_name = "N", group = "rule")]
    quorum: Option<u32>,
    /// The children are the branches matching GLOB (and children of this run matching it).
    #[arg(long, value_name = "GLOB", group = "select")]
    children: Option<String>,
    /// The children are the tasks carrying `dwp-correlation-id: ID`.
    #[arg(long, value_name = "ID", group = "select")]
    correlation: Option<String>,
    /// A failed child (failed, canceled, dead letter, deleted): `fail` the parent at once
    /// (default), or `continue` and let the rule decide.
    #[arg(long = "on-child-failure", value_name = "fail|continue", default_value = "fail")]
    on_child_failure: String,
    /// A body for the waiting commit.
    #[arg(short = 'm', long = "message", value_name = "BODY")]
    message: Option<String>,
    /// Print `{"branch","commit","then","rule","on_child_failure","children"}`.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Joined {
    branch: String,
    commit: String,
    then: String,
    rule: String,
    on_child_failure: String,
    children: Vec<String>,
}

/// The children the join waits for: the run's pending spawns and the board's branch heads that
/// the selector matches.
fn select(repo: &Repo, branch: &str, run_id: &str, selector: &Selector, default: bool) -> Result<Vec<String>> {
    let source = match std::env::var("BATON_REMOTE").ok().filter(|r| !r.is_empty()) {
        Some(r) => BranchSource::Remote(r),
        None => BranchSource::Local,
    };
    let matches = |name: &str, c: &crate::repo::CommitInfo| -> bool {
        if name == branch {
            return false;
        }
        match selector {
            Selector::Glob(g) => glob_match(g, name),
            Selector::Correlation(id) => {
                let corr = last_text(&c.trailers, Key::CorrelationId).map(|v| v.trim().to_owned());
                let parent_ok = !default || last_text(&c.trailers, Key::Parent).is_some_and(|p| p.trim() == branch);
                corr.as_deref() == Some(id.as_str()) && parent_ok
            }
        }
    };
    let mut out = std::collections::BTreeSet::new();
    for (child, id) in spawned(repo, run_id) {
        // Every child of this run counts by default, whatever correlation it was given.
        if default || repo.commit(id).is_ok_and(|c| matches(&child, &c)) {
            out.insert(child);
        }
    }
    let prefix = match &source {
        BranchSource::Remote(r) => format!("{r}/"),
        BranchSource::Local => String::new(),
    };
    for h in repo.branches(&source)? {
        let name = h.branch.strip_prefix(&prefix).unwrap_or(&h.branch).to_owned();
        if out.contains(&name) || name == "HEAD" {
            continue;
        }
        let hit = match selector {
            Selector::Glob(g) => name != branch && glob_match(g, &name),
            Selector::Correlation(_) => repo.commit(h.id).is_ok_and(|c| matches(&name, &c)),
        };
        if hit {
            out.insert(name);
        }
    }
    Ok(out.into_iter().collect())
}

pub fn cmd_join(cwd: &Path, args: Args) -> Result<ExitCode> {
    let then = State::parse(&args.then).map_err(|e| usage(format!("invalid --then state: {e}")))?;
    if then.is(Reserved::Working) || then.is(Reserved::Waiting) {
        return Err(usage(format!("--then {then} is not a state a join can go to")));
    }
    let rule = match (args.any, args.quorum) {
        (true, _) => Rule::Any,
        (_, Some(0)) => return Err(usage("--quorum must be at least 1")),
        (_, Some(n)) => Rule::Quorum(n),
        _ => Rule::All,
    };
    let on_failure = OnFailure::parse(&args.on_child_failure)
        .map_err(|_| usage(format!("--on-child-failure must be fail or continue, not {:?}", args.on_child_failure)))?;
    let body = match &args.message {
        Some(m) => Some(validate_body(m.as_bytes()).map_err(|e| usage(e.to_string()))?.to_owned()),
        None => None,
    };
    for (flag, v) in [("--children", &args.children), ("--correlation", &args.correlation)] {
        if let Some(v) = v {
            if v.trim().is_empty() || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(usage(format!("{flag} must be one word, not {v:?}")));
            }
        }
    }
    let repo = Repo::discover(cwd)?;
    let Some(branch) = handler_branch(&repo, None)? else {
        return Err(usage("join runs inside a handler (BATON_RUN_ID and BATON_BRANCH set, HEAD detached)"));
    };
    let run_id = std::env::var("BATON_RUN_ID").unwrap_or_default();
    let default = args.children.is_none() && args.correlation.is_none();
    let selector = match (&args.children, &args.correlation) {
        (Some(g), _) => Selector::Glob(g.clone()),
        (None, Some(c)) => Selector::Correlation(c.clone()),
        // This run's correlation: the one its children were spawned with, when they share one.
        (None, None) => {
            let ids: std::collections::BTreeSet<String> = spawned(&repo, &run_id)
                .iter()
                .filter_map(|(_, id)| repo.commit(*id).ok())
                .filter_map(|c| last_text(&c.trailers, Key::CorrelationId).map(|v| v.trim().to_owned()))
                .collect();
            match ids.len() {
                1 => Selector::Correlation(ids.into_iter().next().unwrap_or_default()),
                _ => Selector::Correlation(run_id.clone()),
            }
        }
    };
    let children = select(&repo, &branch, &run_id, &selector, default)?;
    if children.is_empty() {
        let what = match &selector {
            Selector::Glob(g) => format!("no branch matches {g:?}"),
            Selector::Correlation(c) if default => format!("this run spawned no child (correlation {c})"),
            Selector::Correlation(c) => format!("no task carries dwp-correlation-id {c}"),
        };
        bail!("nothing to join: {what}; nothing was written");
    }
    if let Rule::Quorum(n) = rule {
        if n as usize > children.len() {
            return Err(usage(format!("--quorum {n} is more than the {} children found", children.len())));
        }
    }
    let mut trailers = vec![
        TrailerArg::new(join::THEN, then.as_str())?,
        TrailerArg::new(join::RULE, rule.to_string())?,
        TrailerArg::new(join::ON_FAILURE, on_failure.as_str())?,
    ];
    match &selector {
        Selector::Glob(g) => trailers.push(TrailerArg::new(join::CHILDREN, g)?),
        Selector::Correlation(c) => trailers.push(TrailerArg::new(join::CORRELATION, c)?),
    }
    for c in &children {
        trailers.push(TrailerArg::new(join::CHILD, c)?);
    }
    let subject = format!("baton: join {} children ({rule}) -> {then}", children.len());
    let waiting = State::reserved_state(Reserved::Waiting);
    let message = compose(&subject, body.as_deref(), &trailers, &waiting).map_err(|e| usage(e.to_string()))?;
    // Like any answer: what the handler staged goes in.
    let Some(head) = repo.ref_id("HEAD")? else { bail!("the handler's HEAD has no commit") };
    let workdir = repo.workdir().ok_or_else(|| anyhow::anyhow!("the handler's worktree has no working tree"))?;
    let tree: ObjectId =
        run_git(workdir, ["write-tree"])?.trim().parse().map_err(|e| anyhow::anyhow!("git write-tree: {e}"))?;
    let id = repo.write_commit(tree, &[head], &message, clock::commit_time())?;
    if let Cas::Moved { .. } = repo.compare_and_swap("HEAD", Some(head), id, "baton: join")? {
        bail!("HEAD moved while joining; nothing was written");
    }
    let mut out = Out::new();
    if args.json {
        out.json(&Joined {
            branch,
            commit: id.to_string(),
            then: then.to_string(),
            rule: rule.to_string(),
            on_child_failure: on_failure.as_str().to_owned(),
            children,
        })?;
    } else {
        out.line(&id.to_string())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
