//! `agent.*`: what the agent handler (`git baton agent`) does with a COMPLETED reply.
//!
//! ```toml
//! [states.implement]
//! agent.next = "review"   # the state a COMPLETED answer names (default: done)
//! ```
//!
//! The runner hands the effective value of the state it runs to the handler as
//! `BATON_NEXT_STATE`; the handler (or its `.dwp/command/…` wrapper) may still override it.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// `agent.*`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct AgentSettings {
    pub next: Option<Spanned<NextState>>,
}

/// A state an answer may name: valid, and not one only a runner writes (`working`, `stalled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct NextState(pub String);

impl NextState {
    pub fn parse(s: &str) -> Result<NextState, String> {
        use crate::protocol::{Reserved, State};
        let state = State::parse(s).map_err(|e| format!("invalid state {s:?}: {e}"))?;
        if state.is(Reserved::Working) || state.is(Reserved::Stalled) {
            return Err(format!("{s:?} is written by runners only; name the state that comes next"));
        }
        Ok(NextState(s.to_owned()))
    }
}

impl fmt::Display for NextState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NextState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NextState::parse(&s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Base, Origin, Policy};

    #[test]
    fn next_states_are_checked() {
        for ok in ["review", "done", "blocked", "a.b-c_d"] {
            assert_eq!(NextState::parse(ok), Ok(NextState(ok.into())));
        }
        for bad in ["", "working", "stalled", "no spaces", "-x"] {
            assert!(NextState::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn agent_next_resolves_per_state_then_defaults() {
        let text = "[defaults]\nagent.next = \"review\"\n\n[states.review]\nagent.next = \"done\"\n";
        let p = Policy::parse(text, ".dwp/policy.toml").unwrap();
        let base = Base::default();
        let e = p.effective("implement", &base);
        assert_eq!(e.agent_next.value.as_deref(), Some("review"));
        assert_eq!(e.agent_next.from, Origin::Defaults { line: 2 });
        let e = p.effective("review", &base);
        assert_eq!(e.agent_next.value.as_deref(), Some("done"));
        assert_eq!(e.agent_next.from, Origin::State { state: "review".into(), line: 5 });
        let none = Policy::effective_or_base(None, "implement", &base);
        assert_eq!((none.agent_next.value, none.agent_next.from), (None, Origin::BuiltIn));

        for (bad, want) in [
            (
                "[defaults]\nagent.next = \"working\"\n",
                ".dwp/policy.toml:2: defaults.agent.next: \"working\" is written by runners only",
            ),
            ("[states.x]\nagent.nxt = \"a\"\n", ".dwp/policy.toml:2: states.x.agent.nxt: unknown key (known: next)"),
            ("[defaults]\nagent.next = 3\n", ".dwp/policy.toml:2: defaults.agent.next: invalid type"),
        ] {
            let e = Policy::parse(bad, ".dwp/policy.toml").unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
    }
}
