//! `git baton status`: the board — every branch, its state, lease and handler.

use std::path::Path;
use std::process::ExitCode;

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::output::branch_selected;
use super::Out;
use crate::policy::{Base, Policy};
use crate::protocol::state::last_text;
use crate::protocol::{Key, LeaseStatus, Reserved, StateRead};
use crate::recovery::Breaker;
use crate::repo::{BranchSource, HandlerLookup, Repo};
use crate::runner::board::{read_board, BranchCard};
use crate::runner::clock;

/// Show every local branch (or every remote-tracking branch of `--remote`) with its state.
///
/// `--json` prints one object per line (JSON Lines; no branches: no lines):
/// `{"branch","commit","state","invalid_state","origin_state","run_id","runner_id","lease",
/// "lease_seconds_left","handler","age_seconds","error"}` — `state` is null without a `dwp-state`
/// trailer, `invalid_state` holds a refused value, `lease` is `active`, `expired` or `n/a`,
/// `handler` is `true`/`false` (null where no handler applies: no state, invalid, `working`),
/// `handler_status` says which false: `found`, `missing`, `not-executable` (the table's HANDLER
/// column: `yes`, `no`, `not-executable`).
/// Each object also has `"not_before","attempt","parked_from","breaker","breaker_status"`:
/// `not_before` is the head's `dwp-not-before` (epoch seconds; null without one or when
/// malformed), `attempt` its `dwp-attempt` (null without one), `parked_from` the commit a
/// `parked` head parks (its `dwp-parked-from`; null otherwise), `breaker_status` the status of
/// the circuit breaker of the head's state (`closed`, `open`, `half-open`; null unless the state
/// has a handler a runner would claim it with) and `breaker` that breaker's name while it is not
/// closed (null otherwise).
///
/// The table's NOTE column says why a branch with a handler waits: `retry in 12s` (a retry's
/// backoff, `dwp-retry-of` set), `scheduled in 2h` (`send --not-before`), `parked (was build)`,
/// `breaker open` / `breaker half-open` (`breaker NAME open` when the breaker is named otherwise
/// than the state; see `git baton breakers`), and for a state with `tier = "gate"`: `gate waiting`
/// (`gate waiting (default B in 2h)` with a timeout), `approved by EMAIL, option B`, `gate waiting
/// (approval refused: …)`, `gate timed out (default B due)`.
///
/// `--scratch` shows the size of git-baton's scratch space instead (what `git baton gc` cleans);
/// with `--json`, one object:
/// `{"root": "<git common dir>/baton", "logs": {"count","bytes"},
/// "slots": {"count","kept","locked","bytes"}, "refs": {"<kind>": count, ...}}` — `slots.bytes`
/// counts the worktree folders and their git admin folders (symlinks not followed); `refs` counts
/// the refs under `refs/baton/` by the path step after it, always with `leases`, `salvage`,
/// `rejected` and `conflicts`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON Lines (one object per branch) instead of a table.
    #[arg(long)]
    json: bool,
    /// Show the sizes of the scratch space (run logs, worktree slots, refs under refs/baton/)
    /// instead of the board.
    #[arg(long, conflicts_with_all = ["branches", "remote", "role"])]
    scratch: bool,
    /// Only branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    branches: Vec<String>,
    /// Show the remote-tracking branches of this remote instead of local branches.
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    /// Look handlers up in `.dwp/roles/<ROLE>/command` first.
    #[arg(long, env = "BATON_ROLE")]
    role: Option<String>,
    /// Order the board as the parent/child tree of tasks (`git baton tree`): children under
    /// their parent, drawn with rails in the BRANCH column. `--json` keeps its objects and adds
    /// `"parent"` and `"depth"` to each.
    #[arg(long, conflicts_with = "remote")]
    tree: bool,
}

#[derive(Serialize)]
struct Row {
    branch: String,
    commit: String,
    state: Option<String>,
    invalid_state: Option<String>,
    origin_state: Option<String>,
    run_id: Option<String>,
    runner_id: Option<String>,
    lease: &'static str,
    lease_seconds_left: Option<i64>,
    handler: Option<bool>,
    /// `found`, `missing` or `not-executable` (a file that exists but will not run); null where
    /// `handler` is.
    handler_status: Option<&'static str>,
    age_seconds: i64,
    /// Why the branch could not be read (its other fields are then empty).
    error: Option<String>,
    not_before: Option<i64>,
    attempt: Option<u32>,
    parked_from: Option<String>,
    breaker: Option<String>,
    breaker_status: Option<&'static str>,
    /// With `--tree`: the task's parent and its depth in the tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    depth: Option<usize>,
    /// With `--tree`: the rails drawn before the branch name.
    #[serde(skip)]
    rails: String,
    /// The table's NOTE column.
    #[serde(skip)]
    note: String,
}

/// What a row needs besides its card: the repository (for a parked head's earlier state) and the
/// breakers as the board has them.
struct Context<'a> {
    repo: &'a Repo,
    breakers: &'a BTreeMap<String, Breaker>,
}

fn row(card: &BranchCard, now: i64, ctx: &Context<'_>) -> Row {
    // The lease as a runner would believe it (bounded by the policy's max_lease and clock_skew).
    let policy = match &card.policy {
        crate::runner::board::PolicyRead::Ok(p) => Some(p.as_ref()),
        _ => None,
    };
    let bounded = card.lease.as_ref().map(|l| {
        let state = l.origin_state.as_deref().unwrap_or("working");
        crate::runner::plan::bounded_lease(l, policy, state, &crate::policy::Base::default(), now).0
    });
    let (lease, left) = match bounded.as_ref().map(|l| l.status(now)) {
        Some(LeaseStatus::Active { seconds_left }) => ("active", Some(seconds_left)),
        Some(LeaseStatus::Expired { seconds_ago }) => ("expired", Some(-seconds_ago)),
        None => ("n/a", None),
    };
    let trailers = &card.commit.trailers;
    let not_before = crate::runner::plan::not_before(trailers).ok().flatten();
    let attempt = last_text(trailers, Key::Attempt).and_then(|v| v.trim().parse::<u32>().ok());
    let valid = card.state.valid();
    let parked = valid.is_some_and(|s| s.is(Reserved::Parked));
    let parked_from = if parked { last_text(trailers, Key::ParkedFrom).map(|v| v.trim().to_owned()) } else { None };
    // The breaker that holds the branch back: only for a state a runner would claim.
    let claimable = valid.is_some_and(|s| !s.is(Reserved::Working) && !parked)
        && matches!(card.handler, Some(HandlerLookup::Found(_)))
        && !matches!(card.policy, crate::runner::board::PolicyRead::Broken(_));
    let (breaker, breaker_status) = match valid.filter(|_| claimable) {
        Some(state) => {
            let name = Policy::effective_or_base(policy, state.as_str(), &Base::default()).failure.breaker.value;
            let status = ctx.breakers.get(&name).map_or("closed", |b| b.status(now));
            ((status != "closed").then_some(name), Some(status))
        }
        None => (None, None),
    };
    let mut notes = Vec::new();
    if parked {
        let was = parked_from.as_deref().and_then(|id| {
            let id: crate::repo::ObjectId = id.parse().ok()?;
            ctx.repo.commit(id).ok()?.state().valid().map(|s| s.to_string())
        });
        notes.push(match was {
            Some(s) => format!("parked (was {s})"),
            None => "parked".to_owned(),
        });
    }
    if let Some(t) = not_before.filter(|&t| t > now && valid.is_some_and(|s| !s.is(Reserved::Working) && !parked)) {
        let word = if last_text(trailers, Key::RetryOf).is_some() { "retry" } else { "scheduled" };
        notes.push(format!("{word} in {}", clock::human_left(t - now)));
    }
    if let (Some(name), Some(status)) = (&breaker, breaker_status) {
        match valid {
            Some(s) if s.as_str() == name => notes.push(format!("breaker {status}")),
            _ => notes.push(format!("breaker {name} {status}")),
        }
    }
    notes.extend(crate::runner::gates::note(card, policy, now));
    Row {
        branch: card.head.branch.clone(),
        commit: card.commit.id.to_string(),
        state: card.state.valid().map(|s| s.to_string()),
        invalid_state: match &card.state {
            StateRead::Invalid(v) => Some(v.clone()),
            _ => None,
        },
        origin_state: card.lease.as_ref().and_then(|l| l.origin_state.clone()),
        run_id: card.lease.as_ref().and_then(|l| l.run_id.clone()),
        runner_id: card.lease.as_ref().and_then(|l| l.runner_id.clone()),
        lease,
        lease_seconds_left: left,
        handler: card.handler.as_ref().map(|h| matches!(h, HandlerLookup::Found(_))),
        handler_status: card.handler.as_ref().map(|h| match h {
            HandlerLookup::Found(_) => "found",
            HandlerLookup::NotExecutable(_) => "not-executable",
            HandlerLookup::Missing => "missing",
        }),
        age_seconds: now - card.commit.committer_time,
        error: None,
        not_before,
        attempt,
        parked_from,
        breaker,
        breaker_status,
        parent: None,
        depth: None,
        rails: String::new(),
        note: notes.join(", "),
    }
}

pub fn cmd_status(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    if args.scratch {
        return scratch(&repo, args.json);
    }
    let source = match &args.remote {
        Some(r) => {
            crate::runner::remote::check_remote_name(r).map_err(super::output::usage)?;
            if !crate::runner::remote::is_configured(&repo, r) {
                return Err(super::output::usage(format!("no remote named {r:?} in this repository")));
            }
            BranchSource::Remote(r.clone())
        }
        None => BranchSource::Local,
    };
    // Globs match branch names, as `run --remote` does: `--remote origin --branch 'v*'` selects
    // origin's v1. The displayed `origin/v1` form matches too.
    let prefix = args.remote.as_ref().map(|r| format!("{r}/")).unwrap_or_default();
    let handlers = crate::runner::source::configured(&repo, None, args.remote.as_deref())?;
    tracing::debug!("{}", handlers.describe());
    // `--role`, else `BATON_ROLE`, else AYNIG's `AYNIG_ROLE` (as `run` reads it).
    let role = args.role.clone().or_else(|| std::env::var("AYNIG_ROLE").ok()).filter(|r| !r.is_empty());
    let opts = crate::runner::board::ReadOptions { role: role.as_deref(), handlers: &handlers };
    let board = read_board(
        &repo,
        &source,
        |b| branch_selected(&args.branches, b.strip_prefix(&prefix).unwrap_or(b)) || branch_selected(&args.branches, b),
        opts,
    )?;
    let now = clock::now();
    let breakers = crate::runner::breakers::read_all(&repo, &source)?;
    let ctx = Context { repo: &repo, breakers: &breakers };
    let mut rows: Vec<Row> = board.cards.iter().map(|c| row(c, now, &ctx)).collect();
    for u in &board.unreadable {
        tracing::warn!("{}: cannot be read: {}", u.head.branch, u.why);
        rows.push(Row {
            branch: u.head.branch.clone(),
            commit: u.head.id.to_string(),
            state: None,
            invalid_state: None,
            origin_state: None,
            run_id: None,
            runner_id: None,
            lease: "n/a",
            lease_seconds_left: None,
            handler: None,
            handler_status: None,
            age_seconds: 0,
            error: Some(u.why.clone()),
            not_before: None,
            attempt: None,
            parked_from: None,
            breaker: None,
            breaker_status: None,
            parent: None,
            depth: None,
            rails: String::new(),
            note: String::new(),
        });
    }
    rows.sort_by(|a, b| a.branch.cmp(&b.branch));
    if args.tree {
        rows = in_tree_order(&repo, rows)?;
    }
    let mut out = Out::new();
    if args.json {
        out.json_each(&rows)?;
    } else {
        let width = rows.iter().map(|r| r.rails.chars().count() + r.branch.len()).max().unwrap_or(6).max(6);
        // HANDLER widens only when a row says `not-executable`.
        let hw = if rows.iter().any(|r| r.handler_status == Some("not-executable")) { 14 } else { 8 };
        out.line(&format!(
            "{:width$}  {:16}  {:16}  {:hw$}  {:>8}  {:12}  NOTE",
            "BRANCH", "STATE", "LEASE", "HANDLER", "AGE", "COMMIT"
        ))?;
        for r in &rows {
            let state = match (&r.state, &r.invalid_state, &r.error) {
                (_, _, Some(_)) => "UNREADABLE".into(),
                (Some(s), _, _) => s.clone(),
                (None, Some(bad), _) => format!("INVALID({bad})"),
                (None, None, None) => "-".into(),
            };
            let lease = match (r.lease, r.lease_seconds_left) {
                ("active", Some(s)) => format!("active {s}s"),
                ("expired", Some(s)) => format!("expired {}s ago", -s),
                _ => "-".into(),
            };
            let handler = match r.handler_status {
                Some("found") => "yes",
                Some("not-executable") => "not-executable",
                Some(_) => "no",
                None => "-",
            };
            let line = format!(
                "{:width$}  {:16}  {:16}  {:hw$}  {:>8}  {:12}  {}",
                format!("{}{}", r.rails, r.branch),
                state,
                lease,
                handler,
                clock::human_age(r.age_seconds),
                &r.commit[..12],
                r.note
            );
            out.line(line.trim_end())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `status --tree`: the rows in the order of the task tree (every row kept: tasks outside a family
/// are roots), each with its parent, depth and rails.
fn in_tree_order(repo: &Repo, rows: Vec<Row>) -> Result<Vec<Row>> {
    let nodes = super::tree::read_nodes(repo)?;
    let placed = crate::history::tree::forest(&nodes, None, true);
    let mut by_branch: BTreeMap<String, Row> = rows.into_iter().map(|r| (r.branch.clone(), r)).collect();
    let mut ordered = Vec::with_capacity(by_branch.len());
    for p in &placed {
        if let Some(mut r) = by_branch.remove(&p.node.branch) {
            r.parent = Some(p.node.parent.clone());
            r.depth = Some(p.depth);
            r.rails = crate::history::tree::rails(p);
            ordered.push(r);
        }
    }
    // Rows the tree did not place (unreadable heads): at the end, by name.
    ordered.extend(by_branch.into_values());
    Ok(ordered)
}

/// `status --scratch`: the sizes of the scratch space.
fn scratch(repo: &Repo, json: bool) -> Result<ExitCode> {
    let u = crate::gc::collect::scratch_usage(repo)?;
    let mut out = Out::new();
    if json {
        out.json(&u)?;
    } else {
        let size = |b: u64| super::gc::size_text(Some(b));
        out.line(&format!("scratch  {}", u.root))?;
        out.line(&format!("logs     {} file(s), {}", u.logs.count, size(u.logs.bytes)))?;
        out.line(&format!(
            "slots    {} ({} kept, {} in use), {}",
            u.slots.count,
            u.slots.kept,
            u.slots.locked,
            size(u.slots.bytes)
        ))?;
        let refs: Vec<String> = u.refs.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
        out.line(&format!("refs     {}", refs.join(", ")))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
