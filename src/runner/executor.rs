//! The runner's shared context and its executor: actions become tasks, at most `jobs` handlers
//! run at once and one job per branch; a poller submits every tick while earlier handlers are
//! still running.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};

use super::backend::{Backend, Local, Remote};
use super::exec::run_action;
use super::plan::Action;
use super::report::{Event, Kind};
use crate::repo::worktree::Scratch;
use crate::repo::Repo;

#[derive(Debug, Clone)]
pub struct TickOptions {
    pub jobs: usize,
    pub keep_worktrees: bool,
    pub grace: Duration,
    pub runner_id: String,
    /// Remote mode: the remote whose branches are the board.
    pub remote: Option<String>,
}

/// Everything the branch jobs of a runner share.
pub struct Ctx {
    repo: RwLock<gix::ThreadSafeRepository>,
    pub common_dir: PathBuf,
    /// The user's checkout, when the repository has one (for `--current-branch include|only`).
    pub main_workdir: Option<PathBuf>,
    pub opts: TickOptions,
    /// The board: the local repository, or a shared remote.
    pub board: Arc<dyn Backend>,
    /// The runner's own environment (UTF-8 entries), read once; handlers get a filtered copy.
    pub runner_env: Vec<(String, String)>,
    /// Flips to true on SIGINT/SIGTERM: stop claiming, give running handlers `grace`.
    pub shutdown: watch::Receiver<bool>,
    pub events: mpsc::UnboundedSender<Event>,
}

impl Ctx {
    pub fn new(
        repo: Repo,
        opts: TickOptions,
        shutdown: watch::Receiver<bool>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Ctx {
        let board: Arc<dyn Backend> = match &opts.remote {
            Some(name) => Arc::new(Remote { name: name.clone() }),
            None => Arc::new(Local),
        };
        let runner_env =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
        Ctx {
            board,
            runner_env,
            common_dir: repo.common_dir().to_path_buf(),
            main_workdir: repo.workdir().map(Path::to_path_buf),
            repo: RwLock::new(repo.into_sync()),
            opts,
            shutdown,
            events,
        }
    }
    /// Swap in a freshly opened repository (a poller re-reads configuration every tick).
    pub fn refresh(&self, repo: Repo) {
        *self.repo.write().unwrap_or_else(|p| p.into_inner()) = repo.into_sync();
    }
    pub(crate) fn repo(&self) -> Repo {
        Repo::from_sync(&self.repo.read().unwrap_or_else(|p| p.into_inner()))
    }
    pub(crate) fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }
    pub(crate) fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }
    pub(crate) fn scratch(&self) -> Scratch {
        Scratch::new(&self.common_dir)
    }
}

/// `host:pid`, written as `dwp-runner-id`.
pub fn runner_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown-host".to_owned()
    };
    format!("{host}:{}", std::process::id())
}

/// Runs actions as tasks, at most `jobs` handlers at once and one job per branch; a poller
/// submits every tick while earlier handlers are still running.
pub struct Executor {
    ctx: Arc<Ctx>,
    permits: Arc<Semaphore>,
    set: tokio::task::JoinSet<()>,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Executor {
    pub fn new(ctx: Arc<Ctx>) -> Executor {
        let permits = Arc::new(Semaphore::new(ctx.opts.jobs.max(1)));
        Executor { ctx, permits, set: tokio::task::JoinSet::new(), in_flight: Default::default() }
    }

    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// Branches with a job queued or running.
    pub fn busy(&self) -> HashSet<String> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn submit(&mut self, actions: Vec<Action>) {
        for action in actions {
            if let Action::Notice { branch, message } = action {
                let mut e = Event::new(&branch, Kind::Notice);
                e.error = Some(message);
                self.ctx.emit(e);
                continue;
            }
            let branch = action.branch().to_owned();
            if !self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(branch.clone()) {
                continue;
            }
            let (ctx, permits, in_flight) = (self.ctx.clone(), self.permits.clone(), self.in_flight.clone());
            self.set.spawn(async move {
                let mut shutdown = ctx.shutdown.clone();
                let permit = tokio::select! {
                    p = permits.acquire_owned() => p.ok(),
                    _ = shutdown.wait_for(|s| *s) => None,
                };
                if permit.is_some() && !ctx.stopping() {
                    if let Err(e) = run_action(&ctx, action).await {
                        let mut ev = Event::new(&branch, Kind::Error);
                        ev.error = Some(format!("{e:#}").replace('\n', " "));
                        ctx.emit(ev);
                    }
                }
                in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&branch);
            });
        }
    }

    /// Collect finished jobs without waiting.
    pub fn reap(&mut self) {
        while let Some(joined) = self.set.try_join_next() {
            self.report_panic(joined);
        }
    }

    pub async fn join_all(&mut self) {
        while let Some(joined) = self.set.join_next().await {
            self.report_panic(joined);
        }
    }

    fn report_panic(&self, joined: Result<(), tokio::task::JoinError>) {
        if let Err(e) = joined {
            let mut ev = Event::new("-", Kind::Error);
            ev.error = Some(format!("internal error in a branch job: {e}"));
            self.ctx.emit(ev);
        }
    }
}
