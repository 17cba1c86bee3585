//! The people-and-money keys of the policy file: the state's tier (autonomous, notify, gate) and
//! its gate, notifiers, budgets, concurrency limits, build caches kept between steps, and the
//! acceptance checks that decide whether an answer is done.
//!
//! ```toml
//! [states.deploy]
//! tier = "gate"                 # "autonomous" (default) | "notify" | "gate"
//! gate.approvers = ["lead@example.com"]   # emails, or "*" (default)
//! gate.require_signed = true    # the approval must carry a good SSH/GPG signature
//! gate.on_reject = "canceled"   # where `git baton reject` sends the task (default canceled)
//! gate.on_changes = "build"     # where `request-changes` sends it (default: the state that produced the gated work)
//! gate.timeout = "24h"          # then apply gate.default ...
//! gate.default = "none"         # "none" (default) | "reject" | an option letter such as "A"
//! notify = ["state-scripts/notify/webhook"]  # notifiers (commands, run with one JSON object on stdin)
//! budget.runs = 5               # runs per task (since its first send or last dwp-budget-reset)
//! budget.seconds = "2h"         # handler wall time per task
//! budget.cost = 20.0            # reported dwp-cost per task
//! concurrency.group = "heavy"   # at most concurrency.max runs of the group at once, across runners
//! concurrency.max = 2
//! worktree.keep = ["target/", "node_modules/"]   # ignored paths kept between steps of a branch
//! accept = ["cargo test --quiet", "test -s report.md"]   # or { checks = [...], timeout = "10m" }
//! ```

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::duration::Seconds;
use super::failure::BreakerName;
use super::Resolved;

/// How much a person is involved in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Runs and moves on.
    #[default]
    Autonomous,
    /// Runs, then tells people (every run of the state is notified).
    Notify,
    /// Waits for a person's approval of the current head before it runs.
    Gate,
}

/// `gate.*`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct GateSettings {
    pub approvers: Option<Spanned<Vec<String>>>,
    pub require_signed: Option<Spanned<bool>>,
    pub on_reject: Option<Spanned<BreakerName>>,
    pub on_changes: Option<Spanned<BreakerName>>,
    pub timeout: Option<Spanned<Seconds>>,
    pub default: Option<Spanned<GateDefault>>,
}

/// What a gate does when its timeout passes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(into = "String")]
pub enum GateDefault {
    /// Keep waiting.
    #[default]
    None,
    Reject,
    /// Approve with this option letter of the decision card.
    Option(char),
}

impl From<GateDefault> for String {
    fn from(d: GateDefault) -> String {
        d.to_string()
    }
}

impl fmt::Display for GateDefault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateDefault::None => f.write_str("none"),
            GateDefault::Reject => f.write_str("reject"),
            GateDefault::Option(c) => write!(f, "{c}"),
        }
    }
}

impl GateDefault {
    pub fn parse(s: &str) -> Result<GateDefault, String> {
        match s {
            "none" => Ok(GateDefault::None),
            "reject" => Ok(GateDefault::Reject),
            _ => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_ascii_uppercase() => Ok(GateDefault::Option(c)),
                    _ => Err(format!("invalid gate.default {s:?}: \"none\", \"reject\" or an option letter A-Z")),
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for GateDefault {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GateDefault::parse(&s).map_err(de::Error::custom)
    }
}

/// An amount of money as reported in `dwp-cost` (a decimal number), kept in millionths so that
/// sums are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Money(pub u64);

impl Money {
    /// `"0.42"` → 420000 millionths; at most six decimals, no sign, no exponent.
    pub fn parse(s: &str) -> Result<Money, String> {
        let bad = || format!("invalid amount {s:?}: use a number such as 0.42");
        let s = s.trim();
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(frac) || frac.len() > 6 {
            return Err(bad());
        }
        let w: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
        let f: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().map_err(|_| bad())? };
        w.checked_mul(1_000_000).and_then(|w| w.checked_add(f)).map(Money).ok_or_else(bad)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (w, frac) = (self.0 / 1_000_000, self.0 % 1_000_000);
        if frac == 0 {
            write!(f, "{w}")
        } else {
            let frac = format!("{frac:06}");
            write!(f, "{w}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0 as f64 / 1_000_000.0)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount such as 20 or 0.5")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Money, E> {
                u64::try_from(n).map_err(|_| E::custom(format!("invalid amount {n}: must not be negative")))?;
                Money::parse(&n.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Money, E> {
                Money::parse(&n.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(E::custom(format!("invalid amount {v}: must be a number of 0 or more")));
                }
                Ok(Money((v * 1_000_000.0).round() as u64))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Money, E> {
                Money::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `budget.*`: what one task may spend.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct BudgetSettings {
    pub runs: Option<Spanned<u32>>,
    pub seconds: Option<Spanned<Seconds>>,
    pub cost: Option<Spanned<Money>>,
}

/// `concurrency.*`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct ConcurrencySettings {
    pub group: Option<Spanned<BreakerName>>,
    pub max: Option<Spanned<u32>>,
}

/// `worktree.*`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct WorktreeSettings {
    pub keep: Option<Spanned<Vec<String>>>,
}

/// `accept = ["check", …]` or `accept = { checks = [...], timeout = "10m" }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcceptField {
    pub checks: Vec<String>,
    pub timeout: Option<Seconds>,
}

impl<'de> Deserialize<'de> for AcceptField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            checks: Vec<String>,
            timeout: Option<Seconds>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AcceptField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of check commands, or a table { checks = [...], timeout = \"10m\" }")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AcceptField, A::Error> {
                let checks = Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(AcceptField { checks, timeout: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AcceptField, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(AcceptField { checks: t.checks, timeout: t.timeout })
            }
        }
        d.deserialize_any(V)
    }
}

/// Built-in values.
pub mod built_in {
    pub const GATE_ON_REJECT: &str = "canceled";
    pub const ACCEPT_TIMEOUT: u64 = 600;
}

/// What applies to one state, each value with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HumansPolicy {
    pub tier: Resolved<Tier>,
    pub gate_approvers: Resolved<Vec<String>>,
    pub gate_require_signed: Resolved<bool>,
    pub gate_on_reject: Resolved<String>,
    /// None: the state that produced the gated work.
    pub gate_on_changes: Resolved<Option<String>>,
    /// Seconds; None: no timeout.
    pub gate_timeout: Resolved<Option<u64>>,
    pub gate_default: Resolved<GateDefault>,
    pub notify: Resolved<Vec<String>>,
    pub budget_runs: Resolved<Option<u32>>,
    pub budget_seconds: Resolved<Option<u64>>,
    pub budget_cost: Resolved<Option<Money>>,
    pub concurrency_group: Resolved<Option<String>>,
    pub concurrency_max: Resolved<Option<u32>>,
    pub worktree_keep: Resolved<Vec<String>>,
    pub accept: Resolved<Vec<String>>,
    /// Seconds each check may take.
    pub accept_timeout: Resolved<u64>,
}

impl HumansPolicy {
    pub fn built_in() -> HumansPolicy {
        fn b<T>(v: T) -> Resolved<T> {
            Resolved::built_in(v)
        }
        HumansPolicy {
            tier: b(Tier::Autonomous),
            gate_approvers: b(vec!["*".to_owned()]),
            gate_require_signed: b(false),
            gate_on_reject: b(built_in::GATE_ON_REJECT.to_owned()),
            gate_on_changes: b(None),
            gate_timeout: b(None),
            gate_default: b(GateDefault::None),
            notify: b(Vec::new()),
            budget_runs: b(None),
            budget_seconds: b(None),
            budget_cost: b(None),
            concurrency_group: b(None),
            concurrency_max: b(None),
            worktree_keep: b(Vec::new()),
            accept: b(Vec::new()),
            accept_timeout: b(built_in::ACCEPT_TIMEOUT),
        }
    }

    /// May `email` approve this state's gate?
    pub fn may_approve(&self, email: &str) -> bool {
        self.gate_approvers.value.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(email))
    }
}

/// Limits that depend on more than syntax: (span, key within the table, message).
pub(super) fn check(s: &super::Settings) -> Result<(), (std::ops::Range<usize>, &'static str, String)> {
    if let Some(v) = s.concurrency.max.as_ref().filter(|v| *v.get_ref() == 0) {
        return Err((v.span(), "concurrency.max", "must be at least 1".into()));
    }
    if let Some(v) = s.gate.approvers.as_ref().filter(|v| v.get_ref().iter().any(|a| a.trim().is_empty())) {
        return Err((v.span(), "gate.approvers", "an empty approver".into()));
    }
    for (key, list) in [("notify", &s.notify), ("worktree.keep", &s.worktree.keep)] {
        if let Some(v) = list.as_ref().filter(|v| v.get_ref().iter().any(|a| a.trim().is_empty())) {
            return Err((v.span(), key, "an empty entry".into()));
        }
    }
    if let Some(v) = s.worktree.keep.as_ref() {
        if let Some(bad) = v.get_ref().iter().find(|p| p.starts_with('/') || p.split('/').any(|c| c == "..")) {
            return Err((v.span(), "worktree.keep", format!("{bad:?}: a path inside the worktree, without '..'")));
        }
    }
    if let Some(a) = &s.accept {
        if a.get_ref().checks.iter().any(|c| c.trim().is_empty()) {
            return Err((a.span(), "accept", "an empty check".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact() {
        for (s, want) in [("0.42", 420_000), ("20", 20_000_000), ("1.5", 1_500_000), (".5", 500_000), ("0.000001", 1)] {
            assert_eq!(Money::parse(s), Ok(Money(want)), "{s}");
        }
        for bad in ["", ".", "-1", "1e3", "0.0000001", "x", "1.2.3"] {
            assert!(Money::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Money(420_000).to_string(), "0.42");
        assert_eq!(Money(20_000_000).to_string(), "20");
    }

    #[test]
    fn gate_defaults_and_approvers() {
        assert_eq!(GateDefault::parse("none"), Ok(GateDefault::None));
        assert_eq!(GateDefault::parse("reject"), Ok(GateDefault::Reject));
        assert_eq!(GateDefault::parse("B"), Ok(GateDefault::Option('B')));
        for bad in ["b", "AB", "", "approve"] {
            assert!(GateDefault::parse(bad).is_err(), "{bad}");
        }
        let mut p = HumansPolicy::built_in();
        assert!(p.may_approve("anyone@example.com"));
        p.gate_approvers.value = vec!["Lead@Example.com".into()];
        assert!(p.may_approve("lead@example.com"));
        assert!(!p.may_approve("intern@example.com"));
    }
}
