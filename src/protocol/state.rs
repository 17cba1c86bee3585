//! DWP/GC states: the `dwp-state` trailer of a branch's newest commit says whose turn it is.
//!
//! A state name selects a handler file (`.dwp/command/<state>`), so it is validated before it is
//! ever used: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$` and no `.`/`..` anywhere (the first character
//! rule already excludes a leading dot; `..` inside a name is refused too, so no name can look like
//! a path step). Anything else is an [`StateRead::Invalid`] state, reported and never executed.

use std::fmt;

use super::trailers::Trailer;
use super::Key;

/// A validated state name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State(String);

/// Why a state name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidState {
    #[error("state name is empty")]
    Empty,
    #[error("state name {0:?} is longer than 128 bytes")]
    TooLong(String),
    #[error("state name {0:?} must start with an ASCII letter or digit and contain only A-Z a-z 0-9 . _ -")]
    BadCharacters(String),
    #[error("state name {0:?} contains '..'")]
    DotDot(String),
}

impl State {
    pub fn parse(name: &str) -> Result<State, InvalidState> {
        let bytes = name.as_bytes();
        let Some(&first) = bytes.first() else {
            return Err(InvalidState::Empty);
        };
        if bytes.len() > 128 {
            return Err(InvalidState::TooLong(name.to_owned()));
        }
        let ok_rest = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
        if !first.is_ascii_alphanumeric() || !bytes.iter().all(ok_rest) {
            return Err(InvalidState::BadCharacters(name.to_owned()));
        }
        if name.contains("..") {
            return Err(InvalidState::DotDot(name.to_owned()));
        }
        Ok(State(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn reserved(&self) -> Option<Reserved> {
        Reserved::ALL.into_iter().find(|r| r.as_str() == self.0)
    }

    pub fn is(&self, r: Reserved) -> bool {
        self.0 == r.as_str()
    }

    pub fn reserved_state(r: Reserved) -> State {
        State(r.as_str().to_owned())
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// States with a meaning fixed by the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// A runner holds the lease.
    Working,
    /// A lease expired and was taken over.
    Stalled,
    Done,
    Failed,
    Canceled,
    Blocked,
    Waiting,
    Noop,
    /// Put aside by a person (`git baton park`); no runner touches it until `unpark`.
    Parked,
}

impl Reserved {
    pub const ALL: [Reserved; 9] = [
        Reserved::Working,
        Reserved::Stalled,
        Reserved::Done,
        Reserved::Failed,
        Reserved::Canceled,
        Reserved::Blocked,
        Reserved::Waiting,
        Reserved::Noop,
        Reserved::Parked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reserved::Working => "working",
            Reserved::Stalled => "stalled",
            Reserved::Done => "done",
            Reserved::Failed => "failed",
            Reserved::Canceled => "canceled",
            Reserved::Blocked => "blocked",
            Reserved::Waiting => "waiting",
            Reserved::Noop => "noop",
            Reserved::Parked => "parked",
        }
    }
}

/// What the `dwp-state` trailer of a commit says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRead {
    /// No `dwp-state` trailer: not part of the protocol.
    None,
    Valid(State),
    /// A `dwp-state` value that is not a valid name (kept lossily for reporting only).
    Invalid(String),
}

impl StateRead {
    /// The last `dwp-state` trailer wins; keys are case-sensitive.
    pub fn from_trailers(trailers: &[Trailer]) -> StateRead {
        match last_value(trailers, Key::State) {
            None => StateRead::None,
            Some(v) => match std::str::from_utf8(v).ok().map(State::parse) {
                Some(Ok(s)) => StateRead::Valid(s),
                _ => StateRead::Invalid(String::from_utf8_lossy(v).into_owned()),
            },
        }
    }

    pub fn valid(&self) -> Option<&State> {
        match self {
            StateRead::Valid(s) => Some(s),
            _ => None,
        }
    }

    /// The raw text for display: the state name, the invalid value, or nothing.
    pub fn text(&self) -> Option<&str> {
        match self {
            StateRead::None => None,
            StateRead::Valid(s) => Some(s.as_str()),
            StateRead::Invalid(s) => Some(s),
        }
    }
}

/// The value of the last trailer with this key (case-sensitive), if any.
pub fn last_value(trailers: &[Trailer], key: Key) -> Option<&[u8]> {
    trailers.iter().rev().find(|t| t.key == key.as_str().as_bytes()).map(|t| t.value.as_slice())
}

/// The last value as text (lossy).
pub fn last_text(trailers: &[Trailer], key: Key) -> Option<String> {
    last_value(trailers, key).map(|v| String::from_utf8_lossy(v).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for n in ["a", "review", "A1", "x.y", "step_2-b", &"a".repeat(128)] {
            assert!(State::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn invalid_names() {
        for n in
            ["", ".", "..", "../x", "/bin/sh", "a/../../b", "a..b", "-x", ".x", "a b", "é", &"a".repeat(129), "a/b"]
        {
            assert!(State::parse(n).is_err(), "{n:?}");
        }
    }

    #[test]
    fn last_state_wins_and_keys_are_case_sensitive() {
        let t = crate::protocol::trailers::parse(b"t\n\ndwp-state: a\nDWP-State: c\ndwp-state: b\n");
        assert_eq!(StateRead::from_trailers(&t), StateRead::Valid(State::parse("b").unwrap()));
    }

    #[test]
    fn invalid_state_is_reported_not_used() {
        let t = crate::protocol::trailers::parse(b"t\n\ndwp-state: ../etc\n");
        assert_eq!(StateRead::from_trailers(&t), StateRead::Invalid("../etc".into()));
        assert_eq!(StateRead::from_trailers(&[]), StateRead::None);
    }

    #[test]
    fn reserved_states_are_recognized() {
        assert_eq!(State::parse("working").unwrap().reserved(), Some(Reserved::Working));
        assert_eq!(State::parse("review").unwrap().reserved(), None);
    }
}
