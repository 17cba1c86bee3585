//! One door to the board for the branch job, local or remote: read a branch head, move it by
//! compare-and-swap, and keep side records (lease renewals, rejected results) under
//! `refs/baton/`. Locally every move is a ref transaction on the value read; in remote mode it is
//! a push with that expected old value, and side records are written locally and pushed. The
//! branch job above reads as the protocol steps only (claim, renew, publish, take over, record).

use anyhow::{anyhow, Result};

use super::remote::{self, Pushed};
use crate::repo::{Cas, ObjectId, Repo};

/// What a compare-and-swap on the board did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    Done,
    /// The ref did not hold the expected value: somebody else moved it.
    Lost(String),
    /// The board could not be reached or refused for another reason.
    Failed(String),
}

/// What publishing a parent's answer together with the children it spawned did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FanOut {
    /// The parent moved and every child branch was created.
    Done,
    /// The parent branch had moved: somebody else won; nothing was written.
    Lost(String),
    /// These child branches exist already; nothing was written.
    ChildExists(Vec<String>),
    /// The board could not be reached or refused for another reason; nothing was written.
    Failed(String),
}

/// The board as the branch job sees it.
pub trait Backend: Send + Sync {
    /// The remote's name in remote mode (written as `dwp-source: git:<name>`).
    fn remote(&self) -> Option<&str>;
    /// What `refname` holds on the board now (`None`: it does not exist).
    fn read(&self, repo: &Repo, refname: &str) -> Result<Option<ObjectId>>;
    /// The branch head as the board has it now (`None`: the branch does not exist).
    fn head(&self, repo: &Repo, branch: &str) -> Result<Option<ObjectId>> {
        self.read(repo, &format!("refs/heads/{branch}"))
    }
    /// Move `refs/heads/<branch>` from exactly `expected` to `new`.
    fn swap(&self, repo: &Repo, branch: &str, expected: ObjectId, new: ObjectId, why: &str) -> Result<Swap>;
    /// Move `refs/heads/<branch>` from exactly `expected` to `new` and create every
    /// `refs/heads/<child>` (which must not exist) — all of it or nothing.
    fn swap_with_children(
        &self,
        repo: &Repo,
        branch: &str,
        expected: ObjectId,
        new: ObjectId,
        children: &[(String, ObjectId)],
        why: &str,
    ) -> Result<FanOut>;
    /// Write a side record `refname` (under `refs/baton/`), expecting it to hold `expected`
    /// (`None`: must not exist). Remote mode keeps it locally too.
    fn put(&self, repo: &Repo, refname: &str, expected: Option<ObjectId>, new: ObjectId, why: &str) -> Result<Swap>;
    /// Delete a side record if it still holds `expected`; best effort (`gc` removes leftovers).
    fn delete(&self, repo: &Repo, refname: &str, expected: ObjectId);
}

/// The local repository is the board.
pub struct Local;

fn cas(repo: &Repo, refname: &str, expected: Option<ObjectId>, new: ObjectId, why: &str) -> Result<Swap> {
    Ok(match repo.compare_and_swap(refname, expected, new, why)? {
        Cas::Updated => Swap::Done,
        Cas::Moved { actual } => Swap::Lost(match actual {
            Some(a) => format!("{refname} is at {a}"),
            None => format!("{refname} does not exist"),
        }),
    })
}

impl Backend for Local {
    fn remote(&self) -> Option<&str> {
        None
    }
    fn read(&self, repo: &Repo, refname: &str) -> Result<Option<ObjectId>> {
        repo.ref_id(refname)
    }
    fn swap(&self, repo: &Repo, branch: &str, expected: ObjectId, new: ObjectId, why: &str) -> Result<Swap> {
        cas(repo, &format!("refs/heads/{branch}"), Some(expected), new, why)
    }
    fn put(&self, repo: &Repo, refname: &str, expected: Option<ObjectId>, new: ObjectId, why: &str) -> Result<Swap> {
        cas(repo, refname, expected, new, why)
    }
    fn swap_with_children(
        &self,
        repo: &Repo,
        branch: &str,
        expected: ObjectId,
        new: ObjectId,
        children: &[(String, ObjectId)],
        why: &str,
    ) -> Result<FanOut> {
        let parent = format!("refs/heads/{branch}");
        // A child that exists, or that a branch keeps from being created (`a/b` next to `a`).
        let existing: Vec<String> = children
            .iter()
            .filter_map(|(c, _)| match repo.ref_id(&format!("refs/heads/{c}")) {
                Ok(Some(_)) => Some(c.clone()),
                _ => super::fanout::clashing_branch(repo, "refs/heads/", c).map(|o| format!("{c} (next to {o})")),
            })
            .collect();
        if !existing.is_empty() {
            return Ok(FanOut::ChildExists(existing));
        }
        // The parent first: its expected value is the fencing token.
        let mut edits = vec![(parent.clone(), Some(expected), new)];
        edits.extend(children.iter().map(|(c, id)| (format!("refs/heads/{c}"), None, *id)));
        Ok(match repo.update_refs(&edits, why)? {
            (Cas::Updated, _) => FanOut::Done,
            (Cas::Moved { actual }, r) if r == parent => FanOut::Lost(match actual {
                Some(a) => format!("{parent} is at {a}"),
                None => format!("{parent} does not exist"),
            }),
            (Cas::Moved { .. }, r) => FanOut::ChildExists(vec![r.trim_start_matches("refs/heads/").to_owned()]),
        })
    }
    fn delete(&self, repo: &Repo, refname: &str, expected: ObjectId) {
        match repo.delete_ref(refname, expected) {
            Ok(Cas::Updated) => {}
            Ok(Cas::Moved { .. }) => tracing::debug!("{refname} moved since it was written; left alone"),
            Err(e) => tracing::debug!("removing {refname}: {e:#}"),
        }
    }
}

/// A shared remote is the board; git's push with an expected old value is the compare-and-swap.
pub struct Remote {
    pub name: String,
}

fn pushed(p: Pushed) -> Swap {
    match p {
        Pushed::Accepted => Swap::Done,
        Pushed::Rejected(why) => Swap::Lost(why),
        Pushed::Failed(why) => Swap::Failed(why),
    }
}

impl Backend for Remote {
    fn remote(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn read(&self, repo: &Repo, refname: &str) -> Result<Option<ObjectId>> {
        remote::ls_remote(repo.common_dir(), &self.name, refname).map_err(|e| anyhow!(e))
    }
    fn swap(&self, repo: &Repo, branch: &str, expected: ObjectId, new: ObjectId, _why: &str) -> Result<Swap> {
        let dst = format!("refs/heads/{branch}");
        Ok(pushed(remote::push_ref(repo.common_dir(), &self.name, &dst, Some(new), Some(Some(expected)))))
    }
    fn put(&self, repo: &Repo, refname: &str, expected: Option<ObjectId>, new: ObjectId, why: &str) -> Result<Swap> {
        let swap = pushed(remote::push_ref(repo.common_dir(), &self.name, refname, Some(new), Some(expected)));
        if swap == Swap::Done {
            // The local copy follows the remote's (whatever it held before).
            let local = repo.ref_id(refname)?;
            let _ = repo.compare_and_swap(refname, local, new, why);
        }
        Ok(swap)
    }
    fn swap_with_children(
        &self,
        repo: &Repo,
        branch: &str,
        expected: ObjectId,
        new: ObjectId,
        children: &[(String, ObjectId)],
        _why: &str,
    ) -> Result<FanOut> {
        // The tracking refs of this tick's fetch: a child that is known to exist is refused before
        // anything is pushed (the push's own lease catches one created since).
        let existing: Vec<String> = children
            .iter()
            .filter(|(c, _)| matches!(repo.ref_id(&format!("refs/remotes/{}/{c}", self.name)), Ok(Some(_))))
            .map(|(c, _)| c.clone())
            .collect();
        if !existing.is_empty() {
            return Ok(FanOut::ChildExists(existing));
        }
        let mut updates = vec![(format!("refs/heads/{branch}"), new, Some(expected))];
        updates.extend(children.iter().map(|(c, id)| (format!("refs/heads/{c}"), *id, None)));
        Ok(match remote::push_atomic(repo.common_dir(), &self.name, &updates) {
            Pushed::Accepted => FanOut::Done,
            Pushed::Failed(why) => FanOut::Failed(why),
            Pushed::Rejected(why) => {
                // Who refused: the parent (somebody else moved it) or a child that now exists.
                match self.head(repo, branch) {
                    Ok(Some(h)) if h == expected => {
                        let existing: Vec<String> = children
                            .iter()
                            .filter(|(c, _)| matches!(self.head(repo, c), Ok(Some(_))))
                            .map(|(c, _)| c.clone())
                            .collect();
                        match existing.is_empty() {
                            true => FanOut::Failed(why),
                            false => FanOut::ChildExists(existing),
                        }
                    }
                    _ => FanOut::Lost(why),
                }
            }
        })
    }
    fn delete(&self, repo: &Repo, refname: &str, expected: ObjectId) {
        match remote::push_ref(repo.common_dir(), &self.name, refname, None, Some(Some(expected))) {
            Pushed::Accepted => {}
            other => tracing::debug!("removing {refname} on {}: {other:?}", self.name),
        }
        let _ = repo.delete_ref(refname, expected);
    }
}
