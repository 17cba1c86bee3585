//! Preparing one tick, shared by `run` and `watch`: open the repository afresh (so configuration,
//! new branches and new handlers are seen), fetch once in remote mode, read the board and plan.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::board::{read_board, ReadOptions};
use super::plan::{next_due, plan, spread, Action, Checkout, CurrentBranch, HandlerOrigin, PlanConfig, PlanInput};
use super::remote;
use super::select::branch_selected;
use super::source::{self, Source};
use crate::policy::Base;
use crate::protocol::state::last_text;
use crate::repo::worktree::{run_git, Scratch};
use crate::repo::{BranchSource, Repo};

/// What selects and shapes a tick (the `run` options that matter for planning).
#[derive(Debug, Clone, Default)]
pub struct TickSpec {
    pub branches: Vec<String>,
    pub current: CurrentBranch,
    pub role: Option<String>,
    pub remote: Option<String>,
    /// `--trusted-ref` (else `BATON_TRUSTED_REF`, else `baton.trustedRef`).
    pub trusted_ref: Option<String>,
    /// The runner's own settings, before the policy file.
    pub base: Base,
}

/// A planned tick.
pub struct Prepared {
    pub repo: Repo,
    pub actions: Vec<Action>,
    /// Where handlers and policy came from.
    pub source: Source,
    /// The earliest `dwp-not-before` still in the future (a retry's timer): when to look again.
    pub next_due: Option<i64>,
    /// The board as read (branch names as acted on), for the notification pass after the tick.
    pub cards: Vec<super::board::BranchCard>,
}

/// Why a tick could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The remote could not be fetched (backoff material, not a reason to stop a poller).
    #[error("fetching {remote}: {why}")]
    Fetch { remote: String, why: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The branch checked out in the main worktree, from `<common dir>/HEAD`.
pub fn main_branch(repo: &Repo) -> Option<String> {
    if repo.is_bare() {
        return None;
    }
    let head = std::fs::read_to_string(repo.common_dir().join("HEAD")).ok()?;
    head.trim().strip_prefix("ref: refs/heads/").map(str::to_owned)
}

/// Branches checked out in linked worktrees that are not git-baton's own: (branch, path).
fn user_worktrees(repo: &Repo) -> Vec<(String, PathBuf)> {
    let scratch = Scratch::new(repo.common_dir());
    let ours = scratch.root.canonicalize().unwrap_or(scratch.root);
    crate::repo::worktree::linked_worktrees(repo.common_dir())
        .into_iter()
        .filter(|w| !w.path.canonicalize().unwrap_or_else(|_| w.path.clone()).starts_with(&ours))
        .filter_map(|w| Some((w.branch?, w.path)))
        .collect()
}

/// A notice for each branch whose state has no handler while one exists in another letter case
/// (`dwp-state: Build` with `.dwp/command/build`): AYNIG lowercases states, git-baton keeps git's
/// case-sensitive values, so the branch is not run — and says why. Looked up once per tree.
fn other_case_notices(repo: &Repo, inputs: &[PlanInput], handlers: &Source, role: Option<&str>) -> Vec<Action> {
    use crate::protocol::StateRead;
    use crate::repo::HandlerLookup;
    let mut seen: std::collections::HashMap<(crate::repo::ObjectId, String), Option<String>> = Default::default();
    let mut out = Vec::new();
    for input in inputs {
        let card = &input.card;
        let (StateRead::Valid(state), Some(HandlerLookup::Missing)) = (&card.state, &card.handler) else {
            continue;
        };
        if state.reserved().is_some() {
            continue;
        }
        let tree = match handlers {
            Source::Task => card.commit.tree,
            Source::Trusted { tree, .. } => *tree,
        };
        let found = seen
            .entry((tree, state.to_string()))
            .or_insert_with(|| {
                let dirs = role.map(super::board::role_dir).into_iter().chain([super::board::COMMAND_DIR.to_owned()]);
                dirs.into_iter()
                    .find_map(|dir| crate::aynig::other_case_handler(repo, tree, &dir, state.as_str()).ok().flatten())
            })
            .clone();
        if let Some(path) = found {
            out.push(Action::Notice {
                branch: card.head.branch.clone(),
                message: format!(
                    "no handler for state {state}, but {path} differs only in letter case; states are case-sensitive here (AYNIG lowercases them): rename the handler or the state"
                ),
            });
        }
    }
    out
}

/// Open the repository at `cwd`, fetch (remote mode), read every selected branch and plan.
pub fn prepare(cwd: &Path, spec: &TickSpec, now: i64) -> Result<Prepared, TickError> {
    let repo = Repo::discover(cwd)?;
    let setting = source::setting(&repo, spec.trusted_ref.as_deref())?;
    if let Some(remote) = &spec.remote {
        if !remote::is_configured(&repo, remote) {
            return Err(TickError::Other(anyhow::anyhow!("no remote named {remote:?} in this repository")));
        }
        remote::fetch(repo.common_dir(), remote).map_err(|why| TickError::Fetch { remote: remote.clone(), why })?;
    }
    // Resolved after the fetch: in remote mode the trusted ref is the remote's.
    let handlers = source::resolve(&repo, setting.as_ref(), spec.remote.as_deref())?;
    let opts = ReadOptions { role: spec.role.as_deref(), handlers: &handlers };
    let unreadable: Vec<super::board::Unreadable>;
    let inputs: Vec<PlanInput> = match &spec.remote {
        Some(remote) => {
            let prefix = format!("{remote}/");
            let board = read_board(
                &repo,
                &BranchSource::Remote(remote.clone()),
                |b| branch_selected(&spec.branches, b.strip_prefix(&prefix).unwrap_or(b)),
                opts,
            )?;
            unreadable = board.unreadable;
            board
                .cards
                .into_iter()
                .map(|mut card| {
                    // Act on the remote's branch name; its head was read from the tracking ref.
                    card.head.branch = card.head.branch.strip_prefix(&prefix).unwrap_or(&card.head.branch).to_owned();
                    PlanInput { card, checkout: Checkout::Free }
                })
                .collect()
        }
        None => {
            let main = main_branch(&repo);
            let elsewhere = user_worktrees(&repo);
            let board = read_board(&repo, &BranchSource::Local, |b| branch_selected(&spec.branches, b), opts)?;
            unreadable = board.unreadable;
            board
                .cards
                .into_iter()
                .map(|card| {
                    let checkout = if main.as_deref() == Some(card.head.branch.as_str()) {
                        Checkout::Main
                    } else if let Some((_, p)) = elsewhere.iter().find(|(b, _)| *b == card.head.branch) {
                        Checkout::Elsewhere(p.clone())
                    } else {
                        Checkout::Free
                    };
                    PlanInput { card, checkout }
                })
                .collect()
        }
    };
    // Runners sharing a board start at different places (pid and clock as the seed).
    let seed = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ now as u64;
    let board_source = match &spec.remote {
        Some(r) => BranchSource::Remote(r.clone()),
        None => BranchSource::Local,
    };
    let breakers = super::breakers::read_all(&repo, &board_source)?;
    let due = next_due(&inputs, now);
    let deps = dependency_heads(&repo, &inputs, spec.remote.as_deref());
    let config = PlanConfig {
        current: spec.current,
        handlers: match &handlers {
            Source::Task => HandlerOrigin::Worktree,
            Source::Trusted { tree, .. } => HandlerOrigin::Trusted(*tree),
        },
        base: spec.base.clone(),
        breakers,
        deps,
        children: child_heads(&repo, &inputs, spec.remote.as_deref()),
    };
    let mut actions = spread(plan(&inputs, now, &config), seed);
    // Higher `dwp-priority` first when more is ready than `--jobs` allows (a stable sort: equal
    // priorities keep the spread, so runners sharing a board do not all race for one branch).
    let rank: std::collections::HashMap<&str, crate::recovery::Priority> = inputs
        .iter()
        .map(|i| (i.card.head.branch.as_str(), super::deps::priority_rank(&i.card.commit.trailers)))
        .collect();
    actions.sort_by_key(|a| match a {
        Action::Run { branch, .. } => rank.get(branch.as_str()).copied().unwrap_or_default(),
        _ => crate::recovery::Priority::Medium,
    });
    actions.extend(other_case_notices(&repo, &inputs, &handlers, spec.role.as_deref()));
    let unreadable_names: Vec<String> = unreadable
        .iter()
        .map(|u| {
            let b = &u.head.branch;
            spec.remote.as_ref().and_then(|r| b.strip_prefix(&format!("{r}/"))).unwrap_or(b).to_owned()
        })
        .collect();
    actions.extend(
        unreadable
            .into_iter()
            .map(|u| Action::Notice { branch: u.head.branch, message: format!("cannot be read, skipped: {}", u.why) }),
    );
    let names: Vec<&str> =
        inputs.iter().map(|i| i.card.head.branch.as_str()).chain(unreadable_names.iter().map(String::as_str)).collect();
    actions.extend(unmatched_globs(&spec.branches, &names, spec.remote.as_deref()));
    let touches_main = actions
        .iter()
        .any(|a| matches!(a, Action::Run { force_worktree: true, .. } | Action::TakeOver { force_worktree: true, .. }));
    if touches_main {
        let dir = repo.workdir().context("no main worktree")?;
        let dirty = run_git(dir, ["status", "--porcelain", "--untracked-files=no"])?;
        if !dirty.trim().is_empty() {
            return Err(TickError::Other(anyhow::anyhow!(
                "refusing --current-branch {:?}: your checkout has uncommitted changes",
                spec.current
            )));
        }
    }
    let cards = inputs.into_iter().map(|i| i.card).collect();
    Ok(Prepared { repo, actions, source: handlers, next_due: due, cards })
}

/// A notice for each `--branch` glob that selects none of `branches` (the board's names): a typo
/// would otherwise look like a board with nothing to do.
pub fn unmatched_globs(globs: &[String], branches: &[&str], remote: Option<&str>) -> Vec<Action> {
    let on = remote.map(|r| format!(" on {r}")).unwrap_or_default();
    globs
        .iter()
        .filter(|g| !branches.iter().any(|b| super::select::glob_match(g, b)))
        .map(|g| Action::Notice { branch: g.clone(), message: format!("--branch {g:?} matches no branch{on}") })
        .collect()
}

/// The notices of one tick, as (branch, message): what a poller said last time.
pub type Said = std::collections::HashSet<(String, String)>;

/// A poller's notices without repeats: drop each notice that the previous tick said too, and
/// return what this tick says. A handler that stays not executable (or a branch that stays
/// checked out) is said once, not every tick; once the problem goes away and comes back, or its
/// text changes (more branches wait on it), it is said again.
pub fn without_repeats(actions: Vec<Action>, before: &Said) -> (Vec<Action>, Said) {
    let mut now = Said::new();
    let kept = actions
        .into_iter()
        .filter(|a| match a {
            Action::Notice { branch, message } => {
                let key = (branch.clone(), message.clone());
                let fresh = !before.contains(&key);
                now.insert(key);
                fresh
            }
            _ => true,
        })
        .collect();
    (kept, now)
}

/// The heads of the branches the inputs depend on: from the board when selected, else read
/// directly (a `--branch` selection must not make a dependency look missing).
fn dependency_heads(
    repo: &Repo,
    inputs: &[PlanInput],
    remote: Option<&str>,
) -> std::collections::BTreeMap<String, super::deps::DepHead> {
    use super::deps::{dependencies, DepHead};
    let on_board: std::collections::HashMap<&str, &PlanInput> =
        inputs.iter().map(|i| (i.card.head.branch.as_str(), i)).collect();
    let mut out = std::collections::BTreeMap::new();
    for input in inputs {
        for d in dependencies(&input.card.commit.trailers).0 {
            if out.contains_key(&d.branch) {
                continue;
            }
            let head = match on_board.get(d.branch.as_str()) {
                Some(i) => DepHead::State(i.card.state.valid().map(|s| s.to_string())),
                None => {
                    let refname = match remote {
                        Some(r) => format!("refs/remotes/{r}/{}", d.branch),
                        None => format!("refs/heads/{}", d.branch),
                    };
                    match repo.ref_id(&refname).ok().flatten().and_then(|id| repo.commit(id).ok()) {
                        Some(c) => DepHead::State(c.state().valid().map(|s| s.to_string())),
                        None => DepHead::Missing,
                    }
                }
            };
            out.insert(d.branch, head);
        }
    }
    out
}

/// The heads of the children that waiting parents join: from the board when selected, else read
/// directly by name (one ref and one commit each; never a child's history).
fn child_heads(
    repo: &Repo,
    inputs: &[PlanInput],
    remote: Option<&str>,
) -> std::collections::BTreeMap<String, super::join::ChildHead> {
    use super::join::{spec, ChildHead};
    let mut out = std::collections::BTreeMap::new();
    let waiting: Vec<_> = inputs
        .iter()
        .filter(|i| i.card.state.valid().is_some_and(|s| s.is(crate::protocol::Reserved::Waiting)))
        .filter_map(|i| spec(&i.card.commit.trailers).and_then(Result::ok))
        .collect();
    if waiting.is_empty() {
        return out;
    }
    let on_board: std::collections::HashMap<&str, &PlanInput> =
        inputs.iter().map(|i| (i.card.head.branch.as_str(), i)).collect();
    let of = |c: &crate::repo::CommitInfo| ChildHead::Head {
        state: c.state().valid().map(|s| s.to_string()),
        dead_letter: last_text(&c.trailers, crate::protocol::Key::DeadLetter).is_some(),
    };
    for join in waiting {
        for child in join.children {
            if out.contains_key(&child) {
                continue;
            }
            let head = match on_board.get(child.as_str()) {
                Some(i) => of(&i.card.commit),
                None => {
                    let refname = match remote {
                        Some(r) => format!("refs/remotes/{r}/{child}"),
                        None => format!("refs/heads/{child}"),
                    };
                    match repo.ref_id(&refname).ok().flatten().and_then(|id| repo.commit(id).ok()) {
                        Some(c) => of(&c),
                        None => ChildHead::Missing,
                    }
                }
            };
            out.insert(child, head);
        }
    }
    out
}

/// A role must be a plain name (it becomes a path component).
pub fn check_role(role: Option<&str>) -> Result<()> {
    if let Some(r) = role {
        if crate::protocol::State::parse(r).is_err() {
            bail!("invalid role {r:?}: use letters, digits, '.', '_' and '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn globs_that_select_nothing_are_named() {
        let globs = vec!["task/*".to_owned(), "fix/*".to_owned(), "main".to_owned()];
        let said: Vec<String> = super::unmatched_globs(&globs, &["task/a", "main"], None)
            .into_iter()
            .map(|a| match a {
                super::Action::Notice { branch, message } => format!("{branch}: {message}"),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(said, [r#"fix/*: --branch "fix/*" matches no branch"#]);
        assert!(super::unmatched_globs(&[], &[], None).is_empty(), "no globs: every branch is selected");
        let remote = super::unmatched_globs(&["x".to_owned()], &[], Some("origin"));
        assert!(
            matches!(&remote[0], super::Action::Notice { message, .. } if message.ends_with("no branch on origin"))
        );
    }

    #[test]
    fn a_poller_says_a_notice_once_until_it_goes_away() {
        let notice = |b: &str, m: &str| super::Action::Notice { branch: b.into(), message: m.into() };
        let count = |v: &[super::Action]| v.len();
        let tick1 = vec![notice("a", "handler x is not executable"), notice("b", "invalid state")];
        let (said1, seen) = super::without_repeats(tick1.clone(), &super::Said::new());
        assert_eq!(count(&said1), 2);
        let (said2, seen) = super::without_repeats(tick1.clone(), &seen);
        assert_eq!(count(&said2), 0, "the same notices again: silent");
        let (said3, seen) = super::without_repeats(vec![notice("b", "invalid state")], &seen);
        assert_eq!(count(&said3), 0);
        let (said4, _) = super::without_repeats(tick1, &seen);
        assert_eq!(said4, [notice("a", "handler x is not executable")], "gone for a tick, then back: said again");
    }
}
