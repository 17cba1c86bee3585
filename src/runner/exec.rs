//! One branch job, as the protocol steps: claim the branch by compare-and-swap, check the claim
//! out detached in a worktree slot, run the handler while the runner keeps the lease alive, judge
//! the result, and publish it — or record the failure — with one more compare-and-swap. The
//! handler never moves the branch itself; only a result that descends from this run's lease is
//! published, anything else is a failure event and its commits are kept on
//! `refs/baton/rejected/<branch>/<run-id>`. Whether the board is local or a remote is the
//! [`Backend`](super::backend::Backend)'s business, not this file's. Lease renewal lives in
//! [`super::renewal`], publishing in [`super::publish`].

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Result};
use tokio::sync::watch;

use super::backend::Swap;
use super::breakers;
use super::context::Ctx;
use super::messages;
use super::plan::{Action, BreakerRole, HandlerOrigin, RunSettings};
use super::process::{run_handler, trailer_env, HandlerRun};
use super::publish::BreakerNews;
use super::publish::{apply_record, record_outcome, stray_branches};
use super::renewal::{keep_lease, Keeper};
use super::report::{Event, Kind};
use super::validate::{judge, ErrorType, Exit, FailOn, LeaseHead, ResultFacts, Verdict};
use super::{body_env, clock};
use crate::policy::env::{handler_env, passed, secrets};
use crate::protocol::message::body_for_env;
use crate::protocol::state::last_text;
use crate::protocol::{Key, Lease, Reserved, State};
use crate::recovery::classify::stated_type;
use crate::recovery::{Admit, BreakerConfig, ExitClasses};
use crate::repo::worktree::{run_git, Slot, SlotHead};
use crate::repo::{BranchSource, CommitInfo, ObjectId, Repo};

pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| anyhow!("internal error: {e}"))?
}

pub(super) struct Job {
    pub(super) branch: String,
    pub(super) head: ObjectId,
    pub(super) state: State,
    pub(super) handler: String,
    pub(super) origin: HandlerOrigin,
    pub(super) settings: RunSettings,
    pub(super) force_worktree: bool,
    /// What the run is to its state's circuit breaker (a probe is taken before the claim).
    pub(super) breaker: BreakerRole,
}

pub(super) struct Claim {
    pub(super) run_id: String,
    pub(super) id: ObjectId,
    pub(super) trigger: CommitInfo,
}

/// Where this runner writes the lease renewal record of a branch (the board's own name for it).
pub(super) fn renewal_ref(branch: &str) -> String {
    super::board::renewal_ref(&BranchSource::Local, branch)
}

/// Where a result that was not published is kept.
pub(super) fn rejected_ref(branch: &str, run_id: &str) -> String {
    format!("refs/baton/rejected/{branch}/{run_id}")
}

pub(super) async fn run_action(ctx: &Arc<Ctx>, action: Action) -> Result<()> {
    match action {
        Action::Run { branch, head, state, handler, origin, settings, force_worktree, breaker, .. } => {
            run_branch(ctx, Job { branch, head, state, handler, origin, settings, force_worktree, breaker }).await
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
                    let breaker = BreakerRole::Clean;
                    let job = Job { branch, head: stalled, state, handler, origin, settings, force_worktree, breaker };
                    run_branch(ctx, job).await
                }
                _ => Ok(()),
            }
        }
        Action::Block { branch, head, state, reason } => {
            let c = ctx.clone();
            blocking(move || block(&c, &branch, head, &state, &reason)).await
        }
        Action::Notice { .. } => Ok(()),
        Action::GateTimeout { branch, head, state, default, humans, .. } => {
            let c = ctx.clone();
            blocking(move || super::gates::apply_default(&c, &branch, head, &state, &default, &humans)).await
        }
        Action::Join { branch, head, join, failed } => {
            let c = ctx.clone();
            blocking(move || super::fanout::apply_join(&c, &branch, head, &join, failed.as_ref())).await
        }
    }
}

/// Write `blocked` over a task whose dependency can never be met (one compare-and-swap from the
/// head the planner read: a lost race is just a lost race).
fn block(ctx: &Ctx, branch: &str, head: ObjectId, state: &State, reason: &str) -> Result<()> {
    let repo = ctx.repo();
    let now = clock::now();
    let msg = messages::dependency_block(branch, state, reason, &ctx.opts.runner_id, ctx.board.remote())?;
    let tree = repo.commit(head)?.tree;
    let id = repo.write_commit(tree, &[head], &msg, now)?;
    let mut ev = Event::new(branch, Kind::LostRace);
    ev.state = Some(state.to_string());
    match ctx.board.swap(&repo, branch, head, id, "baton: blocked by a dependency")? {
        Swap::Done => {
            ev.action = Kind::Escalated;
            ev.commit = Some(id.to_string());
            ev.next_state = Some(Reserved::Blocked.as_str().into());
            ev.error = Some(reason.to_owned());
        }
        Swap::Lost(_) => {}
        Swap::Failed(why) => {
            ev.action = Kind::Error;
            ev.error = Some(format!("could not write the blocked commit: {why}"));
        }
    }
    ctx.emit(ev);
    Ok(())
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

fn claim(ctx: &Ctx, job: &Job, run_id: String) -> Result<Option<Claim>> {
    let repo = ctx.repo();
    let trigger = repo.commit(job.head)?;
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
pub(super) fn is_ours(repo: &Repo, head: ObjectId, claim: &Claim) -> Result<bool> {
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

/// The facts after the handler exited: the branch head, the handler's result, the verdict.
pub(super) struct Settled {
    pub(super) verdict: Verdict,
    /// The branch head now (the lease head when it is still ours).
    pub(super) board_head: Option<ObjectId>,
    /// The handler's result: the HEAD of its worktree (the claim if it cannot be read).
    pub(super) result: ObjectId,
    /// Why the lease keeper stopped the handler, if it did.
    pub(super) lost_why: Option<String>,
}

fn settle(ctx: &Ctx, job: &Job, claim: &Claim, exit: &Exit, slot: &Slot, log: &Path) -> Result<Settled> {
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
    let f = &job.settings.failure;
    let classes =
        ExitClasses { transient: f.transient_exit_codes.value.clone(), auth: f.auth_exit_codes.value.clone() };
    let mut verdict = judge(exit, lease_head, &facts, &claim.run_id, &classes);
    // The handler may say what kind of failure it had (its last line of output); a timeout and a
    // protocol violation are the runner's findings and stay what they are.
    if let Verdict::Failed { error_type, .. } = &mut verdict {
        if !matches!(error_type, ErrorType::State | ErrorType::Timeout) {
            if let Some(stated) = stated_type(&super::process::tail(log, 1)) {
                *error_type = stated;
            }
        }
    }
    Ok(Settled { verdict, board_head, result, lost_why })
}

/// Where a task's own history begins: the merge base of its trigger with the default branch (the
/// checked-out branch when it is another one, else `main` or `master`; the remote's in remote
/// mode). None: the whole first-parent chain is the task's.
pub(super) fn task_base(repo: &Repo, ctx: &Ctx, branch: &str, trigger: ObjectId) -> Option<ObjectId> {
    default_base(repo, ctx.board.remote(), branch, trigger)
}

/// [`task_base`] for a board on `remote` (None: local), for commands without a tick.
pub(crate) fn default_base(repo: &Repo, remote: Option<&str>, branch: &str, trigger: ObjectId) -> Option<ObjectId> {
    let mut candidates = Vec::new();
    match remote {
        Some(r) => {
            candidates.push(format!("refs/remotes/{r}/HEAD"));
            candidates.push(format!("refs/remotes/{r}/main"));
            candidates.push(format!("refs/remotes/{r}/master"));
        }
        None => {
            if let Ok(Some(head)) = repo.head_branch() {
                if head != branch {
                    candidates.push(format!("refs/heads/{head}"));
                }
            }
            candidates.push("refs/heads/main".into());
            candidates.push("refs/heads/master".into());
        }
    }
    let default = candidates
        .iter()
        .filter(|c| c.as_str() != format!("refs/heads/{branch}"))
        .find_map(|c| repo.ref_id(c).ok().flatten())?;
    repo.merge_base(trigger, default).ok().flatten()
}

/// Take the half-open probe of breaker `name` for this run; false when another run has it.
fn take_probe(ctx: &Ctx, job: &Job, name: &str, run_id: &str) -> Result<bool> {
    let repo = ctx.repo();
    let hold = job.settings.timeout.as_secs().saturating_add(job.settings.lease_seconds);
    let hold = i64::try_from(hold).unwrap_or(i64::MAX);
    let taken = breakers::update(ctx.board.as_ref(), &repo, name, |b, now| {
        b.take_probe(run_id, now, now.saturating_add(hold))
    })?;
    Ok(taken.is_some())
}

/// After a run: tell the breaker of its state what happened (a failure of any kind, or a success
/// when the breaker has something to forget). A breaker that cannot be written is an error event,
/// never a reason to lose the run's record (already written).
fn feed_breaker(ctx: &Ctx, job: &Job, outcome: &BreakerNews) {
    let f = &job.settings.failure;
    let name = f.breaker.value.clone();
    let cfg = BreakerConfig::from_policy(f);
    let repo = ctx.repo();
    let probe = job.breaker.probe().is_some();
    let result = breakers::update(ctx.board.as_ref(), &repo, &name, |b, now| match outcome {
        BreakerNews::Success => {
            let next = b.on_success(now);
            (probe || next != *b).then_some(next)
        }
        BreakerNews::Failure { error_type, signature } => {
            Some(b.on_failure(now, signature, error_type.trips_breaker(), &cfg))
        }
    });
    match result {
        Ok(Some(b)) if b.admit(clock::now()) != Admit::Closed && matches!(outcome, BreakerNews::Failure { .. }) => {
            let mut ev = Event::new(&job.branch, Kind::Notice);
            ev.state = Some(job.state.to_string());
            ev.error = Some(format!(
                "circuit breaker {name} is open for {}s: {}",
                b.cooldown,
                b.reason.as_deref().unwrap_or("")
            ));
            ctx.emit(ev);
        }
        Ok(_) => {}
        Err(e) => {
            let mut ev = Event::new(&job.branch, Kind::Error);
            ev.error = Some(format!("circuit breaker {name}: {e:#}"));
            ctx.emit(ev);
        }
    }
}

async fn run_branch(ctx: &Arc<Ctx>, job: Job) -> Result<()> {
    let job = Arc::new(job);
    let run_id = uuid::Uuid::new_v4().to_string();
    // A gated state runs only on a valid approval of its head (a required signature is checked now).
    let (c, j) = (ctx.clone(), job.clone());
    let approved = match blocking(move || super::gates::check(&c, &j)).await {
        Ok(super::gates::GateCheck::Run(approved)) => approved,
        Ok(super::gates::GateCheck::Stop) => return Ok(()),
        Err(e) => {
            let mut ev = Event::new(&job.branch, Kind::Error);
            ev.state = Some(job.state.to_string());
            ev.error = Some(format!("could not check the gate's approval: {e:#}"));
            ctx.emit(ev);
            return Ok(());
        }
    };
    // A fix loop past its hard cap, or a budget used up, goes to a person instead of another run.
    let (c, j) = (ctx.clone(), job.clone());
    let go = match blocking(move || super::before::before_claim(&c, &j)).await {
        Ok(Some(go)) => go,
        Ok(None) => return Ok(()),
        Err(e) => {
            let mut ev = Event::new(&job.branch, Kind::Error);
            ev.state = Some(job.state.to_string());
            ev.error = Some(format!("could not read the task's history: {e:#}"));
            ctx.emit(ev);
            return Ok(());
        }
    };
    // Through a half-open breaker only the run that takes its probe goes.
    if let Some(name) = job.breaker.probe().map(str::to_owned) {
        let (c, j, r, n) = (ctx.clone(), job.clone(), run_id.clone(), name.clone());
        match blocking(move || take_probe(&c, &j, &n, &r)).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("{}: another run probes circuit breaker {name}", job.branch);
                return Ok(());
            }
            Err(e) => {
                let mut ev = Event::new(&job.branch, Kind::Error);
                ev.error = Some(format!("circuit breaker {name}: could not take the probe: {e:#}"));
                ctx.emit(ev);
                return Ok(());
            }
        }
    }
    // A concurrency token of each group the run belongs to, or no run this tick.
    let (c, j, r) = (ctx.clone(), job.clone(), run_id.clone());
    let tokens = match blocking(move || {
        let trigger = c.repo().commit(j.head)?;
        let groups = super::concurrency::groups(&j, &trigger.trailers);
        super::concurrency::acquire(&c, &j, &r, &groups)
    })
    .await
    {
        Ok(Some(tokens)) => tokens,
        Ok(None) => {
            give_back_probe(ctx, &job, &run_id).await;
            return Ok(());
        }
        Err(e) => {
            let mut ev = Event::new(&job.branch, Kind::Error);
            ev.error = Some(format!("concurrency: {e:#}"));
            ctx.emit(ev);
            give_back_probe(ctx, &job, &run_id).await;
            return Ok(());
        }
    };
    let result = run_holding(ctx, job.clone(), run_id.clone(), go, approved).await;
    let c = ctx.clone();
    let _ = blocking(move || {
        super::concurrency::release(&c, tokens);
        Ok(())
    })
    .await;
    give_back_probe(ctx, &job, &run_id).await;
    result
}

/// A run that took a half-open breaker's probe and ended without telling the breaker (it never
/// claimed, lost its lease, found its concurrency group full) gives the probe back, so the next
/// tick can probe at once instead of waiting out the probe's hold. A no-op when the run's outcome
/// already closed or re-opened the breaker, or when it held no probe.
async fn give_back_probe(ctx: &Arc<Ctx>, job: &Arc<Job>, run_id: &str) {
    let Some(name) = job.breaker.probe().map(str::to_owned) else { return };
    let (c, r) = (ctx.clone(), run_id.to_owned());
    let given = blocking(move || {
        breakers::update(c.board.as_ref(), &c.repo(), &name, |b, _| match &b.probe {
            Some(p) if p.run_id == r => Some(crate::recovery::Breaker { probe: None, ..b.clone() }),
            _ => None,
        })
    })
    .await;
    if let Err(e) = given {
        tracing::warn!("{}: could not give the breaker's probe back (it frees itself later): {e:#}", job.branch);
    }
}

/// The run itself, once nothing holds it back: slot, claim, handler, judgement, record.
async fn run_holding(
    ctx: &Arc<Ctx>,
    job: Arc<Job>,
    run_id: String,
    go: super::before::Go,
    approved: Option<super::gates::Approved>,
) -> Result<()> {
    let started = Instant::now();
    let round = go.round;
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
    let (c, j, r) = (ctx.clone(), job.clone(), run_id.clone());
    let claim = match blocking(move || claim(&c, &j, r)).await {
        Ok(Some(claim)) => Arc::new(claim),
        other => {
            release(slot, None).await;
            return other.map(|_| ());
        }
    };
    let log = ctx.scratch().log_file(&job.branch, &claim.run_id);

    // The handler works on a detached HEAD at the claim; only the runner moves the branch.
    let (j, s, claim_id) = (job.clone(), slot.clone(), claim.id);
    let checked_out =
        blocking(move || s.check_out_detached(&j.branch, claim_id, &j.settings.humans.worktree_keep.value)).await;
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
        .and_then(|()| std::fs::write(&body_file, with_round(body_env(&claim.trigger.message), round, &job)));
    // The previous attempt's failure, for a retry (the same text is at the end of the body).
    let previous_file = log.with_extension("previous");
    let previous = match last_text(&claim.trigger.trailers, Key::RetryOf) {
        Some(_) => messages::last_attempt_section(&body_env(&claim.trigger.message))
            .map(|section| std::fs::write(&previous_file, format!("{section}\n")).map(|()| previous_file.clone()))
            .and_then(Result::ok),
        None => None,
    };
    // A task envelope in the body, as JSON (a malformed one is only a warning).
    let task_file = log.with_extension("task.json");
    let task = task_json(&body_env(&claim.trigger.message), &job.branch, &claim.trigger.id).and_then(|json| {
        match std::fs::write(&task_file, json) {
            Ok(()) => Some(task_file.clone()),
            Err(e) => {
                tracing::warn!(branch = %job.branch, "could not write the task file {}: {e}", task_file.display());
                None
            }
        }
    });
    // A join commit: the children as the join saw them, as JSON.
    let children_file = log.with_extension("children.json");
    let children = super::fanout::children_json(&ctx.repo(), &job.branch, &claim.trigger).and_then(|json| {
        match std::fs::write(&children_file, json) {
            Ok(()) => Some(children_file.clone()),
            Err(e) => {
                tracing::warn!(branch = %job.branch, "could not write {}: {e}", children_file.display());
                None
            }
        }
    });
    let mut env = handler_environment(ctx, &job, &claim, &slot.path, &body_file, round, previous.as_deref());
    if let Some(p) = &task {
        env.push(("BATON_TASK_JSON".to_owned(), p.display().to_string()));
    }
    if let Some(p) = &children {
        env.push(("BATON_CHILDREN_JSON".to_owned(), p.display().to_string()));
    }
    env.extend(go.budget_env);
    let env = super::gates::with_approval(env, approved.as_ref());
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
    let _ = std::fs::remove_file(&previous_file);
    let _ = std::fs::remove_file(&task_file);
    let _ = std::fs::remove_file(&children_file);
    let (c, j, cl, s, x, l) = (ctx.clone(), job.clone(), claim.clone(), slot.clone(), exit.clone(), log.clone());
    let mut settled = blocking(move || settle(&c, &j, &cl, &x, &s, &l)).await?;
    // The definition of done: the state's acceptance checks decide whether an answer stands.
    if let Verdict::Succeeded { .. } = &settled.verdict {
        let answer = super::accept::Answer {
            run_id: &claim.run_id,
            wt: &slot.path,
            commit: settled.result,
            env: &env,
            log: &log,
            inherit_fd: slot.lock_fd(),
        };
        let failed = super::accept::check_answer(ctx, &job, answer).await;
        if let Some(reason) = failed {
            settled.verdict =
                Verdict::Failed { reason, exit_code: None, error_type: ErrorType::Logic, on: FailOn::Result };
        }
    }
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
    let record = blocking(move || {
        let record = record_outcome(&c, &j, &cl, settled, &secrets, &l, &w);
        // Published with the answer, or never: either way the run's spawn records are done with.
        super::fanout::clear_spawns(&c.repo(), &cl.run_id);
        Ok(record)
    })
    .await?;
    let news = record.breaker_news(&job.breaker);
    apply_record(&mut ev, record);
    if let Some(news) = news {
        let (c, j) = (ctx.clone(), job.clone());
        let _ = blocking(move || {
            feed_breaker(&c, &j, &news);
            Ok(())
        })
        .await;
    }

    // Bring the user's checkout along when it has this branch: a two-tree merge carries local
    // edits over and refuses (changing nothing) when anything there — an untracked file the answer
    // also adds, an edit to a file it changes — would be overwritten. Then the person is told what
    // is in the way and how to finish; their files are never touched.
    if job.force_worktree && matches!(ev.action, Kind::Succeeded | Kind::Parked | Kind::Failed | Kind::Retrying) {
        if let (Some(main), Some(new)) = (ctx.main_workdir.clone(), ev.commit.clone()) {
            let old = claim.trigger.tree.to_string();
            let at = new.clone();
            if let Err(e) = blocking(move || run_git(&main, ["read-tree", "-m", "-u", &old, &at]).map(|_| ())).await {
                let why = format!("{e:#}");
                let why = why.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
                let mut notice = Event::new(&job.branch, Kind::Notice);
                notice.run_id = Some(claim.run_id.clone());
                notice.commit = Some(new.clone());
                notice.error = Some(format!(
                    "your checkout of {b} was left as it was, because files in it are in the way of the answer ({why}); \
                     until you bring it along, `git status` shows the answer's changes reverted: move those files \
                     away and run `git read-tree -m -u {old} {b}`",
                    b = job.branch,
                    old = claim.trigger.tree,
                ));
                ctx.emit(notice);
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
    // A state that keeps caches (`worktree.keep`) keeps its slot for the branch's next step.
    let keep = !ok || ctx.opts.keep_worktrees || !job.settings.humans.worktree_keep.value.is_empty();
    if keep {
        ev.worktree = Some(slot.path.display().to_string());
    }
    release(slot, keep.then(|| job.branch.clone())).await;
    ctx.emit(ev);
    Ok(())
}

/// The task envelope of a trigger body as JSON (`BATON_TASK_JSON`'s file): none without one, and
/// none, with a warning naming the problem, when it is malformed.
fn task_json(body: &str, branch: &str, commit: &ObjectId) -> Option<String> {
    match crate::humans::envelope::parse(body)? {
        Ok(e) => serde_json::to_string_pretty(&e).ok().map(|j| j + "\n"),
        Err(e) => {
            tracing::warn!(branch, commit = %commit, "no BATON_TASK_JSON: {e}");
            None
        }
    }
}

/// The body a handler gets: the task's, plus a line saying which round this is past the soft cap.
fn with_round(body: String, round: Option<u32>, job: &Job) -> String {
    match round {
        None => body,
        Some(n) => format!(
            "{}\n\nRound {n} of {} (loop.soft = {}, loop.hard = {}): this state keeps coming back; change the approach.",
            body.trim_end(),
            job.state,
            job.settings.failure.loop_soft.value,
            job.settings.failure.loop_hard.value
        ),
    }
}

/// The handler's environment: the documented base, what the policy and `--pass-env` pass, and
/// the protocol's own variables.
fn handler_environment(
    ctx: &Ctx,
    job: &Job,
    claim: &Claim,
    wt: &Path,
    body_file: &Path,
    round: Option<u32>,
    previous_log: Option<&Path>,
) -> Vec<(String, String)> {
    let mut env = handler_env(&ctx.runner_env, &job.settings.env_pass);
    let body = body_for_env(&with_round(body_env(&claim.trigger.message), round, job));
    let trailers = &claim.trigger.trailers;
    let attempt = crate::recovery::retry::attempt_of(trailers);
    let max_attempts = last_text(trailers, Key::MaxAttempts)
        .filter(|_| attempt > 1)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(job.settings.failure.retry_logic.value.saturating_add(1));
    let commit = claim.trigger.id.to_string();
    let mut ours = vec![
        ("BATON_STATE", job.state.to_string()),
        ("BATON_BODY", body),
        ("BATON_BODY_FILE", body_file.display().to_string()),
        ("BATON_COMMIT", commit.clone()),
        ("BATON_BRANCH", job.branch.clone()),
        ("BATON_RUN_ID", claim.run_id.clone()),
        ("BATON_RUNNER_ID", ctx.opts.runner_id.clone()),
        ("BATON_LEASE_SECONDS", job.settings.lease_seconds.to_string()),
        ("BATON_CLAIM_COMMIT", claim.id.to_string()),
        ("BATON_WORKTREE", wt.display().to_string()),
        ("BATON_ATTEMPT", attempt.to_string()),
        ("BATON_MAX_ATTEMPTS", max_attempts.max(attempt).to_string()),
        ("AYNIG_BODY", body_for_env(&crate::aynig::aynig_body(&claim.trigger.message))),
        ("AYNIG_COMMIT_HASH", commit),
        ("AYNIG_STATE", job.state.to_string()),
        ("AYNIG_BRANCH", job.branch.clone()),
    ];
    if let Some(remote) = ctx.board.remote() {
        ours.push(("BATON_REMOTE", remote.to_owned()));
    }
    if last_text(trailers, Key::RetryOf).is_some() {
        ours.push(("BATON_PREVIOUS_ERROR", last_text(trailers, Key::Error).unwrap_or_default()));
        ours.push(("BATON_PREVIOUS_ERROR_TYPE", last_text(trailers, Key::ErrorType).unwrap_or_default()));
    }
    if let Some(p) = previous_log {
        ours.push(("BATON_PREVIOUS_LOG", p.display().to_string()));
    }
    if let Some(n) = round {
        ours.push(("BATON_ROUND", n.to_string()));
    }
    if let Some(next) = &job.settings.agent_next {
        ours.push(("BATON_NEXT_STATE", next.clone()));
    }
    // AYNIG's precedence: --log-level > the head's dwp-log-level > the runner's AYNIG_LOG_LEVEL.
    let runner_level = ctx.runner_env.iter().find(|(k, _)| k == "AYNIG_LOG_LEVEL").map(|(_, v)| v.as_str());
    let level = crate::aynig::resolve_log_level(
        ctx.opts.log_level.as_deref(),
        crate::aynig::trailer_log_level(trailers).as_deref(),
        runner_level,
    );
    ours.push(("AYNIG_LOG_LEVEL", level.to_owned()));
    env.retain(|(k, _)| !ours.iter().any(|(o, _)| *o == k.as_str()));
    env.extend(ours.into_iter().map(|(k, v)| (k.to_owned(), v)));
    env.extend(trailer_env(&claim.trigger.trailers));
    // Handlers written for AYNIG call `aynig …`: the shim comes first on PATH.
    match std::env::current_exe().and_then(|exe| exe.canonicalize()) {
        Ok(exe) => match super::shim::ensure_shim(&ctx.scratch(), &exe) {
            Ok(dir) => {
                let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
                env.retain(|(k, _)| k != "PATH");
                env.push(("PATH".to_owned(), super::shim::path_with_shim(&dir, path.as_deref())));
            }
            Err(e) => tracing::warn!(branch = %job.branch, "no `aynig` shim for the handler: {e:#}"),
        },
        Err(e) => tracing::warn!(branch = %job.branch, "no `aynig` shim for the handler: {e}"),
    }
    env
}
