//! `git baton hooks`: git hooks that start ticks when branches move (client side) or are pushed
//! (server side), and a server-side check that refuses pushes which would corrupt the protocol.
//!
//! The hook scripts themselves live in `hooks/` at the root of the source tree and are compiled
//! into the binary; `install` writes them into the directory git reads hooks from, chaining any
//! hook that was there before (see [`install`]). The scripts do the cheap filtering in the shell
//! and call back into two subcommands here: `trigger` (a detached, debounced, one-at-a-time tick;
//! [`trigger`]) and `check-push` (the `pre-receive` check; [`receive`]).

mod install;
mod receive;
mod trigger;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

/// Git hooks that start ticks when branches move or are pushed, and refuse corrupting pushes.
///
/// `install`: client hooks start a tick in the background when a branch moves; `install
/// --server`: a receiving repository refuses pushes that would corrupt the protocol and starts a
/// tick for pushed branches. Existing hooks are chained, never overwritten; `core.hooksPath` is
/// respected. `BATON_HOOKS=0` in the environment makes the client hooks and `post-receive` do
/// nothing for that git command. See docs/hooks.md.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    Install(install::InstallArgs),
    Uninstall(install::UninstallArgs),
    Status(install::StatusArgs),
    Trigger(Box<trigger::Args>),
    CheckPush(receive::Args),
}

pub(crate) use install::installed_counts;

pub fn cmd_hooks(cwd: &Path, args: Args) -> Result<ExitCode> {
    match args.command {
        Sub::Install(a) => install::cmd_install(cwd, a),
        Sub::Uninstall(a) => install::cmd_uninstall(cwd, a),
        Sub::Status(a) => install::cmd_status(cwd, a),
        Sub::Trigger(a) => trigger::cmd_trigger(cwd, *a),
        Sub::CheckPush(a) => receive::cmd_check_push(a),
    }
}
