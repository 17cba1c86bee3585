//! `git baton metrics`: run counts, failure rates and durations, what failures became (retries,
//! dead letters) and circuit breaker trips, read from history alone.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::log::human_duration;
use super::scan::{local_branches, parse_since, records_of_branches};
use super::Out;
use crate::history::metrics::BreakerChange;
use crate::history::{Metrics, Record};
use crate::recovery::Breaker;
use crate::repo::Repo;
use crate::runner::breakers::PREFIX as BREAKERS;
use crate::runner::clock::iso_utc;

/// Count the runs of every local branch (or those matching `--branch`): per origin state the
/// runs, how many succeeded, failed, stalled or are still running, and the p50/p95/max duration
/// of finished runs (nearest rank); per runner the runs and failures; and the escalation rate —
/// the share of finished runs that ended in a state waiting for a person (`blocked`, `waiting`).
/// History shared by several branches is counted once.
///
/// Failures: per state the runs by attempt number (the `dwp-attempt` the runner read from the
/// run's trigger, 1 without one) and the mean attempts per task-round (a round is one hand-over
/// of the task to the state with its retries: runs / rounds); the runs that were retries (their
/// trigger is a runner's retry commit, `dwp-retry-of`) and the share of the finished ones that
/// succeeded; the retries runners scheduled and the dead letters they wrote, by error type; and
/// per circuit breaker (`refs/baton/breakers/*`, local refs) how often it opened, counted on its
/// chain of commits so that `--since` applies.
///
/// Spend: per state the `dwp-cost` and `dwp-tokens` its handlers reported on their commits and
/// answers; per task (branch) its runs, handler seconds, cost and tokens since it branched off
/// the default branch (resets ignored). Escalations also count the `dwp-escalation` commits
/// runners wrote instead of a run (a loop cap, a used-up budget), and the rate is placed in the
/// playbook's bands: `too autonomous` (< 5 %), `low` (5–10 %), `healthy` (10–15 %), `high`
/// (15–25 %), `human does the work` (> 25 %).
///
/// `--json` prints one object: `{"states":{"<state>":{"runs","succeeded","failed","stalled",
/// "running","p50_ms","p95_ms","max_ms","attempts":{"<n>":runs},"rounds","mean_attempts"}},
/// "runners":{"<runner-id>":{"runs","failed","stalled"}},"escalation_rate","escalations","runs",
/// "finished","retries":{"runs","finished","succeeded","success_rate","scheduled":{"<error-type>":
/// n}},"dead_letters":{"<error-type>":n},"breakers":{"<name>":{"trips","last_trip",
/// "last_reason"}},"escalation_band","escalation_commits","tasks":{"<branch>":{"runs","seconds",
/// "cost","tokens"}}}` and `"cost","tokens"` in each state (`escalation_rate` and the durations are null when nothing finished,
/// `success_rate` when no retry finished, `mean_attempts` without runs, `last_trip` (epoch
/// seconds) without trips; a claim without origin state or runner id, and a failure record
/// without `dwp-error-type`, counts under `(unknown)`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only runs that started at or after DATE (any date git reads: `2026-11-23`,
    /// `2026-11-23T09:00:00Z`, `@1700000000`, `2.weeks.ago`, "2 weeks ago", `yesterday`; UTC).
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
        match &r {
            Record::Run(run) => metrics.add(run),
            Record::Event(event) => metrics.add_event(event),
        }
    }
    super::budget::add_tasks(&repo, &branches, since, &mut metrics);
    for (name, id) in repo.refs_under(BREAKERS)? {
        let (chain, root) = breaker_chain(&repo, &name, id, since);
        metrics.add_breaker(&name, &chain, root, since);
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
        "{} runs, {} finished; escalation rate {rate} ({} handed to a person)",
        m.runs, m.finished, m.escalations
    ))?;
    super::budget::print_metrics(&mut out, &m)?;
    out.line("")?;
    let width = m.states.keys().map(String::len).max().unwrap_or(5).max(5);
    out.line(&format!("{:width$}  {:>6}  {:>14}  RUNS BY ATTEMPT", "STATE", "ROUNDS", "ATTEMPTS/ROUND"))?;
    for (name, s) in &m.states {
        let mean = s.mean_attempts.map_or("-".to_owned(), |v| format!("{v:.2}"));
        let by: Vec<String> = s.attempts.iter().map(|(n, runs)| format!("#{n}: {runs}")).collect();
        out.line(&format!("{name:width$}  {:>6}  {mean:>14}  {}", s.rounds, by.join(", ")))?;
    }
    let r = &m.retries;
    let share = r.success_rate.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));
    out.line(&format!(
        "retries: {} runs were retries; {} of {} finished succeeded ({share}); scheduled: {}",
        r.runs,
        r.succeeded,
        r.finished,
        by_type(&r.scheduled)
    ))?;
    out.line(&format!("dead letters: {}", by_type(&m.dead_letters)))?;
    if !m.breakers.is_empty() {
        out.line("")?;
        let width = m.breakers.keys().map(String::len).max().unwrap_or(7).max(7);
        out.line(&format!("{:width$}  {:>5}  {:20}  REASON", "BREAKER", "TRIPS", "LAST TRIP"))?;
        for (name, b) in &m.breakers {
            out.line(&format!(
                "{name:width$}  {:>5}  {:20}  {}",
                b.trips,
                b.last_trip.map_or("-".to_owned(), iso_utc),
                b.last_reason.as_deref().filter(|_| b.trips > 0).unwrap_or("-")
            ))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `logic 1, transient 2`, or `none`.
fn by_type(counts: &std::collections::BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ")
}

/// Breaker `name`'s chain from its head `id`, newest first: the commits at or after `since` and
/// the one before them (the baseline for their trip counter); and whether the walk reached the
/// chain's root. A commit that cannot be read ends the walk with a warning (what was read is
/// counted, the last commit read as the baseline).
fn breaker_chain(repo: &Repo, name: &str, id: crate::repo::ObjectId, since: Option<i64>) -> (Vec<BreakerChange>, bool) {
    let mut chain = Vec::new();
    let mut next = Some(id);
    while let Some(id) = next {
        let c = match repo.commit(id) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("breaker {name}: {e:#}; its older history is not counted");
                return (chain, false);
            }
        };
        let b = Breaker::from_trailers(&c.trailers);
        chain.push(BreakerChange { time: c.committer_time, trips: b.trips, reason: b.reason });
        if since.is_some_and(|s| c.committer_time < s) {
            return (chain, false);
        }
        next = c.parents.first().copied();
    }
    (chain, true)
}
