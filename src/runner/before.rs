//! Before the claim: the checks that hand a task to a person instead of running it again, from
//! one walk of the task's history (its first-parent chain since it branched off the default
//! branch) —
//!
//! - a fix loop past its hard cap (`loop.hard`): `blocked` with `dwp-escalation: loop-cap`;
//! - a budget used up (`budget.*` in the policy, `dwp-budget-*` on the task): `blocked` with
//!   `dwp-escalation: budget`.
//!
//! Each writes `blocked` with `dwp-origin-state` and a decision card, by compare-and-swap on the
//! head the tick read (a lost race is just a lost race), and emits `escalated`. A run that may go
//! ahead learns its round past the soft cap and what is left of its budget.

use anyhow::Result;

use super::backend::Swap;
use super::clock;
use super::context::Ctx;
use super::exec::{task_base, Job};
use super::messages;
use super::report::{Event, Kind};
use crate::history::budget::{self, Budget, Entry, Status};
use crate::policy::Money;
use crate::protocol::state::last_text;
use crate::protocol::{compose, Key, Reserved, State, StateRead, TrailerArg};
use crate::recovery::rounds::{rounds, Entry as RoundEntry};
use crate::recovery::{loop_verdict, LoopVerdict};
use crate::repo::{CommitInfo, ObjectId, Repo};

/// Most commits of a task's history read before a claim (and by `git baton budget`).
pub const WALK_LIMIT: usize = 10_000;

/// A run that may go ahead: what its handler is told.
pub(super) struct Go {
    /// Past the fix loop's soft cap: the round this is (`BATON_ROUND`).
    pub(super) round: Option<u32>,
    /// `BATON_BUDGET_*`.
    pub(super) budget_env: Vec<(String, String)>,
}

/// The checks before the claim. None: the task went to a person (or another runner moved it
/// first); nothing is to run.
pub(super) fn before_claim(ctx: &Ctx, job: &Job) -> Result<Option<Go>> {
    let repo = ctx.repo();
    let base = task_base(&repo, ctx, &job.branch, job.head);
    let history = repo.first_parents(job.head, base, WALK_LIMIT)?;
    let Some(round) = check_loop(ctx, job, &repo, &history)? else {
        return Ok(None);
    };
    let Some(budget_env) = check_budget(ctx, job, &repo, &history)? else {
        return Ok(None);
    };
    Ok(Some(Go { round, budget_env }))
}

/// The first-parent history of `head` back to where the task branched off the default branch
/// (see [`super::exec::default_base`]), newest first, at most [`WALK_LIMIT`] commits.
pub fn task_history(repo: &Repo, remote: Option<&str>, branch: &str, head: ObjectId) -> Result<Vec<CommitInfo>> {
    let base = super::exec::default_base(repo, remote, branch, head);
    repo.first_parents(head, base, WALK_LIMIT)
}

/// The task's history as budgets read it. Copies: a runner's retry commit, a resume, and an
/// unpark (a commit whose first parent is a `parked` commit with `dwp-parked-from`).
pub fn entries(history: &[CommitInfo]) -> Vec<Entry> {
    let is_parked = |c: &CommitInfo| {
        matches!(c.state(), StateRead::Valid(s) if s.is(Reserved::Parked))
            && last_text(&c.trailers, Key::ParkedFrom).is_some()
    };
    history
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let t = &c.trailers;
            let state = c.state();
            let working = match &state {
                StateRead::Valid(s) if s.is(Reserved::Working) => {
                    Some(last_text(t, Key::RunId).map(|v| v.trim().to_owned()))
                }
                _ => None,
            };
            let unpark = history.get(i + 1).is_some_and(|p| c.parents.first() == Some(&p.id) && is_parked(p));
            Entry {
                id: c.id.to_string(),
                time: c.committer_time,
                working,
                sets_state: matches!(&state, StateRead::Valid(s) if !s.is(Reserved::Working)),
                copy: unpark || last_text(t, Key::RetryOf).is_some() || last_text(t, Key::ResumedFrom).is_some(),
                reset: last_text(t, Key::BudgetReset),
                cost: last_text(t, Key::Cost),
                tokens: last_text(t, Key::Tokens),
                budget_runs: last_text(t, Key::BudgetRuns),
                budget_seconds: last_text(t, Key::BudgetSeconds),
                budget_cost: last_text(t, Key::BudgetCost),
            }
        })
        .collect()
}

/// Write `blocked` (message `msg`) over the head the tick read and say so.
fn escalate(ctx: &Ctx, job: &Job, repo: &Repo, msg: &[u8], reflog: &str, why: String) -> Result<()> {
    let trigger = repo.commit(job.head)?;
    let id = repo.write_commit(trigger.tree, &[job.head], msg, clock::now())?;
    let mut ev = Event::new(&job.branch, Kind::LostRace);
    ev.state = Some(job.state.to_string());
    match ctx.board.swap(repo, &job.branch, job.head, id, reflog)? {
        Swap::Done => {
            ev.action = Kind::Escalated;
            ev.commit = Some(id.to_string());
            ev.next_state = Some(Reserved::Blocked.as_str().into());
            ev.error = Some(format!("{why}; blocked for a person with a decision card"));
        }
        Swap::Lost(_) => {}
        Swap::Failed(e) => {
            ev.action = Kind::Error;
            ev.error = Some(format!("could not write the escalation ({why}): {e}"));
        }
    }
    ctx.emit(ev);
    Ok(())
}

/// Count the rounds of the job's state; past the hard cap, escalate. Some(round past the soft
/// cap) when the run may go ahead.
fn check_loop(ctx: &Ctx, job: &Job, repo: &Repo, history: &[CommitInfo]) -> Result<Option<Option<u32>>> {
    let f = &job.settings.failure;
    let states: Vec<Option<String>> =
        history.iter().map(|c| c.state().valid().map(|s| s.to_string()).filter(|s| s != "working")).collect();
    let entries = history.iter().zip(&states).map(|(c, state)| RoundEntry {
        state: state.as_deref(),
        // An approval at a gate hands the task to the state it is already in: not a new round.
        is_retry: last_text(&c.trailers, Key::RetryOf).is_some() || last_text(&c.trailers, Key::Approves).is_some(),
        is_loop_cap: last_text(&c.trailers, Key::Escalation).as_deref() == Some("loop-cap"),
    });
    let round = rounds(entries, job.state.as_str());
    match loop_verdict(round, f.loop_soft.value, f.loop_hard.value) {
        LoopVerdict::Quiet => Ok(Some(None)),
        LoopVerdict::Round(n) => Ok(Some(Some(n))),
        LoopVerdict::Capped(n) => {
            let errors: Vec<String> =
                history.iter().filter_map(|c| last_text(&c.trailers, Key::Error)).take(3).collect();
            let msg = messages::loop_cap(
                &job.branch,
                &job.state,
                n,
                f.loop_hard.value,
                &errors,
                &ctx.opts.runner_id,
                ctx.board.remote(),
            )?;
            let why = format!("{} entered {n} times (loop.hard = {})", job.state, f.loop_hard.value);
            escalate(ctx, job, repo, &msg, "baton: loop cap", why)?;
            Ok(None)
        }
    }
}

/// Weigh the task's budget; used up, escalate. Some(the handler's `BATON_BUDGET_*`) when the run
/// may go ahead. Malformed budget or spend values are notices (the value is ignored).
fn check_budget(ctx: &Ctx, job: &Job, repo: &Repo, history: &[CommitInfo]) -> Result<Option<Vec<(String, String)>>> {
    let b = budget::budget(&entries(history), &job.settings.humans, Some(clock::now()));
    for p in &b.problems {
        let mut ev = Event::new(&job.branch, Kind::Notice);
        ev.state = Some(job.state.to_string());
        ev.error = Some(format!("budget: {p}"));
        ctx.emit(ev);
    }
    if b.status != Status::Exhausted {
        return Ok(Some(budget::handler_env(&b)));
    }
    let msg = budget_card(&job.branch, &job.state, &b, &ctx.opts.runner_id, ctx.board.remote())?;
    let why = format!("budget used up ({})", b.reasons.join("; "));
    escalate(ctx, job, repo, &msg, "baton: budget used up", why)?;
    Ok(None)
}

/// `2 runs, 34s of handler time, cost 1.2, 12345 tokens`.
pub fn spent_line(b: &Budget) -> String {
    let s = &b.spent;
    format!("{} runs, {}s of handler time, cost {}, {} tokens", s.runs, s.seconds, s.cost, s.tokens)
}

/// The `blocked` commit written instead of a run when a task's budget is used up, with a decision
/// card: raise the budget (a reset, or a higher limit), accept the partial result, or cancel.
pub fn budget_card(branch: &str, state: &State, b: &Budget, runner_id: &str, remote: Option<&str>) -> Result<Vec<u8>> {
    let mut trailers = vec![
        TrailerArg::reserved(Key::OriginState, state.as_str()),
        TrailerArg::reserved(Key::Escalation, "budget"),
        TrailerArg::reserved(Key::RunnerId, runner_id),
    ];
    if let Some(r) = remote {
        trailers.push(TrailerArg::reserved(Key::Source, format!("git:{r}")));
    }
    // A higher limit for each key that ran out: what was spent plus the old limit again.
    let (l, s) = (&b.limits, &b.spent);
    let mut higher = Vec::new();
    if let Some(n) = l.runs.value.filter(|n| s.runs >= *n) {
        higher.push(format!("--trailer 'dwp-budget-runs: {}'", s.runs.saturating_add(n.max(1))));
    }
    if let Some(n) = l.seconds.value.filter(|n| s.seconds >= *n) {
        higher.push(format!("--trailer 'dwp-budget-seconds: {}'", s.seconds.saturating_add(n.max(60))));
    }
    if let Some(n) = l.cost.value.filter(|n| s.cost >= *n) {
        let more = Money(s.cost.0.saturating_add(n.0.max(1_000_000)));
        higher.push(format!("--trailer 'dwp-budget-cost: {more}'"));
    }
    let since = match &b.since {
        Some(id) => format!("since the budget reset {}", &id[..id.len().min(12)]),
        None => "since the task began".to_owned(),
    };
    let limits = format!(
        "runs {}, seconds {}, cost {}",
        l.runs.describe(u32::to_string),
        l.seconds.describe(u64::to_string),
        l.cost.describe(Money::to_string)
    );
    let body = format!(
        "## Decision required\n\n\
         Context: this task's budget is used up ({reasons}), so {state} was not run again. Spent {since}: {spent}. Limits: {limits}.\n\n\
         Options:\n\
         A. Raise the budget — a fresh one: git baton send --branch {branch} {state} --trailer 'dwp-budget-reset: yes'; or a higher limit: git baton send --branch {branch} {state} {higher}\n\
         B. Accept the partial result — git baton send --branch {branch} done -m \"WHAT IS LEFT UNDONE\"\n\
         C. Cancel the task — git baton send --branch {branch} canceled -m \"WHY\"\n\n\
         Recommended: B if the work so far is usable; else A, with what to change\n\
         Risk: A spends more (a reset grants the whole budget again); B and C leave the rest undone\n\
         Default: none — the task waits for an answer\n",
        reasons = b.reasons.join("; "),
        spent = spent_line(b),
        higher = higher.join(" "),
    );
    Ok(compose(
        &format!("baton: budget used up before {state}; blocked for a person"),
        Some(&body),
        &trailers,
        &State::reserved_state(Reserved::Blocked),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::budget::{Left, Limit, LimitFrom, Limits, Spent};
    use crate::protocol::trailers::parse;

    #[test]
    fn a_used_up_budget_blocks_with_a_decision_card() {
        let b = Budget {
            status: Status::Exhausted,
            reasons: vec!["runs: 2 of 2 used".into(), "cost: 1.2 of 1 spent".into()],
            limits: Limits {
                runs: Limit { value: Some(2), from: LimitFrom::Task, at: Some("0123456789abcdef".into()) },
                seconds: Limit { value: None, from: LimitFrom::None, at: None },
                cost: Limit { value: Some(Money(1_000_000)), from: LimitFrom::Policy, at: Some("p:1".into()) },
            },
            spent: Spent { runs: 2, seconds: 34, cost: Money(1_200_000), tokens: 99 },
            left: Left::default(),
            since: None,
            problems: vec![],
        };
        let m = budget_card("t1", &State::parse("work").unwrap(), &b, "h:1", Some("origin")).unwrap();
        let t = parse(&m);
        assert_eq!(StateRead::from_trailers(&t), StateRead::Valid(State::parse("blocked").unwrap()));
        for (k, v) in [
            (Key::Escalation, "budget"),
            (Key::OriginState, "work"),
            (Key::RunnerId, "h:1"),
            (Key::Source, "git:origin"),
        ] {
            assert_eq!(last_text(&t, k).as_deref(), Some(v), "{k:?}");
        }
        let text = String::from_utf8_lossy(&m);
        for part in [
            "## Decision required",
            "Context: this task's budget is used up (runs: 2 of 2 used; cost: 1.2 of 1 spent)",
            "Spent since the task began: 2 runs, 34s of handler time, cost 1.2, 99 tokens",
            "Limits: runs 2 (task trailer on 0123456789ab), seconds -, cost 1 (policy p:1)",
            "A. Raise the budget — a fresh one: git baton send --branch t1 work --trailer 'dwp-budget-reset: yes'",
            "git baton send --branch t1 work --trailer 'dwp-budget-runs: 4' --trailer 'dwp-budget-cost: 2.2'",
            "B. Accept the partial result — git baton send --branch t1 done -m",
            "C. Cancel the task — git baton send --branch t1 canceled",
            "Recommended:",
            "Risk:",
            "Default: none",
        ] {
            assert!(text.contains(part), "{part:?} missing: {text}");
        }
    }
}

#[cfg(test)]
mod entry_tests {
    use super::*;
    use crate::protocol::trailers::parse;

    /// A linear history of messages, oldest first; returned newest first, as walked.
    fn history(messages: &[&str]) -> Vec<CommitInfo> {
        let mut out: Vec<CommitInfo> = Vec::new();
        for (i, msg) in messages.iter().enumerate() {
            out.push(CommitInfo {
                id: ObjectId::from_hex(format!("{:040x}", i + 1).as_bytes()).unwrap(),
                tree: ObjectId::empty_tree(gix::hash::Kind::Sha1),
                parents: out.last().map(|p| vec![p.id]).unwrap_or_default(),
                message: msg.as_bytes().to_vec(),
                trailers: parse(msg.as_bytes()),
                committer_time: i as i64 * 10,
                author: "A <a@x>".into(),
            });
        }
        out.reverse();
        out
    }

    #[test]
    fn copies_are_told_apart_from_what_they_copy() {
        let h = history(&[
            "go\n\ndwp-budget-runs: 2\ndwp-cost: 1\ndwp-state: work\n",
            "claim\n\ndwp-origin-state: work\ndwp-run-id: r1\ndwp-state: working\n",
            "retry\n\ndwp-retry-of: r1\ndwp-budget-runs: 2\ndwp-state: work\n",
            "parked\n\ndwp-parked-from: abc\ndwp-state: parked\n",
            "unparked\n\ndwp-budget-runs: 2\ndwp-cost: 1\ndwp-state: work\n",
            "resumed\n\ndwp-resumed-from: abc\ndwp-state: work\n",
            "reset\n\ndwp-budget-reset: yes\ndwp-state: work\n",
        ]);
        let e = entries(&h);
        let copies: Vec<bool> = e.iter().rev().map(|e| e.copy).collect();
        assert_eq!(copies, [false, false, true, false, true, true, false]);
        let claim = &e[5];
        assert_eq!((claim.working.clone(), claim.sets_state), (Some(Some("r1".into())), false));
        assert_eq!((e[6].cost.as_deref(), e[6].budget_runs.as_deref(), e[6].sets_state), (Some("1"), Some("2"), true));
        assert_eq!(e[0].reset.as_deref(), Some("yes"));
        // Counted: one run, the first commit's cost once (the unpark copies it), nothing after the
        // reset.
        let counted = budget::count(&e, false, None);
        assert_eq!((counted.spent.runs, counted.spent.cost), (1, Money(1_000_000)));
        assert_eq!(budget::count(&e, true, None).spent, Default::default());
    }
}
