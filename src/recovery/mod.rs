//! What happens after a handler fails — pure decisions, no git and no clock (`now` is an
//! argument): how an error is classified, whether and when it is retried, where a fix loop stops,
//! what a dead letter says, and how a circuit breaker moves. The runner feeds these functions what
//! it read from commits and refs and writes what they answer; the policy values come from
//! [`crate::policy::FailurePolicy`].

pub mod breaker;
pub mod classify;
pub mod deadletter;
pub mod retry;
pub mod rounds;

pub use breaker::{Admit, Breaker, BreakerConfig};
pub use classify::{ErrorType, ExitClasses};
pub use retry::{after_failure, backoff_delay, AfterFailure, Priority, RetryConfig};
pub use rounds::{loop_verdict, LoopVerdict};
