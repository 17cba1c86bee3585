//! Runs and events: a pure fold over a branch's commits, oldest first.
//!
//! A **run** starts at a claim (a `working` commit) and lasts until the first commit on the same
//! line of history (its *lineage*: each commit continues the lineage of its first parent) that
//! carries a valid state other than `working`:
//! - a handler's answer (`dwp-state: review`) ends it as `succeeded` with that outcome;
//! - a runner's failure record (`dwp-error` / `dwp-exit-code`, state `failed` or the
//!   `dwp-next-on-failure` value), or an answer naming `failed`, ends it as `failed`;
//! - a `stalled` take-over commit ends it as `stalled`;
//! - a `working` commit with the same run id (or none) is a heartbeat and keeps it open;
//! - a `working` commit with a *different* run id ends it as `stalled`, `superseded_by` the new
//!   run (a claim written without the `stalled` record, e.g. by another implementation), and opens
//!   the new run;
//! - commits without `dwp-state` (and commits with an invalid one) are work done during the run.
//!
//! A state commit with no open run on its lineage is an **event**: a person's `send`, a `resume`
//! from a checkpoint, and the rarer records whose run is outside the walked history. Commits
//! without a state and no open run are not reported.
//!
//! The fold keeps one small entry per lineage tip; on a first-parent walk that is one entry, so
//! memory stays flat however long the history is. With `all_parents`, entries stay for every
//! commit (a commit may be the parent of several), which is O(commits) small entries.

use std::collections::HashMap;
use std::rc::Rc;

use crate::policy::Money;
use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved, StateRead};
use crate::repo::{CommitInfo, ObjectId};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    Succeeded,
    Failed,
    Stalled,
    Running,
}

/// One claim of a branch by a runner, up to the commit that ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub run_id: Option<String>,
    /// `dwp-origin-state` of the claim: the state whose handler ran.
    pub origin: Option<String>,
    pub runner: Option<String>,
    /// The `working` commit that claimed the branch.
    pub claim: ObjectId,
    /// Committer time of the claim.
    pub started: i64,
    /// The commit that ended the run (none while running).
    pub end: Option<ObjectId>,
    pub finished: Option<i64>,
    pub result: RunResult,
    /// The state the run ended in (none while running).
    pub outcome: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// The commit that asked for the origin state, and who wrote it ("who decided").
    pub trigger: Option<ObjectId>,
    pub requested_by: Option<String>,
    /// The handler's identity: the author of its answer, or of its last commit when the runner
    /// recorded the end ("who executed", with `runner`).
    pub author: Option<String>,
    /// Commits made during the run, the answer included when the handler wrote it.
    pub commits: u32,
    /// Lease renewals (`working` commits of the same run after the claim).
    pub heartbeats: u32,
    /// `dwp-attempt` of the claim, else of the trigger.
    pub attempt: Option<u32>,
    /// The trigger's `dwp-retry-of`: the trigger is a runner's retry commit and this run is
    /// another attempt of the run it names.
    pub retry_of: Option<String>,
    /// What the runner's failure record that ended the run says (none when the run did not end
    /// in a runner's failure record).
    pub failure: Option<FailureRecord>,
    /// Run id of the claim that replaced this run without a `stalled` record.
    pub superseded_by: Option<String>,
    /// Whether the claim lies in the part of history the caller asked for.
    pub visible: bool,
    /// What the handler reported on its commits and answer (None when no commit reported any).
    pub reported: Option<Box<Reported>>,
    /// The commit that ended the run carries `dwp-escalation`.
    pub escalated: bool,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Succeeded => "succeeded",
            RunResult::Failed => "failed",
            RunResult::Stalled => "stalled",
            RunResult::Running => "running",
        }
    }
}

impl Run {
    pub fn duration_ms(&self) -> Option<u64> {
        self.finished.map(|f| (f - self.started).max(0) as u64 * 1000)
    }
}

/// What a runner's failure record (`dwp-error` / `dwp-exit-code`) says beyond the error itself:
/// how the runner classified it and what became of the task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureRecord {
    /// `dwp-error-type` (none from runners older than the failure policy).
    pub error_type: Option<String>,
    /// The record is a retry commit (`dwp-retry-of`): the task went back to its state for
    /// another attempt.
    pub retry: bool,
    /// `dwp-dead-letter`: the record is a dead letter; the value is the error type.
    pub dead_letter: Option<String>,
}

impl FailureRecord {
    /// The facts of commit `c`, when it is a runner's failure record.
    fn of(c: &CommitInfo) -> Option<FailureRecord> {
        runner_record(c).then(|| FailureRecord {
            error_type: last_text(&c.trailers, Key::ErrorType).map(|v| v.trim().to_owned()),
            retry: last_text(&c.trailers, Key::RetryOf).is_some(),
            dead_letter: last_text(&c.trailers, Key::DeadLetter).map(|v| v.trim().to_owned()),
        })
    }
}

/// What a handler reported during its run: the sums of `dwp-cost` and `dwp-tokens` over its
/// commits and answer (None: no commit reported that key; malformed values count nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    pub cost: Option<Money>,
    pub tokens: Option<u64>,
}

/// What kind of state commit outside a run this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A person (or script) set the state: `git baton send`, a plain commit with `dwp-state`.
    Send,
    /// `git baton resume`: back to a checkpoint's state (`dwp-resumed-from`).
    Resume,
    /// A `stalled` record whose run is not in the walked history.
    Takeover,
    /// A runner's failure record whose run is not in the walked history.
    Failure,
    /// A `dwp-state` value that is not a valid state name.
    Invalid,
    /// The runner's join commit: a parent's children are finished (`dwp-joined`).
    Join,
    /// The runner moved a task to a person without running it (`dwp-escalation` outside a run:
    /// the loop cap, a failed dependency).
    Escalation,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Send => "send",
            EventKind::Resume => "resume",
            EventKind::Takeover => "takeover",
            EventKind::Failure => "failure",
            EventKind::Invalid => "invalid",
            EventKind::Join => "join",
            EventKind::Escalation => "escalation",
        }
    }
}

/// A state commit that is not part of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub commit: ObjectId,
    pub time: i64,
    /// The state of the lineage before this commit.
    pub previous: Option<String>,
    /// The state it sets (the raw value for `Invalid`).
    pub state: Option<String>,
    pub author: String,
    pub resumed_from: Option<String>,
    pub run_id: Option<String>,
    /// For a [`EventKind::Failure`]: what the record says (retry, dead letter, error type).
    pub failure: Option<FailureRecord>,
    pub visible: bool,
    /// It carries `dwp-escalation`: a runner handed the task to a person instead of running it.
    pub escalated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Run(Run),
    Event(Event),
}

impl Record {
    /// The commit that identifies the record: a run's claim, an event's commit.
    pub fn key(&self) -> ObjectId {
        match self {
            Record::Run(r) => r.claim,
            Record::Event(e) => e.commit,
        }
    }
    pub fn visible(&self) -> bool {
        match self {
            Record::Run(r) => r.visible,
            Record::Event(e) => e.visible,
        }
    }
    pub fn started(&self) -> i64 {
        match self {
            Record::Run(r) => r.started,
            Record::Event(e) => e.time,
        }
    }
}

/// What a lineage looks like after one of its commits.
#[derive(Debug, Clone, Default)]
struct Lineage {
    state: Option<Rc<str>>,
    /// The commit that set `state`, its author and `dwp-attempt`.
    decided: Option<Rc<Decided>>,
    /// The open run, a key into `Fold::open`.
    run: Option<u64>,
}

#[derive(Debug)]
struct Decided {
    commit: ObjectId,
    author: String,
    attempt: Option<u32>,
    retry_of: Option<String>,
}

/// The fold: feed commits oldest first with [`Fold::push`], then [`Fold::finish`].
#[derive(Debug)]
pub struct Fold {
    lineages: HashMap<ObjectId, Lineage>,
    open: HashMap<u64, Run>,
    next_slot: u64,
    keep_all: bool,
}

/// The attempt a trigger asked for, as the runner read it (None: not a retry, attempt 1).
fn attempt(c: &CommitInfo) -> Option<u32> {
    last_text(&c.trailers, Key::RetryOf)?;
    last_text(&c.trailers, Key::Attempt).and_then(|v| v.trim().parse().ok())
}

impl Fold {
    /// `all_parents`: the stream holds merged histories too, and a commit may have several
    /// children in it; a first-parent stream lets the fold forget each commit once its child came.
    pub fn new(all_parents: bool) -> Fold {
        Fold { lineages: HashMap::new(), open: HashMap::new(), next_slot: 0, keep_all: all_parents }
    }

    /// Take in the next commit (every parent of it that is in the stream came before it).
    /// Records that end here are appended to `out`.
    pub fn push(&mut self, c: &CommitInfo, visible: bool, out: &mut Vec<Record>) {
        let mut lin = match c.parents.first() {
            Some(p) if self.keep_all => self.lineages.get(p).cloned(),
            Some(p) => self.lineages.remove(p),
            None => None,
        }
        .unwrap_or_default();
        // A run that ended on a sibling lineage (all-parents walks) is no longer open here.
        lin.run = lin.run.filter(|slot| self.open.contains_key(slot));
        match c.state() {
            StateRead::None | StateRead::Invalid(_) if lin.run.is_some() => {
                if let Some(run) = lin.run.and_then(|slot| self.open.get_mut(&slot)) {
                    run.commits += 1;
                    run.author = Some(c.author.clone());
                    add_spend(run, c);
                }
            }
            StateRead::None => {}
            StateRead::Invalid(v) => {
                out.push(Record::Event(event(c, EventKind::Invalid, &lin, &v, visible)));
                lin.state = None;
                lin.decided = None;
            }
            StateRead::Valid(s) if s.is(Reserved::Working) => {
                let run_id = last_text(&c.trailers, Key::RunId);
                if let Some(slot) = lin.run {
                    let same = self
                        .open
                        .get(&slot)
                        .is_some_and(|open| run_id.is_none() || open.run_id.is_none() || open.run_id == run_id);
                    if same {
                        if let Some(open) = self.open.get_mut(&slot) {
                            open.heartbeats += 1;
                        }
                        self.lineages.insert(c.id, lin);
                        return;
                    }
                    if let Some(mut open) = self.open.remove(&slot) {
                        open.result = RunResult::Stalled;
                        open.outcome = Some(Reserved::Stalled.as_str().to_owned());
                        open.end = Some(c.id);
                        open.finished = Some(c.committer_time);
                        open.superseded_by = run_id.clone();
                        out.push(Record::Run(open));
                    }
                }
                let slot = self.next_slot;
                self.next_slot += 1;
                let decided = lin.decided.as_deref();
                self.open.insert(
                    slot,
                    Run {
                        run_id,
                        origin: last_text(&c.trailers, Key::OriginState)
                            .or_else(|| lin.state.as_deref().map(str::to_owned)),
                        runner: last_text(&c.trailers, Key::RunnerId),
                        claim: c.id,
                        started: c.committer_time,
                        end: None,
                        finished: None,
                        result: RunResult::Running,
                        outcome: None,
                        exit_code: None,
                        error: None,
                        trigger: decided.map(|d| d.commit),
                        requested_by: decided.map(|d| d.author.clone()),
                        author: None,
                        commits: 0,
                        heartbeats: 0,
                        attempt: attempt(c).or_else(|| decided.and_then(|d| d.attempt)),
                        retry_of: decided.and_then(|d| d.retry_of.clone()),
                        failure: None,
                        superseded_by: None,
                        visible,
                        reported: None,
                        escalated: false,
                    },
                );
                lin.run = Some(slot);
                lin.state = Some(Rc::from(s.as_str()));
            }
            StateRead::Valid(s) => {
                let ended = lin.run.take().and_then(|slot| self.open.remove(&slot));
                match ended {
                    Some(run) => out.push(Record::Run(end_run(run, c, s.as_str()))),
                    None => {
                        let t = &c.trailers;
                        let kind = if last_text(t, Key::ResumedFrom).is_some() {
                            EventKind::Resume
                        } else if s.is(Reserved::Stalled) {
                            EventKind::Takeover
                        } else if t.iter().any(|t| t.key.eq_ignore_ascii_case(b"dwp-joined")) {
                            EventKind::Join
                        } else if runner_record(c) {
                            EventKind::Failure
                        } else if last_text(t, Key::Escalation).is_some() {
                            EventKind::Escalation
                        } else {
                            EventKind::Send
                        };
                        out.push(Record::Event(event(c, kind, &lin, s.as_str(), visible)));
                    }
                }
                lin.state = Some(Rc::from(s.as_str()));
                lin.decided = Some(Rc::new(Decided {
                    commit: c.id,
                    author: c.author.clone(),
                    attempt: attempt(c),
                    retry_of: last_text(&c.trailers, Key::RetryOf).map(|v| v.trim().to_owned()),
                }));
            }
        }
        self.lineages.insert(c.id, lin);
    }

    /// The end of the stream: runs still open are reported as running, oldest claim first.
    pub fn finish(self, out: &mut Vec<Record>) {
        let mut open: Vec<Run> = self.open.into_values().collect();
        open.sort_by_key(|r| (r.started, r.claim));
        out.extend(open.into_iter().map(Record::Run));
    }
}

/// Written by a runner to record an end it observed (not a handler's answer).
fn runner_record(c: &CommitInfo) -> bool {
    last_text(&c.trailers, Key::Error).is_some() || last_text(&c.trailers, Key::ExitCode).is_some()
}

fn end_run(mut run: Run, c: &CommitInfo, state: &str) -> Run {
    run.end = Some(c.id);
    run.finished = Some(c.committer_time);
    run.outcome = Some(state.to_owned());
    let by_runner = runner_record(c) || state == Reserved::Stalled.as_str();
    run.result = if state == Reserved::Stalled.as_str() {
        RunResult::Stalled
    } else if by_runner || state == Reserved::Failed.as_str() {
        RunResult::Failed
    } else {
        RunResult::Succeeded
    };
    if by_runner {
        run.exit_code = last_text(&c.trailers, Key::ExitCode).and_then(|v| v.trim().parse().ok());
        run.error = last_text(&c.trailers, Key::Error);
        run.failure = FailureRecord::of(c);
    } else {
        run.commits += 1;
        run.author = Some(c.author.clone());
        add_spend(&mut run, c);
    }
    run.escalated = last_text(&c.trailers, Key::Escalation).is_some();
    run
}

/// Add what a handler's commit reports (`dwp-cost`, `dwp-tokens`) to its run.
fn add_spend(run: &mut Run, c: &CommitInfo) {
    let cost = last_text(&c.trailers, Key::Cost).and_then(|v| Money::parse(&v).ok());
    let tokens = last_text(&c.trailers, Key::Tokens).and_then(|v| super::budget::parse_tokens(&v).ok());
    if cost.is_none() && tokens.is_none() {
        return;
    }
    let r = run.reported.get_or_insert_with(Default::default);
    if let Some(m) = cost {
        r.cost = Some(Money(r.cost.unwrap_or_default().0.saturating_add(m.0)));
    }
    if let Some(n) = tokens {
        r.tokens = Some(r.tokens.unwrap_or_default().saturating_add(n));
    }
}

fn event(c: &CommitInfo, kind: EventKind, lin: &Lineage, state: &str, visible: bool) -> Event {
    Event {
        kind,
        commit: c.id,
        time: c.committer_time,
        previous: lin.state.as_deref().map(str::to_owned),
        state: Some(state.to_owned()),
        author: c.author.clone(),
        resumed_from: last_text(&c.trailers, Key::ResumedFrom),
        run_id: last_text(&c.trailers, Key::RunId).or_else(|| last_text(&c.trailers, Key::StalledRun)),
        failure: if kind == EventKind::Failure { FailureRecord::of(c) } else { None },
        visible,
        escalated: last_text(&c.trailers, Key::Escalation).is_some(),
    }
}

#[cfg(test)]
#[path = "runs_tests.rs"]
mod tests;
