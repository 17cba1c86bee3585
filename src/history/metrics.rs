//! Metrics: runs counted per origin state and per runner, durations as nearest-rank
//! percentiles, the escalation rate — the share of finished runs whose outcome waits for a
//! person (`blocked`, `waiting`) — and what failures became: attempts per run and per task-round,
//! how often a retry succeeded, retries scheduled and dead letters by error type, and circuit
//! breaker trips.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::budget::Spent;
use super::runs::{Event, FailureRecord, Run, RunResult};
use crate::policy::Money;
use crate::protocol::Reserved;

/// The key used for runs whose claim names no origin state or runner.
pub const UNKNOWN: &str = "(unknown)";

/// Counts for the runs of one origin state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StateStats {
    pub runs: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub stalled: u64,
    pub running: u64,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub max_ms: Option<u64>,
    /// Runs by attempt number: the `dwp-attempt` the runner read from the run's trigger (the
    /// attempt the handler was told, `BATON_ATTEMPT`); 1 without one.
    pub attempts: BTreeMap<u32, u64>,
    /// Task-rounds: hand-overs of a task to this state, each with its retries. A run starts a
    /// round unless it is a retry of a run counted here (a retry whose earlier attempt is outside
    /// the counted history starts one).
    pub rounds: u64,
    /// Runs per task-round (null without runs).
    pub mean_attempts: Option<f64>,
    /// What its handlers reported (`dwp-cost`, `dwp-tokens` on their commits and answers; null
    /// when no run reported any).
    pub cost: Option<Money>,
    pub tokens: Option<u64>,
    #[serde(skip)]
    durations: Vec<u64>,
    /// The `retry_of` of the runs that are retries.
    #[serde(skip)]
    retry_of: Vec<String>,
}

/// Runs whose trigger was a runner's retry commit, and the retries runners scheduled.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetryStats {
    /// Runs that were retries (their trigger carries `dwp-retry-of`).
    pub runs: u64,
    /// Of those, the finished ones, and those that succeeded.
    pub finished: u64,
    pub succeeded: u64,
    /// `succeeded` / `finished` (null when no retry finished).
    pub success_rate: Option<f64>,
    /// Retry commits written (failure records with `dwp-retry-of`), by `dwp-error-type`.
    pub scheduled: BTreeMap<String, u64>,
}

/// What one circuit breaker's chain of commits shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BreakerStats {
    /// Times it opened: closed → open, a failed half-open probe re-opening it, opened by hand.
    pub trips: u64,
    /// Committer time of the newest commit that opened it (null without trips).
    pub last_trip: Option<i64>,
    /// Its `dwp-breaker-reason` (why it opened).
    pub last_reason: Option<String>,
}

/// One commit of a breaker's chain (`refs/baton/breakers/<name>`), as the metrics read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerChange {
    /// Committer time.
    pub time: i64,
    /// `dwp-breaker-trips`: openings ever, as of this commit.
    pub trips: u32,
    /// `dwp-breaker-reason`.
    pub reason: Option<String>,
}

/// Counts for the runs of one runner id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunnerStats {
    pub runs: u64,
    pub failed: u64,
    pub stalled: u64,
}

/// Everything `git baton metrics` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub states: BTreeMap<String, StateStats>,
    pub runners: BTreeMap<String, RunnerStats>,
    /// Escalations over decisions: finished runs whose outcome is `blocked` or `waiting` or
    /// whose end carries `dwp-escalation`, plus the `dwp-escalation` commits runners wrote instead
    /// of a run (loop cap, budget), over finished runs plus those commits (null without any).
    pub escalation_rate: Option<f64>,
    /// Where the rate lies against the healthy band of 10–15 % (null without a rate).
    pub escalation_band: Option<&'static str>,
    pub escalations: u64,
    /// Of the escalations, the `dwp-escalation` commits outside runs.
    pub escalation_commits: u64,
    pub runs: u64,
    pub finished: u64,
    pub retries: RetryStats,
    /// Dead letters (failure records with `dwp-dead-letter`), by its value (the error type).
    pub dead_letters: BTreeMap<String, u64>,
    /// Circuit breakers by name.
    pub breakers: BTreeMap<String, BreakerStats>,
    /// What each task (branch) spent on its own history: runs, handler seconds, reported cost
    /// and tokens (tasks that spent nothing are left out).
    pub tasks: BTreeMap<String, Spent>,
    /// Run ids of the runs added, to tell a retry of a counted run from a round of its own.
    #[serde(skip)]
    run_ids: HashSet<String>,
}

impl Metrics {
    pub fn add(&mut self, run: &Run) {
        let state = self.states.entry(run.origin.clone().unwrap_or_else(|| UNKNOWN.into())).or_default();
        let runner = self.runners.entry(run.runner.clone().unwrap_or_else(|| UNKNOWN.into())).or_default();
        self.runs += 1;
        state.runs += 1;
        runner.runs += 1;
        match run.result {
            RunResult::Succeeded => state.succeeded += 1,
            RunResult::Failed => {
                state.failed += 1;
                runner.failed += 1;
            }
            RunResult::Stalled => {
                state.stalled += 1;
                runner.stalled += 1;
            }
            RunResult::Running => state.running += 1,
        }
        if let Some(ms) = run.duration_ms() {
            self.finished += 1;
            state.durations.push(ms);
        }
        let waits = |s: &str| s == Reserved::Blocked.as_str() || s == Reserved::Waiting.as_str();
        if run.finished.is_some() && (run.outcome.as_deref().is_some_and(waits) || run.escalated) {
            self.escalations += 1;
        }
        let reported = run.reported.as_deref().copied().unwrap_or_default();
        if let Some(c) = reported.cost {
            state.cost = Some(Money(state.cost.unwrap_or_default().0.saturating_add(c.0)));
        }
        if let Some(t) = reported.tokens {
            state.tokens = Some(state.tokens.unwrap_or_default().saturating_add(t));
        }
        *state.attempts.entry(run.attempt.unwrap_or(1).max(1)).or_default() += 1;
        if let Some(of) = &run.retry_of {
            state.retry_of.push(of.clone());
            self.retries.runs += 1;
            if run.result != RunResult::Running {
                self.retries.finished += 1;
            }
            if run.result == RunResult::Succeeded {
                self.retries.succeeded += 1;
            }
        }
        if let Some(id) = &run.run_id {
            self.run_ids.insert(id.clone());
        }
        if let Some(f) = &run.failure {
            self.add_failure(f);
        }
    }

    /// A state commit outside a run: a runner's failure record still counts as a retry
    /// scheduled or a dead letter.
    pub fn add_event(&mut self, event: &Event) {
        if let Some(f) = &event.failure {
            self.add_failure(f);
        }
        if event.escalated {
            self.escalations += 1;
            self.escalation_commits += 1;
        }
    }

    /// What task `branch` spent (see [`super::budget::count`]); nothing spent, nothing shown.
    pub fn add_task(&mut self, branch: &str, spent: Spent) {
        if spent != Spent::default() {
            self.tasks.insert(branch.to_owned(), spent);
        }
    }

    fn add_failure(&mut self, f: &FailureRecord) {
        let error_type = || f.error_type.clone().unwrap_or_else(|| UNKNOWN.into());
        if f.retry {
            *self.retries.scheduled.entry(error_type()).or_default() += 1;
        }
        if let Some(kind) = &f.dead_letter {
            *self.dead_letters.entry(kind.clone()).or_default() += 1;
        }
    }

    /// Breaker `name` from its chain of commits, newest first: every commit at or after `since`,
    /// then the one before them when there is one. A commit's trips are the growth of
    /// `dwp-breaker-trips` over its parent's (the counter grows exactly when the breaker opens),
    /// so only openings recorded in the window count; the oldest commit of `chain` counts from 0
    /// only when it is the chain's `root` (else it is the baseline: its parent could not be read).
    pub fn add_breaker(&mut self, name: &str, chain: &[BreakerChange], root: bool, since: Option<i64>) {
        let stats = self.breakers.entry(name.to_owned()).or_default();
        for (i, c) in chain.iter().enumerate() {
            if since.is_some_and(|s| c.time < s) {
                continue;
            }
            let before = match chain.get(i + 1) {
                Some(parent) => parent.trips,
                None if root => 0,
                None => continue,
            };
            let opened = c.trips.saturating_sub(before);
            if opened > 0 {
                stats.trips += u64::from(opened);
                if stats.last_trip.is_none() {
                    stats.last_trip = Some(c.time);
                    stats.last_reason = c.reason.clone();
                }
            }
        }
    }

    /// Compute the percentiles and the rate; call once after the last [`Metrics::add`].
    pub fn finish(mut self) -> Metrics {
        for s in self.states.values_mut() {
            s.durations.sort_unstable();
            s.p50_ms = percentile(&s.durations, 50);
            s.p95_ms = percentile(&s.durations, 95);
            s.max_ms = s.durations.last().copied();
            let continued = s.retry_of.iter().filter(|of| self.run_ids.contains(*of)).count() as u64;
            s.rounds = s.runs - continued;
            s.mean_attempts = (s.rounds > 0).then(|| s.runs as f64 / s.rounds as f64);
        }
        let decisions = self.finished + self.escalation_commits;
        self.escalation_rate = (decisions > 0).then(|| self.escalations as f64 / decisions as f64);
        self.escalation_band = (decisions > 0).then(|| escalation_band(self.escalations, decisions));
        let r = &mut self.retries;
        r.success_rate = (r.finished > 0).then(|| r.succeeded as f64 / r.finished as f64);
        self
    }
}

/// The playbook's bands for the escalation rate, `escalations` of `decisions` (exact: no float
/// rounding at the edges): below 5 % `too autonomous`, below 10 % `low`, 10–15 % `healthy`, up to
/// 25 % `high`, above it `human does the work`.
pub fn escalation_band(escalations: u64, decisions: u64) -> &'static str {
    let (e, d) = (u128::from(escalations) * 100, u128::from(decisions));
    if e < d * 5 {
        "too autonomous"
    } else if e < d * 10 {
        "low"
    } else if e <= d * 15 {
        "healthy"
    } else if e <= d * 25 {
        "high"
    } else {
        "human does the work"
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p` % of the values
/// at or below it.
pub fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::ObjectId;

    fn run(origin: &str, runner: &str, result: RunResult, outcome: &str, secs: i64) -> Run {
        let running = result == RunResult::Running;
        Run {
            run_id: None,
            origin: Some(origin.into()),
            runner: Some(runner.into()),
            claim: ObjectId::null(gix::hash::Kind::Sha1),
            started: 1000,
            end: None,
            finished: (!running).then_some(1000 + secs),
            result,
            outcome: (!running).then(|| outcome.into()),
            exit_code: None,
            error: None,
            trigger: None,
            requested_by: None,
            author: None,
            commits: 0,
            heartbeats: 0,
            attempt: None,
            retry_of: None,
            failure: None,
            superseded_by: None,
            visible: true,
            reported: None,
            escalated: false,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&v, 50), Some(10));
        assert_eq!(percentile(&v, 95), Some(19));
        assert_eq!(percentile(&v, 100), Some(20));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[1, 2], 50), Some(1));
    }

    #[test]
    fn counts_per_state_and_runner_and_escalations() {
        use RunResult::*;
        let mut m = Metrics::default();
        for r in [
            run("build", "a", Succeeded, "review", 10),
            run("build", "a", Failed, "failed", 2),
            run("build", "b", Stalled, "stalled", 400),
            run("review", "b", Succeeded, "blocked", 30),
            run("review", "b", Running, "", 0),
        ] {
            m.add(&r);
        }
        let m = m.finish();
        let build = &m.states["build"];
        assert_eq!((build.runs, build.succeeded, build.failed, build.stalled), (3, 1, 1, 1));
        assert_eq!((build.p50_ms, build.p95_ms, build.max_ms), (Some(10_000), Some(400_000), Some(400_000)));
        let review = &m.states["review"];
        assert_eq!((review.runs, review.running, review.p50_ms), (2, 1, Some(30_000)));
        assert_eq!(m.runners["a"], RunnerStats { runs: 2, failed: 1, stalled: 0 });
        assert_eq!(m.runners["b"], RunnerStats { runs: 3, failed: 0, stalled: 1 });
        assert_eq!((m.runs, m.finished, m.escalations), (5, 4, 1));
        assert_eq!(m.escalation_rate, Some(0.25));
        assert_eq!(Metrics::default().finish().escalation_rate, None);
    }
}

#[cfg(test)]
mod failure_tests {
    use super::*;
    use crate::history::runs::EventKind;
    use crate::repo::ObjectId;

    /// A run of `origin`: its id, the run it retries, its attempt, how it ended and its record
    /// (`retry` / `dead` with the error type).
    struct R(
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<u32>,
        RunResult,
        Option<(&'static str, &'static str)>,
    );

    fn run(r: &R) -> Run {
        let R(origin, id, retry_of, attempt, result, record) = *r;
        let running = result == RunResult::Running;
        Run {
            run_id: Some(id.into()),
            origin: Some(origin.into()),
            runner: Some("h:1".into()),
            claim: ObjectId::null(gix::hash::Kind::Sha1),
            started: 1000,
            end: None,
            finished: (!running).then_some(1001),
            result,
            outcome: None,
            exit_code: None,
            error: None,
            trigger: None,
            requested_by: None,
            author: None,
            commits: 0,
            heartbeats: 0,
            attempt,
            retry_of: retry_of.map(Into::into),
            failure: record.map(|(what, t)| FailureRecord {
                error_type: (!t.is_empty()).then(|| t.into()),
                retry: what == "retry",
                dead_letter: (what == "dead").then(|| t.into()),
            }),
            superseded_by: None,
            visible: true,
            reported: None,
            escalated: false,
        }
    }

    fn metrics(runs: &[R]) -> Metrics {
        let mut m = Metrics::default();
        for r in runs {
            m.add(&run(r));
        }
        m.finish()
    }

    #[test]
    fn attempts_rounds_retries_and_dead_letters() {
        use RunResult::*;
        let retry = |t| Some(("retry", t));
        let dead = |t| Some(("dead", t));
        // Each case: runs (any order), then per state (attempt → runs, rounds, mean), the retry
        // runs (runs, finished, succeeded, rate), retries scheduled and dead letters by type.
        type Case = (
            Vec<R>,
            Vec<(&'static str, Vec<(u32, u64)>, u64, Option<f64>)>,
            (u64, u64, u64, Option<f64>),
            Vec<(&'static str, u64)>,
            Vec<(&'static str, u64)>,
        );
        let cases: Vec<Case> = vec![
            // Nothing failed: one round per run.
            (
                vec![R("build", "a", None, None, Succeeded, None), R("build", "b", None, None, Succeeded, None)],
                vec![("build", vec![(1, 2)], 2, Some(1.0))],
                (0, 0, 0, None),
                vec![],
                vec![],
            ),
            // Transient twice, then success; a logic error retried once, then a dead letter.
            (
                vec![
                    R("build", "b1", None, None, Failed, retry("transient")),
                    R("build", "b2", Some("b1"), Some(2), Failed, retry("transient")),
                    R("build", "b3", Some("b2"), Some(3), Succeeded, None),
                    R("check", "c1", None, None, Failed, retry("logic")),
                    R("check", "c2", Some("c1"), Some(2), Failed, dead("logic")),
                ],
                vec![
                    ("build", vec![(1, 1), (2, 1), (3, 1)], 1, Some(3.0)),
                    ("check", vec![(1, 1), (2, 1)], 1, Some(2.0)),
                ],
                (3, 3, 1, Some(1.0 / 3.0)),
                vec![("logic", 1), ("transient", 2)],
                vec![("logic", 1)],
            ),
            // Order does not matter; a retry whose first attempt is not counted is a round of its
            // own; a running retry is not finished; a record without a type is "(unknown)"; an
            // attempt of 0 counts as 1.
            (
                vec![
                    R("build", "x2", Some("x1"), Some(2), Running, None),
                    R("build", "y2", Some("y1"), Some(2), Succeeded, None),
                    R("build", "x1", None, Some(0), Failed, retry("")),
                    R("build", "z9", Some("gone"), Some(4), Failed, dead("timeout")),
                ],
                vec![("build", vec![(1, 1), (2, 2), (4, 1)], 3, Some(4.0 / 3.0))],
                (3, 2, 1, Some(0.5)),
                vec![("(unknown)", 1)],
                vec![("timeout", 1)],
            ),
        ];
        for (i, (runs, states, retries, scheduled, dead_letters)) in cases.into_iter().enumerate() {
            let m = metrics(&runs);
            for (name, attempts, rounds, mean) in states {
                let s = &m.states[name];
                assert_eq!(s.attempts, attempts.into_iter().collect::<BTreeMap<_, _>>(), "case {i} {name}");
                assert_eq!((s.rounds, s.mean_attempts), (rounds, mean), "case {i} {name}");
            }
            let r = &m.retries;
            assert_eq!((r.runs, r.finished, r.succeeded, r.success_rate), retries, "case {i}");
            let owned = |v: Vec<(&str, u64)>| v.into_iter().map(|(k, n)| (k.to_owned(), n)).collect::<BTreeMap<_, _>>();
            assert_eq!(r.scheduled, owned(scheduled), "case {i}");
            assert_eq!(m.dead_letters, owned(dead_letters), "case {i}");
        }
    }

    #[test]
    fn failure_events_count_too() {
        let mut m = Metrics::default();
        let event = |failure| Event {
            kind: EventKind::Failure,
            commit: ObjectId::null(gix::hash::Kind::Sha1),
            time: 0,
            previous: None,
            state: Some("failed".into()),
            author: String::new(),
            resumed_from: None,
            run_id: None,
            failure,
            visible: true,
            escalated: false,
        };
        m.add_event(&event(Some(FailureRecord {
            error_type: Some("auth".into()),
            retry: false,
            dead_letter: Some("auth".into()),
        })));
        m.add_event(&event(Some(FailureRecord {
            error_type: Some("transient".into()),
            retry: true,
            dead_letter: None,
        })));
        m.add_event(&event(None));
        let m = m.finish();
        assert_eq!(m.dead_letters, BTreeMap::from([("auth".to_owned(), 1)]));
        assert_eq!(m.retries.scheduled, BTreeMap::from([("transient".to_owned(), 1)]));
        assert_eq!((m.runs, m.retries.runs, m.retries.success_rate), (0, 0, None));
    }

    #[test]
    fn breaker_trips_are_counted_from_the_chain_within_the_window() {
        let c = |time, trips, reason: Option<&str>| BreakerChange { time, trips, reason: reason.map(Into::into) };
        // Newest first: opened at 100 (1), failures, probe failed at 400 (2), closed at 600,
        // opened again at 900 (3), reset at 950 (trips kept).
        let chain = [
            c(950, 3, Some("3 failures within 60s")),
            c(900, 3, Some("3 failures within 60s")),
            c(600, 2, Some("the half-open probe failed")),
            c(400, 2, Some("the half-open probe failed")),
            c(100, 1, Some("3 failures within 60s")),
            c(50, 0, None),
        ];
        // (chain, root, since) → (trips, last_trip, last_reason)
        type Want = (u64, Option<i64>, Option<&'static str>);
        let cases: [(&[BreakerChange], bool, Option<i64>, Want); 6] = [
            (&chain, true, None, (3, Some(900), Some("3 failures within 60s"))),
            (&chain[..5], true, Some(300), (2, Some(900), Some("3 failures within 60s"))),
            (&chain[..2], false, Some(920), (0, None, None)),
            (&chain[2..], true, Some(0), (2, Some(400), Some("the half-open probe failed"))),
            // A root commit that already says 2 trips: both count.
            (&chain[3..4], true, None, (2, Some(400), Some("the half-open probe failed"))),
            // Its parent unreadable: the oldest commit is only the baseline.
            (&chain[..3], false, None, (1, Some(900), Some("3 failures within 60s"))),
        ];
        for (i, (chain, root, since, (trips, last, reason))) in cases.into_iter().enumerate() {
            let mut m = Metrics::default();
            m.add_breaker("anthropic", chain, root, since);
            let b = &m.finish().breakers["anthropic"];
            assert_eq!((b.trips, b.last_trip, b.last_reason.as_deref()), (trips, last, reason), "case {i}");
        }
        // A counter that went down (a hand-written commit) is no trip.
        let mut m = Metrics::default();
        m.add_breaker("b", &[c(10, 0, None), c(5, 4, None)], false, None);
        assert_eq!(m.breakers["b"].trips, 0);
    }
}

#[cfg(test)]
mod spend_tests {
    use super::*;
    use crate::history::runs::EventKind;
    use crate::repo::ObjectId;

    fn run(origin: &str, outcome: &str, cost: Option<u64>, tokens: Option<u64>, escalated: bool) -> Run {
        Run {
            run_id: None,
            origin: Some(origin.into()),
            runner: Some("h:1".into()),
            claim: ObjectId::null(gix::hash::Kind::Sha1),
            started: 1000,
            end: None,
            finished: Some(1001),
            result: RunResult::Succeeded,
            outcome: Some(outcome.into()),
            exit_code: None,
            error: None,
            trigger: None,
            requested_by: None,
            author: None,
            commits: 1,
            heartbeats: 0,
            attempt: None,
            retry_of: None,
            failure: None,
            superseded_by: None,
            visible: true,
            reported: Some(Box::new(crate::history::runs::Reported { cost: cost.map(Money), tokens })),
            escalated,
        }
    }

    #[test]
    fn cost_and_tokens_per_state_and_task() {
        let mut m = Metrics::default();
        m.add(&run("work", "work", Some(600_000), Some(100), false));
        m.add(&run("work", "review", Some(600_000), None, false));
        m.add(&run("review", "done", None, None, false));
        m.add_task("t1", Spent { runs: 3, seconds: 12, cost: Money(1_200_000), tokens: 100 });
        m.add_task("idle", Spent::default());
        let m = m.finish();
        assert_eq!((m.states["work"].cost, m.states["work"].tokens), (Some(Money(1_200_000)), Some(100)));
        assert_eq!((m.states["review"].cost, m.states["review"].tokens), (None, None));
        assert_eq!(m.tasks.keys().collect::<Vec<_>>(), ["t1"], "a task that spent nothing is left out");
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["states"]["work"]["cost"], 1.2);
        assert_eq!(json["states"]["review"]["cost"], serde_json::Value::Null);
        assert_eq!(json["tasks"]["t1"], serde_json::json!({"runs":3,"seconds":12,"cost":1.2,"tokens":100}));
    }

    #[test]
    fn escalation_commits_count_and_the_rate_has_a_band() {
        let escalation = |escalated: bool| Event {
            kind: EventKind::Send,
            commit: ObjectId::null(gix::hash::Kind::Sha1),
            time: 0,
            previous: Some("work".into()),
            state: Some("blocked".into()),
            author: String::new(),
            resumed_from: None,
            run_id: None,
            failure: None,
            visible: true,
            escalated,
        };
        let mut m = Metrics::default();
        for _ in 0..6 {
            m.add(&run("work", "work", None, None, false));
        }
        m.add(&run("review", "blocked", None, None, false));
        m.add(&run("review", "review", None, None, true));
        m.add_event(&escalation(true));
        m.add_event(&escalation(false));
        let m = m.finish();
        // 8 finished runs (2 escalated) + 1 escalation commit: 3 of 9.
        assert_eq!((m.escalations, m.escalation_commits, m.finished), (3, 1, 8));
        assert_eq!(m.escalation_rate, Some(3.0 / 9.0));
        assert_eq!(m.escalation_band, Some("human does the work"));
        assert_eq!(Metrics::default().finish().escalation_band, None);
        for (e, d, want) in [
            (0, 10, "too autonomous"),
            (1, 21, "too autonomous"),
            (1, 20, "low"),
            (9, 100, "low"),
            (1, 10, "healthy"),
            (3, 20, "healthy"),
            (16, 100, "high"),
            (1, 4, "high"),
            (26, 100, "human does the work"),
        ] {
            assert_eq!(escalation_band(e, d), want, "{e} of {d}");
        }
    }
}
