//! `git baton metrics`: run counts, failure rates and durations, read from history alone.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::log::human_duration;
use super::scan::{local_branches, parse_since, records_of_branches};
use super::Out;
use crate::history::{Metrics, Record};
use crate::repo::Repo;

/// Count the runs of every local branch (or those matching `--branch`): per origin state the
/// runs, how many succeeded, failed, stalled or are still running, and the p50/p95/max duration
/// of finished runs (nearest rank); per runner the runs and failures; and the escalation rate —
/// the share of finished runs that ended in a state waiting for a person (`blocked`, `waiting`).
/// History shared by several branches is counted once.
///
/// `--json` prints one object: `{"states":{"<state>":{"runs","succeeded","failed","stalled",
/// "running","p50_ms","p95_ms","max_ms"}},"runners":{"<runner-id>":{"runs","failed",
/// "stalled"}},"escalation_rate","escalations","runs","finished"}` (`escalation_rate` and the
/// durations are null when nothing finished; a claim without origin state or runner id counts
/// under `(unknown)`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only runs that started at or after DATE (seconds since the epoch, YYYY-MM-DD or
    /// YYYY-MM-DDTHH:MM:SSZ, UTC).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Only branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    branches: Vec<String>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn cmd_metrics(cwd: &Path, args: Args) -> Result<ExitCode> {
    let since = parse_since(args.since.as_deref())?;
    let repo = Repo::discover(cwd)?;
    let branches = local_branches(&repo, &args.branches)?;
    let mut metrics = Metrics::default();
    for r in records_of_branches(&repo, &branches, since)? {
        if let Record::Run(run) = &r {
            metrics.add(run);
        }
    }
    let m = metrics.finish();
    let mut out = Out::new();
    if args.json {
        out.json(&m)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), human_duration);
    let width = m.states.keys().map(String::len).max().unwrap_or(5).max(5);
    out.line(&format!(
        "{:width$}  {:>6}  {:>9}  {:>6}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}",
        "STATE", "RUNS", "SUCCEEDED", "FAILED", "STALLED", "RUNNING", "P50", "P95", "MAX"
    ))?;
    for (name, s) in &m.states {
        out.line(&format!(
            "{name:width$}  {:>6}  {:>9}  {:>6}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}",
            s.runs,
            s.succeeded,
            s.failed,
            s.stalled,
            s.running,
            ms(s.p50_ms),
            ms(s.p95_ms),
            ms(s.max_ms)
        ))?;
    }
    out.line("")?;
    let width = m.runners.keys().map(String::len).max().unwrap_or(6).max(6);
    out.line(&format!("{:width$}  {:>6}  {:>6}  {:>7}", "RUNNER", "RUNS", "FAILED", "STALLED"))?;
    for (name, r) in &m.runners {
        out.line(&format!("{name:width$}  {:>6}  {:>6}  {:>7}", r.runs, r.failed, r.stalled))?;
    }
    out.line("")?;
    let rate = m.escalation_rate.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0));
    out.line(&format!(
        "{} runs, {} finished; escalation rate {rate} ({} ended in blocked or waiting)",
        m.runs, m.finished, m.escalations
    ))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
