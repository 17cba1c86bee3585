//! `git baton run`: one tick of the state machine over every branch.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::output::branch_selected;
use super::Out;
use crate::repo::worktree::{run_git, Scratch};
use crate::repo::{BranchSource, Repo};
use crate::runner::board::read_board;
use crate::runner::clock;
use crate::runner::exec::{execute, runner_id, Ctx, TickOptions};
use crate::runner::plan::{plan, Action, Checkout, CurrentBranch, PlanInput};
use crate::runner::report::Summary;

/// Run one tick: claim every actionable branch (valid state, not `working`, handler present) with
/// a compare-and-swap `working` commit, run its handler in a linked worktree, wait, validate, and
/// record failures as commits; take over expired leases with `stalled`.
///
/// One line per action on stderr and a summary; `--json` prints one object per action on stdout:
/// `{"branch","action","state","next_state","run_id","commit","exit_code","error","log",
/// "worktree","duration_ms"}` with `action` one of `claimed`, `succeeded`, `parked`, `failed`,
/// `took-over`, `lost-race`, `notice`, `error`. Exits 0 when the tick ran, even if handlers failed.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Only branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    pub branches: Vec<String>,
    /// What to do with the branch checked out in the main worktree.
    #[arg(long, value_enum, default_value_t = CurrentBranch::Skip)]
    pub current_branch: CurrentBranch,
    /// Prefer handlers in `.dwp/roles/<ROLE>/command/`.
    #[arg(long, env = "BATON_ROLE")]
    pub role: Option<String>,
    /// Handlers of different branches running at once.
    #[arg(long, short = 'j', default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub jobs: u64,
    /// Kill a handler's process group after this many seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Lease written on claim; another runner may take the branch over when it expires.
    #[arg(long, default_value_t = 300, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_seconds: u64,
    /// Keep worktrees of successful runs (failed runs always keep theirs).
    #[arg(long)]
    pub keep_worktrees: bool,
    /// On SIGINT/SIGTERM: stop claiming, let running handlers finish for this long, then kill them.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub grace: f64,
    /// One JSON object per action on stdout.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a handler failed or the runner hit an error (for CI).
    #[arg(long)]
    pub fail_on_error: bool,
}

/// The branch checked out in the main worktree, from `<common dir>/HEAD`.
fn main_branch(repo: &Repo) -> Option<String> {
    if repo.is_bare() {
        return None;
    }
    let head = std::fs::read_to_string(repo.common_dir().join("HEAD")).ok()?;
    head.trim()
        .strip_prefix("ref: refs/heads/")
        .map(str::to_owned)
}

/// Branches checked out in linked worktrees that are not git-baton's own: (branch, path).
fn user_worktrees(repo: &Repo, scratch: &Scratch) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(repo.common_dir().join("worktrees")) else {
        return out;
    };
    let ours = scratch
        .root
        .canonicalize()
        .unwrap_or_else(|_| scratch.root.clone());
    for entry in entries.flatten() {
        let dir = entry.path();
        let (Ok(head), Ok(gitdir)) = (
            std::fs::read_to_string(dir.join("HEAD")),
            std::fs::read_to_string(dir.join("gitdir")),
        ) else {
            continue;
        };
        let Some(branch) = head.trim().strip_prefix("ref: refs/heads/") else {
            continue;
        };
        let Some(path) = Path::new(gitdir.trim()).parent() else {
            continue;
        };
        if !path.exists() {
            continue; // stale registration: pruned before a worktree is added
        }
        let real = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if !real.starts_with(&ours) {
            out.push((branch.to_owned(), path.to_path_buf()));
        }
    }
    out
}

pub fn cmd_run(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let grace = Duration::try_from_secs_f64(args.grace)
        .map_err(|_| super::output::usage("--grace must be a non-negative number of seconds"))?;
    let role = args
        .role
        .clone()
        .or_else(|| std::env::var("AYNIG_ROLE").ok())
        .filter(|r| !r.is_empty());
    if let Some(r) = &role {
        crate::protocol::State::parse(r)
            .map_err(|e| super::output::usage(format!("invalid role: {e}")))?;
    }
    let scratch = Scratch::new(repo.common_dir());
    let main = main_branch(&repo);
    let elsewhere = user_worktrees(&repo, &scratch);

    let cards = read_board(
        &repo,
        &BranchSource::Local,
        |b| branch_selected(&args.branches, b),
        role.as_deref(),
    )?;
    let inputs: Vec<PlanInput> = cards
        .into_iter()
        .map(|card| {
            let checkout = if main.as_deref() == Some(card.head.branch.as_str()) {
                Checkout::Main
            } else if let Some((_, p)) = elsewhere.iter().find(|(b, _)| *b == card.head.branch) {
                Checkout::Elsewhere(p.clone())
            } else {
                Checkout::Free
            };
            PlanInput { card, checkout }
        })
        .collect();
    let actions = plan(&inputs, clock::now(), args.current_branch);

    let main_workdir = repo.workdir().map(Path::to_path_buf);
    let touches_main = actions.iter().any(|a| {
        matches!(
            a,
            Action::Run {
                force_worktree: true,
                ..
            } | Action::TakeOver {
                force_worktree: true,
                ..
            }
        )
    });
    if touches_main {
        let dir = main_workdir.as_deref().context("no main worktree")?;
        let dirty = run_git(dir, ["status", "--porcelain", "--untracked-files=no"])?;
        if !dirty.trim().is_empty() {
            bail!(
                "refusing --current-branch {:?}: your checkout has uncommitted changes",
                args.current_branch
            );
        }
    }

    let opts = TickOptions {
        jobs: args.jobs as usize,
        timeout: Duration::from_secs(args.timeout),
        lease_seconds: args.lease_seconds,
        keep_worktrees: args.keep_worktrees,
        grace,
        runner_id: runner_id(),
    };
    let common_dir = repo.common_dir().to_path_buf();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = runtime.block_on(async move {
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
        let ctx = Arc::new(Ctx {
            repo: repo.into_sync(),
            common_dir,
            main_workdir,
            opts,
            shutdown: shutdown_rx,
            events: events_tx,
        });
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            tracing::warn!(
                "stopping: no new claims; running handlers get {:.1}s",
                grace.as_secs_f64()
            );
            let _ = shutdown_tx.send(true);
            // Keep the sender alive so receivers see `true`, not a closed channel.
            std::future::pending::<()>().await;
        });
        let work = tokio::spawn(execute(ctx, actions));
        let mut summary = Summary::default();
        let mut out = Out::new();
        while let Some(ev) = events_rx.recv().await {
            ev.log_line();
            summary.add(&ev);
            if args.json {
                out.json(&ev)?;
                out.flush()?;
            }
        }
        work.await.context("runner task")?;
        anyhow::Ok(summary)
    })?;
    tracing::info!("{}", summary.line());
    if args.fail_on_error && (summary.failed > 0 || summary.errors > 0) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}
