//! Judging a run after the handler exited: a pure function of what the process did and what the
//! branch looks like now. The lease commit is the fencing token: a result counts only if it
//! descends from the claim.

use crate::protocol::{Reserved, StateRead};

/// How the handler process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut {
        seconds: u64,
    },
    Interrupted,
    /// It could not be started at all (not executable, no `#!` line, …).
    SpawnFailed(String),
}

/// The branch head after the run.
#[derive(Debug, Clone)]
pub struct HeadFacts {
    pub is_claim: bool,
    pub descends_from_claim: bool,
    pub state: StateRead,
    pub run_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A new commit with a valid state that is not `working`.
    Succeeded { next_state: String },
    /// The handler renewed its own lease (e.g. waiting for a person): fine, still held.
    Parked,
    /// Record a failure event with this reason.
    Failed { reason: String, exit_code: Option<i32> },
    /// The branch no longer exists; nothing can be recorded on it.
    BranchGone,
    /// Someone else moved the branch off our lease; their history wins, ours is not written.
    LeaseLost,
}

pub fn judge(exit: &Exit, head: Option<&HeadFacts>, run_id: &str) -> Verdict {
    let Some(head) = head else {
        return Verdict::BranchGone;
    };
    if !head.descends_from_claim {
        return Verdict::LeaseLost;
    }
    let exit_code = match exit {
        Exit::Code(c) => Some(*c),
        _ => None,
    };
    let failed = |reason: String| Verdict::Failed { reason, exit_code };
    match exit {
        Exit::Code(0) => {}
        Exit::Code(c) => return failed(format!("handler exited with status {c}")),
        Exit::Signal(s) => return failed(format!("handler was killed by signal {s}")),
        Exit::TimedOut { seconds } => {
            return failed(format!("handler timed out after {seconds}s; its process group was killed"))
        }
        Exit::Interrupted => {
            return failed("runner was interrupted; the handler was stopped after the grace period".into())
        }
        Exit::SpawnFailed(why) => return failed(format!("handler could not be started: {why}")),
    }
    if head.is_claim {
        return failed("handler exited 0 without a new commit".into());
    }
    match &head.state {
        StateRead::Valid(s) if s.is(Reserved::Working) => {
            if head.run_id.as_deref() == Some(run_id) {
                Verdict::Parked
            } else {
                failed("newest commit is a working lease of another run".into())
            }
        }
        StateRead::Valid(s) => Verdict::Succeeded { next_state: s.to_string() },
        StateRead::Invalid(v) => failed(format!("newest commit has an invalid dwp-state {v:?}")),
        StateRead::None => failed("newest commit has no dwp-state trailer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::State;

    fn head(state: StateRead, run: Option<&str>) -> HeadFacts {
        HeadFacts { is_claim: false, descends_from_claim: true, state, run_id: run.map(Into::into) }
    }
    fn valid(s: &str) -> StateRead {
        StateRead::Valid(State::parse(s).unwrap())
    }

    #[test]
    fn success_needs_exit_zero_and_a_new_state() {
        assert_eq!(
            judge(&Exit::Code(0), Some(&head(valid("review"), None)), "r"),
            Verdict::Succeeded { next_state: "review".into() }
        );
    }

    #[test]
    fn nonzero_exit_fails_even_with_a_new_state() {
        assert!(matches!(
            judge(&Exit::Code(3), Some(&head(valid("review"), None)), "r"),
            Verdict::Failed { exit_code: Some(3), .. }
        ));
    }

    #[test]
    fn silent_handler_fails() {
        let mut h = head(valid("working"), Some("r"));
        h.is_claim = true;
        assert!(matches!(judge(&Exit::Code(0), Some(&h), "r"), Verdict::Failed { .. }));
    }

    #[test]
    fn own_working_commit_parks_foreign_one_fails() {
        assert_eq!(judge(&Exit::Code(0), Some(&head(valid("working"), Some("r"))), "r"), Verdict::Parked);
        assert!(matches!(judge(&Exit::Code(0), Some(&head(valid("working"), Some("x"))), "r"), Verdict::Failed { .. }));
    }

    #[test]
    fn missing_or_invalid_state_fails() {
        assert!(matches!(judge(&Exit::Code(0), Some(&head(StateRead::None, None)), "r"), Verdict::Failed { .. }));
        assert!(matches!(
            judge(&Exit::Code(0), Some(&head(StateRead::Invalid("../x".into()), None)), "r"),
            Verdict::Failed { .. }
        ));
    }

    #[test]
    fn timeouts_and_spawn_failures_fail_without_exit_code() {
        let h = head(valid("x"), None);
        assert!(matches!(
            judge(&Exit::TimedOut { seconds: 1 }, Some(&h), "r"),
            Verdict::Failed { exit_code: None, .. }
        ));
        assert!(matches!(
            judge(&Exit::SpawnFailed("ENOEXEC".into()), Some(&h), "r"),
            Verdict::Failed { exit_code: None, .. }
        ));
    }

    #[test]
    fn gone_branch_and_lost_lease() {
        assert_eq!(judge(&Exit::Code(0), None, "r"), Verdict::BranchGone);
        let mut h = head(valid("stalled"), None);
        h.descends_from_claim = false;
        assert_eq!(judge(&Exit::Code(0), Some(&h), "r"), Verdict::LeaseLost);
    }
}
