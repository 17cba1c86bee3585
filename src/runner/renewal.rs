//! The runner keeps its own lease alive: while a handler runs, about every third of the lease it
//! checks that the branch is still the run's and rewrites the run's renewal record,
//! `refs/baton/leases/<branch>`, by compare-and-swap (pushed in remote mode). A branch moved by
//! someone else ends the renewals and tells the handler's supervisor to stop it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use super::backend::Swap;
use super::clock;
use super::context::Ctx;
use super::exec::{blocking, is_ours, renewal_ref, Claim, Job};
use super::messages;
use crate::repo::ObjectId;

/// What the lease keeper knows while the handler runs.
pub(super) struct Keeper {
    /// The newest lease head seen that is this run's (claim or heartbeat).
    pub(super) lease_head: ObjectId,
    /// The renewal record on `refs/baton/leases/<branch>`, if one was written.
    pub(super) record: Option<ObjectId>,
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
pub(super) async fn keep_lease(
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
