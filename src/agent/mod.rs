//! The agent handler: `git baton agent`, which `.dwp/command/agent` (installed by
//! `git baton init --with agent`) runs. It turns a task into a prompt ([`prompt`]), runs the
//! coding agent the operator chose (`BATON_AGENT_CMD`, [`process`]), reads its reply
//! ([`reply`]: `COMPLETED:`, `FAILED:` or `BLOCKED:` on the first line, plain text or the agent's
//! JSON output) and answers the way every handler does: a commit naming the next state
//! ([`answer`]), or a non-zero exit the runner's retry machinery takes over. The decisions are
//! pure; `cli/agent.rs` reads the environment, runs the agent and commits.

pub mod answer;
pub mod process;
pub mod prompt;
pub mod reply;

use std::time::Duration;

/// Default for `BATON_AGENT_TIMEOUT`.
pub const DEFAULT_TIMEOUT: &str = "30m";

/// `BATON_AGENT_TIMEOUT`: whole seconds or a duration such as `30m` (`s`, `m`, `h`, `d`), more
/// than zero.
pub fn parse_timeout(v: &str) -> Result<Duration, String> {
    let secs = crate::history::budget::parse_seconds(v).map_err(|e| format!("BATON_AGENT_TIMEOUT: {e}"))?;
    if secs == 0 {
        return Err(format!("BATON_AGENT_TIMEOUT: {:?} is no time at all", v.trim()));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_like_budgets() {
        for (v, want) in [("30m", Some(1800)), ("90", Some(90)), (" 2h ", Some(7200)), ("1s", Some(1))] {
            assert_eq!(parse_timeout(v).ok().map(|d| d.as_secs()), want, "{v}");
        }
        for v in ["", "0", "0s", "soon", "-5"] {
            assert!(parse_timeout(v).is_err(), "{v}");
        }
    }
}
