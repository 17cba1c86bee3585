//! The runner: `plan` decides (pure), `exec` acts (claims, worktrees, processes, validation),
//! `validate` judges an outcome (pure), `report` says what happened.

mod accept;
pub mod backend;
pub mod before;
pub mod board;
pub mod breakers;
pub mod clock;
mod concurrency;
pub mod context;
pub mod deps;
pub mod exec;
pub mod executor;
pub mod fanout;
pub mod gates;
pub mod join;
pub mod logcap;
pub mod messages;
pub mod plan;
pub mod process;
mod publish;
pub mod remote;
mod renewal;
pub mod report;
pub mod select;
pub mod shim;
pub mod source;
pub mod tick;
pub mod validate;

pub(crate) use crate::protocol::message::body_of as body_env;
