//! The runner: `plan` decides (pure), `exec` acts (claims, worktrees, processes, validation).

pub mod board;
pub mod clock;
