//! `git baton budget BRANCH`: what a task may spend, what it spent and what is left, read from
//! its history and the policy the runner would apply.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use super::Out;
use crate::history::budget::{self, Budget, Limit};
use crate::history::Metrics;
use crate::policy::{self, HumansPolicy, Money};
use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved, State, StateRead};
use crate::repo::{BranchHead, Repo};
use crate::runner::before::{entries, spent_line, task_history, WALK_LIMIT};
use crate::runner::clock;
use crate::runner::exec::default_base;
use crate::runner::source;

/// Show a task's budget: the limits on runs, handler seconds and reported cost — each from a
/// `dwp-budget-*` trailer on the task (the newest), else the policy's `budget.*` for the task's
/// state, else none — what the task spent since it branched off the default branch or since its
/// last `dwp-budget-reset` (runs, handler seconds, `dwp-cost`, `dwp-tokens`), what is left, and
/// the status of the next run: `ok`, `warning` (80 % of a limit reached) or `exhausted` (a limit
/// reached: the runner blocks the task with `dwp-escalation: budget` instead of running it).
///
/// The task's state is its head's `dwp-origin-state` (a claim, a failure record, an escalation),
/// else its `dwp-state`; the policy is read like the runner reads it (the trusted ref, else the
/// branch head's commit). A malformed value is a warning naming it, and is ignored.
///
/// `--json` prints one object: `{"branch","state","status":"ok"|"warning"|"exhausted",
/// "reasons":[…],"limits":{"runs"|"seconds"|"cost":{"value","from":"task"|"policy"|"none","at"}},
/// "spent":{"runs","seconds","cost","tokens"},"left":{"runs","seconds","cost"},"since","problems"}`
/// (`at`: the commit carrying the trailer or the policy line; `left` null without a limit;
/// `since`: the reset commit, null for the task's whole history).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The task's branch.
    #[arg(value_name = "BRANCH")]
    branch: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Read the policy from this ref's tree (also `BATON_TRUSTED_REF`, git config
    /// `baton.trustedRef`).
    #[arg(long, value_name = "REF")]
    trusted_ref: Option<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    branch: &'a str,
    state: Option<&'a str>,
    #[serde(flatten)]
    budget: &'a Budget,
}

pub fn cmd_budget(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let (branch, _, head) = super::send::branch_head(&repo, &args.branch)?;
    let commit = repo.commit(head)?;
    let state =
        last_text(&commit.trailers, Key::OriginState).and_then(|s| State::parse(s.trim()).ok()).or_else(
            || match commit.state() {
                StateRead::Valid(s) if !s.is(Reserved::Working) => Some(s),
                _ => None,
            },
        );
    let source = source::configured(&repo, args.trusted_ref.as_deref(), None)?;
    let tree = source.tree_for(commit.tree);
    let loaded = policy::load(&repo, tree).with_context(|| format!("reading the policy for {branch}"))?;
    let humans = match &loaded {
        Some(p) => p.humans(state.as_ref().map_or("", State::as_str)),
        None => HumansPolicy::built_in(),
    };
    let history = task_history(&repo, None, &branch, head)?;
    let b = budget::budget(&entries(&history), &humans, Some(clock::now()));
    for p in &b.problems {
        tracing::warn!("{branch}: {p}");
    }
    let mut out = Out::new();
    if args.json {
        out.json(&Report { branch: &branch, state: state.as_ref().map(State::as_str), budget: &b })?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let for_state = state.as_ref().map(|s| format!(" ({s})")).unwrap_or_default();
    let reasons = if b.reasons.is_empty() { String::new() } else { format!(" — {}", b.reasons.join("; ")) };
    out.line(&format!("{branch}{for_state}: {}{reasons}", b.status.as_str()))?;
    let row = |name: &str, limit: Option<String>, from: String, spent: String, left: Option<String>| {
        let dash = || "-".to_owned();
        format!(
            "{name:<7}  {:>8}  {from:<40}  {spent:>8}  {:>8}",
            limit.unwrap_or_else(dash),
            left.unwrap_or_else(dash)
        )
    };
    fn from<T>(l: &Limit<T>) -> String {
        match (&l.value, &l.at) {
            (None, _) => "none".to_owned(),
            (Some(_), Some(at)) if l.from == budget::LimitFrom::Task => {
                format!("task trailer on {}", &at[..at.len().min(12)])
            }
            (Some(_), Some(at)) => format!("policy {at}"),
            (Some(_), None) => "policy".to_owned(),
        }
    }
    out.line(&format!("{:<7}  {:>8}  {:<40}  {:>8}  {:>8}", "", "LIMIT", "FROM", "SPENT", "LEFT"))?;
    let (l, s) = (&b.limits, &b.spent);
    out.line(&row(
        "runs",
        l.runs.value.map(|v| v.to_string()),
        from(&l.runs),
        s.runs.to_string(),
        b.left.runs.map(|v| v.to_string()),
    ))?;
    out.line(&row(
        "seconds",
        l.seconds.value.map(|v| v.to_string()),
        from(&l.seconds),
        s.seconds.to_string(),
        b.left.seconds.map(|v| v.to_string()),
    ))?;
    out.line(&row(
        "cost",
        l.cost.value.map(|v| v.to_string()),
        from(&l.cost),
        s.cost.to_string(),
        b.left.cost.map(|v: Money| v.to_string()),
    ))?;
    out.line(&row("tokens", None, "-".to_owned(), s.tokens.to_string(), None))?;
    let since = match &b.since {
        Some(id) => format!("since the budget reset {}", &id[..id.len().min(12)]),
        None => "since the task began".to_owned(),
    };
    out.line(&format!("spent {since}: {}", spent_line(&b)))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// For `metrics`: what each task spent on its own history (since it branched off the default
/// branch; resets ignored; with `since`, commits at or after it). A branch with no such base (the
/// default branch itself) is no task.
pub(super) fn add_tasks(repo: &Repo, branches: &[BranchHead], since: Option<i64>, m: &mut Metrics) {
    let now = clock::now();
    for b in branches {
        let Some(base) = default_base(repo, None, &b.branch, b.id) else {
            continue;
        };
        let history = match repo.first_parents(b.id, Some(base), WALK_LIMIT) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("{}: history cannot be read, its spend is not counted: {e:#}", b.branch);
                continue;
            }
        };
        let mut e = entries(&history);
        if let Some(s) = since {
            e.retain(|x| x.time >= s);
        }
        m.add_task(&b.branch, budget::count(&e, false, Some(now)).spent);
    }
}

/// For `metrics`: the escalation band, and the spend tables (when anything was spent).
pub(super) fn print_metrics(out: &mut Out, m: &Metrics) -> std::io::Result<()> {
    if let Some(band) = m.escalation_band {
        out.line(&format!(
            "escalation band: {band} (healthy: 10-15%); dwp-escalation commits instead of a run: {}",
            m.escalation_commits
        ))?;
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let states: Vec<_> = m.states.iter().filter(|(_, s)| s.cost.is_some() || s.tokens.is_some()).collect();
    if !states.is_empty() {
        out.line("")?;
        let width = states.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(5);
        out.line(&format!("{:width$}  {:>10}  {:>12}", "STATE", "COST", "TOKENS"))?;
        for (name, s) in states {
            out.line(&format!(
                "{name:width$}  {:>10}  {:>12}",
                opt(s.cost.map(|c| c.to_string())),
                opt(s.tokens.map(|t| t.to_string()))
            ))?;
        }
    }
    if !m.tasks.is_empty() {
        out.line("")?;
        let width = m.tasks.keys().map(String::len).max().unwrap_or(4).max(4);
        out.line(&format!("{:width$}  {:>6}  {:>8}  {:>10}  {:>12}", "TASK", "RUNS", "SECONDS", "COST", "TOKENS"))?;
        for (name, t) in &m.tasks {
            out.line(&format!(
                "{name:width$}  {:>6}  {:>8}  {:>10}  {:>12}",
                t.runs,
                t.seconds,
                t.cost.to_string(),
                t.tokens
            ))?;
        }
    }
    Ok(())
}
