//! What the branch jobs of one runner share: the repository handle, the board (local or
//! remote), the runner's options and environment, the stop signal and the event channel.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

use super::backend::{Backend, Local, Remote};
use super::report::Event;
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
    /// `--log-level` (AYNIG's): first in the precedence of the level handlers get as
    /// `AYNIG_LOG_LEVEL` (then the head's `dwp-log-level`, then the runner's `AYNIG_LOG_LEVEL`).
    pub log_level: Option<String>,
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
    /// The earliest retry timer a job of this runner set (epoch seconds), and the signal a
    /// poller waits on to wake for it instead of sleeping a whole interval.
    due: Mutex<Option<i64>>,
    pub wake: Notify,
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
            due: Mutex::new(None),
            wake: Notify::new(),
        }
    }
    /// A job scheduled work at `at` (a retry's `dwp-not-before`): wake the poller for it.
    pub(crate) fn note_due(&self, at: i64) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        *due = Some(due.map_or(at, |d| d.min(at)));
        self.wake.notify_one();
    }
    /// The earliest timer noted since the last call (the next tick re-reads every timer anyway).
    pub fn take_due(&self) -> Option<i64> {
        self.due.lock().unwrap_or_else(|p| p.into_inner()).take()
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
