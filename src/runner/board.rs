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
pub fn read_board(
    repo: &Repo,
    source: &BranchSource,
    select: impl Fn(&str) -> bool,
    role: Option<&str>,
) -> Result<Vec<BranchCard>> {
    let mut cache = HandlerCache::default();
    let mut cards = Vec::new();
    for head in repo.branches(source)? {
        if !select(&head.branch) {
            continue;
        }
        cards.push(read_card(repo, &mut cache, head, role)?);
    }
    Ok(cards)
}

pub fn read_card(
    repo: &Repo,
    cache: &mut HandlerCache,
    head: BranchHead,
    role: Option<&str>,
) -> Result<BranchCard> {
    let commit = repo.commit(head.id)?;
    let state = commit.state();
    let lease = Lease::from_commit(&commit.trailers, commit.committer_time);
    let (handler, stalled_handler) = match &state {
        StateRead::Valid(s) if s.is(Reserved::Working) => (
            None,
            Some(find_handler(
                repo,
                cache,
                &commit,
                role,
                Reserved::Stalled.as_str(),
            )?),
        ),
        StateRead::Valid(s) => (
            Some(find_handler(repo, cache, &commit, role, s.as_str())?),
            None,
        ),
        _ => (None, None),
    };
    Ok(BranchCard {
        head,
        commit,
        state,
        lease,
        handler,
        stalled_handler,
    })
}
