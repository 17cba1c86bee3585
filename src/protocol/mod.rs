//! The DWP/GC protocol, pure: trailer parsing, states, reserved trailers, message composing and
//! lease arithmetic. Nothing here touches git, the clock or the terminal.

pub mod lease;
pub mod message;
pub mod state;
pub mod trailers;

pub use lease::{Lease, LeaseStatus};
pub use message::{compose, MessageError, TrailerArg};
pub use state::{InvalidState, Reserved, State, StateRead};
pub use trailers::Trailer;

/// The trailer keys the protocol reserves (AYNIG's and the ones git-baton adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    State,
    OriginState,
    RunId,
    RunnerId,
    LeaseSeconds,
    StalledRun,
    Source,
    LogLevel,
    ExitCode,
    Error,
    ErrorType,
    NextOnFailure,
    Checkpoint,
    ResumedFrom,
    Attempt,
    MaxAttempts,
    CorrelationId,
    Parent,
    NotBefore,
    RetryOf,
    DeadLetter,
    RetryAfter,
    Priority,
    Escalation,
    Breaker,
    ParkedFrom,
    Exclusive,
    ApprovedBy,
    Approves,
    Decision,
    DependsOn,
    Cost,
    Tokens,
    BudgetRuns,
    BudgetSeconds,
    BudgetCost,
    BudgetReset,
}

impl Key {
    pub const ALL: [Key; 37] = [
        Key::State,
        Key::OriginState,
        Key::RunId,
        Key::RunnerId,
        Key::LeaseSeconds,
        Key::StalledRun,
        Key::Source,
        Key::LogLevel,
        Key::ExitCode,
        Key::Error,
        Key::ErrorType,
        Key::NextOnFailure,
        Key::Checkpoint,
        Key::ResumedFrom,
        Key::Attempt,
        Key::MaxAttempts,
        Key::CorrelationId,
        Key::Parent,
        Key::NotBefore,
        Key::RetryOf,
        Key::DeadLetter,
        Key::RetryAfter,
        Key::Priority,
        Key::Escalation,
        Key::Breaker,
        Key::ParkedFrom,
        Key::Exclusive,
        Key::ApprovedBy,
        Key::Approves,
        Key::Decision,
        Key::DependsOn,
        Key::Cost,
        Key::Tokens,
        Key::BudgetRuns,
        Key::BudgetSeconds,
        Key::BudgetCost,
        Key::BudgetReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Key::State => "dwp-state",
            Key::OriginState => "dwp-origin-state",
            Key::RunId => "dwp-run-id",
            Key::RunnerId => "dwp-runner-id",
            Key::LeaseSeconds => "dwp-lease-seconds",
            Key::StalledRun => "dwp-stalled-run",
            Key::Source => "dwp-source",
            Key::LogLevel => "dwp-log-level",
            Key::ExitCode => "dwp-exit-code",
            Key::Error => "dwp-error",
            Key::ErrorType => "dwp-error-type",
            Key::NextOnFailure => "dwp-next-on-failure",
            Key::Checkpoint => "dwp-checkpoint",
            Key::ResumedFrom => "dwp-resumed-from",
            Key::Attempt => "dwp-attempt",
            Key::MaxAttempts => "dwp-max-attempts",
            Key::CorrelationId => "dwp-correlation-id",
            Key::Parent => "dwp-parent",
            Key::NotBefore => "dwp-not-before",
            Key::RetryOf => "dwp-retry-of",
            Key::DeadLetter => "dwp-dead-letter",
            Key::RetryAfter => "dwp-retry-after",
            Key::Priority => "dwp-priority",
            Key::Escalation => "dwp-escalation",
            Key::Breaker => "dwp-breaker",
            Key::ParkedFrom => "dwp-parked-from",
            Key::Exclusive => "dwp-exclusive",
            Key::ApprovedBy => "dwp-approved-by",
            Key::Approves => "dwp-approves",
            Key::Decision => "dwp-decision",
            Key::DependsOn => "dwp-depends-on",
            Key::Cost => "dwp-cost",
            Key::Tokens => "dwp-tokens",
            Key::BudgetRuns => "dwp-budget-runs",
            Key::BudgetSeconds => "dwp-budget-seconds",
            Key::BudgetCost => "dwp-budget-cost",
            Key::BudgetReset => "dwp-budget-reset",
        }
    }

    /// Keys only a runner writes: a user's `send` may not forge a lease.
    pub fn runner_only(self) -> bool {
        matches!(self, Key::State | Key::OriginState | Key::RunId | Key::RunnerId | Key::LeaseSeconds | Key::StalledRun)
    }

    /// Facts only a runner records about a run (a `send` carrying them would mislead `log`).
    pub fn runner_fact(self) -> bool {
        matches!(
            self,
            Key::ExitCode
                | Key::Error
                | Key::ErrorType
                | Key::Attempt
                | Key::MaxAttempts
                | Key::RetryOf
                | Key::DeadLetter
                | Key::RetryAfter
                | Key::Escalation
                | Key::Breaker
                | Key::ParkedFrom
                | Key::ApprovedBy
                | Key::Approves
                | Key::Decision
        )
    }

    /// Facts of one commit that a copy of it must not repeat: the spend a handler reported
    /// (`dwp-cost`, `dwp-tokens`) and a budget reset. Retries, resumes and dead-letter retries
    /// leave them out, so nothing is counted twice.
    pub fn once_only(self) -> bool {
        matches!(self, Key::Cost | Key::Tokens | Key::BudgetReset)
    }

    /// The reserved key whose name equals `name` ignoring ASCII case (git's trailer keys are
    /// compared case-insensitively by most tools; a `DWP-Run-Id` must not slip past a check).
    pub fn from_name_ignore_case(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(name))
    }

    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.as_str() == name)
    }
}
