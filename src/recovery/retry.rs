//! Retries: how many attempts an error type gets, how long to wait before the next one
//! (exponential backoff with a jitter that is a pure function of the run id and the attempt, so
//! every runner computes the same timer and tests can pin it), and what a task that has used them
//! up becomes — a dead letter, with a time after which a sweep may try it again.

use std::fmt;
use std::str::FromStr;

use super::classify::ErrorType;
use crate::policy::FailurePolicy;
use crate::protocol::state::last_text;
use crate::protocol::{Key, Trailer};

/// A task's `dwp-priority`: how soon a dead letter is worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum Priority {
    High,
    #[default]
    Medium,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }

    /// How long a dead letter of this priority waits before a sweep retries it (the playbook's
    /// sweep cadence): high 15 minutes, medium an hour, low a day.
    pub fn retry_after(self) -> u64 {
        match self {
            Priority::High => 15 * 60,
            Priority::Medium => 3600,
            Priority::Low => 86_400,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Priority, String> {
        match s {
            "high" => Ok(Priority::High),
            "medium" => Ok(Priority::Medium),
            "low" => Ok(Priority::Low),
            _ => Err(format!("invalid dwp-priority {s:?} (high, medium or low)")),
        }
    }
}

/// The retry part of a failure policy, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    pub transient: u32,
    pub timeout: u32,
    pub logic: u32,
    pub auth: u32,
    pub state: u32,
    /// Seconds before the first retry.
    pub backoff: u64,
    /// Growth per attempt, in thousandths (2000 = doubling).
    pub factor: u32,
    /// Seconds; the most any delay grows to (before jitter).
    pub max_delay: u64,
    /// Seconds a dead letter waits before a sweep; None: by priority.
    pub dlq_retry_after: Option<u64>,
}

impl RetryConfig {
    pub fn from_policy(p: &FailurePolicy) -> RetryConfig {
        RetryConfig {
            transient: p.retry_transient.value,
            timeout: p.retry_timeout.value,
            logic: p.retry_logic.value,
            auth: p.retry_auth.value,
            state: p.retry_state.value,
            backoff: p.retry_backoff.value,
            factor: p.retry_factor.value.0,
            max_delay: p.retry_max_delay.value,
            dlq_retry_after: p.dlq_retry_after.value,
        }
    }

    /// Retries after the first attempt for this type of error.
    pub fn retries(&self, t: ErrorType) -> u32 {
        match t {
            ErrorType::Transient => self.transient,
            ErrorType::Timeout => self.timeout,
            ErrorType::Logic => self.logic,
            ErrorType::Auth => self.auth,
            ErrorType::State => self.state,
        }
    }
}

/// The attempt a trigger asks for: its `dwp-attempt` when it is a runner's retry commit
/// (`dwp-retry-of`), else 1 — a dead letter's count must not follow the task into the state that
/// handles its failure.
pub fn attempt_of(trigger: &[Trailer]) -> u32 {
    if last_text(trigger, Key::RetryOf).is_none() {
        return 1;
    }
    last_text(trigger, Key::Attempt).and_then(|v| v.trim().parse::<u32>().ok()).unwrap_or(1).max(1)
}

/// FNV-1a: a stable hash (the standard library's is randomised per process).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Milliseconds to wait after attempt `failed` (1-based) failed: `backoff · factor^(failed-1)`,
/// at most `max_delay`, then ±20 % jitter chosen by the run id and the attempt.
pub fn backoff_delay_ms(failed: u32, run_id: &str, cfg: &RetryConfig) -> u64 {
    let growth = (f64::from(cfg.factor) / 1000.0).powi(failed.saturating_sub(1).min(1000) as i32);
    let base = ((cfg.backoff as f64) * growth).min(cfg.max_delay as f64).max(0.0) * 1000.0;
    // A fraction in [0, 1) from the hash, mapped to a factor in [0.8, 1.2).
    let unit = (fnv1a(&[run_id.as_bytes(), &failed.to_be_bytes()]) >> 11) as f64 / (1u64 << 53) as f64;
    (base * (0.8 + 0.4 * unit)).round() as u64
}

/// Whole seconds to wait (rounded to the nearest, at least 1 when there is any backoff).
pub fn backoff_delay(failed: u32, run_id: &str, cfg: &RetryConfig) -> u64 {
    match backoff_delay_ms(failed, run_id, cfg) {
        0 => 0,
        ms => ms.div_ceil(1000).min(ms.saturating_add(500) / 1000).max(1),
    }
}

/// What a failed run leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Back to the origin state for attempt `attempt` (of at most `max_attempts`), not before
    /// `not_before` (epoch seconds).
    Retry { attempt: u32, max_attempts: u32, not_before: i64 },
    /// Retries used up (or none allowed): a dead letter. `retry_after` only for errors a later
    /// try can fix by itself (transient, timeout, auth).
    DeadLetter { attempts: u32, max_attempts: u32, retry_after: Option<i64> },
}

/// Decide after attempt `attempt` (1-based, from the trigger's `dwp-attempt`) failed with `t`.
pub fn after_failure(
    attempt: u32,
    t: ErrorType,
    priority: Priority,
    run_id: &str,
    now: i64,
    cfg: &RetryConfig,
) -> AfterFailure {
    let attempt = attempt.max(1);
    let max_attempts = cfg.retries(t).saturating_add(1);
    if attempt < max_attempts {
        let delay = backoff_delay(attempt, run_id, cfg);
        return AfterFailure::Retry {
            attempt: attempt + 1,
            max_attempts,
            not_before: now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX)),
        };
    }
    let retry_after = t.trips_breaker().then(|| {
        let wait = cfg.dlq_retry_after.unwrap_or(priority.retry_after());
        now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX))
    });
    AfterFailure::DeadLetter { attempts: attempt, max_attempts, retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RetryConfig {
        RetryConfig::from_policy(&FailurePolicy::built_in("build"))
    }

    #[test]
    fn built_in_counts_are_the_playbooks() {
        let c = cfg();
        let max = |t| c.retries(t) + 1;
        assert_eq!(
            [ErrorType::Transient, ErrorType::Timeout, ErrorType::Logic, ErrorType::Auth, ErrorType::State].map(max),
            [4, 3, 3, 1, 1]
        );
    }

    #[test]
    fn backoff_doubles_caps_and_jitters_within_twenty_percent() {
        let c = RetryConfig { backoff: 10, max_delay: 300, ..cfg() };
        for (failed, base) in
            [(1u32, 10_000f64), (2, 20_000.0), (3, 40_000.0), (5, 160_000.0), (6, 300_000.0), (60, 300_000.0)]
        {
            for run in ["a", "b", "run-7", "0b6c2f7e-0000"] {
                let d = backoff_delay_ms(failed, run, &c) as f64;
                assert!(d >= base * 0.8 && d < base * 1.2, "attempt {failed}, run {run}: {d} vs {base}");
            }
        }
        // The same run and attempt always wait the same; different runs spread out.
        assert_eq!(backoff_delay_ms(2, "r1", &c), backoff_delay_ms(2, "r1", &c));
        let spread: std::collections::HashSet<u64> =
            (0..50).map(|i| backoff_delay_ms(2, &format!("run-{i}"), &c)).collect();
        assert!(spread.len() > 30, "jitter does not spread: {spread:?}");
        // Pinned values: the jitter is part of the protocol's observable behaviour.
        assert_eq!(backoff_delay_ms(1, "r1", &c), backoff_delay_ms(1, "r1", &RetryConfig { logic: 9, ..c.clone() }));
        assert_eq!(backoff_delay(1, "r1", &cfg()), 1);
        let slow = RetryConfig { factor: 1500, backoff: 4, max_delay: 3600, ..cfg() };
        let d = backoff_delay_ms(3, "x", &slow) as f64;
        assert!((7_200.0..10_800.0).contains(&d), "{d}");
    }

    #[test]
    fn retries_then_dead_letter() {
        let c = cfg();
        let now = 1_000;
        let r = |attempt, t| after_failure(attempt, t, Priority::Medium, "r", now, &c);
        assert!(
            matches!(r(1, ErrorType::Transient), AfterFailure::Retry { attempt: 2, max_attempts: 4, not_before } if not_before == now + 1)
        );
        assert!(matches!(r(3, ErrorType::Transient), AfterFailure::Retry { attempt: 4, max_attempts: 4, .. }));
        assert_eq!(
            r(4, ErrorType::Transient),
            AfterFailure::DeadLetter { attempts: 4, max_attempts: 4, retry_after: Some(now + 3600) }
        );
        assert!(matches!(r(2, ErrorType::Logic), AfterFailure::Retry { attempt: 3, max_attempts: 3, .. }));
        assert_eq!(
            r(3, ErrorType::Logic),
            AfterFailure::DeadLetter { attempts: 3, max_attempts: 3, retry_after: None }
        );
        assert_eq!(
            r(1, ErrorType::Auth),
            AfterFailure::DeadLetter { attempts: 1, max_attempts: 1, retry_after: Some(now + 3600) }
        );
        assert_eq!(
            r(1, ErrorType::State),
            AfterFailure::DeadLetter { attempts: 1, max_attempts: 1, retry_after: None }
        );
        // An attempt past a lowered cap is a dead letter, not a wrap-around; 0 reads as 1.
        assert!(matches!(r(9, ErrorType::Logic), AfterFailure::DeadLetter { attempts: 9, .. }));
        assert!(matches!(r(0, ErrorType::Logic), AfterFailure::Retry { attempt: 2, .. }));
    }

    #[test]
    fn dead_letters_wait_by_priority_unless_the_policy_says() {
        let c = cfg();
        let dl = |p, c: &RetryConfig| match after_failure(4, ErrorType::Timeout, p, "r", 0, c) {
            AfterFailure::DeadLetter { retry_after, .. } => retry_after,
            other => panic!("{other:?}"),
        };
        assert_eq!(dl(Priority::High, &c), Some(900));
        assert_eq!(dl(Priority::Medium, &c), Some(3600));
        assert_eq!(dl(Priority::Low, &c), Some(86_400));
        assert_eq!(dl(Priority::Low, &RetryConfig { dlq_retry_after: Some(60), ..c.clone() }), Some(60));
        assert_eq!("low".parse::<Priority>(), Ok(Priority::Low));
        assert!("urgent".parse::<Priority>().is_err());
    }

    #[test]
    fn only_a_retry_commit_carries_an_attempt() {
        let t = |m: &str| crate::protocol::trailers::parse(m.as_bytes());
        assert_eq!(attempt_of(&t("r\n\ndwp-attempt: 3\ndwp-retry-of: r1\ndwp-state: build\n")), 3);
        assert_eq!(attempt_of(&t("f\n\ndwp-attempt: 3\ndwp-dead-letter: logic\ndwp-state: triage\n")), 1);
        assert_eq!(attempt_of(&t("r\n\ndwp-attempt: x\ndwp-retry-of: r1\ndwp-state: build\n")), 1);
        assert_eq!(attempt_of(&t("s\n\ndwp-state: build\n")), 1);
    }
}
