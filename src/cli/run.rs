//! `git baton run`: one tick of the state machine over every branch.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};

use super::output::usage;
use super::Out;
use crate::policy::env::validate_pass_name;
use crate::policy::{Base, Resolved};
use crate::runner::clock;
use crate::runner::executor::{runner_id, Ctx, Executor, TickOptions};
use crate::runner::plan::CurrentBranch;
use crate::runner::report::{Event, Summary};
use crate::runner::tick::{self, TickSpec};

/// Run one tick: claim every actionable branch (valid state, not `working`, handler present) with
/// a compare-and-swap `working` commit, run its handler in a worktree slot, wait, validate, and
/// record failures as commits; take over expired leases with `stalled`.
///
/// One line per action on stderr and a summary; `--json` prints one object per action on stdout:
/// `{"branch","action","state","next_state","run_id","commit","exit_code","error","log",
/// "worktree","duration_ms"}` with `action` one of `claimed`, `succeeded`, `parked`, `failed` (a
/// dead letter), `retrying` (attempts left: back in its state with a `dwp-not-before` timer),
/// `escalated` (a fix loop passed `loop.hard`: blocked for a person), `took-over`, `joined` (a
/// waiting parent's join was complete: the join commit was written), `lost-race`, `notice`,
/// `error`. Exits 0 when the tick ran, even if handlers failed.
#[derive(clap::Args, Debug, Clone)]
#[group(skip)]
pub struct Args {
    /// Only branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    pub branches: Vec<String>,
    /// What to do with the branch checked out in the main worktree.
    #[arg(long, value_enum, default_value_t = CurrentBranch::Skip)]
    pub current_branch: CurrentBranch,
    /// Prefer handlers in `.dwp/roles/<ROLE>/command/` (also `AYNIG_ROLE`).
    #[arg(long, env = "BATON_ROLE")]
    pub role: Option<String>,
    /// Remote mode: fetch this remote once per tick, plan on its branches, claim and publish by
    /// push with an expected old value. Without it, a `dwp-source: git:<NAME>` trailer on the
    /// checked-out HEAD selects remote mode, as in AYNIG (`--dwp-remote` is AYNIG's spelling).
    #[arg(long, visible_alias = "dwp-remote", value_name = "NAME")]
    pub remote: Option<String>,
    /// The level handlers get as `AYNIG_LOG_LEVEL`: `debug`, `info`, `warn` or `error` (AYNIG's
    /// precedence: this flag, then the head's `dwp-log-level` trailer, then the runner's
    /// `AYNIG_LOG_LEVEL`, then `error`).
    #[arg(long, value_name = "LEVEL", value_parser = parse_log_level)]
    pub log_level: Option<String>,
    /// Handlers of different branches running at once.
    #[arg(long, short = 'j', default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub jobs: u64,
    /// Kill a handler's process group after this many seconds (default 3600; the policy's
    /// `timeout` overrides it).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Lease written on claim and renewed by the runner while the handler runs; another runner may
    /// take the branch over when it expires (default 300; the policy's `lease` overrides it).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_seconds: Option<u64>,
    /// Pass this environment variable (name or `*`/`?` glob) to handlers; repeatable. Added to
    /// the policy's `env.pass`; everything else but a documented base is dropped.
    #[arg(long = "pass-env", value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// Read handlers and the policy from this ref's tree, never from the task's commit (also
    /// `BATON_TRUSTED_REF`, git config `baton.trustedRef`). In remote mode a branch is read from
    /// its remote-tracking ref.
    #[arg(long, value_name = "REF")]
    pub trusted_ref: Option<String>,
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

/// `--log-level`: one of AYNIG's levels (`warning` is read as `warn`), else a usage error.
fn parse_log_level(v: &str) -> std::result::Result<String, String> {
    crate::aynig::normalize_log_level(v)
        .map(str::to_owned)
        .ok_or_else(|| format!("{v:?} is not a log level (debug, info, warn, error)"))
}

impl Args {
    /// Without `--remote`, AYNIG's rule: the checked-out HEAD's `dwp-source: git:<name>` selects
    /// remote mode for the run (said on stderr, so the switch is never silent). A repository
    /// without commits, or a bare one, keeps local mode.
    pub fn resolve_dwp_source(&mut self, cwd: &Path) -> Result<()> {
        if self.remote.is_some() {
            return Ok(());
        }
        let Ok(repo) = crate::repo::Repo::discover(cwd) else {
            return Ok(()); // the tick itself reports a missing repository
        };
        if repo.is_bare() {
            return Ok(());
        }
        if let Some(remote) = crate::aynig::head_source_remote(&repo)? {
            tracing::info!("remote mode on {remote}: HEAD carries dwp-source: git:{remote} (pass --remote to choose)");
            self.remote = Some(remote);
        }
        Ok(())
    }

    pub fn spec(&self) -> Result<TickSpec> {
        if self.role.as_deref() == Some("") {
            return Err(usage("--role (or BATON_ROLE) is empty: name a role, or leave it out"));
        }
        if let Some(r) = &self.remote {
            crate::runner::remote::check_remote_name(r).map_err(|e| usage(format!("--remote: {e}")))?;
        }
        let role = self.role.clone().or_else(|| std::env::var("AYNIG_ROLE").ok()).filter(|r| !r.is_empty());
        tick::check_role(role.as_deref()).map_err(|e| usage(format!("{e:#}")))?;
        for name in &self.pass_env {
            validate_pass_name(name).map_err(|e| usage(format!("--pass-env {name:?}: {e}")))?;
        }
        let mut base = Base { env_pass: self.pass_env.clone(), ..Base::default() };
        if let Some(t) = self.timeout {
            base.timeout = Resolved::command_line(t);
        }
        if let Some(l) = self.lease_seconds {
            base.lease = Resolved::command_line(l);
        }
        Ok(TickSpec {
            branches: self.branches.clone(),
            current: self.current_branch,
            role,
            remote: self.remote.clone(),
            trusted_ref: self.trusted_ref.clone(),
            base,
        })
    }

    pub fn options(&self) -> Result<TickOptions> {
        let grace = Duration::try_from_secs_f64(self.grace)
            .map_err(|_| usage("--grace must be a non-negative number of seconds"))?;
        Ok(TickOptions {
            jobs: self.jobs as usize,
            keep_worktrees: self.keep_worktrees,
            grace,
            runner_id: runner_id(),
            remote: self.remote.clone(),
            log_level: self.log_level.clone(),
        })
    }
}

/// The async side of a runner: a runtime, the stop signal, and the printer of events.
pub struct Session {
    pub runtime: tokio::runtime::Runtime,
}

impl Session {
    pub fn new() -> Result<Session> {
        // A handler runs as the same user: without this it could open /proc/<runner>/fd and
        // write to the runner's own descriptors (on Actions: workflow commands, unfenced).
        // SAFETY: a plain prctl on this process.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(Session { runtime })
    }
}

/// Prints events as they come (JSON on stdout with `--json`, a line on stderr always) and counts.
pub async fn print_events(mut rx: mpsc::UnboundedReceiver<Event>, json: bool) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut out = Out::new();
    while let Some(ev) = rx.recv().await {
        ev.log_line();
        summary.add(&ev);
        if json {
            out.json(&ev)?;
            out.flush()?;
        }
    }
    Ok(summary)
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Flip `tx` to true on SIGINT/SIGTERM (keeping the sender alive so receivers see `true`).
pub fn forward_stop(tx: watch::Sender<bool>, grace: Duration) {
    tokio::spawn(async move {
        stop_signal().await;
        tracing::warn!("stopping: no new claims; running handlers get {:.1}s", grace.as_secs_f64());
        let _ = tx.send(true);
        std::future::pending::<()>().await;
    });
}

/// Run one planned tick to the end, printing its events; returns the counts.
pub async fn execute_and_print(
    repo: crate::repo::Repo,
    opts: TickOptions,
    stop: watch::Receiver<bool>,
    actions: Vec<crate::runner::plan::Action>,
    json: bool,
) -> Result<Summary> {
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let mut executor = Executor::new(Arc::new(Ctx::new(repo, opts, stop, events_tx)));
    let work = tokio::spawn(async move {
        executor.submit(actions);
        executor.join_all().await;
    });
    // Printing stays on this task: stdout's lock is not Send. The channel closes when the
    // executor (which holds the last sender) is done.
    let summary = print_events(events_rx, json).await;
    work.await.context("runner task")?;
    summary
}

pub fn cmd_run(cwd: &Path, mut args: Args) -> Result<ExitCode> {
    args.resolve_dwp_source(cwd)?;
    let spec = args.spec()?;
    let opts = args.options()?;
    let started = clock::now();
    let tick::Prepared { repo, actions, source, cards, .. } =
        tick::prepare(cwd, &spec, started).map_err(anyhow::Error::from)?;
    tracing::debug!("{}", source.describe());
    let moved = crate::notify::moves_heads(&actions);
    let session = Session::new()?;
    let json = args.json;
    let summary = session.runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        forward_stop(stop_tx, opts.grace);
        execute_and_print(repo, opts, stop_rx, actions, json).await
    })?;
    crate::notify::after_tick_logged(cwd, &spec, &source, cards, moved, started);
    tracing::info!("{}", summary.line());
    if args.fail_on_error && (summary.failed > 0 || summary.errors > 0) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
