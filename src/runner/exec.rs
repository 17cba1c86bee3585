//! One branch job, as the protocol steps: claim the branch by compare-and-swap, check the claim
//! out detached in a worktree slot, run the handler while the runner keeps the lease alive, judge
//! the result, and publish it — or record the failure — with one more compare-and-swap. The
//! handler never moves the branch itself; only a result that descends from this run's lease is
//! published, anything else is a failure event and its commits are kept on
//! `refs/baton/rejected/<branch>/<run-id>`. Whether the board is local or a remote is the
//! [`Backend`]'s business, not this file's.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use tokio::sync::watch;

use super::backend::Swap;
use super::context::Ctx;
use super::messages::{self, Failure, TAIL_LINES};
use super::plan::{Action, HandlerOrigin, RunSettings};
use super::process::{run_handler, tail, trailer_env, HandlerRun};
use super::report::{Event, Kind};
use super::validate::{judge, Exit, FailOn, LeaseHead, ResultFacts, Verdict};
use super::{body_env, clock};
use crate::policy::env::{handler_env, mask, passed, secrets};
use crate::protocol::message::body_for_env;
use crate::protocol::state::last_text;
use crate::protocol::{Key, Lease, Reserved, State};
use crate::repo::worktree::{run_git, Slot, SlotHead};
use crate::repo::{BranchSource, CommitInfo, ObjectId, Repo};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| anyhow!("internal error: {e}"))?
}

struct Job {
    branch: String,
    head: ObjectId,
    state: State,
    handler: String,
    origin: HandlerOrigin,
    settings: RunSettings,
    force_worktree: bool,
}

struct Claim {
    run_id: String,
    id: ObjectId,
    trigger: CommitInfo,
}

/// Where this runner writes the lease renewal record of a branch (the board's own name for it).
fn renewal_ref(branch: &str) -> String {
    super::board::renewal_ref(&BranchSource::Local, branch)
}

/// Where a result that was not published is kept.
fn rejected_ref(branch: &str, run_id: &str) -> String {
    format!("refs/baton/rejected/{branch}/{run_id}")
}

pub(super) async fn run_action(ctx: &Arc<Ctx>, action: Action) -> Result<()> {
    match action {
        Action::Run { branch, head, state, handler, origin, settings, force_worktree, .. } => {
            run_branch(ctx, Job { branch, head, state, handler, origin, settings, force_worktree }).await
        }
        Action::TakeOver { branch, head, lease, stalled_handler, origin, settings, force_worktree, .. } => {
            let c = ctx.clone();
            let b = branch.clone();
            let Some(stalled) = blocking(move || take_over(&c, &b, head, &lease)).await? else {
                return Ok(());
            };
            match stalled_handler {
                Some(handler) if !ctx.stopping() => {
                    let state = State::reserved_state(Reserved::Stalled);
                    let job = Job { branch, head: stalled, state, handler, origin, settings, force_worktree };
                    run_branch(ctx, job).await
                }
                _ => Ok(()),
            }
        }
        Action::Notice { .. } => Ok(()),
    }
}

/// Write `stalled` over an expired lease. Returns the new head, or None if another runner won.
fn take_over(ctx: &Ctx, branch: &str, head: ObjectId, lease: &Lease) -> Result<Option<ObjectId>> {
    let repo = ctx.repo();
    let now = clock::now();
    let msg = messages::stalled(lease, &ctx.opts.runner_id, now, ctx.board.remote())?;
    let tree = repo.commit(head)?.tree;
    let id = repo.write_commit(tree, &[head], &msg, now)?;
    let swap = ctx.board.swap(&repo, branch, head, id, "baton: take over expired lease")?;
    let mut ev = Event::new(branch, Kind::LostRace);
    ev.state = lease.origin_state.clone();
    ev.run_id = lease.run_id.clone();
    let accepted = swap == Swap::Done;
    match swap {
        Swap::Done => {
            ev.action = Kind::TookOver;
            ev.commit = Some(id.to_string());
            ev.next_state = Some(Reserved::Stalled.as_str().into());
            ev.error = Some(format!("lease expired {} s ago", now - lease.expires_at()));
        }
        Swap::Lost(_) => {}
        Swap::Failed(why) => {
            ev.action = Kind::Error;
            ev.error = Some(format!("could not push the takeover: {why}"));
        }
    }
    ctx.emit(ev);
    Ok(accepted.then_some(id))
}

fn claim(ctx: &Ctx, job: &Job) -> Result<Option<Claim>> {
    let repo = ctx.repo();
    let trigger = repo.commit(job.head)?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let msg =
        messages::claim(&job.state, &run_id, &ctx.opts.runner_id, job.settings.lease_seconds, ctx.board.remote())?;
    let id = repo.write_commit(trigger.tree, &[job.head], &msg, clock::now())?;
    let reflog = format!("baton: claim {}", job.state);
    let mut ev = Event::new(&job.branch, Kind::LostRace);
    ev.state = Some(job.state.to_string());
    match ctx.board.swap(&repo, &job.branch, job.head, id, &reflog)? {
        Swap::Done => {}
        Swap::Lost(_) => {
            ctx.emit(ev);
            return Ok(None);
        }
        Swap::Failed(why) => {
            ev.action = Kind::Error;
            ev.error = Some(format!("could not push the claim: {why}"));
            ctx.emit(ev);
            return Ok(None);
        }
    }
    ev.action = Kind::Claimed;
    ev.run_id = Some(run_id.clone());
    ev.commit = Some(id.to_string());
    ctx.emit(ev);
    Ok(Some(Claim { run_id, id, trigger }))
}

async fn release(slot: Arc<Slot>, keep_for: Option<String>) {
    let _ = blocking(move || {
        slot.release(keep_for.as_deref());
        Ok(())
    })
    .await;
}

/// Is `head` this run's: the claim, or a `working` commit of the same run on top of it (a
/// heartbeat the handler published)?
fn is_ours(repo: &Repo, head: ObjectId, claim: &Claim) -> Result<bool> {
    if head == claim.id {
        return Ok(true);
    }
    let Ok(commit) = repo.commit(head) else {
        return Ok(false);
    };
    let same_run = Lease::from_commit(&commit.trailers, commit.committer_time)
        .is_some_and(|l| l.run_id.as_deref() == Some(claim.run_id.as_str()));
    Ok(same_run && repo.descends_from(head, claim.id)?)
}

/// What the lease keeper knows while the handler runs.
struct Keeper {
    /// The newest lease head seen that is this run's (claim or heartbeat).
    lease_head: ObjectId,
    /// The renewal record on `refs/baton/leases/<branch>`, if one was written.
    record: Option<ObjectId>,
}

/// One renewal: check the branch is still this run's, then write a fresh renewal record.
/// Returns why the lease is lost, if it is.
fn renew(ctx: &Ctx, job: &Job, claim: &Claim, keeper: &Mutex<Keeper>) -> Result<Option<String>> {
    let repo = ctx.repo();
    let Some(head) = ctx.board.head(&repo, &job.branch)? else {
        return Ok(Some("the branch was deleted".into()));
    };
    let mut k = keeper.lock().unwrap_or_else(|p| p.into_inner());
    if head != k.lease_head {
        if !is_ours(&repo, head, claim)? {
            return Ok(Some(format!("the branch was moved to {} by someone else", &head.to_string()[..12])));
        }
        k.lease_head = head;
    }
    let msg = messages::renewal(&claim.run_id, &ctx.opts.runner_id, job.settings.lease_seconds, ctx.board.remote())?;
    let tree = repo.commit(head)?.tree;
    let id = repo.write_commit(tree, &[head], &msg, clock::now())?;
    let refname = renewal_ref(&job.branch);
    let mut expected = k.record;
    for _ in 0..2 {
        match ctx.board.put(&repo, &refname, expected, id, "baton: renew lease")? {
            Swap::Done => {
                k.record = Some(id);
                return Ok(None);
            }
            // A leftover record of an earlier run: replace it (it is ours to write).
            Swap::Lost(_) => expected = ctx.board.read(&repo, &refname)?,
            Swap::Failed(why) => {
                tracing::warn!("{}: could not renew the lease: {why}", job.branch);
                return Ok(None);
            }
        }
    }
    tracing::warn!("{}: the lease record {refname} keeps moving; not renewed this time", job.branch);
    Ok(None)
}

/// Renew the lease about every third of its length until `done`; on a lost lease, tell the
/// handler's supervisor through `lost`.
async fn keep_lease(
    ctx: Arc<Ctx>,
    job: Arc<Job>,
    claim: Arc<Claim>,
    keeper: Arc<Mutex<Keeper>>,
    lost: watch::Sender<Option<String>>,
    mut done: watch::Receiver<bool>,
) {
    let every = Duration::from_secs_f64((job.settings.lease_seconds as f64 / 3.0).max(0.2));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = done.wait_for(|d| *d) => return,
        }
        let (c, j, cl, k) = (ctx.clone(), job.clone(), claim.clone(), keeper.clone());
        match blocking(move || renew(&c, &j, &cl, &k)).await {
            Ok(None) => {}
            Ok(Some(why)) => {
                let _ = lost.send(Some(why));
                return;
            }
            Err(e) => tracing::warn!("{}: renewing the lease: {e:#}", job.branch),
        }
    }
}

/// The facts after the handler exited: the branch head, the handler's result, the verdict.
struct Settled {
    verdict: Verdict,
    /// The branch head now (the lease head when it is still ours).
    board_head: Option<ObjectId>,
    /// The handler's result: the HEAD of its worktree (the claim if it cannot be read).
    result: ObjectId,
    /// Why the lease keeper stopped the handler, if it did.
    lost_why: Option<String>,
}

fn settle(ctx: &Ctx, job: &Job, claim: &Claim, exit: &Exit, slot: &Slot) -> Result<Settled> {
    let repo = ctx.repo();
    let result = match slot.head() {
        Some(SlotHead::Detached(id)) => Some(id),
        Some(SlotHead::Ref(r)) => repo.ref_id(&r).ok().flatten(),
        None => None,
    }
    .filter(|id| repo.commit(*id).is_ok())
    .unwrap_or(claim.id);
    let board_head = ctx.board.head(&repo, &job.branch)?;
    let lease_head = match board_head {
        None => LeaseHead::Gone,
        Some(h) if is_ours(&repo, h, claim)? => LeaseHead::Ours,
        Some(_) => LeaseHead::Foreign,
    };
    let commit = repo.commit(result)?;
    let facts = ResultFacts {
        is_claim: result == claim.id,
        descends_from_lease: match board_head {
            Some(h) if lease_head == LeaseHead::Ours => repo.descends_from(result, h)?,
            _ => false,
        },
        state: commit.state(),
        run_id: last_text(&commit.trailers, Key::RunId),
    };
    let lost_why = match exit {
        Exit::LeaseLost(why) => Some(why.clone()),
        _ => None,
    };
    Ok(Settled { verdict: judge(exit, lease_head, &facts, &claim.run_id), board_head, result, lost_why })
}

async fn run_branch(ctx: &Arc<Ctx>, job: Job) -> Result<()> {
    let started = Instant::now();
    let job = Arc::new(job);
    // The slot first: a worktree problem must not touch the branch (the next tick retries).
    let (c, b, start) = (ctx.clone(), job.branch.clone(), job.head);
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
    let claim = match blocking(move || claim(&c, &j)).await {
        Ok(Some(claim)) => Arc::new(claim),
        other => {
            release(slot, None).await;
            return other.map(|_| ());
        }
    };
    let log = ctx.scratch().log_file(&job.branch, &claim.run_id);

    // The handler works on a detached HEAD at the claim; only the runner moves the branch.
    let (j, s, claim_id) = (job.clone(), slot.clone(), claim.id);
    let checked_out = blocking(move || s.check_out_detached(&j.branch, claim_id)).await;
    let program = match (&checked_out, job.origin) {
        (Err(e), _) => Err(format!("the worktree could not check out the claim: {e:#}")),
        (Ok(()), HandlerOrigin::Worktree) => Ok(slot.path.clone()),
        (Ok(()), HandlerOrigin::Trusted(tree)) => {
            let (c, root) = (ctx.clone(), ctx.scratch().root.join("handlers"));
            blocking(move || c.repo().materialize_handlers(&root, tree)).await.map_err(|e| format!("{e:#}"))
        }
    };
    // The whole body in a file: an environment variable cannot hold more than 128 KiB.
    let body_file = log.with_extension("body");
    let body_written = log
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&body_file, body_env(&claim.trigger.message)));
    let env = handler_environment(ctx, &job, &claim, &slot.path, &body_file);
    let keeper = Arc::new(Mutex::new(Keeper { lease_head: claim.id, record: None }));
    let program = match body_written {
        Ok(()) => program,
        Err(e) => Err(format!("could not write the body file {}: {e}", body_file.display())),
    };
    let exit = match program {
        Err(why) => Exit::SpawnFailed(why),
        Ok(base) => {
            let (lost_tx, lost_rx) = watch::channel(None);
            let (done_tx, done_rx) = watch::channel(false);
            let renewals =
                tokio::spawn(keep_lease(ctx.clone(), job.clone(), claim.clone(), keeper.clone(), lost_tx, done_rx));
            let program = base.join(&job.handler);
            let folder = program.parent().map(Path::to_path_buf).unwrap_or_else(|| base.clone());
            let exit = run_handler(HandlerRun {
                program,
                folder,
                handler: &job.handler,
                worktree: &slot.path,
                log: &log,
                log_max_bytes: job.settings.log_max_bytes,
                env: env.clone(),
                timeout: job.settings.timeout,
                grace: ctx.opts.grace,
                shutdown: ctx.shutdown.clone(),
                lost: lost_rx,
                inherit_fd: slot.lock_fd(),
            })
            .await;
            let _ = done_tx.send(true);
            let _ = renewals.await;
            exit
        }
    };

    let _ = std::fs::remove_file(&body_file);
    let (c, j, cl, s, x) = (ctx.clone(), job.clone(), claim.clone(), slot.clone(), exit.clone());
    let settled = blocking(move || settle(&c, &j, &cl, &x, &s)).await?;
    let settled_result = settled.result;

    let mut ev = Event::new(&job.branch, Kind::Succeeded);
    ev.state = Some(job.state.to_string());
    ev.run_id = Some(claim.run_id.clone());
    ev.commit = Some(settled.result.to_string());
    ev.log = Some(log.display().to_string());
    ev.exit_code = match exit {
        Exit::Code(c) => Some(c),
        _ => None,
    };
    ev.duration_ms = Some(started.elapsed().as_millis() as u64);
    let secrets = secrets(&passed(&ctx.runner_env, &job.settings.env_pass));
    let (c, j, cl, w, l) = (ctx.clone(), job.clone(), claim.clone(), slot.path.clone(), log.clone());
    let record = blocking(move || Ok(record_outcome(&c, &j, &cl, settled, &secrets, &l, &w))).await?;
    apply_record(&mut ev, record);

    // Bring the user's checkout along when it has this branch (a two-tree merge keeps local
    // edits and refuses to overwrite them).
    if job.force_worktree && matches!(ev.action, Kind::Succeeded | Kind::Parked | Kind::Failed) {
        if let (Some(main), Some(new)) = (ctx.main_workdir.clone(), ev.commit.clone()) {
            let old = claim.trigger.tree.to_string();
            if let Err(e) = blocking(move || run_git(&main, ["read-tree", "-m", "-u", &old, &new]).map(|_| ())).await {
                tracing::warn!("{}: could not update your checkout to the new head: {e:#}", job.branch);
            }
        }
    }
    // The renewal record has done its job.
    let record = keeper.lock().unwrap_or_else(|p| p.into_inner()).record;
    let (c, j, cl) = (ctx.clone(), job.clone(), claim.clone());
    let result = settled_result;
    if let Ok(Some(notice)) = blocking(move || {
        let repo = c.repo();
        if let Some(r) = record {
            c.board.delete(&repo, &renewal_ref(&j.branch), r);
        }
        stray_branches(&repo, &j.branch, &cl, result)
    })
    .await
    {
        ctx.emit(notice);
    }
    // A successful run returns its slot to the pool; anything else keeps it for the branch.
    let ok = matches!(ev.action, Kind::Succeeded | Kind::Parked);
    let keep = !ok || ctx.opts.keep_worktrees;
    if keep {
        ev.worktree = Some(slot.path.display().to_string());
    }
    release(slot, keep.then(|| job.branch.clone())).await;
    ctx.emit(ev);
    Ok(())
}

/// The handler's environment: the documented base, what the policy and `--pass-env` pass, and
/// the protocol's own variables.
fn handler_environment(ctx: &Ctx, job: &Job, claim: &Claim, wt: &Path, body_file: &Path) -> Vec<(String, String)> {
    let mut env = handler_env(&ctx.runner_env, &job.settings.env_pass);
    let body = body_for_env(&body_env(&claim.trigger.message));
    let commit = claim.trigger.id.to_string();
    let mut ours = vec![
        ("BATON_STATE", job.state.to_string()),
        ("BATON_BODY", body.clone()),
        ("BATON_BODY_FILE", body_file.display().to_string()),
        ("BATON_COMMIT", commit.clone()),
        ("BATON_BRANCH", job.branch.clone()),
        ("BATON_RUN_ID", claim.run_id.clone()),
        ("BATON_RUNNER_ID", ctx.opts.runner_id.clone()),
        ("BATON_LEASE_SECONDS", job.settings.lease_seconds.to_string()),
        ("BATON_CLAIM_COMMIT", claim.id.to_string()),
        ("BATON_WORKTREE", wt.display().to_string()),
        ("AYNIG_BODY", body),
        ("AYNIG_COMMIT_HASH", commit),
        ("AYNIG_STATE", job.state.to_string()),
        ("AYNIG_BRANCH", job.branch.clone()),
    ];
    if let Some(remote) = ctx.board.remote() {
        ours.push(("BATON_REMOTE", remote.to_owned()));
    }
    env.extend(ours.into_iter().map(|(k, v)| (k.to_owned(), v)));
    env.extend(trailer_env(&claim.trigger.trailers));
    env
}

/// What the runner wrote after a run, for the event.
struct Recorded {
    action: Kind,
    commit: Option<ObjectId>,
    next_state: Option<String>,
    error: Option<String>,
}

impl Recorded {
    /// The runner could not do its part; nothing of the run reached the branch.
    fn error(why: String) -> Recorded {
        Recorded { action: Kind::Error, commit: None, next_state: None, error: Some(why) }
    }
}

fn apply_record(ev: &mut Event, r: Recorded) {
    ev.action = r.action;
    if let Some(c) = r.commit {
        ev.commit = Some(c.to_string());
    }
    ev.next_state = r.next_state;
    ev.error = r.error;
}

/// Keep a result that is not published on `refs/baton/rejected/<branch>/<run>` (and on the
/// remote in remote mode). Returns a phrase for the event.
fn keep_rejected(ctx: &Ctx, repo: &Repo, job: &Job, claim: &Claim, result: ObjectId) -> String {
    if result == claim.id || repo.descends_from(claim.id, result).unwrap_or(false) {
        return String::new(); // nothing beyond what the branch already has
    }
    let refname = rejected_ref(&job.branch, &claim.run_id);
    match ctx.board.put(repo, &refname, None, result, "baton: keep a result that was not published") {
        Ok(Swap::Done) => format!("; its commits are kept at {refname}"),
        Ok(other) => {
            // Locally at least, whatever the remote said.
            let _ = repo.compare_and_swap(&refname, None, result, "baton: keep a result that was not published");
            format!("; its commits are kept at {refname} (not on the remote: {other:?})")
        }
        Err(e) => format!("; and its commits could not be kept at {refname}: {e:#}"),
    }
}

/// Publish or record: the only place a run's outcome reaches the branch.
fn record_outcome(
    ctx: &Ctx,
    job: &Job,
    claim: &Claim,
    settled: Settled,
    secrets: &[String],
    log: &Path,
    wt: &Path,
) -> Recorded {
    let repo = ctx.repo();
    let result = settled.result;
    let lost = |why: String| {
        let kept = keep_rejected(ctx, &repo, job, claim, result);
        Recorded::error(format!("this run lost its lease: {why}; the branch was left as it is{kept}"))
    };
    let Some(lease_head) = settled.board_head else {
        let kept = keep_rejected(ctx, &repo, job, claim, result);
        return Recorded::error(format!("the branch was deleted during the run; nothing could be recorded{kept}"));
    };
    match settled.verdict {
        Verdict::Succeeded { .. } | Verdict::Parked => {
            let parked = settled.verdict == Verdict::Parked;
            let next = match &settled.verdict {
                Verdict::Succeeded { next_state } => next_state.clone(),
                _ => Reserved::Working.as_str().to_owned(),
            };
            let swapped = match result == lease_head {
                true => Ok(Swap::Done), // a heartbeat the handler already published
                false => {
                    ctx.board.swap(&repo, &job.branch, lease_head, result, &format!("baton: {} answered", job.state))
                }
            };
            match swapped {
                Ok(Swap::Done) => Recorded {
                    action: if parked { Kind::Parked } else { Kind::Succeeded },
                    commit: Some(result),
                    next_state: Some(next),
                    error: None,
                },
                Ok(Swap::Lost(why)) => lost(format!("the branch moved while the result was published ({why})")),
                Ok(Swap::Failed(why)) => {
                    let kept = keep_rejected(ctx, &repo, job, claim, result);
                    Recorded::error(format!("the result could not be published ({why}){kept}"))
                }
                Err(e) => lost(format!("{e:#}")),
            }
        }
        Verdict::Failed { reason, exit_code, error_type, on } => {
            let (base, kept) = match on {
                FailOn::Result => (result, String::new()),
                FailOn::Lease => (lease_head, keep_rejected(ctx, &repo, job, claim, result)),
            };
            let next = messages::failure_state(&claim.trigger.trailers);
            let written = (|| -> Result<(ObjectId, Swap)> {
                let msg = messages::failure(&Failure {
                    state: &job.state,
                    run_id: &claim.run_id,
                    runner_id: &ctx.opts.runner_id,
                    exit_code,
                    reason: &reason,
                    output_tail: &mask(&tail(log, TAIL_LINES), secrets),
                    log,
                    worktree: wt,
                    next: &next,
                    remote: ctx.board.remote(),
                    error_type: error_type.as_str(),
                })?;
                let tree = repo.commit(base)?.tree;
                let id = repo.write_commit(tree, &[base], &msg, clock::now())?;
                Ok((id, ctx.board.swap(&repo, &job.branch, lease_head, id, "baton: handler failed")?))
            })();
            match written {
                Ok((id, Swap::Done)) => Recorded {
                    action: Kind::Failed,
                    commit: Some(id),
                    next_state: Some(next.to_string()),
                    error: Some(format!("{reason}{kept}")),
                },
                Ok((_, Swap::Lost(why))) => lost(format!("the branch moved while the failure was recorded ({why})")),
                Ok((_, Swap::Failed(why))) => {
                    Recorded::error(format!("{reason}; and the failure could not be recorded: {why}{kept}"))
                }
                Err(e) => Recorded::error(format!("{reason}; and the failure could not be recorded: {e:#}{kept}")),
            }
        }
        Verdict::LeaseLost => {
            lost(settled.lost_why.unwrap_or_else(|| {
                format!("the branch was moved to {} by someone else", &lease_head.to_string()[..12])
            }))
        }
        Verdict::BranchGone => lost("the branch was deleted".into()),
    }
}

/// After a run: does any other local branch now point at a commit of this run (a handler that
/// ran `git branch -f other HEAD`)? One notice naming them.
fn stray_branches(repo: &Repo, branch: &str, claim: &Claim, result: ObjectId) -> Result<Option<Event>> {
    let mut ours: std::collections::HashSet<ObjectId> = std::collections::HashSet::new();
    ours.insert(claim.id);
    ours.extend(repo.commits_between(result, claim.trigger.id)?);
    let strays: Vec<String> = repo
        .branches(&BranchSource::Local)?
        .into_iter()
        .filter(|b| b.branch != branch && ours.contains(&b.id))
        .map(|b| b.branch)
        .collect();
    if strays.is_empty() {
        return Ok(None);
    }
    let mut ev = Event::new(branch, Kind::Notice);
    ev.run_id = Some(claim.run_id.clone());
    ev.error = Some(format!(
        "branch{} {} now point{} at a commit of run {} (moved by its handler?)",
        if strays.len() > 1 { "es" } else { "" },
        strays.join(", "),
        if strays.len() > 1 { "" } else { "s" },
        claim.run_id
    ));
    Ok(Some(ev))
}
