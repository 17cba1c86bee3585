//! Reading the board: every selected branch, its head commit parsed, and the handler its state
//! names — all in-process, one repository handle, handler lookups cached per tree.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;

use super::remote::renewals_prefix;
use super::source::Source;
use crate::policy::Policy;
use crate::protocol::state::last_text;
use crate::protocol::{Key, Lease, Reserved, StateRead};
use crate::repo::{BranchHead, BranchRef, BranchSource, CommitInfo, HandlerCache, HandlerLookup, ObjectId, Repo};

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
    /// The policy that applies (read from the handler source; only for heads with a valid state).
    pub policy: PolicyRead,
    /// Who committed the head and when its parent was, for a head that approves a gate
    /// (`dwp-approves`); None for every other head.
    pub approval: Option<crate::humans::gate::ApprovalFacts>,
}

/// The policy file as read for a branch: none, a policy, or why it is broken (one line).
#[derive(Debug, Clone, Default)]
pub enum PolicyRead {
    #[default]
    None,
    Ok(Arc<Policy>),
    Broken(String),
}

/// Handler lookups and policies, cached per tree: branches that share a tree cost one lookup.
#[derive(Default)]
pub struct Cache {
    handlers: HandlerCache,
    policies: HashMap<ObjectId, PolicyRead>,
}

impl Cache {
    /// The policy in `tree` (the handler source's tree), read once per tree.
    pub fn policy(&mut self, repo: &Repo, tree: ObjectId) -> PolicyRead {
        self.policies
            .entry(tree)
            .or_insert_with(|| match crate::policy::load::load(repo, tree) {
                Ok(None) => PolicyRead::None,
                Ok(Some(p)) => PolicyRead::Ok(Arc::new(p)),
                Err(e) => PolicyRead::Broken(format!("{e:#}").replace('\n', " ")),
            })
            .clone()
    }
}

/// Where the runners' lease renewals of a board live: `refs/baton/leases/<branch>` locally, the
/// fetched copies `refs/baton/remote-leases/<remote>/<branch>` in remote mode.
pub fn renewal_ref(source: &BranchSource, branch: &str) -> String {
    match source {
        BranchSource::Local => format!("refs/baton/leases/{branch}"),
        BranchSource::Remote(r) => {
            format!("{}{}", renewals_prefix(r), branch.strip_prefix(&format!("{r}/")).unwrap_or(branch))
        }
    }
}

/// How the board is read: which role's handlers, and from which tree.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions<'a> {
    pub role: Option<&'a str>,
    pub handlers: &'a Source,
}

/// Looks a state's handler up in `tree`: the role's folder first (when a role is set and has it),
/// then `.dwp/command`.
pub fn find_handler(
    repo: &Repo,
    cache: &mut HandlerCache,
    tree: ObjectId,
    role: Option<&str>,
    state: &str,
) -> Result<HandlerLookup> {
    if let Some(role) = role {
        let found = cache.lookup(repo, tree, &role_dir(role), state)?;
        if found != HandlerLookup::Missing {
            return Ok(found);
        }
    }
    cache.lookup(repo, tree, COMMAND_DIR, state)
}

/// A branch whose head could not be read (a tag or a tree where a commit should be, a missing or
/// corrupt object, a commit git-baton cannot decode): one notice, never the whole board down.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub head: BranchHead,
    pub why: String,
}

/// The board as read: the branches, and those that could not be read.
#[derive(Debug, Clone, Default)]
pub struct Board {
    pub cards: Vec<BranchCard>,
    pub unreadable: Vec<Unreadable>,
}

impl Board {
    fn push(&mut self, head: BranchHead, card: Result<BranchCard>) {
        match card {
            Ok(c) => self.cards.push(c),
            Err(e) => self.unreadable.push(Unreadable { head, why: format!("{e:#}").replace('\n', " ") }),
        }
    }
}

/// Read the selected branches of `source` (filtered by `select` on the short name).
///
/// Listing the branch names is one pass that opens no ref file; reading each ref file and parsing
/// its head commit is split over the available cores (each thread with its own thread-local
/// handle on the one repository) once there are enough branches to pay for the threads. A branch that cannot be read is reported in
/// [`Board::unreadable`]; every other branch goes on.
pub fn read_board(
    repo: &Repo,
    source: &BranchSource,
    select: impl Fn(&str) -> bool,
    opts: ReadOptions<'_>,
) -> Result<Board> {
    // Names first (no ref file opened), then each selected ref file and its head commit together,
    // on every core: the ref files are most of the work with many loose refs.
    let refs: Vec<BranchRef> = repo.branch_refs(source)?.into_iter().filter(|r| select(&r.branch)).collect();
    let threads = crate::repo::cores().min(8);
    let mut board = Board { cards: Vec::with_capacity(refs.len()), unreadable: Vec::new() };
    if refs.len() < PARALLEL_FROM || threads < 2 {
        let mut cache = Cache::default();
        for h in refs.iter().filter_map(|r| repo.resolve_branch(r)) {
            let card = read_card(repo, &mut cache, source, h.clone(), opts);
            board.push(h, card);
        }
        return Ok(board);
    }
    let shared = repo.gix().clone().into_sync();
    let chunk = refs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = refs
            .chunks(chunk)
            .map(|part| {
                let shared = &shared;
                scope.spawn(move || {
                    let repo = Repo::from_sync(shared);
                    let mut cache = Cache::default();
                    part.iter()
                        .filter_map(|r| repo.resolve_branch(r))
                        .map(|h| (h.clone(), read_card(&repo, &mut cache, source, h, opts)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for w in workers {
            for (h, card) in w.join().map_err(|_| anyhow::anyhow!("a reader thread panicked"))? {
                board.push(h, card);
            }
        }
        Ok(board)
    })
}

/// From how many selected branches reading them is split over threads: below it, starting the
/// threads and their repository handles costs more than it saves (about 10 µs a branch).
const PARALLEL_FROM: usize = 256;

pub fn read_card(
    repo: &Repo,
    cache: &mut Cache,
    source: &BranchSource,
    head: BranchHead,
    opts: ReadOptions<'_>,
) -> Result<BranchCard> {
    let commit = repo.commit(head.id)?;
    let state = commit.state();
    let mut lease = Lease::from_commit(&commit.trailers, commit.committer_time);
    let tree = opts.handlers.tree_for(commit.tree);
    let (handler, stalled_handler) = match &state {
        StateRead::Valid(s) if s.is(Reserved::Working) => {
            if let Some(l) = lease.take() {
                lease = Some(with_renewal(repo, &renewal_ref(source, &head.branch), l));
            }
            (None, Some(find_handler(repo, &mut cache.handlers, tree, opts.role, Reserved::Stalled.as_str())?))
        }
        StateRead::Valid(s) => (Some(find_handler(repo, &mut cache.handlers, tree, opts.role, s.as_str())?), None),
        _ => (None, None),
    };
    let policy = match &state {
        StateRead::Valid(_) => cache.policy(repo, tree),
        _ => PolicyRead::None,
    };
    let approval = super::gates::approval_facts(repo, &commit);
    Ok(BranchCard { head, commit, state, lease, handler, stalled_handler, policy, approval })
}

/// The live lease on a local branch whose head is `head`, renewals included; `None` when the
/// head is not a `working` commit or its lease has expired.
pub fn live_lease(repo: &Repo, branch: &str, head: ObjectId, now: i64) -> Result<Option<Lease>> {
    live_lease_on(repo, &BranchSource::Local, branch, head, now)
}

/// [`live_lease`] on a board: local, or a remote's tracking branch `<remote>/<branch>` with the
/// renewals fetched from it.
pub fn live_lease_on(
    repo: &Repo,
    source: &BranchSource,
    branch: &str,
    head: ObjectId,
    now: i64,
) -> Result<Option<Lease>> {
    let commit = repo.commit(head)?;
    let Some(lease) = Lease::from_commit(&commit.trailers, commit.committer_time) else {
        return Ok(None);
    };
    let lease = with_renewal(repo, &renewal_ref(source, branch), lease);
    let base = crate::policy::Base::default();
    let (lease, _) = lease.bounded(now, base.max_lease.value, base.clock_skew.value);
    Ok(match lease.status(now) {
        crate::protocol::LeaseStatus::Active { .. } => Some(lease),
        crate::protocol::LeaseStatus::Expired { .. } => None,
    })
}

/// A lease extended by its runner's latest renewal record, if there is one for the same run. An
/// unreadable record is ignored (the lease then stands on its own commit).
pub fn with_renewal(repo: &Repo, refname: &str, lease: Lease) -> Lease {
    let Ok(Some(id)) = repo.ref_id(refname) else {
        return lease;
    };
    let Ok(renewal) = repo.commit(id) else {
        return lease;
    };
    let run = last_text(&renewal.trailers, Key::RunId);
    let Some(seconds) = last_text(&renewal.trailers, Key::LeaseSeconds).and_then(|v| v.parse::<u64>().ok()) else {
        return lease;
    };
    lease.renewed(run.as_deref(), renewal.committer_time, seconds)
}
