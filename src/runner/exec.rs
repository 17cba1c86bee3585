//! One branch job: claim by compare-and-swap (a ref transaction locally, a push with
//! an expected old value in remote mode), check the branch out in a worktree slot, run the
//! handler, judge the outcome, and record every failure as a commit. Handlers of different
//! branches run concurrently up to `jobs`, one per branch; nothing here decides what the next
//! state is — only handlers do.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use super::executor::Ctx;
use super::messages::{self, Failure, TAIL_LINES};
use super::plan::Action;
use super::process::{run_handler, tail, HandlerRun};
use super::remote::{self, Pushed};
use super::report::{Event, Kind};
use super::validate::{judge, Exit, HeadFacts, Verdict};
use super::{body_env, clock};
use crate::protocol::state::last_text;
use crate::protocol::{Key, Lease, Reserved, State};
use crate::repo::worktree::{run_git, Slot};
use crate::repo::{Cas, CommitInfo, ObjectId, Repo};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| anyhow!("internal error: {e}"))?
}

struct Job {
    branch: String,
    /// Where the head was read: `refs/heads/B`, or `refs/remotes/<remote>/B` in remote mode.
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

pub(super) async fn run_action(ctx: &Arc<Ctx>, action: Action) -> Result<()> {
    match action {
        Action::Run { branch, refname, head, state, handler, force_worktree } => {
            run_branch(ctx, Job { branch, refname, head, state, handler, force_worktree }).await
        }
        Action::TakeOver { branch, refname, head, lease, stalled_handler, force_worktree } => {
            let c = ctx.clone();
            let (b, r) = (branch.clone(), refname.clone());
            let Some(stalled) = blocking(move || take_over(&c, &b, &r, head, &lease)).await? else {
                return Ok(());
            };
            match stalled_handler {
                Some(handler) if !ctx.stopping() => {
                    let state = State::reserved_state(Reserved::Stalled);
                    run_branch(ctx, Job { branch, refname, head: stalled, state, handler, force_worktree }).await
                }
                _ => Ok(()),
            }
        }
        Action::Notice { .. } => Ok(()),
    }
}

/// Publish `new` as the branch head in place of exactly `expected`: a ref transaction locally, a
/// push with that expected old value in remote mode.
fn publish_exact(
    ctx: &Ctx,
    repo: &Repo,
    job_branch: &str,
    refname: &str,
    expected: ObjectId,
    new: ObjectId,
    reflog: &str,
) -> Result<Pushed> {
    match ctx.remote() {
        None => Ok(match repo.compare_and_swap(refname, Some(expected), new, reflog)? {
            Cas::Updated => Pushed::Accepted,
            Cas::Moved { .. } => Pushed::Rejected("the branch moved".into()),
        }),
        Some(remote) => Ok(remote::push(&ctx.common_dir, remote, job_branch, new, Some(expected))),
    }
}

/// Write `stalled` over an expired lease. Returns the new head, or None if another runner won.
fn take_over(ctx: &Ctx, branch: &str, refname: &str, head: ObjectId, lease: &Lease) -> Result<Option<ObjectId>> {
    let repo = ctx.repo();
    let now = clock::now();
    let msg = messages::stalled(lease, &ctx.opts.runner_id, now, ctx.remote())?;
    let tree = repo.commit(head)?.tree;
    let id = repo.write_commit(tree, &[head], &msg, now)?;
    let pushed = publish_exact(ctx, &repo, branch, refname, head, id, "baton: take over expired lease")?;
    let mut ev = Event::new(branch, Kind::LostRace);
    ev.state = lease.origin_state.clone();
    ev.run_id = lease.run_id.clone();
    let accepted = pushed == Pushed::Accepted;
    match pushed {
        Pushed::Accepted => {
            ev.action = Kind::TookOver;
            ev.commit = Some(id.to_string());
            ev.next_state = Some(Reserved::Stalled.as_str().into());
            ev.error = Some(format!("lease expired {} s ago", now - lease.expires_at()));
        }
        Pushed::Rejected(_) => {}
        Pushed::Failed(why) => {
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
    let msg = messages::claim(&job.state, &run_id, &ctx.opts.runner_id, ctx.opts.lease_seconds, ctx.remote())?;
    let id = repo.write_commit(trigger.tree, &[job.head], &msg, clock::now())?;
    let reflog = format!("baton: claim {}", job.state);
    let mut ev = Event::new(&job.branch, Kind::LostRace);
    ev.state = Some(job.state.to_string());
    match publish_exact(ctx, &repo, &job.branch, &job.refname, job.head, id, &reflog)? {
        Pushed::Accepted => {}
        Pushed::Rejected(_) => {
            ctx.emit(ev);
            return Ok(None);
        }
        Pushed::Failed(why) => {
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

    // Locally the slot checks the branch out (the handler's commits move it); in remote mode it
    // is detached at the claim and the runner pushes the result.
    let (j, s, remote_mode) = (job.clone(), slot.clone(), ctx.remote().is_some());
    let claim_id = claim.id;
    let checked_out = blocking(move || match remote_mode {
        false => s.check_out(&j.branch, claim_id, j.force_worktree),
        true => s.check_out_detached(&j.branch, claim_id),
    })
    .await;
    let exit = match checked_out {
        Err(e) => Exit::SpawnFailed(format!("the worktree could not check out the branch: {e:#}")),
        Ok(()) => run_handler(handler_run(ctx, &job, &claim, &slot.path, &log)).await,
    };

    let (c, j, cl, wt) = (ctx.clone(), job.clone(), claim.clone(), slot.path.clone());
    let exit2 = exit.clone();
    let (verdict, head) = blocking(move || {
        let repo = c.repo();
        let head = match c.remote() {
            None => repo.ref_id(&format!("refs/heads/{}", j.branch))?,
            Some(_) => {
                Some(run_git(&wt, ["rev-parse", "HEAD"])?.trim().parse::<ObjectId>().map_err(|e| anyhow!("{e}"))?)
            }
        };
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
            finish_success(ctx, &job, &claim, head, &mut ev).await;
        }
        Verdict::Parked => {
            ev.action = Kind::Parked;
            ev.next_state = Some(Reserved::Working.as_str().into());
            finish_success(ctx, &job, &claim, head, &mut ev).await;
        }
        Verdict::Failed { reason, exit_code } => {
            let head = head.context("branch head vanished")?;
            let (c, j, cl, w, l) = (ctx.clone(), job.clone(), claim.clone(), slot.path.clone(), log.clone());
            let r = reason.clone();
            let written = blocking(move || record_failure(&c, &j, &cl, head, &r, exit_code, &l, &w)).await;
            ev.action = Kind::Failed;
            ev.error = Some(reason);
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
            ev.error = Some("the branch was deleted during the run; nothing could be recorded".into());
        }
        Verdict::LeaseLost => {
            ev.action = Kind::Error;
            ev.error = Some("the branch was moved off this run's lease by someone else; their history stands, this run's result was not recorded".into());
        }
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

fn handler_run<'a>(ctx: &Ctx, job: &'a Job, claim: &'a Claim, wt: &'a Path, log: &'a Path) -> HandlerRun<'a> {
    let body = body_env(&claim.trigger.message);
    let commit = claim.trigger.id.to_string();
    let mut env = vec![
        ("BATON_STATE", job.state.to_string()),
        ("BATON_BODY", body.clone()),
        ("BATON_COMMIT", commit.clone()),
        ("BATON_BRANCH", job.branch.clone()),
        ("BATON_RUN_ID", claim.run_id.clone()),
        ("BATON_RUNNER_ID", ctx.opts.runner_id.clone()),
        ("BATON_LEASE_SECONDS", ctx.opts.lease_seconds.to_string()),
        ("BATON_CLAIM_COMMIT", claim.id.to_string()),
        ("BATON_WORKTREE", wt.display().to_string()),
        ("AYNIG_BODY", body),
        ("AYNIG_COMMIT_HASH", commit),
        ("AYNIG_STATE", job.state.to_string()),
    ];
    if let Some(remote) = ctx.remote() {
        env.push(("BATON_REMOTE", remote.to_owned()));
    }
    HandlerRun {
        handler: &job.handler,
        worktree: wt,
        log,
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        trigger_trailers: &claim.trigger.trailers,
        timeout: ctx.opts.timeout,
        grace: ctx.opts.grace,
        shutdown: ctx.shutdown.clone(),
    }
}

/// After a good run: in remote mode push the handler's commits (a fast-forward of the lease);
/// with `--current-branch` bring the user's checkout along.
async fn finish_success(ctx: &Arc<Ctx>, job: &Arc<Job>, claim: &Arc<Claim>, head: Option<ObjectId>, ev: &mut Event) {
    if let (Some(_), Some(head)) = (ctx.remote(), head) {
        let (c, j, run) = (ctx.clone(), job.clone(), claim.run_id.clone());
        let outcome = match blocking(move || Ok(publish_result(&c, &j.branch, &run, head))).await {
            Ok(r) => r,
            Err(e) => Err(format!("{e:#}")),
        };
        if let Err(why) = outcome {
            ev.action = Kind::Error;
            ev.error = Some(why);
        }
        return;
    }
    if job.force_worktree {
        // The user's checkout has this branch: bring its files along (a two-tree merge keeps
        // local edits and refuses to overwrite them).
        if let (Some(main), Some(new)) = (ctx.main_workdir.clone(), ev.commit.clone()) {
            let old = claim.trigger.tree.to_string();
            if let Err(e) = blocking(move || run_git(&main, ["read-tree", "-m", "-u", &old, &new]).map(|_| ())).await {
                tracing::warn!("{}: could not update your checkout to the new head: {e:#}", job.branch);
            }
        }
    }
}

/// Push a run's result in remote mode. A rejection after the handler ran is a real conflict: the
/// result is kept on `refs/baton/conflicts/<branch>/<run-id>`, never forced over someone's work.
fn publish_result(ctx: &Ctx, branch: &str, run_id: &str, head: ObjectId) -> Result<(), String> {
    let remote = ctx.remote().unwrap_or("origin");
    let why = match remote::push(&ctx.common_dir, remote, branch, head, None) {
        Pushed::Accepted => return Ok(()),
        Pushed::Rejected(why) => format!("the remote refused the result ({why})"),
        Pushed::Failed(why) => format!("the result could not be pushed ({why})"),
    };
    let kept = format!("refs/baton/conflicts/{branch}/{run_id}");
    match ctx.repo().compare_and_swap(&kept, None, head, "baton: keep a result the remote refused") {
        Ok(_) => Err(format!("{why}; kept at {kept}")),
        Err(e) => Err(format!("{why}; and it could not be kept at {kept}: {e:#}")),
    }
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
    let next = messages::failure_state(&claim.trigger.trailers);
    let msg = messages::failure(&Failure {
        state: &job.state,
        run_id: &claim.run_id,
        runner_id: &ctx.opts.runner_id,
        exit_code,
        reason,
        output_tail: &tail(log, TAIL_LINES),
        log,
        worktree: wt,
        next: &next,
        remote: ctx.remote(),
    })?;
    let tree = repo.commit(head)?.tree;
    let id = repo.write_commit(tree, &[head], &msg, clock::now())?;
    if ctx.remote().is_some() {
        publish_result(ctx, &job.branch, &claim.run_id, id).map_err(|e| anyhow!(e))?;
        return Ok((id, next.to_string()));
    }
    match repo.compare_and_swap(&format!("refs/heads/{}", job.branch), Some(head), id, "baton: handler failed")? {
        Cas::Updated => Ok((id, next.to_string())),
        Cas::Moved { .. } => Err(anyhow!("the branch moved while the failure was being recorded")),
    }
}
