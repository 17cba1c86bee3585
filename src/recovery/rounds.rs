//! Fix-loop caps: how often a task has entered a state, counted from its own history. A round is
//! a commit that hands the task to the state (a handler's answer, a person's `send`); the runner's
//! own retry commits are attempts of the same round, not new rounds. A ping-pong `A → B → A`
//! counts a round of A at each return. Counting starts after the last loop-cap escalation, so a
//! person who resumes a capped task gets a fresh set of rounds.

/// One commit of a task's history, as far as rounds care (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Its valid `dwp-state`, if any.
    pub state: Option<&'a str>,
    /// A runner's retry commit (`dwp-retry-of`).
    pub is_retry: bool,
    /// A loop-cap escalation (`dwp-escalation: loop-cap`).
    pub is_loop_cap: bool,
}

/// How many rounds of `state` the history (newest first) holds, up to the last loop cap.
pub fn rounds<'a>(history: impl IntoIterator<Item = Entry<'a>>, state: &str) -> u32 {
    let mut n = 0u32;
    for e in history {
        if e.is_loop_cap {
            break;
        }
        if !e.is_retry && e.state == Some(state) {
            n = n.saturating_add(1);
        }
    }
    n
}

/// What the round count means under the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopVerdict {
    /// Within the soft cap: nothing to say.
    Quiet,
    /// Past the soft cap: the handler is told which round this is.
    Round(u32),
    /// Past the hard cap: do not run; block the task for a person.
    Capped(u32),
}

pub fn loop_verdict(round: u32, soft: u32, hard: u32) -> LoopVerdict {
    if round > hard {
        LoopVerdict::Capped(round)
    } else if round > soft {
        LoopVerdict::Round(round)
    } else {
        LoopVerdict::Quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(state: &str) -> Entry<'_> {
        Entry { state: Some(state), is_retry: false, is_loop_cap: false }
    }

    #[test]
    fn counts_entries_not_retries_and_stops_at_a_loop_cap() {
        let retry = Entry { is_retry: true, ..e("build") };
        let cap = Entry { state: Some("blocked"), is_retry: false, is_loop_cap: true };
        let none = Entry { state: None, is_retry: false, is_loop_cap: false };
        for (history, want) in [
            (vec![], 0),
            (vec![e("build")], 1),
            (vec![e("build"), none, e("review"), e("build"), e("review"), e("build")], 3),
            (vec![retry, retry, e("build")], 1),
            (vec![e("build"), e("review"), cap, e("build"), e("build")], 1),
            (vec![e("review"), e("test")], 0),
        ] {
            assert_eq!(rounds(history.clone(), "build"), want, "{history:?}");
        }
    }

    #[test]
    fn soft_and_hard_caps() {
        for (round, want) in [
            (1, LoopVerdict::Quiet),
            (3, LoopVerdict::Quiet),
            (4, LoopVerdict::Round(4)),
            (10, LoopVerdict::Round(10)),
            (11, LoopVerdict::Capped(11)),
        ] {
            assert_eq!(loop_verdict(round, 3, 10), want, "round {round}");
        }
        assert_eq!(loop_verdict(2, 5, 1), LoopVerdict::Capped(2), "a hard cap below the soft one wins");
    }
}
