//! Reading the board: every selected branch, its head commit parsed, and the handler its state
//! names — all in-process, one repository handle, handler lookups cached per tree.

use anyhow::Result;

use crate::protocol::{Lease, Reserved, StateRead};
use crate::repo::{BranchHead, BranchSource, CommitInfo, HandlerCache, HandlerLookup, Repo};

/// Folder of the default handlers.
pub const COMMAND_DIR: &str = ".dwp/command";

/// Handler folder for a role.
pub fn role_dir(role: &str) -> String {
    format!(".dwp/roles/{role}/command")
}

/// One branch as the board shows it.
#[derive(Debug, Clone)]
pub struct BranchCard {
    pub head: BranchHead,
    pub commit: CommitInfo,
    pub state: StateRead,
    pub lease: Option<Lease>,
    /// The handler for the state (None when the state is missing, invalid or `working`).
    pub handler: Option<HandlerLookup>,
    /// The `stalled` handler, looked up only for `working` heads (a takeover may run it).
    pub stalled_handler: Option<HandlerLookup>,
}

/// Looks a state's handler up: the role's folder first (when a role is set and has it), then
/// `.dwp/command`.
pub fn find_handler(
    repo: &Repo,
    cache: &mut HandlerCache,
    commit: &CommitInfo,
    role: Option<&str>,
    state: &str,
) -> Result<HandlerLookup> {
    if let Some(role) = role {
        let found = cache.lookup(repo, commit.tree, &role_dir(role), state)?;
        if found != HandlerLookup::Missing {
            return Ok(found);
        }
    }
    cache.lookup(repo, commit.tree, COMMAND_DIR, state)
}

/// Read the selected branches of `source` (filtered by `select` on the short name).
///
/// Listing refs is one pass; reading and parsing the head commits is split over the available
/// cores (each thread with its own thread-local handle on the one repository) once there are
/// enough branches to pay for the threads.
pub fn read_board(
    repo: &Repo,
    source: &BranchSource,
    select: impl Fn(&str) -> bool,
    role: Option<&str>,
) -> Result<Vec<BranchCard>> {
    let heads: Vec<BranchHead> = repo.branches(source)?.into_iter().filter(|h| select(&h.branch)).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if heads.len() < 512 || threads < 2 {
        let mut cache = HandlerCache::default();
        return heads.into_iter().map(|h| read_card(repo, &mut cache, h, role)).collect();
    }
    let shared = repo.gix().clone().into_sync();
    let chunk = heads.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = heads
            .chunks(chunk)
            .map(|part| {
                let shared = &shared;
                scope.spawn(move || {
                    let repo = Repo::from_sync(shared);
                    let mut cache = HandlerCache::default();
                    part.iter().map(|h| read_card(&repo, &mut cache, h.clone(), role)).collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut cards = Vec::with_capacity(heads.len());
        for w in workers {
            cards.extend(w.join().map_err(|_| anyhow::anyhow!("a reader thread panicked"))??);
        }
        Ok(cards)
    })
}

pub fn read_card(repo: &Repo, cache: &mut HandlerCache, head: BranchHead, role: Option<&str>) -> Result<BranchCard> {
    let commit = repo.commit(head.id)?;
    let state = commit.state();
    let lease = Lease::from_commit(&commit.trailers, commit.committer_time);
    let (handler, stalled_handler) = match &state {
        StateRead::Valid(s) if s.is(Reserved::Working) => {
            (None, Some(find_handler(repo, cache, &commit, role, Reserved::Stalled.as_str())?))
        }
        StateRead::Valid(s) => (Some(find_handler(repo, cache, &commit, role, s.as_str())?), None),
        _ => (None, None),
    };
    Ok(BranchCard { head, commit, state, lease, handler, stalled_handler })
}
