//! `git baton log`: the runs and events of branches, oldest first, read from history alone.

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use super::scan::{fold_history, local_branches, parse_since};
use super::send::target_branch;
use super::Out;
use crate::history::{EventKind, Record, RunResult};
use crate::repo::walk::{HistoryWalk, KEEP_BYTES};
use crate::repo::{ObjectId, Repo};
use crate::runner::clock::iso_utc;

/// Show what happened on a branch: every run (a claim by a runner up to the commit that ended
/// it: the handler's answer, a failure record or a `stalled` take-over) and every state change
/// outside a run (a `send`, a `resume`), oldest first.
///
/// The table shows who decided (the author of the commit that asked for the state) and who
/// executed (runner id and the handler's commit author). `--json` prints one object per line:
/// `{"kind":"run"|"event","event","branch","run_id","state","outcome","result","runner",
/// "started","finished","duration_ms","commit","end","trigger","requested_by","author",
/// "exit_code","error","attempt","commits","heartbeats","superseded_by","resumed_from"}` —
/// `state` is the origin state (for an event: the state before it), `outcome` the state it
/// ended in (null while running), `result` one of `succeeded`, `failed`, `stalled`, `running`
/// (null for events), times in seconds since the epoch, `commit` the claim (or the event's
/// commit). History is walked newest first collecting commit ids, then read oldest first on all
/// cores, so memory stays bounded on long histories; a commit-graph (`git commit-graph write
/// --reachable`) makes the walk much faster.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Branches to show (default: the checked-out branch). A name that is not a local branch
    /// is resolved as a revision (`origin/main`, a commit id).
    #[arg(value_name = "BRANCH")]
    branches: Vec<String>,
    /// Every local branch; history shared between branches is shown once, under the first
    /// branch (by name) that reaches it.
    #[arg(long, conflicts_with = "branches")]
    all: bool,
    /// Only runs that started and events that happened at or after DATE (any date git reads:
    /// `2026-11-23`, `2026-11-23T09:00:00Z`, `@1700000000`, `2.weeks.ago`, "2 weeks ago",
    /// `yesterday`; UTC).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Follow every parent of merge commits (default: first-parent history, like the protocol).
    #[arg(long)]
    all_parents: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row<'a> {
    kind: &'static str,
    event: Option<EventKind>,
    branch: &'a str,
    run_id: Option<&'a str>,
    state: Option<&'a str>,
    outcome: Option<&'a str>,
    result: Option<RunResult>,
    runner: Option<&'a str>,
    started: i64,
    finished: Option<i64>,
    duration_ms: Option<u64>,
    commit: String,
    end: Option<String>,
    trigger: Option<String>,
    requested_by: Option<&'a str>,
    author: Option<&'a str>,
    exit_code: Option<i32>,
    error: Option<&'a str>,
    attempt: Option<u32>,
    commits: u32,
    heartbeats: u32,
    superseded_by: Option<&'a str>,
    resumed_from: Option<&'a str>,
}

fn row<'a>(branch: &'a str, r: &'a Record) -> Row<'a> {
    let hex = |id: &Option<ObjectId>| id.map(|i| i.to_string());
    match r {
        Record::Run(run) => Row {
            kind: "run",
            event: None,
            branch,
            run_id: run.run_id.as_deref(),
            state: run.origin.as_deref(),
            outcome: run.outcome.as_deref(),
            result: Some(run.result),
            runner: run.runner.as_deref(),
            started: run.started,
            finished: run.finished,
            duration_ms: run.duration_ms(),
            commit: run.claim.to_string(),
            end: hex(&run.end),
            trigger: hex(&run.trigger),
            requested_by: run.requested_by.as_deref(),
            author: run.author.as_deref(),
            exit_code: run.exit_code,
            error: run.error.as_deref(),
            attempt: run.attempt,
            commits: run.commits,
            heartbeats: run.heartbeats,
            superseded_by: run.superseded_by.as_deref(),
            resumed_from: None,
        },
        Record::Event(e) => Row {
            kind: "event",
            event: Some(e.kind),
            branch,
            run_id: e.run_id.as_deref(),
            state: e.previous.as_deref(),
            outcome: e.state.as_deref(),
            result: None,
            runner: None,
            started: e.time,
            finished: Some(e.time),
            duration_ms: None,
            commit: e.commit.to_string(),
            end: None,
            trigger: None,
            requested_by: Some(&e.author),
            author: Some(&e.author),
            exit_code: None,
            error: None,
            attempt: None,
            commits: 0,
            heartbeats: 0,
            superseded_by: None,
            resumed_from: e.resumed_from.as_deref(),
        },
    }
}

pub use crate::runner::clock::human_duration;

/// `Name <email>` → `Name`.
fn who(ident: Option<&str>) -> &str {
    match ident {
        Some(i) => i.split(" <").next().filter(|n| !n.is_empty()).unwrap_or(i),
        None => "-",
    }
}

fn table_line(r: &Row<'_>) -> String {
    let kind = r.event.map_or("run", EventKind::as_str);
    let transition =
        format!("{} -> {}", r.state.unwrap_or("-"), r.outcome.unwrap_or(if r.result.is_some() { "…" } else { "-" }));
    let result = match (r.result, r.exit_code) {
        (Some(RunResult::Failed), Some(code)) => format!("failed({code})"),
        (Some(res), _) => res.as_str().to_owned(),
        (None, _) => "-".to_owned(),
    };
    let duration = r.duration_ms.map_or("-".to_owned(), human_duration);
    let executed = match r.kind {
        "run" => format!("{} / {}", r.runner.unwrap_or("-"), who(r.author)),
        _ => "-".to_owned(),
    };
    format!(
        "{}  {:16}  {:8}  {:28}  {:12}  {:>7}  {:16}  {}",
        iso_utc(r.started),
        r.branch,
        kind,
        transition,
        result,
        duration,
        who(r.requested_by),
        executed
    )
}

pub fn cmd_log(cwd: &Path, args: Args) -> Result<ExitCode> {
    let since = parse_since(args.since.as_deref())?;
    let repo = Repo::discover(cwd)?;
    let targets: Vec<(String, ObjectId)> = if args.all {
        local_branches(&repo, &[])?.into_iter().map(|b| (b.branch, b.id)).collect()
    } else if args.branches.is_empty() {
        let b = target_branch(&repo, None)?;
        let id = repo
            .ref_id(&format!("refs/heads/{b}"))?
            .ok_or_else(|| anyhow::anyhow!("branch {b:?} has no commits yet"))?;
        vec![(b, id)]
    } else {
        let mut v = Vec::new();
        for b in &args.branches {
            let id = match repo.ref_id(&format!("refs/heads/{b}"))? {
                Some(id) => id,
                None => repo.resolve_commit(b)?,
            };
            v.push((b.clone(), id));
        }
        v
    };
    let mut out = Out::new();
    // The header comes with the first row: a history without runs says so instead.
    let mut rows = 0usize;
    let mut seen = HashSet::new();
    let several = targets.len() > 1;
    for (branch, tip) in &targets {
        let mut walk = HistoryWalk {
            all_parents: args.all_parents,
            since,
            seen: several.then_some(&mut seen),
            keep_bytes: KEEP_BYTES,
        };
        let walked = fold_history(&repo, *tip, &mut walk, |r| {
            if !r.visible() || since.is_some_and(|s| r.started() < s) {
                return Ok(());
            }
            let row = row(branch, &r);
            rows += 1;
            if args.json {
                out.json(&row)
            } else {
                if rows == 1 {
                    out.line(&format!(
                        "{:20}  {:16}  {:8}  {:28}  {:12}  {:>7}  {:16}  EXECUTED BY",
                        "WHEN", "BRANCH", "KIND", "STATE -> OUTCOME", "RESULT", "TIME", "DECIDED BY"
                    ))?;
                }
                Ok(out.line(&table_line(&row))?)
            }
        });
        match walked {
            // With --all, one unreadable branch is a warning; the others are still listed.
            Err(e) if args.all && !super::output::is_broken_pipe(&e) => {
                tracing::warn!("{branch}: history cannot be read, skipped: {e:#}");
            }
            other => other.with_context(|| format!("reading the history of {branch}"))?,
        }
    }
    out.flush()?;
    if rows == 0 {
        let names: Vec<&str> = targets.iter().map(|(b, _)| b.as_str()).collect();
        let since = if args.since.is_some() { " in that time" } else { "" };
        eprintln!(
            "no runs on {}{since}: no handler has been claimed there yet (git baton status shows what waits)",
            if args.all { "any branch".to_owned() } else { names.join(", ") }
        );
    }
    Ok(ExitCode::SUCCESS)
}
