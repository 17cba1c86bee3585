//! The failure keys of the policy file: how errors are classified, how often and how late each
//! kind is retried, where fix loops stop, how dead letters are swept and when a circuit breaker
//! opens. Each sub-table is a struct with `deny_unknown_fields` like the rest of [`super::Settings`].
//!
//! ```toml
//! [defaults]
//! retry.transient = 3          # retries after the first attempt, per error type
//! retry.timeout = 2
//! retry.logic = 2
//! retry.auth = 0
//! retry.state = 0
//! retry.backoff = "1s"         # the first delay; then × factor, at most max_delay, ±20 % jitter
//! retry.factor = 2
//! retry.max_delay = "5m"
//! classify.transient_exit_codes = [69]   # on top of 75 (EX_TEMPFAIL)
//! classify.auth_exit_codes = [65]        # on top of 77 (EX_NOPERM)
//! loop.soft = 3                # rounds of one state before the body says "round N"
//! loop.hard = 10               # rounds before the task is blocked for a person
//! dlq.retry_after = "1h"       # instead of the priority's (high 15m, medium 1h, low 24h)
//! dlq.archive_after = "7d"
//! dlq.sweep = "15m"
//! breaker = "anthropic"        # a name shared by several states (default: the state's own)
//! # or: breaker = { name = "anthropic", threshold = 3, window = "60s", identical = 5,
//! #                 cooldown = "5m", max_cooldown = "30m" }
//! ```

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::duration::Seconds;
use super::Resolved;

/// Most retries any error type may have.
pub const MAX_RETRIES: u32 = 100;
/// Most rounds a hard loop cap may allow.
pub const MAX_ROUNDS: u32 = 1000;

/// `retry.*`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RetrySettings {
    pub transient: Option<Spanned<u32>>,
    pub timeout: Option<Spanned<u32>>,
    pub logic: Option<Spanned<u32>>,
    pub auth: Option<Spanned<u32>>,
    pub state: Option<Spanned<u32>>,
    pub backoff: Option<Spanned<Seconds>>,
    pub factor: Option<Spanned<Factor>>,
    pub max_delay: Option<Spanned<Seconds>>,
}

/// `classify.*`: exit codes that mean more than "the handler's work failed".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct ClassifySettings {
    pub transient_exit_codes: Option<Spanned<Vec<u8>>>,
    pub auth_exit_codes: Option<Spanned<Vec<u8>>>,
}

/// `loop.*`: fix-loop caps.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct LoopSettings {
    pub soft: Option<Spanned<u32>>,
    pub hard: Option<Spanned<u32>>,
}

/// `dlq.*`: the dead-letter queue.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct DlqSettings {
    pub retry_after: Option<Spanned<Seconds>>,
    pub archive_after: Option<Spanned<Seconds>>,
    pub sweep: Option<Spanned<Seconds>>,
}

/// `breaker`: a name, or a table of the breaker's settings (its `name` optional).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct BreakerSettings {
    pub name: Option<Spanned<BreakerName>>,
    pub threshold: Option<Spanned<u32>>,
    pub window: Option<Spanned<Seconds>>,
    pub identical: Option<Spanned<u32>>,
    pub cooldown: Option<Spanned<Seconds>>,
    pub max_cooldown: Option<Spanned<Seconds>>,
}

/// The `breaker` key: `breaker = "name"` or `breaker = { … }` / `breaker.threshold = 3`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BreakerField(pub BreakerSettings);

impl<'de> Deserialize<'de> for BreakerField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BreakerField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a breaker name or a table of breaker settings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<BreakerField, E> {
                let name = BreakerName::parse(s).map_err(E::custom)?;
                // A bare name has no place in the file of its own; the span is the key's.
                Ok(BreakerField(BreakerSettings { name: Some(Spanned::new(0..0, name)), ..Default::default() }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BreakerField, A::Error> {
                BreakerSettings::deserialize(de::value::MapAccessDeserializer::new(map)).map(BreakerField)
            }
        }
        d.deserialize_any(V)
    }
}

/// A breaker's name: it becomes `refs/baton/breakers/<name>`, so it is a state-like name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BreakerName(pub String);

impl BreakerName {
    pub fn parse(s: &str) -> Result<BreakerName, String> {
        crate::protocol::State::parse(s)
            .map(|_| BreakerName(s.to_owned()))
            .map_err(|e| format!("invalid breaker name {s:?}: {e}"))
    }
}

impl<'de> Deserialize<'de> for BreakerName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BreakerName::parse(&s).map_err(de::Error::custom)
    }
}

/// A backoff factor, kept in thousandths so that policies compare exactly: `2` or `1.5`, from 1
/// to 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Factor(pub u32);

impl Factor {
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
    fn from_f64<E: de::Error>(v: f64) -> Result<Factor, E> {
        if !(1.0..=10.0).contains(&v) {
            return Err(E::custom(format!("invalid factor {v}: must be from 1 to 10")));
        }
        Ok(Factor((v * 1000.0).round() as u32))
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Factor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Factor;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number from 1 to 10")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Factor, E> {
                Factor::from_f64(n as f64)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Factor, E> {
                Factor::from_f64(n as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Factor, E> {
                Factor::from_f64(v)
            }
        }
        d.deserialize_any(V)
    }
}

/// Built-in failure policy values (the playbooks' numbers).
pub mod built_in {
    pub const RETRY_TRANSIENT: u32 = 3;
    pub const RETRY_TIMEOUT: u32 = 2;
    pub const RETRY_LOGIC: u32 = 2;
    pub const RETRY_AUTH: u32 = 0;
    pub const RETRY_STATE: u32 = 0;
    pub const BACKOFF: u64 = 1;
    /// Thousandths.
    pub const FACTOR: u32 = 2000;
    pub const MAX_DELAY: u64 = 300;
    pub const LOOP_SOFT: u32 = 3;
    pub const LOOP_HARD: u32 = 10;
    pub const ARCHIVE_AFTER: u64 = 7 * 86_400;
    pub const SWEEP: u64 = 15 * 60;
    pub const BREAKER_THRESHOLD: u32 = 3;
    pub const BREAKER_WINDOW: u64 = 60;
    pub const BREAKER_IDENTICAL: u32 = 5;
    pub const BREAKER_COOLDOWN: u64 = 300;
    pub const BREAKER_MAX_COOLDOWN: u64 = 1800;
}

/// Everything a runner needs to decide about a failed run of one state, each value with where it
/// came from. Durations in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailurePolicy {
    pub retry_transient: Resolved<u32>,
    pub retry_timeout: Resolved<u32>,
    pub retry_logic: Resolved<u32>,
    pub retry_auth: Resolved<u32>,
    pub retry_state: Resolved<u32>,
    pub retry_backoff: Resolved<u64>,
    pub retry_factor: Resolved<Factor>,
    pub retry_max_delay: Resolved<u64>,
    /// Extra codes on top of 75.
    pub transient_exit_codes: Resolved<Vec<u8>>,
    /// Extra codes on top of 77.
    pub auth_exit_codes: Resolved<Vec<u8>>,
    pub loop_soft: Resolved<u32>,
    pub loop_hard: Resolved<u32>,
    /// None: by the task's priority.
    pub dlq_retry_after: Resolved<Option<u64>>,
    pub dlq_archive_after: Resolved<u64>,
    pub dlq_sweep: Resolved<u64>,
    /// The breaker this state's failures count against (default: the state's own name).
    pub breaker: Resolved<String>,
    pub breaker_threshold: Resolved<u32>,
    pub breaker_window: Resolved<u64>,
    pub breaker_identical: Resolved<u32>,
    pub breaker_cooldown: Resolved<u64>,
    pub breaker_max_cooldown: Resolved<u64>,
}

impl FailurePolicy {
    /// The built-ins for `state` (no policy file).
    pub fn built_in(state: &str) -> FailurePolicy {
        use built_in::*;
        fn b<T>(v: T) -> Resolved<T> {
            Resolved::built_in(v)
        }
        FailurePolicy {
            retry_transient: b(RETRY_TRANSIENT),
            retry_timeout: b(RETRY_TIMEOUT),
            retry_logic: b(RETRY_LOGIC),
            retry_auth: b(RETRY_AUTH),
            retry_state: b(RETRY_STATE),
            retry_backoff: b(BACKOFF),
            retry_factor: b(Factor(FACTOR)),
            retry_max_delay: b(MAX_DELAY),
            transient_exit_codes: b(Vec::new()),
            auth_exit_codes: b(Vec::new()),
            loop_soft: b(LOOP_SOFT),
            loop_hard: b(LOOP_HARD),
            dlq_retry_after: b(None),
            dlq_archive_after: b(ARCHIVE_AFTER),
            dlq_sweep: b(SWEEP),
            breaker: b(state.to_owned()),
            breaker_threshold: b(BREAKER_THRESHOLD),
            breaker_window: b(BREAKER_WINDOW),
            breaker_identical: b(BREAKER_IDENTICAL),
            breaker_cooldown: b(BREAKER_COOLDOWN),
            breaker_max_cooldown: b(BREAKER_MAX_COOLDOWN),
        }
    }
}

/// Limits of the failure keys that depend on more than syntax: (span, key within the table,
/// message).
pub(super) fn check(s: &super::Settings) -> Result<(), (std::ops::Range<usize>, &'static str, String)> {
    let r = &s.retry;
    let counts = [
        ("retry.transient", &r.transient, MAX_RETRIES),
        ("retry.timeout", &r.timeout, MAX_RETRIES),
        ("retry.logic", &r.logic, MAX_RETRIES),
        ("retry.auth", &r.auth, MAX_RETRIES),
        ("retry.state", &r.state, MAX_RETRIES),
        ("loop.soft", &s.r#loop.soft, MAX_ROUNDS),
        ("loop.hard", &s.r#loop.hard, MAX_ROUNDS),
    ];
    for (key, value, max) in counts {
        if let Some(v) = value.as_ref().filter(|v| *v.get_ref() > max) {
            return Err((v.span(), key, format!("{} is more than the maximum of {max}", v.get_ref())));
        }
    }
    if let Some(v) = s.r#loop.hard.as_ref().filter(|v| *v.get_ref() == 0) {
        return Err((v.span(), "loop.hard", "must be at least 1".into()));
    }
    if let Some(b) = &s.breaker {
        for (key, value) in [("breaker.threshold", &b.0.threshold), ("breaker.identical", &b.0.identical)] {
            if let Some(v) = value.as_ref().filter(|v| *v.get_ref() == 0) {
                return Err((v.span(), key, "must be at least 1".into()));
            }
        }
    }
    for (key, codes) in [
        ("classify.transient_exit_codes", &s.classify.transient_exit_codes),
        ("classify.auth_exit_codes", &s.classify.auth_exit_codes),
    ] {
        if let Some(v) = codes.as_ref().filter(|v| v.get_ref().contains(&0)) {
            return Err((v.span(), key, "0 is success, not an error".into()));
        }
    }
    Ok(())
}
