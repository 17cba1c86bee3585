//! The `aynig` command line: the git-baton executable invoked under the name `aynig` (a symlink,
//! or the shim the runner puts first on every handler's `PATH`) speaks AYNIG's commands and flags,
//! each mapped onto git-baton's implementation. docs/aynig.md has the table.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use super::{events, heartbeat, init, install, run, send, status};

/// aynig (git-baton's AYNIG-compatible command line): the newest commit of a branch says whose
/// turn it is (`dwp-state:`); `aynig run` runs `.dwp/command/<state>` for it.
#[derive(Parser, Debug)]
#[command(name = "aynig", disable_version_flag = true)]
struct AynigCli {
    /// Print the version (as `aynig version`).
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<AynigCommand>,
}

#[derive(Subcommand, Debug)]
enum AynigCommand {
    /// Run the handlers of every actionable branch (`git baton run`).
    Run(AynigRun),
    /// Show the board (`git baton status`; `--role`, else `AYNIG_ROLE`).
    Status(status::Args),
    /// Recent state commits (`git baton events`): the newest one, or `-n` of them with `--history`.
    Events(AynigEvents),
    /// Write a state commit (`git baton set-state`): commits staged changes, as AYNIG's does.
    SetState(send::SetStateArgs),
    /// Renew the lease (`git baton heartbeat`); body `Lease heartbeat` unless given.
    SetWorking(heartbeat::Args),
    /// Set up `.dwp/` (`git baton init`).
    Init(init::Args),
    /// Install a workflow pack from another repository (`git baton install`).
    Install(install::Args),
    /// Print the version.
    Version,
    /// Say how to upgrade (this `aynig` is git-baton).
    Update,
}

#[derive(clap::Args, Debug)]
struct AynigRun {
    #[command(flatten)]
    run: run::Args,
    /// AYNIG's worktree folder: accepted, not used (git-baton's worktrees live in
    /// `<git common dir>/baton/worktrees/`, outside your checkout).
    #[arg(short = 'w', long = "worktree", value_name = "PATH")]
    worktree: Option<String>,
}

#[derive(clap::Args, Debug)]
struct AynigEvents {
    /// Look past the newest commit (up to `--limit`, default 10).
    #[arg(long)]
    history: bool,
    /// How many events with `--history`.
    #[arg(short = 'n', long = "limit", value_name = "N", default_value_t = 10)]
    limit: usize,
    /// JSON instead of lines.
    #[arg(long)]
    json: bool,
}

/// Is this process running as `aynig` (argv[0]'s file name)?
pub fn invoked_as_aynig() -> bool {
    std::env::args_os().next().and_then(|a| Path::new(&a).file_name().map(|n| n == "aynig")).unwrap_or(false)
}

/// Parse AYNIG's command line; Err is clap's (help, version or a usage error).
pub fn parse() -> std::result::Result<AynigParsed, clap::Error> {
    use clap::CommandFactory;
    let cli = AynigCli::try_parse()?;
    match (cli.version, cli.command) {
        (true, _) => Ok(AynigParsed(AynigCommand::Version)),
        (false, Some(c)) => Ok(AynigParsed(c)),
        // AYNIG prints its usage and fails when no command is given.
        (false, None) => Err(AynigCli::command().error(clap::error::ErrorKind::MissingSubcommand, "name a command")),
    }
}

/// A parsed `aynig` command line.
#[derive(Debug)]
pub struct AynigParsed(AynigCommand);

impl AynigParsed {
    /// `--log-level` of `aynig run`, which also sets how much the runner itself says.
    pub fn log_level(&self) -> Option<&str> {
        match &self.0 {
            AynigCommand::Run(r) => r.run.log_level.as_deref(),
            _ => None,
        }
    }
}

pub fn run_aynig(cwd: &Path, parsed: AynigParsed) -> Result<ExitCode> {
    match parsed.0 {
        AynigCommand::Run(r) => {
            if let Some(w) = &r.worktree {
                tracing::warn!(
                    "-w/--worktree {w}: not used; git-baton runs handlers in worktrees under <git common dir>/baton/worktrees/"
                );
            }
            run::cmd_run(cwd, r.run)
        }
        AynigCommand::Status(a) => status::cmd_status(cwd, a),
        AynigCommand::Events(e) => {
            let mut args = events::Args::parse_from_aynig(e.json);
            args.max_count = Some(if e.history { e.limit.max(1) } else { 1 });
            events::cmd_events(cwd, args)
        }
        AynigCommand::SetState(a) => send::cmd_send(cwd, a.into_aynig_send()),
        AynigCommand::SetWorking(mut a) => {
            a.default_note = Some("Lease heartbeat".into());
            heartbeat::cmd_heartbeat(cwd, a)
        }
        AynigCommand::Init(a) => init::cmd_init(cwd, a),
        AynigCommand::Install(a) => install::cmd_install(cwd, a),
        AynigCommand::Version => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        AynigCommand::Update => {
            println!(
                "this aynig is git-baton {}; upgrade git-baton the way you installed it (from its source: cargo install --locked --path .)",
                env!("CARGO_PKG_VERSION")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_aynig_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::AynigCli::command().debug_assert();
    }
}
