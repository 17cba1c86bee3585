//! Concurrency limits across every runner sharing a board: a state's `concurrency.group` with
//! `concurrency.max = N` never has more than N runs at once, and a task carrying
//! `dwp-exclusive: <name>` never runs beside another task with the same name (max 1). The count is
//! exact, not estimated from leases two runners could both read as N-1: a run first takes one of
//! the group's N tokens — `refs/baton/concurrency/<group>/<i>` — by compare-and-swap (pushed in
//! remote mode), and gives it back when it ends. A token whose run is gone (its `until` passed,
//! or its branch no longer holds that run's lease) is free again, so a crashed runner blocks a
//! group only until then.

use anyhow::Result;

use super::backend::Swap;
use super::clock;
use super::context::Ctx;
use super::exec::Job;
use crate::protocol::state::last_text;
use crate::protocol::{trailers, Key, Lease};
use crate::repo::{ObjectId, Repo};

pub const PREFIX: &str = "refs/baton/concurrency/";

/// How long a token may be taken before its run's claim shows on the branch.
const CLAIM_GRACE: i64 = 30;

/// A token this run holds.
pub(super) struct Token {
    refname: String,
    id: ObjectId,
}

/// The groups a job runs in: (token folder under [`PREFIX`], max).
pub(super) fn groups(job: &Job, trigger_trailers: &[crate::protocol::Trailer]) -> Vec<(String, u32)> {
    let h = &job.settings.humans;
    let mut out = Vec::new();
    if let (Some(g), Some(max)) = (&h.concurrency_group.value, h.concurrency_max.value) {
        out.push((format!("group/{g}"), max));
    }
    if let Some(x) = last_text(trigger_trailers, Key::Exclusive) {
        let x = x.trim().to_owned();
        if crate::protocol::State::parse(&x).is_ok() {
            out.push((format!("exclusive/{x}"), 1));
        }
    }
    out
}

/// Is the token in `id` held by a run that is gone?
fn stale(ctx: &Ctx, repo: &Repo, id: ObjectId, now: i64) -> bool {
    let Ok(c) = repo.commit(id) else { return true };
    let get = |k: &str| c.trailers.iter().rev().find(|t| t.key == k.as_bytes()).map(|t| t.value_lossy().into_owned());
    let until = get("dwp-token-until").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    if now >= until {
        return true;
    }
    if now - c.committer_time < CLAIM_GRACE {
        return false; // just taken: its claim may not be on the branch yet
    }
    let (Some(branch), Some(run)) = (get("dwp-token-branch"), last_text(&c.trailers, Key::RunId)) else {
        return true;
    };
    // The run holds its branch: the head is its claim, a heartbeat, or (while it publishes) its
    // answer on top of them — any head that is not a working commit of another run.
    match ctx.board.head(repo, &branch) {
        Ok(Some(head)) => match repo.commit(head) {
            Ok(h) => match Lease::from_commit(&h.trailers, h.committer_time) {
                Some(l) => l.run_id.as_deref() != Some(run.as_str()),
                None => true,
            },
            Err(_) => true,
        },
        _ => true,
    }
}

fn token_message(group: &str, slot: u32, job: &Job, run_id: &str, until: i64) -> Vec<u8> {
    let mut m = format!("baton: concurrency {group} slot {slot}\n\n");
    m.push_str(&format!("dwp-run-id: {run_id}\n"));
    m.push_str(&format!("dwp-token-branch: {}\n", job.branch));
    m.push_str(&format!("dwp-token-until: {until}\n"));
    m.push_str(&format!("dwp-token-writer: {}\n", uuid::Uuid::new_v4()));
    debug_assert!(!trailers::parse(m.as_bytes()).is_empty());
    m.into_bytes()
}

/// Take one token of each group; None when a group is full (nothing held then).
pub(super) fn acquire(ctx: &Ctx, job: &Job, run_id: &str, groups: &[(String, u32)]) -> Result<Option<Vec<Token>>> {
    let repo = ctx.repo();
    let mut held = Vec::new();
    'groups: for (group, max) in groups {
        for slot in 0..*max {
            let refname = format!("{PREFIX}{group}/{slot}");
            let now = clock::now();
            let old = ctx.board.read(&repo, &refname)?;
            if let Some(id) = old {
                if !stale(ctx, &repo, id, now) {
                    continue;
                }
            }
            let until = now.saturating_add(job.settings.timeout.as_secs() as i64).saturating_add(60);
            let msg = token_message(group, slot, job, run_id, until);
            let empty = repo.empty_tree()?;
            let id = repo.write_commit(empty, &[], &msg, now)?;
            match ctx.board.put(&repo, &refname, old, id, "baton: take a concurrency token")? {
                Swap::Done => {
                    held.push(Token { refname, id });
                    continue 'groups;
                }
                Swap::Lost(_) => continue,
                Swap::Failed(why) => {
                    release(ctx, held);
                    anyhow::bail!("could not take {refname}: {why}");
                }
            }
        }
        tracing::debug!("{}: concurrency {group} is full ({max} running)", job.branch);
        release(ctx, held);
        return Ok(None);
    }
    Ok(Some(held))
}

/// Give the tokens back (best effort: a token left behind goes stale on its own).
pub(super) fn release(ctx: &Ctx, tokens: Vec<Token>) {
    if tokens.is_empty() {
        return;
    }
    let repo = ctx.repo();
    for t in tokens {
        ctx.board.delete(&repo, &t.refname, t.id);
    }
}
