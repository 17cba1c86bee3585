//! git-baton: a git repository as the coordination board for humans and coding agents.
//!
//! Layers (see DESIGN.md): [`protocol`] is pure (trailers, states, messages, leases), [`runner`]
//! plans ticks purely and executes them, [`repo`] is the only code that touches git, and [`cli`]
//! parses arguments and prints.

pub mod agent;
pub mod aynig;
pub mod cli;
pub mod doctor;
pub mod gc;
pub mod history;
pub mod humans;
pub mod notify;
pub mod policy;
pub mod protocol;
pub mod recovery;
pub mod repo;
pub mod report;
pub mod runner;
