//! Circuit breakers in git: each is a commit on `refs/baton/breakers/<name>` whose trailers hold
//! its state ([`crate::recovery::Breaker`]); every change is a new commit on top of the last (an
//! audit trail of trips), written by compare-and-swap through the board's backend — pushed in
//! remote mode, so runners on different machines share one breaker. A tick reads them all (a
//! handful of refs); a runner writes one only when a run changes it.

use std::collections::BTreeMap;

use anyhow::Result;

use super::backend::{Backend, Swap};
use super::clock;
use crate::recovery::Breaker;
use crate::repo::{BranchSource, ObjectId, Repo};

pub const PREFIX: &str = "refs/baton/breakers/";

/// The ref of breaker `name` on the board.
pub fn breaker_ref(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Where a tick reads breakers: the local refs, or the copies fetched from `remote`.
pub fn read_prefix(source: &BranchSource) -> String {
    match source {
        BranchSource::Local => PREFIX.to_owned(),
        BranchSource::Remote(r) => super::remote::breakers_prefix(r),
    }
}

/// Every breaker the board has, by name. A breaker commit that cannot be read counts as closed.
pub fn read_all(repo: &Repo, source: &BranchSource) -> Result<BTreeMap<String, Breaker>> {
    let mut out = BTreeMap::new();
    for (name, id) in repo.refs_under(&read_prefix(source))? {
        out.insert(name, breaker_at(repo, id));
    }
    Ok(out)
}

/// The breaker a commit stores; one that cannot be read counts as closed.
fn breaker_at(repo: &Repo, id: ObjectId) -> Breaker {
    repo.commit(id).map(|c| Breaker::from_trailers(&c.trailers)).unwrap_or_default()
}

/// The breaker's current commit and state on the board.
pub fn read(board: &dyn Backend, repo: &Repo, name: &str) -> Result<(Option<ObjectId>, Breaker)> {
    let id = board.read(repo, &breaker_ref(name))?;
    let b = match id {
        Some(id) => breaker_at(repo, id),
        None => Breaker::default(),
    };
    Ok((id, b))
}

/// Apply `change` to breaker `name` by compare-and-swap, re-reading on a lost race. `change`
/// returns None when there is nothing to write. Returns the breaker as written (None: nothing
/// written, or `change` declined on the state it found).
pub fn update(
    board: &dyn Backend,
    repo: &Repo,
    name: &str,
    mut change: impl FnMut(&Breaker, i64) -> Option<Breaker>,
) -> Result<Option<Breaker>> {
    let refname = breaker_ref(name);
    let mut last = String::new();
    for _ in 0..8 {
        let (old, current) = read(board, repo, name)?;
        let now = clock::now();
        let Some(next) = change(&current, now) else {
            return Ok(None);
        };
        if next == current && old.is_some() {
            return Ok(Some(next));
        }
        let empty = repo.empty_tree()?;
        let parents: Vec<ObjectId> = old.into_iter().collect();
        // A writer's nonce: two runners that compute the same change in the same second would
        // otherwise write byte-identical commits, and the second push — "up to date" — would
        // count as done while one of the two changes was lost.
        let mut message = next.to_message(name, now);
        message.extend_from_slice(format!("dwp-breaker-writer: {}\n", uuid::Uuid::new_v4()).as_bytes());
        let id = repo.write_commit(empty, &parents, &message, now)?;
        match board.put(repo, &refname, old, id, &format!("baton: breaker {name}"))? {
            Swap::Done => return Ok(Some(next)),
            Swap::Lost(why) => last = why,
            Swap::Failed(why) => anyhow::bail!("could not write {refname}: {why}"),
        }
    }
    anyhow::bail!("could not write {refname}: it kept moving ({last})")
}
