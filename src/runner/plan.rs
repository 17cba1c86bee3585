//! Planning a tick: a pure function of (branch heads, handler table, now, options) → actions.
//!
//! A branch is actionable when its state is valid, not `working`, and a handler exists for it.
//! A `working` head whose lease expired is taken over. Everything else costs nothing: no
//! worktree, no subprocess, not even a line of output unless it is worth a person's attention
//! (an invalid state, a handler that is not executable, a branch checked out elsewhere).
//!
//! A branch also waits, at the cost of reading its head's trailers, while its `dwp-not-before`
//! (a retry's backoff, a scheduled `send`) lies in the future, while it is `parked`, and while the
//! circuit breaker of its state is open; a half-open breaker lets one branch through as its probe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::humans::gate::GateStatus;
use crate::policy::{FailurePolicy, GateDefault, HumansPolicy};
use crate::protocol::state::last_text;
use crate::protocol::{Key, Lease, LeaseStatus, Reserved, State, StateRead};
use crate::recovery::{Admit, Breaker, Priority};
use crate::repo::{HandlerLookup, ObjectId};

use super::board::{BranchCard, PolicyRead};
use super::deps::{cycles, dependencies, verdict, DepHead, DepVerdict};
use crate::policy::{Base, Policy};

/// Where a branch is checked out, as far as the runner cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    /// Not checked out, or only in one of git-baton's own worktrees.
    Free,
    /// The main worktree (the user's checkout).
    Main,
    /// A linked worktree the user made.
    Elsewhere(PathBuf),
}

/// What `--current-branch` says about the branch checked out in the main worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CurrentBranch {
    /// Leave it alone (default).
    #[default]
    Skip,
    /// Process it along with the others.
    Include,
    /// Process only it.
    Only,
}

/// Where a handler file is taken from when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerOrigin {
    /// The task's own commit, checked out in the worktree (no trusted ref).
    Worktree,
    /// The `.dwp/` folder of this trusted tree.
    Trusted(ObjectId),
}

/// What one run of a handler is allowed: the effective policy for its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    pub timeout: Duration,
    pub lease_seconds: u64,
    /// Names or globs of the runner's environment variables passed to the handler.
    pub env_pass: Vec<String>,
    pub log_max_bytes: u64,
    /// Classification, retries, loop caps, dead letters, breaker.
    pub failure: FailurePolicy,
    /// Tier and gate, notifiers, budgets, concurrency, kept caches, acceptance checks.
    pub humans: HumansPolicy,
    /// `agent.next`: handed to the handler as `BATON_NEXT_STATE`.
    pub agent_next: Option<String>,
}

/// What shapes a plan besides the board itself.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    pub current: CurrentBranch,
    pub handlers: HandlerOrigin,
    /// The runner's own settings (command line or built-in), before the policy file.
    pub base: Base,
    /// The circuit breakers as the tick read them (`refs/baton/breakers/*`), by name.
    pub breakers: BTreeMap<String, Breaker>,
    /// The heads of the branches that tasks depend on (`dwp-depends-on`), by branch name.
    pub deps: BTreeMap<String, DepHead>,
    /// The heads of the children that waiting parents join (`dwp-join-child`), by branch name.
    pub children: BTreeMap<String, super::join::ChildHead>,
}

impl RunSettings {
    /// What the policy says for `state` (the runner's own values where it says nothing).
    pub fn for_state(policy: Option<&Policy>, state: &str, base: &Base) -> RunSettings {
        let e = Policy::effective_or_base(policy, state, base);
        RunSettings {
            timeout: Duration::from_secs(e.timeout.value),
            lease_seconds: e.lease.value,
            env_pass: e.pass_names(),
            log_max_bytes: e.log_max_bytes.value,
            failure: e.failure,
            humans: e.humans,
            agent_next: e.agent_next.value,
        }
    }
}

/// A head's `dwp-not-before` (epoch seconds): `Ok(None)` without one, `Err` with the bad value.
pub fn not_before(trailers: &[crate::protocol::Trailer]) -> Result<Option<i64>, String> {
    match last_text(trailers, Key::NotBefore) {
        None => Ok(None),
        Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| v),
    }
}

/// The earliest `dwp-not-before` after `now` among the inputs: when a poller should look again.
pub fn next_due(inputs: &[PlanInput], now: i64) -> Option<i64> {
    inputs
        .iter()
        .filter(|i| matches!(&i.card.state, StateRead::Valid(s) if !s.is(Reserved::Working) && !s.is(Reserved::Parked)))
        .filter_map(|i| not_before(&i.card.commit.trailers).ok().flatten())
        .filter(|&t| t > now)
        .min()
}

/// What a run is to the circuit breaker of its state, as the tick read the breaker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BreakerRole {
    /// Closed with nothing to forget: a success need not touch it (no write, no round trip).
    #[default]
    Clean,
    /// Closed, remembering recent errors: a success resets its streak.
    Dirty,
    /// Half-open: this run is to take its probe before claiming, and report back.
    Probe(String),
}

impl BreakerRole {
    pub fn probe(&self) -> Option<&str> {
        match self {
            BreakerRole::Probe(name) => Some(name),
            _ => None,
        }
    }
}

/// One branch as the planner sees it.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub card: BranchCard,
    pub checkout: Checkout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Claim the branch and run the handler at `handler` (repository-relative path).
    Run {
        branch: String,
        refname: String,
        head: ObjectId,
        state: State,
        handler: String,
        origin: HandlerOrigin,
        settings: RunSettings,
        force_worktree: bool,
        /// What the run is to its state's circuit breaker.
        breaker: BreakerRole,
    },
    /// The lease expired: write `stalled`, then run the `stalled` handler if there is one.
    TakeOver {
        branch: String,
        refname: String,
        head: ObjectId,
        lease: Lease,
        stalled_handler: Option<String>,
        origin: HandlerOrigin,
        settings: RunSettings,
        force_worktree: bool,
    },
    /// A dependency can never be met: write `blocked` with the reason (by compare-and-swap).
    Block { branch: String, head: ObjectId, state: State, reason: String },
    /// Not actionable, but a person should know.
    Notice { branch: String, message: String },
    /// Nobody decided at the gate within `gate.timeout`: write `gate.default` (an approval by
    /// the runner, or a reject) on top of `head`.
    GateTimeout { branch: String, head: ObjectId, state: State, default: GateDefault, since: i64, humans: HumansPolicy },
    /// A waiting parent's join is complete (or can no longer succeed): write the join commit on
    /// top of `head` by compare-and-swap — state `then`, or `failed` when `failed` is `Some`.
    Join { branch: String, head: ObjectId, join: super::join::JoinSpec, failed: Option<(Vec<String>, String)> },
}

impl Action {
    pub fn branch(&self) -> &str {
        match self {
            Action::Run { branch, .. }
            | Action::TakeOver { branch, .. }
            | Action::Block { branch, .. }
            | Action::Notice { branch, .. }
            | Action::GateTimeout { branch, .. }
            | Action::Join { branch, .. } => branch,
        }
    }
}

/// Decide what this tick does.
pub fn plan(inputs: &[PlanInput], now: i64, config: &PlanConfig) -> Vec<Action> {
    let current = config.current;
    let origin = config.handlers;
    let mut actions = Vec::new();
    // A broken policy: its branches are skipped, with one notice per distinct problem.
    let mut broken: Vec<(String, Vec<String>)> = Vec::new();
    // Open breakers: one notice each, naming how many branches wait.
    let mut held: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut probing: BTreeSet<String> = BTreeSet::new();
    // Handlers that exist but cannot run, with the branches that wait on them.
    let mut not_executable: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Dependency cycles: one notice each (their tasks wait like any unmet dependency).
    let edges: BTreeMap<String, Vec<String>> = inputs
        .iter()
        .filter(|i| i.card.state.valid().is_some_and(|s| !s.is(Reserved::Working)))
        .map(|i| (i.card.head.branch.clone(), dependencies(&i.card.commit.trailers).0))
        .filter(|(_, d)| !d.is_empty())
        .map(|(b, d)| (b, d.into_iter().map(|d| d.branch).collect()))
        .collect();
    for cycle in cycles(&edges) {
        actions.push(Action::Notice {
            branch: cycle[0].clone(),
            message: format!("dwp-depends-on cycle: {}; none of them can start", cycle.join(" -> ")),
        });
    }
    for input in inputs {
        let card = &input.card;
        let branch = card.head.branch.clone();
        let is_main = input.checkout == Checkout::Main;
        match (current, is_main) {
            (CurrentBranch::Skip, true) => {
                // Never a silent skip: a task waiting on the checked-out branch says why it waits.
                if waits_for_a_run(card, now) {
                    actions.push(Action::Notice {
                        branch: branch.clone(),
                        message: "checked out in your main worktree; skipped (use --current-branch include, \
                                  or check out another branch)"
                            .into(),
                    });
                }
                continue;
            }
            (CurrentBranch::Only, false) => continue,
            _ => {}
        }
        let force_worktree = is_main;
        let refname = card.head.refname.clone();
        let head = card.head.id;
        let notice = |message: String| Action::Notice { branch: branch.clone(), message };
        let valid = match &card.state {
            StateRead::None => continue,
            StateRead::Invalid(v) => {
                actions.push(notice(format!("invalid state {v:?}: not a handler name; ignored")));
                continue;
            }
            StateRead::Valid(s) => s,
        };
        let policy = match &card.policy {
            PolicyRead::None => None,
            PolicyRead::Ok(p) => Some(p.as_ref()),
            PolicyRead::Broken(why) => {
                let wants_work =
                    card.lease.as_ref().map_or(matches!(card.handler, Some(HandlerLookup::Found(_))), |l| {
                        matches!(l.status(now), LeaseStatus::Expired { .. })
                    });
                if wants_work {
                    match broken.iter_mut().find(|(w, _)| w == why) {
                        Some((_, branches)) => branches.push(branch.clone()),
                        None => broken.push((why.clone(), vec![branch.clone()])),
                    }
                }
                continue;
            }
        };
        let blocked_by_checkout = |actions: &mut Vec<Action>| -> bool {
            if let Checkout::Elsewhere(path) = &input.checkout {
                let aynig = path.parent().and_then(|p| p.file_name()).is_some_and(|n| n == ".worktrees")
                    || path
                        .file_name()
                        .is_some_and(|n| crate::aynig::leftovers::is_aynig_name(&n.to_string_lossy(), &branch));
                let hint = if aynig {
                    " (an AYNIG worktree: `git baton migrate-aynig` removes it and keeps uncommitted work)"
                } else {
                    ""
                };
                actions.push(notice(format!("checked out in worktree {}; skipped{hint}", path.display())));
                return true;
            }
            false
        };
        if valid.is(Reserved::Working) {
            let Some(lease) = &card.lease else { continue };
            let origin_state = lease.origin_state.as_deref().unwrap_or(Reserved::Working.as_str());
            let (lease, why) = bounded_lease(lease, policy, origin_state, &config.base, now);
            if let Some(why) = why {
                actions.push(notice(why));
            }
            let lease = &lease;
            if let LeaseStatus::Expired { .. } = lease.status(now) {
                if blocked_by_checkout(&mut actions) {
                    continue;
                }
                let stalled_handler = match &card.stalled_handler {
                    Some(HandlerLookup::Found(p)) => Some(p.clone()),
                    _ => None,
                };
                actions.push(Action::TakeOver {
                    branch,
                    refname,
                    head,
                    lease: lease.clone(),
                    stalled_handler,
                    origin,
                    settings: RunSettings::for_state(policy, Reserved::Stalled.as_str(), &config.base),
                    force_worktree,
                });
            }
            continue;
        }
        if valid.is(Reserved::Parked) {
            continue;
        }
        // A join's wait is decided from the children's heads, never by a handler.
        if valid.is(Reserved::Waiting) {
            match super::join::spec(&card.commit.trailers) {
                None => {}
                Some(Err(why)) => {
                    actions.push(notice(format!("malformed join: {why}; waiting")));
                    continue;
                }
                Some(Ok(join)) if join.children.contains(&branch) => {
                    // It would wait for itself forever.
                    actions.push(notice("malformed join: it waits on its own branch; waiting".to_owned()));
                    continue;
                }
                Some(Ok(join)) => {
                    let waited = now - card.commit.committer_time;
                    match super::join::decide_at(&join, &config.children, waited) {
                        super::join::JoinVerdict::Wait => {}
                        super::join::JoinVerdict::Join => {
                            actions.push(Action::Join { branch, head, join, failed: None })
                        }
                        super::join::JoinVerdict::Fail { failed, reason } => {
                            actions.push(Action::Join { branch, head, join, failed: Some((failed, reason)) })
                        }
                    }
                    continue;
                }
            }
        }
        match &card.handler {
            Some(HandlerLookup::Found(path)) => {
                let trailers = &card.commit.trailers;
                match not_before(trailers) {
                    Ok(Some(t)) if t > now => continue,
                    Ok(_) => {}
                    Err(v) => actions.push(notice(format!("malformed dwp-not-before {v:?} (epoch seconds); ignored"))),
                }
                if let Some(v) = last_text(trailers, Key::Attempt).filter(|v| v.trim().parse::<u32>().is_err()) {
                    actions.push(notice(format!("malformed dwp-attempt {v:?}; counted as attempt 1")));
                }
                if let Some(v) = last_text(trailers, Key::Priority).filter(|v| v.trim().parse::<Priority>().is_err()) {
                    actions.push(notice(format!("malformed dwp-priority {v:?}; medium assumed")));
                }
                let (deps, bad) = dependencies(trailers);
                for v in bad {
                    actions.push(notice(format!("malformed dwp-depends-on {v:?} (BRANCH or BRANCH:STATE); ignored")));
                }
                match verdict(&deps, &config.deps) {
                    DepVerdict::Met => {}
                    DepVerdict::Waiting(_) => continue,
                    DepVerdict::Missing(names) => {
                        actions.push(notice(format!("depends on missing branch {}; waiting", names.join(", "))));
                        continue;
                    }
                    DepVerdict::Unmeetable(reason) => {
                        actions.push(Action::Block { branch, head, state: valid.clone(), reason });
                        continue;
                    }
                }
                // A gate waits, silently, for a person's approval of this very head (`status`
                // shows it); a signature is checked by the run, before its claim.
                if let Some(humans) = super::gates::gate_policy(policy, valid.as_str()) {
                    match super::gates::status(card, &humans, now) {
                        GateStatus::Waiting { .. } => continue,
                        GateStatus::Refused { why, .. } => {
                            let why = format!("the approval at the gate of {valid} does not count ({why}); waiting");
                            actions.push(notice(why));
                            continue;
                        }
                        GateStatus::TimedOut { default, since } => {
                            let state = valid.clone();
                            actions.push(Action::GateTimeout { branch, head, state, default, since, humans });
                            continue;
                        }
                        // Approved (a signature, if required, is checked by the run), or not gated.
                        _ => {}
                    }
                }
                if blocked_by_checkout(&mut actions) {
                    continue;
                }
                let settings = RunSettings::for_state(policy, valid.as_str(), &config.base);
                let name = settings.failure.breaker.value.clone();
                let seen = config.breakers.get(&name);
                let breaker = match seen.map(|b| b.admit(now)) {
                    None => BreakerRole::Clean,
                    Some(Admit::Closed) if seen.is_some_and(|b| b.last_error.is_none()) => BreakerRole::Clean,
                    Some(Admit::Closed) => BreakerRole::Dirty,
                    Some(Admit::Probe) if probing.insert(name.clone()) => BreakerRole::Probe(name),
                    Some(admit) => {
                        let why = match admit {
                            Admit::Open { until } => format!("open for {}s more", until - now),
                            _ => "half-open, one run probes it".to_owned(),
                        };
                        held.entry(name).or_insert_with(|| (why, Vec::new())).1.push(branch.clone());
                        continue;
                    }
                };
                actions.push(Action::Run {
                    branch,
                    refname,
                    head,
                    state: valid.clone(),
                    handler: path.clone(),
                    origin,
                    settings,
                    force_worktree,
                    breaker,
                });
            }
            Some(HandlerLookup::NotExecutable(path)) => {
                not_executable.entry(path.clone()).or_default().push(branch.clone());
            }
            _ => {}
        }
    }
    // One notice per handler, not per branch (a watch says it once; see `cli::watch`).
    for (path, branches) in not_executable {
        let n = branches.len();
        let waiting = if n == 1 { String::new() } else { format!(" ({n} branches wait on it)") };
        actions.push(Action::Notice {
            branch: branches[0].clone(),
            message: format!(
                "handler {path} is not an executable file; not run{waiting} (git update-index --chmod=+x {path}, commit)"
            ),
        });
    }
    for (name, (why, branches)) in held {
        let n = branches.len();
        actions.push(Action::Notice {
            branch: branches[0].clone(),
            message: format!(
                "circuit breaker {name} is {why}: {n} branch{} not claimed (git baton breakers)",
                if n == 1 { "" } else { "es" }
            ),
        });
    }
    for (why, branches) in broken {
        let more = match branches.len() {
            1 => String::new(),
            n => format!(" (and {} more branch{})", n - 1, if n > 2 { "es" } else { "" }),
        };
        actions.push(Action::Notice {
            branch: branches[0].clone(),
            message: format!("policy is broken, not run{more}: {why}"),
        });
    }
    actions
}

/// Whether a branch would be claimed now if nothing held it back: a valid state other than
/// `working` or `parked`, an executable handler, and no `dwp-not-before` in the future.
fn waits_for_a_run(card: &BranchCard, now: i64) -> bool {
    let ready = card.state.valid().is_some_and(|s| !s.is(Reserved::Working) && !s.is(Reserved::Parked));
    let timer = matches!(not_before(&card.commit.trailers), Ok(Some(t)) if t > now);
    ready && !timer && matches!(card.handler, Some(HandlerLookup::Found(_)))
}

/// A lease as the policy lets a runner believe it: bounded by `max_lease`, and not believed when it
/// starts further in the future than `clock_skew` (see [`Lease::bounded`]).
pub fn bounded_lease(
    lease: &Lease,
    policy: Option<&Policy>,
    state: &str,
    base: &Base,
    now: i64,
) -> (Lease, Option<String>) {
    let e = Policy::effective_or_base(policy, state, base);
    lease.clone().bounded(now, e.max_lease.value, e.clock_skew.value)
}

/// Rotate the actions by `seed`, so that several runners looking at the same board start on
/// different branches instead of all racing for the first one (measured with 4 runners over 30
/// tasks: every runner lost 30 races in sorted order).
pub fn spread(mut actions: Vec<Action>, seed: u64) -> Vec<Action> {
    if !actions.is_empty() {
        let n = (seed % actions.len() as u64) as usize;
        actions.rotate_left(n);
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::trailers;
    use crate::repo::{BranchHead, CommitInfo};

    fn card(
        branch: &str,
        msg: &str,
        time: i64,
        handler: Option<HandlerLookup>,
        stalled: Option<HandlerLookup>,
    ) -> PlanInput {
        let id = ObjectId::null(gix::hash::Kind::Sha1);
        let trailers = trailers::parse(msg.as_bytes());
        let commit = CommitInfo {
            id,
            tree: id,
            parents: vec![],
            message: msg.as_bytes().to_vec(),
            trailers: trailers.clone(),
            committer_time: time,
            author: String::new(),
        };
        PlanInput {
            card: BranchCard {
                head: BranchHead { branch: branch.into(), refname: format!("refs/heads/{branch}"), id },
                state: commit.state(),
                lease: Lease::from_commit(&trailers, time),
                commit,
                handler,
                stalled_handler: stalled,
                policy: PolicyRead::None,
                approval: None,
            },
            checkout: Checkout::Free,
        }
    }

    fn cfg(current: CurrentBranch) -> PlanConfig {
        PlanConfig {
            current,
            handlers: HandlerOrigin::Worktree,
            base: Base::default(),
            breakers: BTreeMap::new(),
            deps: BTreeMap::new(),
            children: BTreeMap::new(),
        }
    }

    fn found(p: &str) -> Option<HandlerLookup> {
        Some(HandlerLookup::Found(p.into()))
    }

    #[test]
    fn runs_only_actionable_branches() {
        let inputs = vec![
            card("a", "t\n\ndwp-state: build\n", 0, found(".dwp/command/build"), None),
            card("b", "t\n\ndwp-state: done\n", 0, Some(HandlerLookup::Missing), None),
            card("c", "no state", 0, None, None),
        ];
        let actions = plan(&inputs, 100, &cfg(CurrentBranch::Skip));
        assert_eq!(actions.len(), 1);
        assert!(
            matches!(&actions[0], Action::Run { branch, handler, .. } if branch == "a" && handler == ".dwp/command/build")
        );
    }

    #[test]
    fn invalid_states_and_unexecutable_handlers_are_noticed_not_run() {
        let inputs = vec![
            card("a", "t\n\ndwp-state: ../x\n", 0, None, None),
            card("b", "t\n\ndwp-state: x\n", 0, Some(HandlerLookup::NotExecutable(".dwp/command/x".into())), None),
        ];
        let actions = plan(&inputs, 0, &cfg(CurrentBranch::Skip));
        assert_eq!(actions.len(), 2);
        assert!(actions.iter().all(|a| matches!(a, Action::Notice { .. })));
    }

    #[test]
    fn a_handler_that_cannot_run_is_one_notice_for_all_its_branches() {
        let x = || Some(HandlerLookup::NotExecutable(".dwp/command/x".into()));
        let inputs: Vec<PlanInput> =
            ["a", "b", "c"].iter().map(|b| card(b, "t\n\ndwp-state: x\n", 0, x(), None)).collect();
        let actions = plan(&inputs, 0, &cfg(CurrentBranch::Skip));
        match &actions[..] {
            [Action::Notice { branch, message }] => {
                assert_eq!(branch, "a");
                assert!(message.contains(".dwp/command/x is not an executable file") && message.contains("3 branches"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_checked_out_branch_is_noticed_only_when_it_would_run() {
        let at_main = |msg: &str, handler| {
            let mut c = card("main", msg, 0, handler, None);
            c.checkout = Checkout::Main;
            plan(&[c], 100, &cfg(CurrentBranch::Skip))
        };
        let cases = [
            ("t\n\ndwp-state: build\n", found(".dwp/command/build"), 1),
            ("t\n\ndwp-state: done\n", Some(HandlerLookup::Missing), 0),
            ("no state", None, 0),
            ("t\n\ndwp-not-before: 500\ndwp-state: build\n", found(".dwp/command/build"), 0),
            ("t\n\ndwp-state: parked\n", found(".dwp/command/parked"), 0),
        ];
        for (msg, handler, want) in cases {
            assert_eq!(at_main(msg, handler).len(), want, "{msg:?}");
        }
    }

    #[test]
    fn live_lease_is_left_alone_expired_lease_is_taken_over() {
        let msg = "t\n\ndwp-origin-state: build\ndwp-run-id: r1\ndwp-lease-seconds: 60\ndwp-state: working\n";
        let inputs = vec![card("a", msg, 1000, None, found(".dwp/command/stalled"))];
        assert!(plan(&inputs, 1060, &cfg(CurrentBranch::Skip)).is_empty());
        let actions = plan(&inputs, 1061, &cfg(CurrentBranch::Skip));
        match &actions[..] {
            [Action::TakeOver { lease, stalled_handler, .. }] => {
                assert_eq!(lease.run_id.as_deref(), Some("r1"));
                assert_eq!(stalled_handler.as_deref(), Some(".dwp/command/stalled"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A pushed `working` commit with an enormous lease or a far-future committer time cannot
    /// freeze a branch: bounded by max_lease (24 h), or taken over at once; each with a notice.
    #[test]
    fn frozen_leases_are_bounded() {
        let huge =
            "t\n\ndwp-origin-state: build\ndwp-run-id: r1\ndwp-lease-seconds: 99999999999999\ndwp-state: working\n";
        let inputs = vec![card("a", huge, 1000, None, None)];
        let at = |now| plan(&inputs, now, &cfg(CurrentBranch::Skip));
        assert!(matches!(&at(1000)[..], [Action::Notice { .. }]));
        assert!(matches!(&at(1000 + 86_401)[..], [Action::Notice { .. }, Action::TakeOver { .. }]));
        let future = "t\n\ndwp-run-id: r1\ndwp-lease-seconds: 60\ndwp-state: working\n";
        let inputs = vec![card("b", future, 99_999_999_999, None, None)];
        assert!(matches!(
            &plan(&inputs, 1000, &cfg(CurrentBranch::Skip))[..],
            [Action::Notice { .. }, Action::TakeOver { .. }]
        ));
    }

    #[test]
    fn current_branch_modes() {
        let mut main = card("main", "t\n\ndwp-state: build\n", 0, found(".dwp/command/build"), None);
        main.checkout = Checkout::Main;
        let other = card("other", "t\n\ndwp-state: build\n", 0, found(".dwp/command/build"), None);
        let inputs = vec![main, other];
        let names = |c| {
            plan(&inputs, 0, &cfg(c))
                .iter()
                .filter(|a| matches!(a, Action::Run { .. }))
                .map(|a| a.branch().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(CurrentBranch::Skip), ["other"]);
        let said = plan(&inputs, 0, &cfg(CurrentBranch::Skip));
        assert!(
            matches!(&said[0], Action::Notice { branch, message } if branch == "main" && message.contains("--current-branch include")),
            "{said:?}"
        );
        assert_eq!(names(CurrentBranch::Include), ["main", "other"]);
        assert_eq!(names(CurrentBranch::Only), ["main"]);
        assert!(matches!(&plan(&inputs, 0, &cfg(CurrentBranch::Only))[0], Action::Run { force_worktree: true, .. }));
    }

    #[test]
    fn spread_rotates_without_losing_actions() {
        let inputs: Vec<PlanInput> =
            ["a", "b", "c"].iter().map(|b| card(b, "t\n\ndwp-state: x\n", 0, found(".dwp/command/x"), None)).collect();
        let names = |v: Vec<Action>| v.iter().map(|a| a.branch().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(spread(plan(&inputs, 0, &cfg(CurrentBranch::Skip)), 4)), ["b", "c", "a"]);
        assert_eq!(names(spread(Vec::new(), 4)), Vec::<String>::new());
    }

    #[test]
    fn branch_checked_out_elsewhere_is_noticed() {
        let mut a = card("a", "t\n\ndwp-state: build\n", 0, found(".dwp/command/build"), None);
        a.checkout = Checkout::Elsewhere("/tmp/wt".into());
        assert!(matches!(&plan(&[a], 0, &cfg(CurrentBranch::Skip))[..], [Action::Notice { .. }]));
    }

    #[test]
    fn an_aynig_worktree_notice_names_the_migration() {
        let message = |branch: &str, path: &str| {
            let mut a = card(branch, "t\n\ndwp-state: build\n", 0, found(".dwp/command/build"), None);
            a.checkout = Checkout::Elsewhere(path.into());
            match &plan(&[a], 0, &cfg(CurrentBranch::Skip))[..] {
                [Action::Notice { message, .. }] => message.clone(),
                other => panic!("{other:?}"),
            }
        };
        assert!(message("f/x", "/r/.worktrees/anything").contains("migrate-aynig"));
        assert!(message("f/x", "/elsewhere/worktree-f_x-0a1b2c3d").contains("migrate-aynig"));
        assert!(!message("f/x", "/tmp/wt").contains("migrate-aynig"));
    }

    #[test]
    fn timers_and_parked_heads_wait_at_no_cost() {
        let inputs = vec![
            card("later", "t\n\ndwp-not-before: 2000\ndwp-state: build\n", 0, found(".dwp/command/build"), None),
            card("due", "t\n\ndwp-not-before: 1000\ndwp-state: build\n", 0, found(".dwp/command/build"), None),
            card("parked", "t\n\ndwp-parked-from: abc\ndwp-state: parked\n", 0, found(".dwp/command/parked"), None),
        ];
        let names = |now| {
            plan(&inputs, now, &cfg(CurrentBranch::Skip)).iter().map(|a| a.branch().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(names(1000), ["due"]);
        assert_eq!(names(1999), ["due"]);
        assert_eq!(names(2000), ["later", "due"]);
        assert_eq!(next_due(&inputs, 1000), Some(2000));
        assert_eq!(next_due(&inputs, 2000), None);
    }

    #[test]
    fn malformed_timer_attempt_and_priority_are_notices_not_crashes() {
        let msg = "t\n\ndwp-not-before: soon\ndwp-attempt: -1\ndwp-priority: urgent\ndwp-state: build\n";
        let actions = plan(&[card("a", msg, 0, found(".dwp/command/build"), None)], 0, &cfg(CurrentBranch::Skip));
        let notices: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Notice { message, .. } => Some(message.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(notices.len(), 3, "{actions:?}");
        assert!(
            notices[0].contains("dwp-not-before")
                && notices[1].contains("dwp-attempt")
                && notices[2].contains("dwp-priority")
        );
        assert!(actions.iter().any(|a| matches!(a, Action::Run { .. })), "still runs");
    }

    #[test]
    fn malformed_joins_are_notices_and_never_joined() {
        let mut config = cfg(CurrentBranch::Skip);
        config
            .children
            .insert("c".into(), super::super::join::ChildHead::Head { state: Some("done".into()), dead_letter: false });
        for (msg, why) in [
            ("t\n\ndwp-join-then: working\ndwp-join-child: c\ndwp-state: waiting\n", "not a state a join can go to"),
            ("t\n\ndwp-join-then: merge\ndwp-join-child: c\ndwp-join-child: p\ndwp-state: waiting\n", "its own branch"),
        ] {
            let actions = plan(&[card("p", msg, 0, None, None)], 0, &config);
            assert!(
                matches!(&actions[..], [Action::Notice { message, .. }] if message.contains(why)),
                "{msg}: {actions:?}"
            );
        }
        // Well-formed: joined.
        let ok = "t\n\ndwp-join-then: merge\ndwp-join-child: c\ndwp-state: waiting\n";
        assert!(matches!(&plan(&[card("p", ok, 0, None, None)], 0, &config)[..], [Action::Join { .. }]));
    }

    #[test]
    fn breakers_hold_their_states_with_one_notice_and_let_one_probe_through() {
        let inputs: Vec<PlanInput> = ["a", "b", "c"]
            .iter()
            .map(|b| card(b, "t\n\ndwp-state: build\n", 0, found(".dwp/command/build"), None))
            .chain([card("d", "t\n\ndwp-state: ship\n", 0, found(".dwp/command/ship"), None)])
            .collect();
        let mut config = cfg(CurrentBranch::Skip);
        let open = Breaker::default().open_by_hand(0, 100);
        config.breakers.insert("build".into(), open.clone());
        let actions = plan(&inputs, 50, &config);
        let runs: Vec<&str> = actions.iter().filter(|a| matches!(a, Action::Run { .. })).map(Action::branch).collect();
        assert_eq!(runs, ["d"], "ship has no breaker");
        let notices: Vec<&Action> = actions.iter().filter(|a| matches!(a, Action::Notice { .. })).collect();
        assert_eq!(notices.len(), 1, "one notice per breaker, not per branch: {actions:?}");
        assert!(
            matches!(notices[0], Action::Notice { message, .. } if message.contains("build is open for 50s more: 3 branches"))
        );

        // Half-open: the first branch is the probe, the others wait.
        let actions = plan(&inputs, 100, &config);
        let probes: Vec<&BreakerRole> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Run { breaker, state, .. } if state.as_str() == "build" => Some(breaker),
                _ => None,
            })
            .collect();
        assert_eq!(probes, [&BreakerRole::Probe("build".into())]);
        // Closed but remembering an error: a success will reset it; a clean one is not touched.
        config.breakers.insert(
            "build".into(),
            open.reset().on_failure(
                0,
                "x",
                false,
                &crate::recovery::BreakerConfig::from_policy(&FailurePolicy::built_in("build")),
            ),
        );
        assert!(plan(&inputs, 100, &config)
            .iter()
            .all(|a| !matches!(a, Action::Run { breaker: BreakerRole::Probe(_), .. })));
        assert!(plan(&inputs, 100, &config)
            .iter()
            .any(|a| matches!(a, Action::Run { breaker: BreakerRole::Dirty, .. })));
    }
}
