//! Error types: from an exit code (75 → transient, 77 → auth, plus the policy's extra codes), or
//! stated by the handler on its last line of output (`BATON-ERROR-TYPE: transient`).

use std::fmt;
use std::str::FromStr;

/// What a failure is, as recorded in `dwp-error-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorType {
    /// Exit 75 (EX_TEMPFAIL) and friends: worth retrying as it is, after a while.
    Transient,
    /// Exit 77 (EX_NOPERM): credentials; retrying does not help.
    Auth,
    /// Any other failure of the handler's own work: retried with the failure fed back.
    Logic,
    /// A protocol violation the runner detected (a result that abandons its lease, …).
    State,
    /// The handler ran out of time (retried like transient).
    Timeout,
}

impl ErrorType {
    pub const ALL: [ErrorType; 5] =
        [ErrorType::Transient, ErrorType::Auth, ErrorType::Logic, ErrorType::State, ErrorType::Timeout];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Transient => "transient",
            ErrorType::Auth => "auth",
            ErrorType::Logic => "logic",
            ErrorType::State => "state",
            ErrorType::Timeout => "timeout",
        }
    }

    /// Failures that say something about a provider (rate limit, outage, expired credentials)
    /// rather than about one task: these count against a circuit breaker.
    pub fn trips_breaker(self) -> bool {
        matches!(self, ErrorType::Transient | ErrorType::Timeout | ErrorType::Auth)
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorType {
    type Err = String;
    fn from_str(s: &str) -> Result<ErrorType, String> {
        ErrorType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown error type {s:?} (transient, auth, logic, state or timeout)"))
    }
}

/// Exit codes with a meaning of their own (sysexits.h).
pub const EX_TEMPFAIL: i32 = 75;
pub const EX_NOPERM: i32 = 77;

/// The exit codes a policy adds to 75 and 77.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitClasses {
    pub transient: Vec<u8>,
    pub auth: Vec<u8>,
}

impl ExitClasses {
    /// The type of a non-zero exit code.
    pub fn of(&self, code: i32) -> ErrorType {
        let listed = |codes: &[u8]| u8::try_from(code).is_ok_and(|c| codes.contains(&c));
        if code == EX_TEMPFAIL || listed(&self.transient) {
            ErrorType::Transient
        } else if code == EX_NOPERM || listed(&self.auth) {
            ErrorType::Auth
        } else {
            ErrorType::Logic
        }
    }
}

/// The marker a handler prints as its last line of output to say what kind of failure it had.
pub const STATED_PREFIX: &str = "BATON-ERROR-TYPE:";

/// The type a handler stated on the last non-empty line of `output`, if it did. `state` cannot be
/// claimed by a handler (only the runner detects protocol violations).
pub fn stated_type(output: &str) -> Option<ErrorType> {
    let last = output.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let t: ErrorType = last.strip_prefix(STATED_PREFIX)?.trim().parse().ok()?;
    (t != ErrorType::State).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_types() {
        let none = ExitClasses::default();
        let extra = ExitClasses { transient: vec![69, 70], auth: vec![65] };
        for (classes, code, want) in [
            (&none, 1, ErrorType::Logic),
            (&none, 2, ErrorType::Logic),
            (&none, 75, ErrorType::Transient),
            (&none, 77, ErrorType::Auth),
            (&none, 69, ErrorType::Logic),
            (&extra, 69, ErrorType::Transient),
            (&extra, 70, ErrorType::Transient),
            (&extra, 65, ErrorType::Auth),
            (&extra, 75, ErrorType::Transient),
            (&extra, 77, ErrorType::Auth),
            (&extra, 325, ErrorType::Logic),
            (&extra, -1, ErrorType::Logic),
        ] {
            assert_eq!(classes.of(code), want, "exit {code} with {classes:?}");
        }
    }

    #[test]
    fn the_last_line_may_state_the_type() {
        for (out, want) in [
            ("working\nBATON-ERROR-TYPE: transient\n", Some(ErrorType::Transient)),
            ("BATON-ERROR-TYPE: auth\n\n  \n", Some(ErrorType::Auth)),
            ("BATON-ERROR-TYPE:timeout", Some(ErrorType::Timeout)),
            ("BATON-ERROR-TYPE: logic\nmore output\n", None),
            ("BATON-ERROR-TYPE: state\n", None),
            ("BATON-ERROR-TYPE: flaky\n", None),
            ("baton-error-type: transient\n", None),
            ("", None),
        ] {
            assert_eq!(stated_type(out), want, "{out:?}");
        }
    }

    #[test]
    fn only_provider_failures_trip_breakers() {
        let trips: Vec<_> = ErrorType::ALL.into_iter().filter(|t| t.trips_breaker()).collect();
        assert_eq!(trips, [ErrorType::Transient, ErrorType::Auth, ErrorType::Timeout]);
        for t in ErrorType::ALL {
            assert_eq!(t.as_str().parse::<ErrorType>(), Ok(t));
        }
    }
}
