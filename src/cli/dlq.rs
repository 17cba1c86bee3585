//! `git baton dlq`: the dead-letter queue — tasks whose retries ran out (their head carries
//! `dwp-dead-letter`), listed, sent back to their state, dropped, or swept back when their error
//! was the provider's and its time has come. What a dead letter says is read purely in
//! [`crate::recovery::deadletter`]; this file walks branches and writes commits.

use std::collections::BTreeMap;

use crate::runner::board::PolicyRead;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use super::output::{branch_selected, usage};
use super::send::refuse_live_lease;
use super::Out;
use crate::policy::{self, Base, FailurePolicy, Policy};
use crate::protocol::message::validate_body;
use crate::protocol::{compose, Reserved, State};
use crate::recovery::deadletter::{
    self, context_summary, is_archived, plan_sweep, retry_body, DeadLetter, HistoryCommit, Sweep, SweepItem, SWEPT_NOTE,
};
use crate::repo::{BranchSource, Cas, CommitInfo, ObjectId, Repo};
use crate::runner::source::{self, Source};
use crate::runner::{breakers, clock, messages};

/// The dead-letter queue: tasks whose attempts ran out. Without a subcommand: `dlq list` (its
/// options below; `git baton dlq list --help` shows the `--json` shape).
///
/// A dead letter is a branch whose head is the runner's last failure event of a task, carrying
/// `dwp-dead-letter: <error type>` with `dwp-attempt`, `dwp-max-attempts`, `dwp-retry-after`
/// (transient, timeout and auth errors), `dwp-priority` and `dwp-breaker` next to the failure's own
/// trailers. Every command here works on local branches; the policy (`dlq.archive_after`, the
/// breaker of a state) is read where the runner reads it: the trusted ref when one is set
/// (`BATON_TRUSTED_REF`, git config `baton.trustedRef`), else each branch's own head.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    List(ListArgs),
    Retry(RetryArgs),
    Drop(DropArgs),
    Sweep(SweepArgs),
}

/// List the dead letters: every local branch whose head carries `dwp-dead-letter`.
///
/// The table shows BRANCH, ERROR TYPE, ATTEMPTS (`used/max`), LAST ATTEMPT (age), RETRY AFTER
/// (`in 5m`, `due`, or `-` for errors a sweep never retries), PRIORITY and ERROR. Dead letters
/// whose last attempt is older than the policy's `dlq.archive_after` (default 7d) are archived:
/// hidden unless `--all`. Malformed trailer values are named on stderr (and in `problems`).
///
/// `--json` prints one object per line (nothing when there are none):
/// `{"task_id": BRANCH, "original_task": {"commit","subject","body"} | null, "error",
/// "error_type", "attempts": N|null, "max_attempts": N|null, "first_attempt": ISO|null,
/// "last_attempt": ISO, "context_summary", "retry_after": ISO|null,
/// "priority": "high"|"medium"|"low", "related_circuit_breaker": NAME|null, "commit": SHA,
/// "origin_state": STATE|null, "archived": bool, "problems": [TEXT]}`.
/// `original_task` is the commit that asked for the failed state in this round (the newest commit
/// on the first-parent history with that `dwp-state` that is not a runner's retry), its body
/// without the `## Attempt N failed` sections retries added; `first_attempt` is the time of the
/// first claim after it, `last_attempt` the dead letter's own; times are ISO 8601 UTC.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Also show archived dead letters (older than `dlq.archive_after`).
    #[arg(long)]
    all: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Only branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    branches: Vec<String>,
}

/// Send a dead letter back to its state for a fresh set of attempts.
///
/// Writes one commit on BRANCH (compare-and-swap, like `send`): `dwp-state: <the failed state>`,
/// the original task's subject and body (without the attempt sections), then a `## Note` section
/// with NOTE when given — what to do differently; the handler reads it in `BATON_BODY`. The task's
/// own trailers (`dwp-priority`, `dwp-next-on-failure`, your own keys…) are carried; the runner's
/// are not, so attempts start again at 1.
///
/// Refused (exit 1, nothing written): a branch whose head is not a dead letter, a dead letter
/// whose original task cannot be found, and a branch a runner holds with a live lease (a handler of
/// the failure state claimed it); `--force` writes over that lease (the run's result then goes to
/// `refs/baton/rejected/<branch>/<run-id>`). Prints the new commit id (`--json`:
/// `{"branch","commit","parent","state","dead_letter"}`).
#[derive(clap::Args, Debug)]
pub struct RetryArgs {
    /// The branch whose head is the dead letter.
    #[arg(value_name = "BRANCH")]
    branch: String,
    /// A note for the next attempt, added to the task's body as a `## Note` section.
    #[arg(short = 'm', long = "message", value_name = "NOTE")]
    message: Option<String>,
    /// Print a JSON object instead of the commit id.
    #[arg(long)]
    json: bool,
    /// Write even though a runner holds a live lease on the branch.
    #[arg(long)]
    force: bool,
}

/// Give up on a dead letter: one commit moving BRANCH to `canceled`, with WHY as its body.
///
/// Refused like `dlq retry` (exit 1, nothing written): a head that is not a dead letter, a live
/// lease (unless `--force`). Prints the new commit id (`--json`:
/// `{"branch","commit","parent","state","dead_letter"}`).
#[derive(clap::Args, Debug)]
pub struct DropArgs {
    /// The branch whose head is the dead letter.
    #[arg(value_name = "BRANCH")]
    branch: String,
    /// Why it is dropped (the body of the `canceled` commit).
    #[arg(short = 'm', long = "message", value_name = "WHY")]
    message: Option<String>,
    /// Print a JSON object instead of the commit id.
    #[arg(long)]
    json: bool,
    /// Write even though a runner holds a live lease on the branch.
    #[arg(long)]
    force: bool,
}

/// Retry the dead letters a later try can fix by itself.
///
/// Sends back (as `dlq retry` with the note `swept: retry_after passed`) every dead letter whose
/// error type is transient or timeout, whose `dwp-retry-after` has passed, and whose circuit
/// breaker (its `dwp-breaker`, else its state's `breaker` in the policy) is closed. Never swept:
/// auth, logic and state errors (a person decides: `dlq retry -m NOTE`), archived dead letters,
/// and any while their breaker is open. A half-open breaker nobody probes gets one task (highest
/// priority, then oldest), so that it can close again. `git baton watch` runs this every
/// `dlq.sweep` (policy `[defaults]`, default 15m).
///
/// Prints one line per dead letter: `retried BRANCH (STATE): REASON -> COMMIT` or
/// `skipped BRANCH: REASON` (`would retry` with `--dry-run`). `--json`: one object per line,
/// `{"branch","action":"retried"|"would-retry"|"skipped"|"error","reason","origin_state",
/// "error_type","breaker","commit":SHA|null}`. Exits 1 when a retry could not be written.
#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Only say what would be retried.
    #[arg(long)]
    dry_run: bool,
    /// Only branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    branches: Vec<String>,
}

pub fn cmd_dlq(cwd: &Path, args: Args) -> Result<ExitCode> {
    match args.action {
        None => cmd_list(cwd, args.list),
        Some(Action::List(a)) => cmd_list(cwd, a),
        Some(Action::Retry(a)) => cmd_retry(cwd, a),
        Some(Action::Drop(a)) => cmd_drop(cwd, a),
        Some(Action::Sweep(a)) => cmd_sweep(cwd, a),
    }
}

/// Most commits walked back from a dead letter to find its task.
const WALK_LIMIT: usize = 10_000;

/// Read the dead letter `id` of `branch`: the commit itself, and its first-parent history back to
/// the task it gave up on. None when `id` carries no `dwp-dead-letter`.
fn read_letter(repo: &Repo, branch: &str, id: ObjectId) -> Result<Option<DeadLetter>> {
    let head = repo.commit(id)?;
    if !deadletter::is_dead_letter(&head.trailers) {
        return Ok(None);
    }
    let origin = crate::protocol::state::last_text(&head.trailers, crate::protocol::Key::OriginState)
        .map(|o| o.trim().to_owned());
    let mut walked: Vec<CommitInfo> = vec![head];
    while walked.len() < WALK_LIMIT {
        let Some(parent) = walked.last().and_then(|c| c.parents.first().copied()) else { break };
        let Ok(c) = repo.commit(parent) else { break }; // a shallow or damaged history: stop here
        let found = origin.as_deref().is_some_and(|o| deadletter::is_original(&c.trailers, o));
        walked.push(c);
        if found || origin.is_none() {
            break;
        }
    }
    let ids: Vec<String> = walked.iter().map(|c| c.id.to_string()).collect();
    let history: Vec<HistoryCommit<'_>> = walked
        .iter()
        .zip(&ids)
        .map(|(c, id)| HistoryCommit { id, message: &c.message, trailers: &c.trailers, time: c.committer_time })
        .collect();
    Ok(deadletter::read(branch, &history))
}

/// The policy of each branch, read where the runner reads it, cached per tree.
struct Policies {
    source: Source,
    cache: crate::runner::board::Cache,
}

impl Policies {
    fn new(repo: &Repo, trusted_ref: Option<&str>) -> Result<Policies> {
        Ok(Policies { source: source::configured(repo, trusted_ref, None)?, cache: Default::default() })
    }

    /// The failure policy of `state` for a head with `tree`, and why the policy file could not be
    /// read (the built-ins then apply).
    fn failure(&mut self, repo: &Repo, tree: ObjectId, state: &str) -> (FailurePolicy, Option<String>) {
        let tree = self.source.tree_for(tree);
        match self.cache.policy(repo, tree) {
            PolicyRead::Ok(p) => (Policy::effective_or_base(Some(&p), state, &Base::default()).failure, None),
            PolicyRead::None => (Policy::effective_or_base(None, state, &Base::default()).failure, None),
            PolicyRead::Broken(why) => (FailurePolicy::built_in(state), Some(format!("policy is broken: {why}"))),
        }
    }
}

/// A dead letter on the board, with what its policy says.
struct Listed {
    letter: DeadLetter,
    archive_after: u64,
    /// The breaker it answers to: its `dwp-breaker`, else its state's.
    breaker: String,
    policy_problem: Option<String>,
}

/// Every selected local branch whose head is a dead letter, sorted by branch name. A branch that
/// cannot be read is skipped with a warning.
fn collect(repo: &Repo, policies: &mut Policies, select: &[String]) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for head in repo.branches(&BranchSource::Local)? {
        if !branch_selected(select, &head.branch) {
            continue;
        }
        let letter = match read_letter(repo, &head.branch, head.id) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("{}: cannot be read, skipped: {e:#}", head.branch);
                continue;
            }
        };
        let tree = repo.commit(head.id)?.tree;
        let state = letter.origin_state.clone().unwrap_or_default();
        let (failure, policy_problem) = policies.failure(repo, tree, &state);
        let breaker = letter.breaker.clone().unwrap_or(failure.breaker.value);
        out.push(Listed { letter, archive_after: failure.dlq_archive_after.value, breaker, policy_problem });
    }
    out.sort_by(|a, b| a.letter.branch.cmp(&b.letter.branch));
    Ok(out)
}

#[derive(Serialize)]
struct OriginalJson<'a> {
    commit: &'a str,
    subject: &'a str,
    body: &'a str,
}

#[derive(Serialize)]
struct EntryJson<'a> {
    task_id: &'a str,
    original_task: Option<OriginalJson<'a>>,
    error: &'a str,
    error_type: &'a str,
    attempts: Option<u32>,
    max_attempts: Option<u32>,
    first_attempt: Option<String>,
    last_attempt: String,
    context_summary: String,
    retry_after: Option<String>,
    priority: &'static str,
    related_circuit_breaker: Option<&'a str>,
    commit: &'a str,
    origin_state: Option<&'a str>,
    archived: bool,
    problems: Vec<String>,
}

fn problems(l: &Listed) -> Vec<String> {
    l.letter.problems.iter().cloned().chain(l.policy_problem.clone()).collect()
}

fn cmd_list(cwd: &Path, args: ListArgs) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let mut policies = Policies::new(&repo, None)?;
    let now = clock::now();
    let all = collect(&repo, &mut policies, &args.branches)?;
    let (shown, hidden): (Vec<&Listed>, Vec<&Listed>) =
        all.iter().partition(|l| args.all || !is_archived(&l.letter, now, l.archive_after));
    for l in &shown {
        for p in problems(l) {
            tracing::warn!("{}: {p}", l.letter.branch);
        }
    }
    let mut out = Out::new();
    if args.json {
        for l in &shown {
            let d = &l.letter;
            out.json(&EntryJson {
                task_id: &d.branch,
                original_task: d.original.as_ref().map(|o| OriginalJson {
                    commit: &o.commit,
                    subject: &o.subject,
                    body: &o.body,
                }),
                error: &d.error,
                error_type: &d.error_type,
                attempts: d.attempts,
                max_attempts: d.max_attempts,
                first_attempt: d.first_attempt.map(clock::iso_utc),
                last_attempt: clock::iso_utc(d.last_attempt),
                context_summary: context_summary(d),
                retry_after: d.retry_after.map(clock::iso_utc),
                priority: d.priority.as_str(),
                related_circuit_breaker: d.breaker.as_deref(),
                commit: &d.commit,
                origin_state: d.origin_state.as_deref(),
                archived: is_archived(d, now, l.archive_after),
                problems: problems(l),
            })?;
        }
    } else if !shown.is_empty() {
        print_table(&mut out, &shown, now)?;
    }
    out.flush()?;
    match (shown.len(), hidden.len()) {
        (0, 0) => tracing::info!("no dead letters"),
        (_, 0) => {}
        (_, n) => tracing::info!("{n} archived dead letter(s) hidden (older than dlq.archive_after); --all shows them"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(out: &mut Out, rows: &[&Listed], now: i64) -> Result<()> {
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|l| {
            let d = &l.letter;
            let n = |v: Option<u32>| v.map_or("?".to_owned(), |n| n.to_string());
            let mut age = format!("{} ago", clock::human_age(now - d.last_attempt));
            if is_archived(d, now, l.archive_after) {
                age.push_str(" (archived)");
            }
            let retry_after = match d.retry_after {
                None => "-".to_owned(),
                Some(t) if t <= now => "due".to_owned(),
                Some(t) => format!("in {}", clock::human_age(t - now)),
            };
            [
                d.branch.clone(),
                d.error_type.clone(),
                format!("{}/{}", n(d.attempts), n(d.max_attempts)),
                age,
                retry_after,
                d.priority.to_string(),
                d.error.clone(),
            ]
        })
        .collect();
    let head = ["BRANCH", "ERROR TYPE", "ATTEMPTS", "LAST ATTEMPT", "RETRY AFTER", "PRIORITY", "ERROR"];
    let mut widths = head.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: [&str; 7]| {
        let mut s = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:w$}  "));
            }
        }
        s
    };
    out.line(&line(head))?;
    for row in &cells {
        out.line(&line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5], &row[6]]))?;
    }
    Ok(())
}

/// The dead letter a `retry` or `drop` acts on: the branch head, or — when a handler of the failure
/// state claimed it (`working` on top) and `--force` passed its live lease — the claim's parent.
/// Returns the branch head and the dead letter.
fn target(repo: &Repo, branch: &str, force: bool) -> Result<(ObjectId, DeadLetter)> {
    let (branch, _, head) = super::send::branch_head(repo, branch)?;
    let branch = branch.as_str();
    if !force {
        refuse_live_lease(repo, branch, head)?;
    }
    let commit = repo.commit(head)?;
    let claimed = commit.state().valid().is_some_and(|s| s.is(Reserved::Working));
    let candidate = match commit.parents.first() {
        Some(&parent) if claimed => parent,
        _ => head,
    };
    match read_letter(repo, branch, candidate)? {
        Some(l) => Ok((head, l)),
        None => {
            let state = commit.state().text().map_or("no state".to_owned(), |s| format!("state {s}"));
            bail!(
                "branch {branch:?} is not a dead letter: its head {} ({state}) carries no dwp-dead-letter; nothing was written",
                &head.to_string()[..12]
            )
        }
    }
}

/// The commit message that sends a dead letter back to its state.
fn retry_message(letter: &DeadLetter, note: Option<&str>) -> Result<(State, Vec<u8>)> {
    let origin = letter
        .origin_state
        .as_deref()
        .ok_or_else(|| anyhow!("the dead letter does not say which state failed (dwp-origin-state)"))?;
    let state = State::parse(origin)?;
    let Some(task) = &letter.original else {
        bail!(
            "the commit that asked for {origin} is not on the branch's first-parent history; send the task again with `git baton send {origin}`"
        );
    };
    let carried = messages::carried(&task.trailers);
    let body = retry_body(&task.body, note);
    let subject = if task.subject.is_empty() { format!("baton: {origin}") } else { task.subject.clone() };
    let message = compose(&subject, (!body.is_empty()).then_some(body.as_str()), &carried, &state)
        .map_err(|e| usage(format!("the retry commit cannot be written: {e}")))?;
    Ok((state, message))
}

/// Append `message` to `branch` by compare-and-swap from `head`.
fn append(repo: &Repo, branch: &str, head: ObjectId, message: &[u8], reflog: &str) -> Result<ObjectId> {
    let refname = format!("refs/heads/{branch}");
    let (id, cas) = repo.append_commit(&refname, head, message, clock::commit_time(), reflog)?;
    if let Cas::Moved { .. } = cas {
        bail!("branch {branch:?} moved meanwhile; nothing was written, try again");
    }
    Ok(id)
}

#[derive(Serialize)]
struct Written<'a> {
    branch: &'a str,
    commit: String,
    parent: String,
    state: String,
    dead_letter: &'a str,
}

fn print_written(json: bool, w: &Written<'_>) -> Result<()> {
    let mut out = Out::new();
    if json {
        out.json(w)?;
    } else {
        out.line(&w.commit)?;
    }
    out.flush()?;
    Ok(())
}

fn note_arg(m: Option<&str>) -> Result<Option<String>> {
    match m {
        None => Ok(None),
        Some(n) => Ok(Some(validate_body(n.as_bytes()).map_err(|e| usage(e.to_string()))?.trim().to_owned())),
    }
}

fn cmd_retry(cwd: &Path, args: RetryArgs) -> Result<ExitCode> {
    let note = note_arg(args.message.as_deref())?;
    let repo = Repo::discover(cwd)?;
    let branch = args.branch.strip_prefix("refs/heads/").unwrap_or(&args.branch).to_owned();
    let (head, letter) = target(&repo, &branch, args.force)?;
    let (state, message) = retry_message(&letter, note.as_deref())
        .with_context(|| format!("cannot retry branch {branch:?}; nothing was written"))?;
    let id = append(&repo, &branch, head, &message, &format!("baton: dlq retry {state}"))?;
    print_written(
        args.json,
        &Written {
            branch: &branch,
            commit: id.to_string(),
            parent: head.to_string(),
            state: state.to_string(),
            dead_letter: &letter.commit,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_drop(cwd: &Path, args: DropArgs) -> Result<ExitCode> {
    let why = note_arg(args.message.as_deref())?.filter(|w| !w.is_empty());
    let repo = Repo::discover(cwd)?;
    let branch = args.branch.strip_prefix("refs/heads/").unwrap_or(&args.branch).to_owned();
    let (head, letter) = target(&repo, &branch, args.force)?;
    let origin = letter.origin_state.as_deref().unwrap_or("a task");
    let body = why.unwrap_or_else(|| format!("Dropped from the dead-letter queue: {}", context_summary(&letter)));
    let state = State::reserved_state(Reserved::Canceled);
    let message = compose(&format!("baton: dead letter of {origin} dropped"), Some(&body), &[], &state)
        .map_err(|e| usage(format!("-m: {e}")))?;
    let id = append(&repo, &branch, head, &message, "baton: dlq drop")?;
    print_written(
        args.json,
        &Written {
            branch: &branch,
            commit: id.to_string(),
            parent: head.to_string(),
            state: state.to_string(),
            dead_letter: &letter.commit,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// What a sweep did with one dead letter.
#[derive(Debug, Serialize)]
pub(crate) struct Swept {
    pub branch: String,
    /// `retried`, `would-retry`, `skipped` or `error`.
    pub action: &'static str,
    pub reason: String,
    pub origin_state: Option<String>,
    pub error_type: String,
    pub breaker: String,
    pub commit: Option<String>,
}

/// Sweep the dead letters of the selected local branches at `now` (see [`SweepArgs`]).
pub(crate) fn sweep(
    repo: &Repo,
    trusted_ref: Option<&str>,
    select: &[String],
    dry_run: bool,
    now: i64,
) -> Result<Vec<Swept>> {
    let mut policies = Policies::new(repo, trusted_ref)?;
    let listed = collect(repo, &mut policies, select)?;
    let admits: BTreeMap<String, crate::recovery::Admit> =
        breakers::read_all(repo, &BranchSource::Local)?.into_iter().map(|(name, b)| (name, b.admit(now))).collect();
    let items: Vec<SweepItem<'_>> = listed
        .iter()
        .map(|l| SweepItem { letter: &l.letter, breaker: &l.breaker, archive_after: l.archive_after })
        .collect();
    let decisions = plan_sweep(&items, now, &admits);
    let mut out = Vec::new();
    for (l, decision) in listed.iter().zip(decisions) {
        let d = &l.letter;
        let mut swept = Swept {
            branch: d.branch.clone(),
            action: "skipped",
            reason: String::new(),
            origin_state: d.origin_state.clone(),
            error_type: d.error_type.clone(),
            breaker: l.breaker.clone(),
            commit: None,
        };
        match (decision, &l.policy_problem) {
            (Sweep::Skip(why), _) => swept.reason = why,
            (Sweep::Retry { .. }, Some(problem)) => swept.reason = problem.clone(),
            (Sweep::Retry { probe }, None) => {
                swept.reason = match probe {
                    false => "retry_after passed".to_owned(),
                    true => format!("retry_after passed; sent to probe half-open circuit breaker {}", l.breaker),
                };
                if dry_run {
                    swept.action = "would-retry";
                } else {
                    let head = repo.ref_id(&format!("refs/heads/{}", d.branch))?;
                    let written = match head.map(|h| h.to_string()) {
                        Some(h) if h == d.commit => retry_message(d, Some(SWEPT_NOTE)).and_then(|(state, msg)| {
                            let head = head.expect("just read");
                            append(repo, &d.branch, head, &msg, &format!("baton: dlq sweep {state}"))
                        }),
                        _ => Err(anyhow!("the branch moved meanwhile; left as it is")),
                    };
                    match written {
                        Ok(id) => {
                            swept.action = "retried";
                            swept.commit = Some(id.to_string());
                        }
                        Err(e) => {
                            swept.action = "error";
                            swept.reason = format!("{e:#}");
                        }
                    }
                }
            }
        }
        out.push(swept);
    }
    Ok(out)
}

fn cmd_sweep(cwd: &Path, args: SweepArgs) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let swept = sweep(&repo, None, &args.branches, args.dry_run, clock::now())?;
    let mut out = Out::new();
    for s in &swept {
        if args.json {
            out.json(s)?;
        } else {
            out.line(&sweep_line(s))?;
        }
    }
    out.flush()?;
    let retried = swept.iter().filter(|s| matches!(s.action, "retried" | "would-retry")).count();
    let errors = swept.iter().filter(|s| s.action == "error").count();
    let verb = if args.dry_run { "would retry" } else { "retried" };
    tracing::info!("dlq sweep: {verb} {retried} of {} dead letter(s)", swept.len());
    Ok(if errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn sweep_line(s: &Swept) -> String {
    let state = s.origin_state.as_deref().unwrap_or("?");
    match (s.action, &s.commit) {
        ("retried", Some(c)) => format!("retried {} ({state}): {} -> {}", s.branch, s.reason, &c[..12.min(c.len())]),
        ("would-retry", _) => format!("would retry {} ({state}): {}", s.branch, s.reason),
        ("error", _) => format!("error {}: {}", s.branch, s.reason),
        _ => format!("skipped {}: {}", s.branch, s.reason),
    }
}

/// How often `watch` sweeps: `dlq.sweep` of the policy's `[defaults]`, read from the trusted ref
/// when one is set, else from HEAD (the built-in 15 minutes without a policy).
fn sweep_every(repo: &Repo, trusted_ref: Option<&str>) -> Result<Duration> {
    let tree = match source::configured(repo, trusted_ref, None)? {
        Source::Trusted { tree, .. } => Some(tree),
        Source::Task => match repo.head_id()? {
            Some(id) => Some(repo.commit(id)?.tree),
            None => None,
        },
    };
    let loaded = match tree {
        Some(t) => policy::load(repo, t)?,
        None => None,
    };
    let every = Policy::effective_or_base(loaded.as_ref(), "", &Base::default()).failure.dlq_sweep.value;
    Ok(Duration::from_secs(every.max(1)))
}

/// The sweep from `watch`: every outcome logged, errors too, never fatal. Returns how long until
/// the next sweep.
pub(crate) fn watch_sweep(cwd: &Path, trusted_ref: Option<&str>, select: &[String]) -> Duration {
    let default = Duration::from_secs(policy::failure::built_in::SWEEP);
    let repo = match Repo::discover(cwd) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("dlq sweep: {e:#}");
            return default;
        }
    };
    let every = sweep_every(&repo, trusted_ref).unwrap_or_else(|e| {
        tracing::warn!("dlq sweep: cannot read dlq.sweep ({e:#}); sweeping every {}s", default.as_secs());
        default
    });
    match sweep(&repo, trusted_ref, select, false, clock::now()) {
        Ok(swept) => {
            for s in &swept {
                match s.action {
                    "retried" => tracing::info!("dlq sweep: {}", sweep_line(s)),
                    "error" => tracing::warn!("dlq sweep: {}", sweep_line(s)),
                    _ => tracing::debug!("dlq sweep: {}", sweep_line(s)),
                }
            }
        }
        Err(e) => tracing::warn!("dlq sweep failed: {e:#}"),
    }
    every
}
