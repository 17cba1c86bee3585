//! Metrics: runs counted per origin state and per runner, durations as nearest-rank
//! percentiles, and the escalation rate — the share of finished runs whose outcome waits for a
//! person (`blocked`, `waiting`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::runs::{Run, RunResult};
use crate::protocol::Reserved;

/// The key used for runs whose claim names no origin state or runner.
pub const UNKNOWN: &str = "(unknown)";

/// Counts for the runs of one origin state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StateStats {
    pub runs: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub stalled: u64,
    pub running: u64,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub max_ms: Option<u64>,
    #[serde(skip)]
    durations: Vec<u64>,
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
    /// Finished runs whose outcome is `blocked` or `waiting`, over all finished runs (null
    /// without finished runs).
    pub escalation_rate: Option<f64>,
    pub escalations: u64,
    pub runs: u64,
    pub finished: u64,
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
        if run.outcome.as_deref().is_some_and(waits) {
            self.escalations += 1;
        }
    }

    /// Compute the percentiles and the rate; call once after the last [`Metrics::add`].
    pub fn finish(mut self) -> Metrics {
        for s in self.states.values_mut() {
            s.durations.sort_unstable();
            s.p50_ms = percentile(&s.durations, 50);
            s.p95_ms = percentile(&s.durations, 95);
            s.max_ms = s.durations.last().copied();
        }
        self.escalation_rate = (self.finished > 0).then(|| self.escalations as f64 / self.finished as f64);
        self
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
