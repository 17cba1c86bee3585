//! Command-line entry: one file per subcommand, a single place mapping outcomes to exit codes
//! (0 ok, 1 failure, 2 usage error), data on stdout, messages for people on stderr.

mod agent;
mod aynig;
mod breakers;
mod budget;
mod checkpoints;
mod completions;
mod conflicts;
mod dlq;
mod doctor;
mod events;
mod gate;
mod gc;
mod graph;
mod heartbeat;
mod hooks;
mod inbox;
mod init;
mod install;
mod join;
mod log;
mod man;
mod metrics;
mod migrate_aynig;
mod notify;
mod output;
mod park;
mod policy;
mod ready;
mod report;
mod resume;
mod run;
mod scan;
mod send;
mod spawn;
mod status;
mod task;
mod trailers;
mod tree;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use output::{glob_match, Out, UsageError};

/// git-baton: the newest commit of a branch says whose turn it is (`dwp-state:` trailer); a runner
/// runs the handler for that state in a worktree and the handler answers with a commit.
#[derive(Parser, Debug)]
#[command(name = "git-baton", bin_name = "git baton", version, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Less log output on stderr (errors only).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Trailers(trailers::Args),
    Status(status::Args),
    Events(events::Args),
    Send(send::Args),
    /// AYNIG-compatible alias of `send`: `set-state --dwp-state STATE …`.
    SetState(send::SetStateArgs),
    #[command(alias = "set-working")]
    Heartbeat(heartbeat::Args),
    Init(init::Args),
    Run(run::Args),
    Watch(watch::Args),
    Log(log::Args),
    Checkpoints(checkpoints::Args),
    Resume(resume::Args),
    Metrics(metrics::Args),
    Graph(graph::Args),
    Gc(gc::Args),
    Conflicts(conflicts::Args),
    Hooks(hooks::Args),
    Policy(policy::Args),
    Inbox(inbox::Args),
    Ready(ready::Args),
    Tree(tree::Args),
    Breakers(breakers::Args),
    Budget(budget::Args),
    Park(park::ParkArgs),
    Unpark(park::UnparkArgs),
    Dlq(dlq::Args),
    Approve(gate::ApproveArgs),
    Reject(gate::RejectArgs),
    RequestChanges(gate::RequestChangesArgs),
    Notify(notify::Args),
    Task(task::Args),
    Spawn(spawn::Args),
    Join(join::Args),
    Agent(agent::Args),
    Install(install::Args),
    MigrateAynig(migrate_aynig::Args),
    Doctor(doctor::Args),
    Man(man::Args),
    Completions(completions::Args),
    Report(report::Args),
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "git_baton=info,warn",
        (false, 1) => "git_baton=debug,info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}

pub fn main() -> ExitCode {
    if aynig::invoked_as_aynig() {
        return aynig_main();
    }
    completions::answer_if_asked();
    man::auto_install();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_tracing(cli.verbose, cli.quiet);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            if output::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            // One line: the outermost context and its causes, joined.
            let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
            eprintln!("git-baton: error: {}", msg.replace('\n', " "));
            let usage = e.chain().any(|c| c.downcast_ref::<UsageError>().is_some());
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// The executable invoked as `aynig`: AYNIG's command line (see `aynig.rs`). `run --log-level`
/// (else `AYNIG_LOG_LEVEL`) also sets how much it says (`debug` as -vv, `info` as -v, `error` as
/// -q).
fn aynig_main() -> ExitCode {
    let parsed = match aynig::parse() {
        Ok(p) => p,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // AYNIG's precedence for the runner's own output: --log-level, then AYNIG_LOG_LEVEL.
    let env_level = std::env::var("AYNIG_LOG_LEVEL").ok().and_then(|l| crate::aynig::normalize_log_level(&l));
    let (verbose, quiet) = match parsed.log_level().or(env_level) {
        Some("debug") => (2, false),
        Some("info") => (1, false),
        Some("error") => (0, true),
        _ => (0, false),
    };
    init_tracing(verbose, quiet);
    let result = std::env::current_dir()
        .map_err(|e| anyhow::anyhow!("cannot read the current directory: {e}"))
        .and_then(|cwd| aynig::run_aynig(&cwd, parsed));
    finish(result, "aynig")
}

/// The outcome of a command as an exit code, the error as one line on stderr.
fn finish(result: anyhow::Result<ExitCode>, name: &str) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            if output::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
            eprintln!("{name}: error: {}", msg.replace('\n', " "));
            let usage = e.chain().any(|c| c.downcast_ref::<UsageError>().is_some());
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// clap's verdict on the command line: help and version as clap prints them (exit 0); a usage
/// mistake as one line, `git-baton: error: …` with clap's tip if it has one (exit 2) — the usage
/// text only with `--help`.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // `git baton` alone: the overview is what was asked for, but it is still a usage error.
        let _ = e.print();
        return ExitCode::from(2);
    }
    eprintln!("git-baton: error: {}", one_line(&e.render().to_string()));
    ExitCode::from(2)
}

/// clap's rendered error reduced to one line: its first line without the `error:` prefix, and its
/// tips, joined; the usage block and "For more information" dropped.
fn one_line(rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid command line");
    let mut msg = first.strip_prefix("error:").unwrap_or(first).trim().to_owned();
    for l in lines {
        if let Some(tip) = l.strip_prefix("tip:") {
            msg.push_str(&format!(" ({})", tip.trim()));
        } else if l.starts_with("Usage:") || l.starts_with("For more information") {
            break;
        } else if let Some(inner) = l.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            msg.push_str(&format!(" ({inner})"));
        } else {
            // A continuation of the message (the missing arguments, a second sentence).
            msg.push_str(if msg.ends_with(':') { " " } else { ", " });
            msg.push_str(l);
        }
    }
    msg
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().map_err(|e| anyhow::anyhow!("cannot read the current directory: {e}"))?;
    match command {
        Command::Trailers(a) => trailers::cmd_trailers(&cwd, a),
        Command::Status(a) => status::cmd_status(&cwd, a),
        Command::Events(a) => events::cmd_events(&cwd, a),
        Command::Send(a) => send::cmd_send(&cwd, a),
        Command::SetState(a) => send::cmd_send(&cwd, a.into_send()),
        Command::Heartbeat(a) => heartbeat::cmd_heartbeat(&cwd, a),
        Command::Init(a) => init::cmd_init(&cwd, a),
        Command::Run(a) => run::cmd_run(&cwd, a),
        Command::Watch(a) => watch::cmd_watch(&cwd, a),
        Command::Log(a) => log::cmd_log(&cwd, a),
        Command::Checkpoints(a) => checkpoints::cmd_checkpoints(&cwd, a),
        Command::Resume(a) => resume::cmd_resume(&cwd, a),
        Command::Metrics(a) => metrics::cmd_metrics(&cwd, a),
        Command::Graph(a) => graph::cmd_graph(&cwd, a),
        Command::Gc(a) => gc::cmd_gc(&cwd, a),
        Command::Agent(a) => agent::cmd_agent(&cwd, a),
        Command::Conflicts(a) => conflicts::cmd_conflicts(&cwd, a),
        Command::Hooks(a) => hooks::cmd_hooks(&cwd, a),
        Command::Policy(a) => policy::cmd_policy(&cwd, a),
        Command::Inbox(a) => inbox::cmd_inbox(&cwd, a),
        Command::Ready(a) => ready::cmd_ready(&cwd, a),
        Command::Tree(a) => tree::cmd_tree(&cwd, a),
        Command::Spawn(a) => spawn::cmd_spawn(&cwd, a),
        Command::Join(a) => join::cmd_join(&cwd, a),
        Command::Breakers(a) => breakers::cmd_breakers(&cwd, a),
        Command::Budget(a) => budget::cmd_budget(&cwd, a),
        Command::Park(a) => park::cmd_park(&cwd, a),
        Command::Unpark(a) => park::cmd_unpark(&cwd, a),
        Command::Dlq(a) => dlq::cmd_dlq(&cwd, a),
        Command::Approve(a) => gate::cmd_approve(&cwd, a),
        Command::Reject(a) => gate::cmd_reject(&cwd, a),
        Command::RequestChanges(a) => gate::cmd_request_changes(&cwd, a),
        Command::Notify(a) => notify::cmd_notify(&cwd, a),
        Command::Task(a) => task::cmd_task(&cwd, a),
        Command::Install(a) => install::cmd_install(&cwd, a),
        Command::MigrateAynig(a) => migrate_aynig::cmd_migrate_aynig(&cwd, a),
        Command::Doctor(a) => doctor::cmd_doctor(&cwd, a),
        Command::Man(a) => man::cmd_man(a),
        Command::Completions(a) => completions::cmd_completions(a),
        Command::Report(a) => report::cmd_report(&cwd, a),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn clap_errors_become_one_line() {
        let cases = [
            (
                "error: unexpected argument '--brnch' found\n\n  tip: a similar argument exists: '--branch'\n\nUsage: git baton run --branch <GLOB>\n\nFor more information, try '--help'.\n",
                "unexpected argument '--brnch' found (a similar argument exists: '--branch')",
            ),
            (
                "error: the following required arguments were not provided:\n  <STATE>\n\nUsage: git baton send <STATE>\n",
                "the following required arguments were not provided: <STATE>",
            ),
            (
                "error: invalid value 'x' for '--current-branch <CURRENT_BRANCH>'\n  [possible values: skip, include, only]\n\nFor more information, try '--help'.\n",
                "invalid value 'x' for '--current-branch <CURRENT_BRANCH>' (possible values: skip, include, only)",
            ),
            ("", "invalid command line"),
        ];
        for (rendered, want) in cases {
            assert_eq!(super::one_line(rendered), want, "{rendered:?}");
        }
    }
}
