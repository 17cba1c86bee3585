//! History is the database: every step of a workflow is a commit, so runs, failures, durations,
//! checkpoints and the observed state machine are pure folds over a stream of parsed commits
//! (oldest first). Nothing here touches git, the clock or the terminal; `repo::walk` streams the
//! commits and `cli` prints.

pub mod budget;
pub mod checkpoints;
pub mod date;
pub mod graph;
pub mod metrics;
pub mod runs;
pub mod tree;

pub use date::{parse_date, parse_when};
pub use graph::Transitions;
pub use metrics::Metrics;
pub use runs::{Event, EventKind, FailureRecord, Fold, Record, Run, RunResult};
