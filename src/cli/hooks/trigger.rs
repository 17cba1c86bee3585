//! `git baton hooks trigger`: the tick a hook starts, detached from the git command that fired it.
//!
//! The hook scripts start this in the background and return at once. It then
//! 1. leaves the git command's session (`setsid`) and writes everything to
//!    `<common git dir>/baton/hooks.log`;
//! 2. appends the branches that moved to `baton/hooks.pending` (under an `flock` on that file);
//! 3. waits a moment (`BATON_HOOKS_DEBOUNCE_MS`, default 300 ms), so a burst of ref updates (a
//!    rebase, a pull of many branches) becomes one tick, and git has released its locks;
//! 4. takes `baton/hooks.lock` (`flock`, non-blocking). If another hook-started tick holds it,
//!    this one exits: the holder takes the pending branches when its tick ends. The holder
//!    drains the pending list until it is empty, releases the lock and looks once more, so no
//!    branch is left behind by a trigger that gave up just before the lock was released.
//!
//! For each batch it runs ticks restricted to those branches until they come to rest (a tick that
//! claims nothing), at most `--max-ticks`: handlers' own commits start no hooks (`BATON_RUN_ID`),
//! so a workflow of several steps advances without another trigger. The branch checked out in the
//! main worktree runs in a tick of its own with `--current-branch only` (which refuses a dirty
//! checkout, logged) so that it never holds the others back; with `--current-branch skip` it is
//! left alone until you switch away from it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::cli::run::{execute_and_print, forward_stop, Args as RunArgs, Session};
use crate::repo::worktree::{run_git, Scratch};
use crate::repo::Repo;
use crate::runner::clock;
use crate::runner::plan::{Action, CurrentBranch};
use crate::runner::tick::{self, TickSpec};

/// Used by the installed hooks: run ticks for the branches that moved, in the background.
///
/// Detaches, waits `BATON_HOOKS_DEBOUNCE_MS` (default 300), and runs one hook-started tick at a
/// time (see docs/hooks.md). Takes `run`'s options; `--branch` names the branches that moved.
/// Output goes to `<common git dir>/baton/hooks.log`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The hook that started this (for the log).
    #[arg(long, default_value = "manual")]
    hook: String,
    /// Also the branch checked out before the last `git checkout`/`git switch` (`@{-1}`).
    #[arg(long)]
    previous_branch: bool,
    /// Ticks per batch of branches at most (a workflow of several steps needs several).
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_ticks: u64,
    #[command(flatten)]
    run: RunArgs,
}

/// Wait before the first tick, in milliseconds.
const DEBOUNCE_VAR: &str = "BATON_HOOKS_DEBOUNCE_MS";
const DEFAULT_DEBOUNCE_MS: u64 = 300;
/// `hooks.log` is moved to `hooks.log.1` when it grows past this.
const LOG_LIMIT: u64 = 1 << 20;

/// One line in the log, with time and pid (several triggers may write to it).
fn note(msg: impl std::fmt::Display) {
    // One write per line: stderr is unbuffered, and `writeln!` would write the pieces one by one,
    // so two triggers appending at once could interleave inside a line.
    let line = format!("{} [{}] {msg}\n", clock::iso_utc(clock::now()), std::process::id());
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Leave the session of the git command that ran the hook: a Ctrl-C or a closed terminal there
/// must not kill a tick, and a tick must not be a child the terminal waits for.
fn detach() {
    // SAFETY: setsid has no memory effects; it fails harmlessly when we already lead a group.
    unsafe {
        libc::setsid();
    }
}

/// Send stdout and stderr (tracing included) to `hooks.log`, appending.
fn log_to(path: &Path) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > LOG_LIMIT) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: dup2 onto the standard descriptors of this process; `file` stays valid meanwhile.
    unsafe {
        libc::dup2(file.as_raw_fd(), 1);
        libc::dup2(file.as_raw_fd(), 2);
    }
    Ok(())
}

fn flock(file: &File, how: libc::c_int) -> bool {
    // SAFETY: flock on a descriptor we own; the kernel drops it when the file is closed.
    unsafe { libc::flock(file.as_raw_fd(), how) == 0 }
}

/// The branches waiting for a hook-started tick, and the lock that makes it one at a time. Both
/// files are never deleted (only truncated), so every process locks the same inode.
struct Queue {
    pending: PathBuf,
    lock: PathBuf,
}

impl Queue {
    fn new(root: &Path) -> Queue {
        Queue { pending: root.join("hooks.pending"), lock: root.join("hooks.lock") }
    }

    fn open_pending(&self) -> Result<File> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&self.pending)
            .with_context(|| format!("opening {}", self.pending.display()))?;
        if !flock(&file, libc::LOCK_EX) {
            anyhow::bail!("locking {}: {}", self.pending.display(), std::io::Error::last_os_error());
        }
        Ok(file)
    }

    fn push(&self, branches: &[String]) -> Result<()> {
        let mut file = self.open_pending()?;
        let text: String = branches.iter().map(|b| format!("{b}\n")).collect();
        file.write_all(text.as_bytes()).with_context(|| format!("writing {}", self.pending.display()))
    }

    /// Everything pending, deduplicated and sorted; the list is emptied.
    fn take(&self) -> Result<Vec<String>> {
        let mut file = self.open_pending()?;
        let mut text = String::new();
        file.rewind()?;
        file.read_to_string(&mut text).with_context(|| format!("reading {}", self.pending.display()))?;
        file.set_len(0).with_context(|| format!("emptying {}", self.pending.display()))?;
        let mut branches: Vec<String> = text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
        branches.sort();
        branches.dedup();
        Ok(branches)
    }

    fn has_pending(&self) -> bool {
        std::fs::metadata(&self.pending).is_ok_and(|m| m.len() > 0)
    }

    /// The one-at-a-time lock, if free; held until the file is dropped.
    fn try_lock(&self) -> Result<Option<File>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .with_context(|| format!("opening {}", self.lock.display()))?;
        Ok(flock(&file, libc::LOCK_EX | libc::LOCK_NB).then_some(file))
    }
}

/// `@{-1}` of the worktree at `cwd`, if it names a branch.
fn previous_branch(cwd: &Path) -> Option<String> {
    let full = run_git(cwd, ["rev-parse", "--symbolic-full-name", "@{-1}"]).ok()?;
    full.trim().strip_prefix("refs/heads/").filter(|b| !b.is_empty()).map(str::to_owned)
}

fn debounce() -> Duration {
    let ms = std::env::var(DEBOUNCE_VAR).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_DEBOUNCE_MS);
    Duration::from_millis(ms)
}

pub fn cmd_trigger(cwd: &Path, args: Args) -> Result<ExitCode> {
    detach();
    let repo = Repo::discover(cwd)?;
    let root = Scratch::new(repo.common_dir()).root;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    log_to(&root.join("hooks.log"))?;
    match trigger(cwd, &repo, &root, &args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            note(format_args!("error: {e:#}"));
            Ok(ExitCode::from(1))
        }
    }
}

fn trigger(cwd: &Path, repo: &Repo, root: &Path, args: &Args) -> Result<()> {
    let mut moved = args.run.branches.clone();
    if args.previous_branch {
        moved.extend(previous_branch(cwd));
    }
    note(format_args!("hooks trigger ({}): {}", args.hook, moved.join(" ")));
    if moved.is_empty() {
        return Ok(());
    }
    let queue = Queue::new(root);
    queue.push(&moved)?;
    std::thread::sleep(debounce());

    let session = Session::new()?;
    let opts = args.run.options()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let _in_runtime = session.runtime.enter();
        forward_stop(stop_tx, opts.grace);
    }
    let main = crate::runner::tick::main_branch(repo);
    loop {
        let Some(_held) = queue.try_lock()? else {
            note("another hook-started tick is running; it will take these branches next");
            return Ok(());
        };
        loop {
            let batch = queue.take()?;
            if batch.is_empty() || *stop_rx.borrow() {
                break;
            }
            run_batch(cwd, args, &batch, main.as_deref(), &session, &stop_rx)?;
        }
        drop(_held);
        // A trigger that found the lock taken after our last look relies on us: look again.
        if !queue.has_pending() || *stop_rx.borrow() {
            return Ok(());
        }
    }
}

/// The tick specs for a batch: the main worktree's branch (if it moved and is included) in a tick
/// of its own, so that a dirty checkout refuses only that one.
fn specs(args: &Args, batch: &[String], main: Option<&str>) -> Result<Vec<TickSpec>> {
    let base = args.run.spec()?;
    let (current, others): (Vec<String>, Vec<String>) = batch.iter().cloned().partition(|b| Some(b.as_str()) == main);
    let mut specs = Vec::new();
    if !others.is_empty() {
        specs.push(TickSpec { branches: others, current: CurrentBranch::Skip, ..base.clone() });
    }
    if !current.is_empty() {
        if base.current == CurrentBranch::Skip {
            note(format_args!(
                "{} is checked out (hooks installed with --current-branch skip): it runs when you switch away",
                current.join(" ")
            ));
        } else {
            specs.push(TickSpec { branches: current, current: CurrentBranch::Only, ..base });
        }
    }
    Ok(specs)
}

/// Ticks on `batch` until nothing more is claimed (or `--max-ticks`, or a stop signal).
fn run_batch(
    cwd: &Path,
    args: &Args,
    batch: &[String],
    main: Option<&str>,
    session: &Session,
    stop: &watch::Receiver<bool>,
) -> Result<()> {
    // A child that moved may complete its parent's join: the waiting parents come along.
    let mut batch = batch.to_vec();
    if let Ok(repo) = crate::repo::Repo::discover(cwd) {
        let parents = crate::runner::fanout::waiting_parents_of(&repo, &batch);
        if !parents.is_empty() {
            note(format_args!("with the waiting parent(s) {}", parents.join(" ")));
            batch.extend(parents);
        }
    }
    let batch = batch.as_slice();
    let specs = specs(args, batch, main)?;
    for n in 1..=args.max_ticks {
        if *stop.borrow() {
            break;
        }
        let mut actions = Vec::new();
        let mut repo = None;
        for spec in &specs {
            match tick::prepare(cwd, spec, clock::now()) {
                Ok(prepared) => {
                    actions.extend(prepared.actions);
                    repo.get_or_insert(prepared.repo);
                }
                Err(e) => note(format_args!("not running {}: {e:#}", spec.branches.join(" "))),
            }
        }
        let Some(repo) = repo else { break };
        if actions.is_empty() {
            if n == 1 {
                note(format_args!("nothing to run on {}", batch.join(" ")));
            }
            break;
        }
        let runnable = actions.iter().any(|a| !matches!(a, Action::Notice { .. }));
        let opts = args.run.options()?;
        let shutdown = stop.clone();
        let json = args.run.json;
        let summary = session.runtime.block_on(execute_and_print(repo, opts, shutdown, actions, json))?;
        note(format_args!("{} ({})", summary.line(), batch.join(" ")));
        if !runnable || summary.claimed + summary.took_over + summary.joined == 0 {
            break;
        }
        if n == args.max_ticks {
            note(format_args!("still moving after {n} ticks; leaving the rest to the next trigger or `git baton run`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_hands_out_each_branch_once() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::new(dir.path());
        assert!(!q.has_pending());
        q.push(&["b".into(), "a".into()]).unwrap();
        q.push(&["a".into()]).unwrap();
        assert!(q.has_pending());
        assert_eq!(q.take().unwrap(), ["a", "b"]);
        assert!(!q.has_pending());
        assert!(q.take().unwrap().is_empty());
    }

    #[test]
    fn one_lock_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::new(dir.path());
        let held = q.try_lock().unwrap();
        assert!(held.is_some());
        // flock locks belong to the open file description: a second open conflicts even in-process.
        assert!(q.try_lock().unwrap().is_none());
        drop(held);
        assert!(q.try_lock().unwrap().is_some());
    }
}
