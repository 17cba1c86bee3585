//! Executing a planned tick: claim by compare-and-swap, prepare a worktree, run the handler in its
//! own process group with a timeout, judge the outcome, and record every failure as a commit.
//! Handlers of different branches run concurrently up to `jobs`; nothing here decides what the
//! next state is — only handlers do.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use tokio::sync::{mpsc, watch, Semaphore};

use super::plan::Action;
use super::report::{Event, Kind};
use super::validate::{judge, Exit, HeadFacts, Verdict};
use super::{body_env, clock};
use crate::protocol::state::last_text;
use crate::protocol::{compose, Key, Lease, Reserved, State, TrailerArg};
use crate::repo::worktree::{self, Scratch, Slot};
use crate::repo::{Cas, CommitInfo, ObjectId, Repo};

/// Lines of handler output copied into a failure event's body.
const TAIL_LINES: usize = 40;

#[derive(Debug, Clone)]
pub struct TickOptions {
    pub jobs: usize,
    pub timeout: Duration,
    pub lease_seconds: u64,
    pub keep_worktrees: bool,
    pub grace: Duration,
    pub runner_id: String,
}

/// Everything a branch job needs, shared by all jobs of a tick.
pub struct Ctx {
    pub repo: gix::ThreadSafeRepository,
    pub common_dir: PathBuf,
    /// The user's checkout, when the repository has one (for `--current-branch include|only`).
    pub main_workdir: Option<PathBuf>,
    pub opts: TickOptions,
    /// Flips to true on SIGINT/SIGTERM: stop claiming, give running handlers `grace`.
    pub shutdown: watch::Receiver<bool>,
    pub events: mpsc::UnboundedSender<Event>,
}

impl Ctx {
    fn repo(&self) -> Repo {
        Repo::from_sync(&self.repo)
    }
    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }
    fn scratch(&self) -> Scratch {
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

/// Run the planned actions; events stream out through `ctx.events`.
pub async fn execute(ctx: Arc<Ctx>, actions: Vec<Action>) {
    let permits = Arc::new(Semaphore::new(ctx.opts.jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for action in actions {
        if let Action::Notice { branch, message } = action {
            let mut e = Event::new(&branch, Kind::Notice);
            e.error = Some(message);
            ctx.emit(e);
            continue;
        }
        let ctx = ctx.clone();
        let permits = permits.clone();
        set.spawn(async move {
            let mut shutdown = ctx.shutdown.clone();
            let permit = tokio::select! {
                p = permits.acquire_owned() => p,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let Ok(_permit) = permit else { return };
            if ctx.stopping() {
                return;
            }
            let branch = action.branch().to_owned();
            if let Err(e) = run_action(&ctx, action).await {
                let mut ev = Event::new(&branch, Kind::Error);
                ev.error = Some(format!("{e:#}").replace('\n', " "));
                ctx.emit(ev);
            }
        });
    }
    while let Some(joined) = set.join_next().await {
        if let Err(e) = joined {
            let mut ev = Event::new("-", Kind::Error);
            ev.error = Some(format!("internal error in a branch job: {e}"));
            ctx.emit(ev);
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("internal error: {e}"))?
}

async fn run_action(ctx: &Arc<Ctx>, action: Action) -> Result<()> {
    match action {
        Action::Run {
            branch,
            refname,
            head,
            state,
            handler,
            force_worktree,
        } => {
            run_branch(
                ctx,
                Job {
                    branch,
                    refname,
                    head,
                    state,
                    handler,
                    force_worktree,
                },
            )
            .await
        }
        Action::TakeOver {
            branch,
            refname,
            head,
            lease,
            stalled_handler,
            force_worktree,
        } => {
            let c = ctx.clone();
            let (b, r) = (branch.clone(), refname.clone());
            let taken = blocking(move || take_over(&c, &b, &r, head, &lease)).await?;
            let Some(stalled) = taken else { return Ok(()) };
            match stalled_handler {
                Some(handler) if !ctx.stopping() => {
                    let state = State::reserved_state(Reserved::Stalled);
                    run_branch(
                        ctx,
                        Job {
                            branch,
                            refname,
                            head: stalled,
                            state,
                            handler,
                            force_worktree,
                        },
                    )
                    .await
                }
                _ => Ok(()),
            }
        }
        Action::Notice { .. } => Ok(()),
    }
}

/// Write `stalled` over an expired lease. Returns the new head, or None if another runner won.
fn take_over(
    ctx: &Ctx,
    branch: &str,
    refname: &str,
    head: ObjectId,
    lease: &Lease,
) -> Result<Option<ObjectId>> {
    let repo = ctx.repo();
    let run = lease.run_id.clone().unwrap_or_else(|| "unknown".into());
    let mut trailers = Vec::new();
    if let Some(origin) = &lease.origin_state {
        trailers.push(TrailerArg::reserved(Key::OriginState, origin));
    }
    trailers.push(TrailerArg::reserved(Key::StalledRun, &run));
    trailers.push(TrailerArg::reserved(Key::RunnerId, &ctx.opts.runner_id));
    let now = clock::now();
    let body = format!(
        "Run {run} (runner {}) held this branch for state {} with a lease of {} s from {}; it expired {} s ago without a renewal or an answer.",
        lease.runner_id.as_deref().unwrap_or("unknown"),
        lease.origin_state.as_deref().unwrap_or("unknown"),
        lease.lease_seconds,
        clock::iso_utc(lease.since),
        now - lease.expires_at()
    );
    let msg = compose(
        &format!("baton: lease of run {run} expired"),
        Some(&body),
        &trailers,
        &State::reserved_state(Reserved::Stalled),
    )?;
    let (id, cas) =
        repo.append_commit(refname, head, &msg, now, "baton: take over expired lease")?;
    let mut ev = Event::new(
        branch,
        if cas == Cas::Updated {
            Kind::TookOver
        } else {
            Kind::LostRace
        },
    );
    ev.state = lease.origin_state.clone();
    ev.run_id = Some(run);
    if cas == Cas::Updated {
        ev.commit = Some(id.to_string());
        ev.next_state = Some(Reserved::Stalled.as_str().into());
        ev.error = Some(format!("lease expired {} s ago", now - lease.expires_at()));
    }
    ctx.emit(ev);
    Ok((cas == Cas::Updated).then_some(id))
}

struct Job {
    branch: String,
    refname: String,
    head: ObjectId,
    state: State,
    handler: String,
    force_worktree: bool,
}

struct Claim {
    run_id: String,
    id: ObjectId,
    trigger: CommitInfo,
}

fn claim(ctx: &Ctx, job: &Job) -> Result<Option<Claim>> {
    let repo = ctx.repo();
    let trigger = repo.commit(job.head)?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let trailers = [
        TrailerArg::reserved(Key::OriginState, job.state.as_str()),
        TrailerArg::reserved(Key::RunId, &run_id),
        TrailerArg::reserved(Key::RunnerId, &ctx.opts.runner_id),
        TrailerArg::reserved(Key::LeaseSeconds, ctx.opts.lease_seconds.to_string()),
    ];
    let msg = compose(
        &format!("baton: {} claimed", job.state),
        None,
        &trailers,
        &State::reserved_state(Reserved::Working),
    )?;
    let (id, cas) = repo.append_commit(
        &job.refname,
        job.head,
        &msg,
        clock::now(),
        &format!("baton: claim {}", job.state),
    )?;
    if let Cas::Moved { .. } = cas {
        let mut ev = Event::new(&job.branch, Kind::LostRace);
        ev.state = Some(job.state.to_string());
        ctx.emit(ev);
        return Ok(None);
    }
    let mut ev = Event::new(&job.branch, Kind::Claimed);
    ev.state = Some(job.state.to_string());
    ev.run_id = Some(run_id.clone());
    ev.commit = Some(id.to_string());
    ctx.emit(ev);
    Ok(Some(Claim {
        run_id,
        id,
        trigger,
    }))
}

async fn run_branch(ctx: &Arc<Ctx>, job: Job) -> Result<()> {
    let started = Instant::now();
    let job = Arc::new(job);
    // The slot first: a worktree problem must not touch the branch (the next tick retries).
    let c = ctx.clone();
    let (b, start) = (job.branch.clone(), job.head);
    let slot = match blocking(move || Slot::acquire(&c.common_dir, &c.scratch(), &b, start)).await {
        Ok(slot) => Arc::new(slot),
        Err(e) => {
            let mut ev = Event::new(&job.branch, Kind::Error);
            ev.state = Some(job.state.to_string());
            ev.error = Some(format!("no worktree for the handler: {e:#}"));
            ctx.emit(ev);
            return Ok(());
        }
    };
    let (c, j) = (ctx.clone(), job.clone());
    let claimed = blocking(move || claim(&c, &j)).await;
    let claim = match claimed {
        Ok(Some(claim)) => Arc::new(claim),
        other => {
            let s = slot.clone();
            let _ = blocking(move || {
                s.release(None);
                Ok(())
            })
            .await;
            return other.map(|_| ());
        }
    };
    let log = ctx.scratch().log_file(&job.branch, &claim.run_id);

    let (j, s) = (job.clone(), slot.clone());
    let claim_id = claim.id;
    let checked_out = blocking(move || s.check_out(&j.branch, claim_id, j.force_worktree)).await;
    let exit = match checked_out {
        Err(e) => Exit::SpawnFailed(format!(
            "the worktree could not check out the branch: {e:#}"
        )),
        Ok(()) => run_handler(ctx, &job, &claim, &slot.path, &log).await,
    };
    let slot = Some(slot);
    let wt = slot.as_ref().map(|s| s.path.clone()).unwrap_or_default();

    let (c, j, cl) = (ctx.clone(), job.clone(), claim.clone());
    let exit2 = exit.clone();
    let (verdict, head) = blocking(move || {
        let repo = c.repo();
        let head = repo.ref_id(&j.refname)?;
        let facts = match head {
            None => None,
            Some(h) => {
                let commit = repo.commit(h)?;
                Some(HeadFacts {
                    is_claim: h == cl.id,
                    descends_from_claim: repo.descends_from(h, cl.id, 10_000)?,
                    state: commit.state(),
                    run_id: last_text(&commit.trailers, Key::RunId),
                })
            }
        };
        Ok((judge(&exit2, facts.as_ref(), &cl.run_id), head))
    })
    .await?;

    let mut ev = Event::new(&job.branch, Kind::Succeeded);
    ev.state = Some(job.state.to_string());
    ev.run_id = Some(claim.run_id.clone());
    ev.commit = head.map(|h| h.to_string());
    ev.log = Some(log.display().to_string());
    ev.exit_code = match exit {
        Exit::Code(c) => Some(c),
        _ => None,
    };
    ev.duration_ms = Some(started.elapsed().as_millis() as u64);
    match verdict {
        Verdict::Succeeded { next_state } => {
            ev.next_state = Some(next_state);
            finish_success(ctx, &job, &claim, &mut ev).await;
        }
        Verdict::Parked => {
            ev.action = Kind::Parked;
            ev.next_state = Some(Reserved::Working.as_str().into());
            finish_success(ctx, &job, &claim, &mut ev).await;
        }
        Verdict::Failed { reason, exit_code } => {
            let head = head.context("branch head vanished")?;
            let (c, j, cl, w, l) = (
                ctx.clone(),
                job.clone(),
                claim.clone(),
                wt.clone(),
                log.clone(),
            );
            let r = reason.clone();
            let written =
                blocking(move || record_failure(&c, &j, &cl, head, &r, exit_code, &l, &w)).await;
            ev.action = Kind::Failed;
            ev.error = Some(reason);
            ev.worktree = Some(wt.display().to_string());
            match written {
                Ok((id, next)) => {
                    ev.commit = Some(id.to_string());
                    ev.next_state = Some(next);
                }
                Err(e) => {
                    ev.action = Kind::Error;
                    ev.error = Some(format!(
                        "{}; and the failure could not be recorded: {e:#}",
                        ev.error.take().unwrap_or_default()
                    ));
                }
            }
        }
        Verdict::BranchGone => {
            ev.action = Kind::Error;
            ev.error =
                Some("the branch was deleted during the run; nothing could be recorded".into());
            ev.worktree = Some(wt.display().to_string());
        }
        Verdict::LeaseLost => {
            ev.action = Kind::Error;
            ev.error = Some("the branch was moved off this run's lease by someone else; their history stands, this run's result was not recorded".into());
            ev.worktree = Some(wt.display().to_string());
        }
    }
    // A successful run returns its slot to the pool; anything else keeps it for the branch.
    if let Some(slot) = slot {
        let ok = matches!(ev.action, Kind::Succeeded | Kind::Parked);
        let keep = !ok || ctx.opts.keep_worktrees;
        if keep {
            ev.worktree = Some(slot.path.display().to_string());
        }
        let branch = job.branch.clone();
        let _ = blocking(move || {
            slot.release(keep.then_some(branch.as_str()));
            Ok(())
        })
        .await;
    }
    ctx.emit(ev);
    Ok(())
}

async fn finish_success(ctx: &Arc<Ctx>, job: &Arc<Job>, claim: &Arc<Claim>, ev: &mut Event) {
    if job.force_worktree {
        // The user's checkout has this branch: bring its files along (two-tree merge keeps
        // local edits, refuses to overwrite them).
        if let (Some(main), Some(new)) = (ctx.main_workdir.clone(), ev.commit.clone()) {
            let old = claim.trigger.tree.to_string();
            let r = blocking(move || {
                worktree::run_git(&main, ["read-tree", "-m", "-u", &old, &new]).map(|_| ())
            })
            .await;
            if let Err(e) = r {
                tracing::warn!(
                    "{}: could not update your checkout to the new head: {e:#}",
                    job.branch
                );
            }
        }
    }
}

/// Spawn the handler in its own process group and wait for it, its timeout, or the shutdown
/// grace period. Output goes to `log`.
async fn run_handler(ctx: &Arc<Ctx>, job: &Job, claim: &Claim, wt: &Path, log: &Path) -> Exit {
    match spawn_and_wait(ctx, job, claim, wt, log).await {
        Ok(exit) => exit,
        Err(e) => Exit::SpawnFailed(format!("{e:#}")),
    }
}

/// Variables that would point a handler's git at another repository, index or worktree.
const SCRUBBED_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
];

/// `BATON_TRAILER_<KEY>` name: key uppercased, `-` → `_`.
pub fn trailer_env_name(prefix: &str, key: &str) -> String {
    let k: String = key
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    format!("{prefix}{k}")
}

async fn spawn_and_wait(
    ctx: &Arc<Ctx>,
    job: &Job,
    claim: &Claim,
    wt: &Path,
    log: &Path,
) -> Result<Exit> {
    let program = wt.join(&job.handler);
    let folder = program.parent().context("handler path has no folder")?;
    let (real_program, real_folder) = (program.canonicalize(), folder.canonicalize());
    match (&real_program, &real_folder) {
        (Ok(p), Ok(f)) if p.starts_with(f) => {}
        (Err(e), _) => return Ok(Exit::SpawnFailed(format!("{}: {e}", job.handler))),
        _ => {
            return Ok(Exit::SpawnFailed(format!(
                "{} resolves outside {}",
                job.handler,
                folder.display()
            )))
        }
    }
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out =
        std::fs::File::create(log).with_context(|| format!("creating log {}", log.display()))?;
    let err = out.try_clone()?;

    let mut cmd = tokio::process::Command::new(&program);
    cmd.current_dir(wt)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(false);
    for var in SCRUBBED_VARS {
        cmd.env_remove(var);
    }
    let body = body_env(&claim.trigger.message);
    let commit = claim.trigger.id.to_string();
    cmd.env("BATON_STATE", job.state.as_str())
        .env("BATON_BODY", &body)
        .env("BATON_COMMIT", &commit)
        .env("BATON_BRANCH", &job.branch)
        .env("BATON_RUN_ID", &claim.run_id)
        .env("BATON_RUNNER_ID", &ctx.opts.runner_id)
        .env("BATON_LEASE_SECONDS", ctx.opts.lease_seconds.to_string())
        .env("BATON_CLAIM_COMMIT", claim.id.to_string())
        .env("BATON_WORKTREE", wt)
        .env("AYNIG_BODY", &body)
        .env("AYNIG_COMMIT_HASH", &commit)
        .env("AYNIG_STATE", job.state.as_str());
    for t in &claim.trigger.trailers {
        let key = t.key_lossy();
        let value = t.value_lossy();
        cmd.env(trailer_env_name("BATON_TRAILER_", &key), value.as_ref());
        cmd.env(trailer_env_name("AYNIG_TRAILER_", &key), value.as_ref());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let hint = match e.raw_os_error() {
                Some(libc::ENOEXEC) => " (no #! line?)",
                Some(libc::EACCES) => " (not executable?)",
                _ => "",
            };
            return Ok(Exit::SpawnFailed(format!("{}: {e}{hint}", job.handler)));
        }
    };
    let pid = child.id().map(|p| p as i32);
    let mut shutdown = ctx.shutdown.clone();
    let grace = ctx.opts.grace;
    let stop_after_grace = async move {
        let _ = shutdown.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    let exit = tokio::select! {
        status = child.wait() => {
            let status = status.context("waiting for the handler")?;
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                _ => Exit::Code(-1),
            }
        }
        _ = tokio::time::sleep(ctx.opts.timeout) => Exit::TimedOut { seconds: ctx.opts.timeout.as_secs() },
        _ = stop_after_grace => Exit::Interrupted,
    };
    // A handler that timed out or was interrupted is stopped with its whole process group. After a
    // normal exit, background processes it started on purpose (git's own auto-maintenance, for
    // one) are left alone, as a shell would.
    if let (Some(pid), Exit::TimedOut { .. } | Exit::Interrupted) = (pid, &exit) {
        kill_group(pid, &mut child).await;
    }
    Ok(exit)
}

/// SIGTERM to the process group, SIGKILL after 2 s for whatever is left.
async fn kill_group(pgid: i32, child: &mut tokio::process::Child) {
    // SAFETY: plain syscalls on a process group we created (the handler's pid is its pgid).
    let alive = |sig| unsafe { libc::killpg(pgid, sig) } == 0;
    if !alive(0) {
        return;
    }
    alive(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    // Reap the handler itself, then wait for the rest of the group to go.
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    while Instant::now() < deadline {
        if !alive(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alive(libc::SIGKILL);
    let _ = child.wait().await;
}

#[allow(clippy::too_many_arguments)]
fn record_failure(
    ctx: &Ctx,
    job: &Job,
    claim: &Claim,
    head: ObjectId,
    reason: &str,
    exit_code: Option<i32>,
    log: &Path,
    wt: &Path,
) -> Result<(ObjectId, String)> {
    let repo = ctx.repo();
    let next = last_text(&claim.trigger.trailers, Key::NextOnFailure)
        .and_then(|v| State::parse(&v).ok())
        .filter(|s| !s.is(Reserved::Working))
        .unwrap_or_else(|| State::reserved_state(Reserved::Failed));
    let mut trailers = vec![
        TrailerArg::reserved(Key::OriginState, job.state.as_str()),
        TrailerArg::reserved(Key::RunId, &claim.run_id),
        TrailerArg::reserved(Key::RunnerId, &ctx.opts.runner_id),
    ];
    if let Some(code) = exit_code {
        trailers.push(TrailerArg::reserved(Key::ExitCode, code.to_string()));
    }
    trailers.push(TrailerArg::reserved(Key::Error, reason));
    let body = failure_body(job.state.as_str(), reason, &tail(log, TAIL_LINES), log, wt);
    let msg = compose(
        &format!("baton: {} failed", job.state),
        Some(&body),
        &trailers,
        &next,
    )?;
    let (id, cas) = repo.append_commit(
        &job.refname,
        head,
        &msg,
        clock::now(),
        "baton: handler failed",
    )?;
    match cas {
        Cas::Updated => Ok((id, next.to_string())),
        Cas::Moved { .. } => Err(anyhow!(
            "the branch moved while the failure was being recorded"
        )),
    }
}

/// The body of a failure event: what happened, the output's tail (indented, so no line of it can
/// act as a comment, scissors line or trailer), and where the rest is.
pub fn failure_body(state: &str, reason: &str, tail: &str, log: &Path, wt: &Path) -> String {
    let mut body = format!("The handler for {} failed: {reason}\n", state);
    if tail.trim().is_empty() {
        body.push_str("\nIt printed nothing.\n");
    } else {
        body.push_str(&format!("\nLast {TAIL_LINES} lines of its output:\n\n"));
        for line in tail.lines() {
            let clean: String = line
                .chars()
                .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
                .collect();
            body.push_str("    ");
            body.push_str(clean.trim_end());
            body.push('\n');
        }
    }
    body.push_str(&format!(
        "\nFull log: {}\nWorktree kept at: {}\n",
        log.display(),
        wt.display()
    ));
    body
}

/// The last `n` lines of a file (lossy UTF-8), reading only its end.
pub fn tail(path: &Path, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_env_names() {
        assert_eq!(
            trailer_env_name("BATON_TRAILER_", "dwp-next-on-failure"),
            "BATON_TRAILER_DWP_NEXT_ON_FAILURE"
        );
        assert_eq!(
            trailer_env_name("AYNIG_TRAILER_", "Reviewed-by"),
            "AYNIG_TRAILER_REVIEWED_BY"
        );
    }

    #[test]
    fn failure_body_indents_output_so_git_reads_our_trailers() {
        let tail = "ok\n# ------------------------ >8 ------------------------\nKey: v\0x";
        let body = failure_body("build", "exit 1", tail, Path::new("/l"), Path::new("/w"));
        let t = [TrailerArg::reserved(Key::Error, "exit 1")];
        let msg = compose("s", Some(&body), &t, &State::parse("failed").unwrap()).unwrap();
        let parsed = crate::protocol::trailers::parse(&msg);
        assert_eq!(parsed.len(), 2);
        assert!(body.contains("    Key: v x"));
    }

    #[test]
    fn tail_reads_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(
            &p,
            (1..=100)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        let t = tail(&p, 3);
        assert_eq!(t, "98\n99\n100");
    }
}
