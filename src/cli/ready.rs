//! `git baton ready`: the frontier — what a runner would start now.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::Out;
use crate::protocol::state::last_text;
use crate::protocol::Key;
use crate::runner::clock;
use crate::runner::plan::Action;
use crate::runner::tick::{self, TickSpec};

/// List the tasks a runner would start now, in the order it would start them: a valid state with
/// an executable handler, no live lease, dependencies (`dwp-depends-on`) met, no `dwp-not-before`
/// timer running, not parked, not held by an open circuit breaker — higher `dwp-priority` first.
/// For people and for agents choosing work. The branch checked out in the main worktree is left
/// out, as `run` leaves it by default. A budget or a concurrency group can still hold a task back
/// when a runner gets to it (they are counted at the claim).
///
/// `--json` prints one object per line: `{"branch","state","handler","priority":"high"|"medium"|
/// "low","commit","age_seconds"}`. Exits 0.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Only branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    branches: Vec<String>,
    /// Look handlers up in `.dwp/roles/<ROLE>/command` first.
    #[arg(long, env = "BATON_ROLE")]
    role: Option<String>,
}

#[derive(Serialize)]
struct Ready {
    branch: String,
    state: String,
    handler: String,
    priority: String,
    commit: String,
    age_seconds: i64,
}

pub fn cmd_ready(cwd: &Path, args: Args) -> Result<ExitCode> {
    tick::check_role(args.role.as_deref()).map_err(|e| super::output::usage(format!("{e:#}")))?;
    let spec = TickSpec { branches: args.branches.clone(), role: args.role.clone(), ..TickSpec::default() };
    let now = clock::now();
    let prepared = tick::prepare(cwd, &spec, now).map_err(anyhow::Error::from)?;
    let mut rows = Vec::new();
    for action in &prepared.actions {
        let Action::Run { branch, head, state, handler, .. } = action else { continue };
        let commit = prepared.repo.commit(*head)?;
        rows.push(Ready {
            branch: branch.clone(),
            state: state.to_string(),
            handler: handler.clone(),
            priority: last_text(&commit.trailers, Key::Priority)
                .map(|p| p.trim().to_owned())
                .filter(|p| ["high", "medium", "low"].contains(&p.as_str()))
                .unwrap_or_else(|| "medium".into()),
            commit: head.to_string(),
            age_seconds: (now - commit.committer_time).max(0),
        });
    }
    let mut out = Out::new();
    if args.json {
        for r in &rows {
            out.json(r)?;
        }
    } else if rows.is_empty() {
        out.line("nothing is ready")?;
    } else {
        let width = rows.iter().map(|r| r.branch.len()).max().unwrap_or(6).max(6);
        out.line(&format!("{:width$}  {:16}  {:8}  {:>8}  HANDLER", "BRANCH", "STATE", "PRIORITY", "AGE"))?;
        for r in &rows {
            out.line(&format!(
                "{:width$}  {:16}  {:8}  {:>7}s  {}",
                r.branch, r.state, r.priority, r.age_seconds, r.handler
            ))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
