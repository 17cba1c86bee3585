//! `git baton watch`: a long-running poller — one tick every interval, handlers of different
//! branches running on while it polls the others.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};

use super::output::usage;
use super::run::{forward_stop, print_events, Args as RunArgs, Session};
use crate::repo::Repo;
use crate::runner::clock;
use crate::runner::executor::{Ctx, Executor};
use crate::runner::remote::{Advice, Breaker};
use crate::runner::tick::{self, TickError};

/// Poll: every `--interval` seconds (±10 % jitter, so several pollers spread out) run a tick with
/// the `run` options below. Ticks never overlap; a tick plans while handlers started by earlier
/// ticks keep running (their branches are skipped until they finish). The repository and its
/// configuration are re-read every tick. In remote mode a remote that cannot be fetched is
/// retried with exponential, capped, jittered backoff, and after 5 failures in a row a circuit
/// breaker leaves it alone for 10 minutes; both are logged once, not per branch.
///
/// Once a day (and when it starts) it runs `git baton gc` with the default age limit. Every
/// `dlq.sweep` (policy `[defaults]`, default 15m; and when it starts) it runs `git baton dlq sweep`
/// over the selected branches: dead letters of transient and timeout errors whose `retry_after`
/// passed go back to their state when their circuit breaker is closed (not in remote mode: the
/// dead-letter queue is read from local branches).
///
/// A notice (a handler that is not executable, the checked-out branch, an invalid state) is said
/// once, not every tick; it is said again after it went away for a tick or its text changed.
///
/// `--report FILE` rewrites the HTML page of `git baton report -o FILE` (for the branches the
/// watch selects) after every tick that found a branch head or a ref under `refs/baton/`
/// changed, and once more when the watch stops; the file is replaced atomically (a temporary file
/// in the same folder, then a rename), so any static web server can show a live board.
///
/// SIGINT/SIGTERM: stop claiming, wait for running handlers up to `--grace` (default 30 s), then
/// kill them and record their failures, exit 0. `--json` prints one object per action, as `run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds between ticks (fractions allowed).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    interval: f64,
    /// Stop after this many ticks (0: run until signalled); for scripts and tests.
    #[arg(long, default_value_t = 0, value_name = "N")]
    max_ticks: u64,
    /// Rewrite this HTML report (as `git baton report -o FILE`) after each tick that changed
    /// something.
    #[arg(long, value_name = "FILE")]
    report: Option<std::path::PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

/// A cheap jitter source in [0, 1): the clock's nanoseconds and the pid.
fn jitter() -> f64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mixed = (u64::from(nanos) ^ (u64::from(std::process::id()) << 17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}

/// How often `watch` runs `gc` (with its default age limit).
const GC_EVERY: Duration = Duration::from_secs(24 * 3600);

/// `git baton gc --older-than 14d`, from the poller: logged, never fatal. Also prunes the
/// records of notifications too old to matter (`git baton notify --prune`).
fn daily_gc(cwd: &Path, remote: Option<&str>) {
    let removed = Repo::discover(cwd)
        .and_then(|repo| crate::gc::collect::run_gc(&repo, Duration::from_secs(14 * 86_400), false, clock::now()));
    match removed {
        Ok(r) if r.is_empty() => tracing::debug!("gc: nothing to remove"),
        Ok(r) => tracing::info!("gc: removed {} item(s) of scratch older than 14d", r.len()),
        Err(e) => tracing::warn!("gc failed: {e:#}"),
    }
    match Repo::discover(cwd).and_then(|repo| crate::notify::prune(&repo, remote, clock::now(), false)) {
        Ok(p) if p.is_empty() => {}
        Ok(p) => tracing::info!("notify: pruned {} record(s) of old notifications", p.len()),
        Err(e) => tracing::warn!("pruning notification records failed: {e:#}"),
    }
}

/// Rewrite the report when the board's fingerprint moved from `last`; returns the fingerprint
/// the page on disk shows. Failures are logged, never fatal.
async fn refresh_report(cwd: &Path, path: &Path, globs: &[String], last: Option<u64>) -> Option<u64> {
    let (dir, path, globs) = (cwd.to_path_buf(), path.to_path_buf(), globs.to_vec());
    let done = tokio::task::spawn_blocking(move || -> Result<Option<(u64, usize)>> {
        let fp = super::report::board_fingerprint(&dir)?;
        if Some(fp) == last {
            return Ok(None);
        }
        let bytes =
            super::report::write_report(&dir, &path, &globs).with_context(|| format!("report {}", path.display()))?;
        Ok(Some((fp, bytes)))
    })
    .await;
    match done {
        Ok(Ok(Some((fp, bytes)))) => {
            tracing::debug!("report rewritten ({bytes} bytes)");
            Some(fp)
        }
        Ok(Ok(None)) => last,
        Ok(Err(e)) => {
            tracing::warn!("{e:#}");
            last
        }
        Err(e) => {
            tracing::error!("report panicked: {e}");
            last
        }
    }
}

fn now_f64() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

pub fn cmd_watch(cwd: &Path, mut args: Args) -> Result<ExitCode> {
    args.run.resolve_dwp_source(cwd)?;
    let interval = Duration::try_from_secs_f64(args.interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| usage("--interval must be a positive number of seconds"))?;
    let spec = args.run.spec()?;
    let opts = args.run.options()?;
    let repo = Repo::discover(cwd)?;
    let session = Session::new()?;
    let json = args.run.json;
    let cwd = cwd.to_path_buf();
    let max_ticks = args.max_ticks;
    let report = args.report.clone();
    if report.as_ref().is_some_and(|p| p.file_name().is_none()) {
        return Err(usage("--report: not a file name"));
    }
    let summary = session.runtime.block_on(async move {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        forward_stop(stop_tx, opts.grace);
        let ctx = Arc::new(Ctx::new(repo, opts, stop_rx.clone(), events_tx));
        let poller = tokio::spawn(async move {
            let mut executor = Executor::new(ctx);
            let mut breaker = Breaker::new(interval.max(Duration::from_secs(1)));
            let mut ticks = 0u64;
            let mut said_source: Option<String> = None;
            // Notices are said once, not every tick (see `tick::without_repeats`).
            let mut said_notices = tick::Said::new();
            let mut last_gc: Option<std::time::Instant> = None;
            let mut due_next: Option<tokio::time::Instant> = None;
            let mut last_sweep: Option<std::time::Instant> = None;
            let mut sweep_every = Duration::from_secs(crate::policy::failure::built_in::SWEEP);
            // Notifications: one pass at a time, in the background, over the board a tick read;
            // heads since the previous tick's start count when the board has no watermark yet.
            let mut notifying: Option<tokio::task::JoinHandle<()>> = None;
            let mut notify_since = clock::now();
            let mut last_source = None;
            let mut last_report: Option<u64> = None;
            tracing::info!("watching every {:.1}s", interval.as_secs_f64());
            loop {
                executor.reap();
                let mut wait = interval.mul_f64(0.9 + 0.2 * jitter());
                let tick_start = clock::now();
                if breaker.allows(now_f64()) {
                    let (dir, s) = (cwd.clone(), spec.clone());
                    let prepared = tokio::task::spawn_blocking(move || tick::prepare(&dir, &s, clock::now())).await;
                    match prepared {
                        Ok(Ok(tick::Prepared { repo, actions, source, next_due, cards })) => {
                            // A retry timer due before the next tick: wake for it instead.
                            if let Some(due) = next_due {
                                let secs = (due - clock::now()).max(0) as f64 + 0.05;
                                wait = wait.min(Duration::from_secs_f64(secs));
                            }
                            if breaker.succeeded() {
                                tracing::info!("remote reachable again");
                            }
                            if said_source.as_ref() != Some(&source.describe()) {
                                tracing::info!("{}", source.describe());
                                said_source = Some(source.describe());
                            }
                            executor.ctx().refresh(repo);
                            let busy = executor.busy();
                            let actions = actions.into_iter().filter(|a| !busy.contains(a.branch())).collect();
                            let (actions, now_said) = tick::without_repeats(actions, &said_notices);
                            said_notices = now_said;
                            executor.submit(actions);
                            if notifying.as_ref().is_none_or(|h| h.is_finished()) {
                                let (dir, s, src, since) = (cwd.clone(), spec.clone(), source.clone(), notify_since);
                                notifying = Some(tokio::task::spawn_blocking(move || {
                                    crate::notify::after_tick_logged(&dir, &s, &src, cards, false, since)
                                }));
                                notify_since = tick_start;
                            }
                            last_source = Some(source);
                        }
                        Ok(Err(TickError::Fetch { remote, why })) => match breaker.failed(now_f64(), jitter()) {
                            Advice::Backoff { wait: w, first } => {
                                if first {
                                    tracing::warn!("cannot fetch {remote}: {why}; backing off");
                                }
                                wait = w;
                            }
                            Advice::Open { wait: w } => {
                                tracing::error!(
                                    "cannot fetch {remote} ({} failures in a row): {why}; leaving it alone for {}s",
                                    breaker.failures(),
                                    w.as_secs()
                                );
                                wait = w;
                            }
                            Advice::Normal => {}
                        },
                        Ok(Err(TickError::Other(e))) => tracing::error!("tick failed: {e:#}"),
                        Err(e) => tracing::error!("tick panicked: {e}"),
                    }
                }
                if last_gc.is_none_or(|t| t.elapsed() >= GC_EVERY) {
                    last_gc = Some(std::time::Instant::now());
                    let (dir, remote) = (cwd.clone(), spec.remote.clone());
                    tokio::task::spawn_blocking(move || daily_gc(&dir, remote.as_deref()));
                }
                if spec.remote.is_none() && last_sweep.is_none_or(|t| t.elapsed() >= sweep_every) {
                    last_sweep = Some(std::time::Instant::now());
                    let (dir, s) = (cwd.clone(), spec.clone());
                    let swept = tokio::task::spawn_blocking(move || {
                        super::dlq::watch_sweep(&dir, s.trusted_ref.as_deref(), &s.branches)
                    })
                    .await;
                    match swept {
                        Ok(every) => sweep_every = every,
                        Err(e) => tracing::error!("dlq sweep panicked: {e}"),
                    }
                }
                if let Some(path) = &report {
                    last_report = refresh_report(&cwd, path, &spec.branches, last_report).await;
                }
                ticks += 1;
                if max_ticks > 0 && ticks >= max_ticks {
                    break;
                }
                // Sleep the interval, or until a retry timer one of our jobs set comes due.
                let deadline = tokio::time::Instant::now() + wait;
                let mut stop = false;
                loop {
                    let mut until = deadline;
                    if let Some(due) = executor.ctx().take_due() {
                        let secs = (due - clock::now()).max(0) as f64 + 0.05;
                        until = until.min(tokio::time::Instant::now() + Duration::from_secs_f64(secs));
                        due_next = Some(until);
                    }
                    if let Some(d) = due_next {
                        until = until.min(d);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => break,
                        _ = executor.ctx().wake.notified() => continue,
                        _ = stop_rx.wait_for(|s| *s) => {
                            stop = true;
                            break;
                        }
                    }
                }
                due_next = None;
                if stop {
                    break;
                }
            }
            executor.join_all().await;
            if let Some(path) = &report {
                refresh_report(&cwd, path, &spec.branches, last_report).await;
            }
            // The last answers are notified before the poller stops.
            if let Some(h) = notifying {
                let _ = h.await;
            }
            if let Some(src) = last_source {
                let (dir, s) = (cwd.clone(), spec.clone());
                let since = notify_since;
                let _ = tokio::task::spawn_blocking(move || {
                    crate::notify::after_tick_logged(&dir, &s, &src, Vec::new(), true, since)
                })
                .await;
            }
        });
        let summary = print_events(events_rx, json).await;
        poller.await.context("poller task")?;
        summary
    })?;
    tracing::info!("watch stopped; {}", summary.line());
    Ok(ExitCode::SUCCESS)
}
