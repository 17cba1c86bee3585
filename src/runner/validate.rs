//! Judging a run after the handler exited: a pure function of what the process did and what the
//! branch looks like now. The lease commit is the fencing token: a result counts only if it
//! descends from this run's lease (the claim, or the latest heartbeat of the same run), and only
//! the runner publishes it.

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
    /// The run lost its lease while the handler ran; the handler was stopped.
    LeaseLost(String),
}

pub use crate::recovery::ErrorType;
use crate::recovery::ExitClasses;

/// The board after the run: the branch head compared with this run's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseHead {
    /// The branch no longer exists.
    Gone,
    /// Still this run's: the claim, or a heartbeat of this run on top of it.
    Ours,
    /// Somebody else moved the branch (a person's commit, a takeover).
    Foreign,
}

/// The handler's result: the HEAD of its worktree.
#[derive(Debug, Clone)]
pub struct ResultFacts {
    /// The result is the claim itself: no new commit at all.
    pub is_claim: bool,
    /// The result descends from the lease head (the claim or this run's latest heartbeat).
    pub descends_from_lease: bool,
    pub state: StateRead,
    pub run_id: Option<String>,
}

/// Where a failure event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// On top of the handler's result (its partial commits stay in history).
    Result,
    /// On top of the lease; the result does not descend from it and is kept aside.
    Lease,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A new commit with a valid state that is not `working`: publish it.
    Succeeded { next_state: String },
    /// The handler renewed its own lease (e.g. waiting for a person): publish, still held.
    Parked,
    /// Record a failure event with this reason.
    Failed { reason: String, exit_code: Option<i32>, error_type: ErrorType, on: FailOn },
    /// The branch no longer exists; nothing can be recorded on it.
    BranchGone,
    /// Someone else moved the branch off our lease; their history wins, ours is kept aside.
    LeaseLost,
}

/// The reason recorded when a handler's result abandons or rewrites its lease.
pub const NOT_FROM_LEASE: &str = "the handler's result does not descend from its lease";

/// `classes`: the exit codes the policy adds to 75 (transient) and 77 (auth).
pub fn judge(exit: &Exit, board: LeaseHead, result: &ResultFacts, run_id: &str, classes: &ExitClasses) -> Verdict {
    match board {
        LeaseHead::Gone => return Verdict::BranchGone,
        LeaseHead::Foreign => return Verdict::LeaseLost,
        LeaseHead::Ours => {}
    }
    if let Exit::LeaseLost(_) = exit {
        return Verdict::LeaseLost;
    }
    let exit_code = match exit {
        Exit::Code(c) => Some(*c),
        _ => None,
    };
    let on = if result.descends_from_lease { FailOn::Result } else { FailOn::Lease };
    let failed = |reason: String, error_type| Verdict::Failed { reason, exit_code, error_type, on };
    match exit {
        Exit::Code(0) => {}
        Exit::Code(c) => {
            return failed(format!("handler exited with status {c}"), classes.of(*c));
        }
        Exit::Signal(s) => return failed(format!("handler was killed by signal {s}"), ErrorType::Logic),
        Exit::TimedOut { seconds } => {
            return failed(
                format!("handler timed out after {seconds}s; its process group was killed"),
                ErrorType::Timeout,
            )
        }
        Exit::Interrupted => {
            return failed(
                "runner was interrupted; the handler was stopped after the grace period".into(),
                ErrorType::Transient,
            )
        }
        Exit::SpawnFailed(why) => return failed(format!("handler could not be started: {why}"), ErrorType::Logic),
        Exit::LeaseLost(_) => unreachable!("handled above"),
    }
    if !result.descends_from_lease {
        return failed(NOT_FROM_LEASE.into(), ErrorType::State);
    }
    if result.is_claim {
        return failed("handler exited 0 without a new commit".into(), ErrorType::Logic);
    }
    match &result.state {
        StateRead::Valid(s) if s.is(Reserved::Working) => {
            if result.run_id.as_deref() == Some(run_id) {
                Verdict::Parked
            } else {
                failed("newest commit is a working lease of another run".into(), ErrorType::State)
            }
        }
        StateRead::Valid(s) => Verdict::Succeeded { next_state: s.to_string() },
        StateRead::Invalid(v) => failed(format!("newest commit has an invalid dwp-state {v:?}"), ErrorType::Logic),
        StateRead::None => failed("newest commit has no dwp-state trailer".into(), ErrorType::Logic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::State;

    fn result(state: StateRead, run: Option<&str>) -> ResultFacts {
        ResultFacts { is_claim: false, descends_from_lease: true, state, run_id: run.map(Into::into) }
    }
    fn valid(s: &str) -> StateRead {
        StateRead::Valid(State::parse(s).unwrap())
    }
    fn j(exit: Exit, r: &ResultFacts) -> Verdict {
        judge(&exit, LeaseHead::Ours, r, "r", &ExitClasses::default())
    }
    fn error_type(v: &Verdict) -> Option<ErrorType> {
        match v {
            Verdict::Failed { error_type, .. } => Some(*error_type),
            _ => None,
        }
    }

    #[test]
    fn success_needs_exit_zero_and_a_new_state() {
        assert_eq!(
            j(Exit::Code(0), &result(valid("review"), None)),
            Verdict::Succeeded { next_state: "review".into() }
        );
    }

    #[test]
    fn nonzero_exits_are_classified() {
        let r = result(valid("review"), None);
        for (code, t) in
            [(3, ErrorType::Logic), (75, ErrorType::Transient), (77, ErrorType::Auth), (1, ErrorType::Logic)]
        {
            let v = j(Exit::Code(code), &r);
            assert!(matches!(v, Verdict::Failed { exit_code: Some(c), on: FailOn::Result, .. } if c == code), "{v:?}");
            assert_eq!(error_type(&v), Some(t), "exit {code}");
        }
        assert_eq!(error_type(&j(Exit::TimedOut { seconds: 1 }, &r)), Some(ErrorType::Timeout));
        assert_eq!(error_type(&j(Exit::Signal(9), &r)), Some(ErrorType::Logic));
    }

    #[test]
    fn silent_handler_fails() {
        let mut r = result(valid("working"), Some("r"));
        r.is_claim = true;
        assert!(matches!(j(Exit::Code(0), &r), Verdict::Failed { error_type: ErrorType::Logic, .. }));
    }

    #[test]
    fn own_working_commit_parks_foreign_one_fails() {
        assert_eq!(j(Exit::Code(0), &result(valid("working"), Some("r"))), Verdict::Parked);
        assert_eq!(error_type(&j(Exit::Code(0), &result(valid("working"), Some("x")))), Some(ErrorType::State));
    }

    #[test]
    fn missing_or_invalid_state_fails() {
        assert!(matches!(j(Exit::Code(0), &result(StateRead::None, None)), Verdict::Failed { .. }));
        assert!(matches!(j(Exit::Code(0), &result(StateRead::Invalid("../x".into()), None)), Verdict::Failed { .. }));
    }

    #[test]
    fn timeouts_and_spawn_failures_fail_without_exit_code() {
        let r = result(valid("x"), None);
        assert!(matches!(j(Exit::TimedOut { seconds: 1 }, &r), Verdict::Failed { exit_code: None, .. }));
        assert!(matches!(j(Exit::SpawnFailed("ENOEXEC".into()), &r), Verdict::Failed { exit_code: None, .. }));
    }

    /// A handler that rewound or rewrote its lease: a `state` failure on top of the lease, even
    /// when it exited 0 with a valid next state; a failing exit keeps its own type.
    #[test]
    fn results_that_abandon_the_lease_are_state_failures() {
        let mut r = result(valid("done"), None);
        r.descends_from_lease = false;
        assert_eq!(
            j(Exit::Code(0), &r),
            Verdict::Failed {
                reason: NOT_FROM_LEASE.into(),
                exit_code: Some(0),
                error_type: ErrorType::State,
                on: FailOn::Lease
            }
        );
        assert!(matches!(
            j(Exit::Code(2), &r),
            Verdict::Failed { on: FailOn::Lease, error_type: ErrorType::Logic, .. }
        ));
    }

    #[test]
    fn gone_branch_and_lost_lease() {
        let r = result(valid("stalled"), None);
        assert_eq!(judge(&Exit::Code(0), LeaseHead::Gone, &r, "r", &ExitClasses::default()), Verdict::BranchGone);
        assert_eq!(judge(&Exit::Code(0), LeaseHead::Foreign, &r, "r", &ExitClasses::default()), Verdict::LeaseLost);
        assert_eq!(
            judge(&Exit::LeaseLost("moved".into()), LeaseHead::Ours, &r, "r", &ExitClasses::default()),
            Verdict::LeaseLost
        );
    }
}
