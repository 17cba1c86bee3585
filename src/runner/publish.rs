//! Publishing a run's outcome — the only place it reaches the branch: the handler's result by
//! compare-and-swap from the run's lease head, or a failure event; a result that cannot be
//! published is kept on `refs/baton/rejected/<branch>/<run-id>`. Also the notice for other
//! branches a handler moved onto the run's commits.

use std::path::Path;

use anyhow::Result;

use super::backend::{FanOut, Swap};
use super::clock;
use super::context::Ctx;
use super::exec::{rejected_ref, Claim, Job, Settled};
use super::messages::{self, Failure, TAIL_LINES};
use super::plan::BreakerRole;
use super::process::tail;
use super::report::{Event, Kind};
use super::validate::{ErrorType, FailOn, Verdict};
use crate::policy::env::mask;
use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved};
use crate::recovery::breaker::signature;
use crate::recovery::{after_failure, AfterFailure, Priority, RetryConfig};
use crate::repo::{BranchSource, ObjectId, Repo};

/// What the runner wrote after a run, for the event.
pub(super) struct Recorded {
    action: Kind,
    commit: Option<ObjectId>,
    next_state: Option<String>,
    error: Option<String>,
    /// The failure as the breaker sees it (type and signature), when the run failed.
    failure: Option<(ErrorType, String)>,
}

/// What a run tells its state's circuit breaker.
pub(super) enum BreakerNews {
    Success,
    Failure { error_type: ErrorType, signature: String },
}

impl Recorded {
    /// The runner could not do its part; nothing of the run reached the branch.
    fn error(why: String) -> Recorded {
        Recorded { action: Kind::Error, commit: None, next_state: None, error: Some(why), failure: None }
    }

    /// What the breaker should hear: every recorded failure; a success only when the breaker has
    /// something to forget or the run was its probe (a clean breaker costs a success nothing).
    pub(super) fn breaker_news(&self, role: &BreakerRole) -> Option<BreakerNews> {
        match (&self.action, &self.failure) {
            (Kind::Failed | Kind::Retrying, Some((t, sig))) => {
                Some(BreakerNews::Failure { error_type: *t, signature: sig.clone() })
            }
            (Kind::Succeeded | Kind::Parked, _) if *role != BreakerRole::Clean => Some(BreakerNews::Success),
            _ => None,
        }
    }
}

pub(super) fn apply_record(ev: &mut Event, r: Recorded) {
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
pub(super) fn record_outcome(
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
            // Children the handler spawned are published with its answer, all or nothing.
            let children = super::fanout::spawned(&repo, &claim.run_id);
            if !children.is_empty() {
                let why = format!("baton: {} answered and spawned {} children", job.state, children.len());
                let published = ctx.board.swap_with_children(&repo, &job.branch, lease_head, result, &children, &why);
                return match published {
                    Ok(FanOut::Done) => Recorded {
                        action: if parked { Kind::Parked } else { Kind::Succeeded },
                        commit: Some(result),
                        next_state: Some(next),
                        error: None,
                        failure: None,
                    },
                    Ok(FanOut::Lost(why)) => lost(format!("the branch moved while the result was published ({why})")),
                    Ok(FanOut::ChildExists(names)) => {
                        let reason = format!(
                            "spawned child branch{} {} already exist{}; nothing of the fan-out was published",
                            if names.len() == 1 { "" } else { "es" },
                            names.join(", "),
                            if names.len() == 1 { "s" } else { "" },
                        );
                        let verdict = Verdict::Failed {
                            reason,
                            exit_code: None,
                            error_type: ErrorType::Logic,
                            on: FailOn::Lease,
                        };
                        let settled = Settled { verdict, board_head: Some(lease_head), result, lost_why: None };
                        super::fanout::clear_spawns(&repo, &claim.run_id);
                        record_outcome(ctx, job, claim, settled, secrets, log, wt)
                    }
                    Ok(FanOut::Failed(why)) => {
                        let kept = keep_rejected(ctx, &repo, job, claim, result);
                        Recorded::error(format!("the result and its children could not be published ({why}){kept}"))
                    }
                    Err(e) => lost(format!("{e:#}")),
                };
            }
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
                    failure: None,
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
            let trigger = &claim.trigger.trailers;
            let f = &job.settings.failure;
            let now = clock::now();
            let attempt = crate::recovery::retry::attempt_of(trigger);
            let priority_text = last_text(trigger, Key::Priority).map(|p| p.trim().to_owned());
            let priority = priority_text.as_deref().and_then(|p| p.parse::<Priority>().ok()).unwrap_or_default();
            let decision =
                after_failure(attempt, error_type, priority, &claim.run_id, now, &RetryConfig::from_policy(f));
            let output_tail = mask(&tail(log, TAIL_LINES), secrets);
            let signature = signature(error_type.as_str(), &reason, output_tail.lines().last().unwrap_or(""));
            let (next, action, note) = match &decision {
                AfterFailure::Retry { attempt, max_attempts, not_before } => (
                    job.state.clone(),
                    Kind::Retrying,
                    format!("; attempt {attempt} of {max_attempts} not before {}", clock::iso_utc(*not_before)),
                ),
                AfterFailure::DeadLetter { attempts, max_attempts, .. } if *max_attempts > 1 => (
                    messages::failure_state(trigger),
                    Kind::Failed,
                    format!("; {attempts} attempts of {max_attempts} used: a dead letter"),
                ),
                AfterFailure::DeadLetter { .. } => (messages::failure_state(trigger), Kind::Failed, String::new()),
            };
            let written = (|| -> Result<(ObjectId, Swap)> {
                let failure = Failure {
                    state: &job.state,
                    run_id: &claim.run_id,
                    runner_id: &ctx.opts.runner_id,
                    exit_code,
                    reason: &reason,
                    output_tail: &output_tail,
                    log,
                    worktree: wt,
                    next: &next,
                    remote: ctx.board.remote(),
                    error_type: error_type.as_str(),
                };
                let msg = match decision {
                    AfterFailure::Retry { attempt, max_attempts, not_before } => {
                        let carried = messages::carried(trigger);
                        let task_body = crate::protocol::message::body_of(&claim.trigger.message);
                        messages::retry(
                            &failure,
                            &messages::Retry {
                                attempt,
                                max_attempts,
                                not_before,
                                task_body: &task_body,
                                carried: &carried,
                            },
                        )?
                    }
                    AfterFailure::DeadLetter { attempts, max_attempts, retry_after } => messages::dead_letter(
                        &failure,
                        &messages::DeadLetter {
                            attempts,
                            max_attempts,
                            retry_after,
                            priority: priority_text.as_deref().filter(|p| p.parse::<Priority>().is_ok()),
                            breaker: error_type.trips_breaker().then_some(f.breaker.value.as_str()),
                        },
                    )?,
                };
                let tree = repo.commit(base)?.tree;
                let id = repo.write_commit(tree, &[base], &msg, now)?;
                Ok((id, ctx.board.swap(&repo, &job.branch, lease_head, id, "baton: handler failed")?))
            })();
            if let (Ok((_, Swap::Done)), AfterFailure::Retry { not_before, .. }) = (&written, &decision) {
                ctx.note_due(*not_before);
            }
            match written {
                Ok((id, Swap::Done)) => Recorded {
                    action,
                    commit: Some(id),
                    next_state: Some(next.to_string()),
                    error: Some(format!("{reason}{note}{kept}")),
                    failure: Some((error_type, signature)),
                },
                Ok((_, Swap::Lost(why))) => lost(format!("the branch moved while the failure was recorded ({why})")),
                Ok((_, Swap::Failed(why))) => Recorded::error(format!(
                    "{reason}; and the failure could not be recorded: {why}{kept}; {}",
                    later(job.settings.lease_seconds)
                )),
                Err(e) => Recorded::error(format!(
                    "{reason}; and the failure could not be recorded: {e:#}{kept}; {}",
                    later(job.settings.lease_seconds)
                )),
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

/// What becomes of a run whose record could not be written (a full disk, a remote that refused):
/// its lease is no longer renewed, so it runs out and the next tick, on any runner, takes the
/// branch over and records the run as stalled. Nothing is lost, only late.
fn later(lease_seconds: u64) -> String {
    format!("its lease runs out within {lease_seconds}s and the next tick takes the branch over and records it")
}

/// After a run: does any other local branch now point at a commit of this run (a handler that
/// ran `git branch -f other HEAD`)? One notice naming them.
pub(super) fn stray_branches(repo: &Repo, branch: &str, claim: &Claim, result: ObjectId) -> Result<Option<Event>> {
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
