//! `git baton send`: hand a branch to the next state with a commit that keeps the tree.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use super::output::usage;
use super::Out;
use crate::humans::envelope::{Envelope, Input, Risk};
use crate::protocol::message::validate_body;
use crate::protocol::{compose, Key, Reserved, State, TrailerArg};
use crate::repo::{Cas, Repo};
use crate::runner::clock;

/// Write a state commit: same tree as the branch head, message `subject / body / trailers` with
/// `dwp-state: STATE` last, moved onto the branch by compare-and-swap. Works on any branch (checked
/// out or not) and never touches a working tree or index. Inside a handler (detached worktree,
/// `BATON_RUN_ID`/`BATON_BRANCH` set) it commits on the handler's HEAD instead, with what the
/// handler staged (as AYNIG's `set-state` does), and the runner publishes the answer. Prints the new commit id (`--json`:
/// `{"branch","commit","parent","state"}`).
///
/// `--not-before DATE` schedules the state: runners leave the branch alone until then (a
/// `dwp-not-before: <epoch seconds>` trailer; `git baton status` shows `scheduled in 2h`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The next state (refused: `working`, and names outside `[A-Za-z0-9][A-Za-z0-9._-]*`).
    #[arg(value_name = "STATE")]
    state: String,
    #[command(flatten)]
    common: SendOptions,
}

#[derive(clap::Args, Debug)]
pub struct SendOptions {
    /// The body: the prompt or note for whoever handles the state (`--prompt`: AYNIG's spelling).
    #[arg(short = 'm', long = "message", visible_alias = "prompt", value_name = "BODY", group = "body")]
    message: Option<String>,
    /// Read the body from a file (`-` for standard input; `--prompt-file`: AYNIG's spelling).
    #[arg(short = 'F', long = "file", visible_alias = "prompt-file", value_name = "FILE", group = "body")]
    file: Option<String>,
    /// Read the body from standard input (`--prompt-stdin`: AYNIG's spelling).
    #[arg(long, visible_alias = "prompt-stdin", group = "body")]
    stdin: bool,
    /// Append the decision card in FILE to the body (`## Decision required` with `Context:`,
    /// `Options:` and lines `A. …`, `B. …`, `Recommended:`, `Risk:`, `Default:`), checked first.
    #[arg(long = "decision-card", value_name = "FILE")]
    decision_card: Option<String>,
    /// Write the body as a task envelope (`## Task: <branch>`, `Goal:`, `Acceptance Criteria:`,
    /// `Inputs:`, `Budget:`, `Risk Level:`, `Stop Conditions:`) with this goal; `-m`/`-F` text
    /// follows it under `## Notes`. The runner hands it to handlers as `BATON_TASK_JSON`.
    #[arg(long, value_name = "TEXT")]
    goal: Option<String>,
    /// An acceptance criterion of the envelope (repeatable; needs `--goal`).
    #[arg(long = "accept", value_name = "TEXT")]
    accept: Vec<String>,
    /// An input of the envelope, `PATH` or `PATH=SUMMARY` (repeatable; needs `--goal`).
    #[arg(long = "input", value_name = "PATH[=SUMMARY]")]
    inputs: Vec<String>,
    /// The envelope's budget, free text such as `3 runs, 30m, $2` (needs `--goal`).
    #[arg(long, value_name = "TEXT")]
    budget: Option<String>,
    /// The envelope's risk level: `low`, `medium` or `high` (needs `--goal`).
    #[arg(long, value_name = "LEVEL")]
    risk: Option<String>,
    /// A stop condition of the envelope (repeatable; needs `--goal`).
    #[arg(long = "stop-if", value_name = "TEXT")]
    stop_if: Vec<String>,
    /// The subject line (default `baton: STATE`).
    #[arg(long, value_name = "S")]
    subject: Option<String>,
    /// An extra trailer `Key: value` (or `Key=value`), repeatable; written before `dwp-state`.
    /// (`dwp-not-before` only with a value in epoch seconds; `dwp-budget-runs`, `dwp-tokens` a
    /// whole number, `dwp-budget-seconds` seconds or a duration such as `2h`, `dwp-budget-cost`,
    /// `dwp-cost` an amount such as `12.5`, `dwp-budget-reset` `yes`.)
    #[arg(long = "trailer", value_name = "K: V")]
    trailers: Vec<String>,
    /// No runner takes the state before this time: `now`, `in N seconds|minutes|hours|days|weeks`
    /// (`in 2 hours`, `in 30m`), or an absolute date git reads (`2026-11-23`,
    /// `2026-11-23T09:00:00Z`, `@1700000000`; UTC unless it has an offset). Written as `dwp-not-before: <epoch seconds>`; a past time is due at once.
    #[arg(long = "not-before", value_name = "DATE")]
    not_before: Option<String>,
    /// The branch to write to (default: the checked-out branch).
    #[arg(short, long, value_name = "B")]
    branch: Option<String>,
    /// Print `{"branch","commit","parent","state"}` instead of the commit id.
    #[arg(long)]
    json: bool,
    /// Write even though a runner holds a live lease on the branch: your commit stands, and the
    /// running handler's result is kept on `refs/baton/rejected/<branch>/<run-id>` instead.
    #[arg(long)]
    force: bool,
    /// Commit what is staged in the checked-out branch's index, as AYNIG's `git commit` does
    /// (set by the `aynig` command line; inside a handler the index is always committed).
    #[arg(skip)]
    pub(crate) commit_staged: bool,
    /// Push the branch to this remote after writing (AYNIG's `set-state --dwp-remote`).
    #[arg(skip)]
    pub(crate) push_to: Option<String>,
    /// Called as `set-state` (AYNIG's command): HEAD's `dwp-source` names the push remote.
    #[arg(skip)]
    pub(crate) set_state: bool,
}

/// `set-state --dwp-state STATE …` (AYNIG's spelling). Inside a handler it commits what the
/// handler staged, as AYNIG's does (the runner publishes the commit). Outside a handler, the
/// remote named by `--dwp-remote` (else by HEAD's `dwp-source: git:<name>`) gets the branch
/// pushed after the commit, which then carries `dwp-source: git:<name>`, as AYNIG writes it.
#[derive(clap::Args, Debug)]
pub struct SetStateArgs {
    #[arg(long = "dwp-state", value_name = "STATE")]
    dwp_state: String,
    /// Push the branch to this remote after the commit (outside a handler; inside one the runner
    /// publishes).
    #[arg(long = "dwp-remote", value_name = "NAME")]
    dwp_remote: Option<String>,
    #[command(flatten)]
    common: SendOptions,
}

impl SetStateArgs {
    pub fn into_send(self) -> Args {
        let mut common = self.common;
        common.push_to = self.dwp_remote;
        common.set_state = true;
        Args { state: self.dwp_state, common }
    }
    /// The `aynig` command line: also commits the checked-out branch's staged changes.
    pub fn into_aynig_send(self) -> Args {
        let mut args = self.into_send();
        args.common.commit_staged = true;
        args
    }
}

#[derive(Serialize)]
struct Sent {
    branch: String,
    commit: String,
    parent: String,
    state: String,
}

fn read_body(opts: &SendOptions) -> Result<Option<Vec<u8>>> {
    let from_stdin = || -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(crate::protocol::message::MAX_MESSAGE_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .context("reading the body from standard input")?;
        Ok(buf)
    };
    Ok(match (&opts.message, &opts.file, opts.stdin) {
        (Some(m), _, _) => Some(m.clone().into_bytes()),
        (_, Some(f), _) if f == "-" => Some(from_stdin()?),
        (_, Some(f), _) => Some(std::fs::read(f).with_context(|| format!("reading body file {f}"))?),
        (_, _, true) => Some(from_stdin()?),
        _ => None,
    })
}

/// A person's commit on a branch a runner holds would be reverted by the run's answer or fenced
/// off only by luck: refuse it with the run and its expiry, unless `--force`.
pub fn refuse_live_lease(repo: &Repo, branch: &str, head: crate::repo::ObjectId) -> Result<()> {
    let now = clock::now();
    if let Some(lease) = crate::runner::board::live_lease(repo, branch, head, now)? {
        let left = lease.expires_at() - now;
        bail!(
            "branch {branch:?} is held by run {} of runner {} (lease ends in {left}s); wait for it, or pass --force (the run's result then goes to refs/baton/rejected/)",
            lease.run_id.as_deref().unwrap_or("unknown"),
            lease.runner_id.as_deref().unwrap_or("unknown"),
        );
    }
    Ok(())
}

/// Inside a handler's worktree (HEAD detached, `BATON_RUN_ID` and `BATON_BRANCH` set by the
/// runner), a command without `--branch` — or with `--branch $BATON_BRANCH` — acts on the handler's
/// HEAD: the branch it names.
pub fn handler_branch(repo: &Repo, explicit: Option<&str>) -> Result<Option<String>> {
    let (Ok(_run), Ok(branch)) = (std::env::var("BATON_RUN_ID"), std::env::var("BATON_BRANCH")) else {
        return Ok(None);
    };
    if repo.is_bare() || repo.head_branch()?.is_some() {
        return Ok(None);
    }
    match explicit.map(|b| b.strip_prefix("refs/heads/").unwrap_or(b)) {
        None => Ok(Some(branch)),
        Some(b) if b == branch => Ok(Some(branch)),
        Some(_) => Ok(None),
    }
}

/// A branch name given on the command line must be one git accepts (`refs/heads/<name>`); anything
/// else is a usage error with a human message, not a ref-store error.
pub fn check_branch_name(b: &str) -> Result<()> {
    let full = format!("refs/heads/{b}");
    let valid: Result<gix::refs::FullName, _> = full.as_str().try_into();
    if b.is_empty() || valid.is_err() {
        return Err(usage(format!(
            "invalid branch name {b:?}: git does not allow it (no '..', spaces, '~^:?*[\\', leading '-' or '.', trailing '/' or '.lock')"
        )));
    }
    if b.starts_with('-') {
        return Err(usage(format!("invalid branch name {b:?}: it starts with '-'")));
    }
    // `refs/heads/HEAD` is a valid ref, but git refuses it as a branch (`git branch HEAD`).
    if b == "HEAD" {
        return Err(usage("invalid branch name \"HEAD\": git does not allow it as a branch"));
    }
    Ok(())
}

/// The branch a command acts on: `--branch`, else the checked-out branch (errors name why not).
/// A branch a person's command writes to or reads: its name (checked; `refs/heads/` allowed),
/// its ref and its head commit. A missing branch or a head that is not a commit is an error.
pub fn branch_head(repo: &Repo, branch: &str) -> Result<(String, String, crate::repo::ObjectId)> {
    let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
    check_branch_name(branch)?;
    let refname = format!("refs/heads/{branch}");
    let Some(head) = repo.ref_id(&refname)? else {
        bail!("branch {branch:?} does not exist or has no commits yet");
    };
    if let Some(kind) = repo.non_commit_head(&refname)? {
        bail!("branch {branch:?} points to a {kind}, not a commit; nothing was written");
    }
    Ok((branch.to_owned(), refname, head))
}

pub fn target_branch(repo: &Repo, explicit: Option<&str>) -> Result<String> {
    if let Some(b) = explicit {
        let b = b.strip_prefix("refs/heads/").unwrap_or(b);
        check_branch_name(b)?;
        return Ok(b.to_owned());
    }
    if repo.is_bare() {
        return Err(usage("a bare repository has no checked-out branch; pass --branch"));
    }
    match repo.head_branch()? {
        Some(b) => Ok(b),
        None => Err(usage("HEAD is detached; pass --branch")),
    }
}

/// The envelope the flags describe (its id filled in later), or none without `--goal`; envelope
/// flags without `--goal` and a bad `--risk` are usage errors.
fn envelope_args(opts: &SendOptions) -> Result<Option<Envelope>> {
    let Some(goal) = opts.goal.as_deref() else {
        let any = !opts.accept.is_empty()
            || !opts.inputs.is_empty()
            || opts.budget.is_some()
            || opts.risk.is_some()
            || !opts.stop_if.is_empty();
        if any {
            return Err(usage(
                "--accept, --input, --budget, --risk and --stop-if describe a task envelope: pass --goal too",
            ));
        }
        return Ok(None);
    };
    if goal.trim().is_empty() {
        return Err(usage("--goal is empty"));
    }
    let risk = match opts.risk.as_deref() {
        Some(r) => Some(Risk::parse(r).ok_or_else(|| usage(format!("--risk must be low, medium or high, not {r:?}")))?),
        None => None,
    };
    let nonempty = |flag: &str, v: &[String]| -> Result<Vec<String>> {
        v.iter()
            .map(|s| match s.trim() {
                "" => Err(usage(format!("{flag} is empty"))),
                t => Ok(t.to_owned()),
            })
            .collect()
    };
    let inputs = nonempty("--input", &opts.inputs)?.iter().map(|a| Input::from_arg(a)).collect::<Vec<_>>();
    if inputs.iter().any(|i| i.path.is_empty()) {
        return Err(usage("--input needs a path before '='"));
    }
    Ok(Some(Envelope {
        id: String::new(),
        goal: goal.trim().to_owned(),
        accept: nonempty("--accept", &opts.accept)?,
        inputs,
        budget: opts.budget.as_deref().map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned),
        risk,
        stop_if: nonempty("--stop-if", &opts.stop_if)?,
    }))
}

/// A state commit's message, from the send options, before the branch is known (the envelope's
/// id is the branch).
pub(super) struct Draft {
    subject: String,
    extra: Vec<TrailerArg>,
    body: Option<String>,
    envelope: Option<Envelope>,
}

impl Draft {
    /// Check the options (usage errors) and read the body.
    pub(super) fn new(opts: &SendOptions, state: &State) -> Result<Draft> {
        let mut extra = Vec::new();
        for t in &opts.trailers {
            let t: TrailerArg = t.parse().map_err(|e| usage(format!("{e}")))?;
            let reserved = Key::from_name_ignore_case(&t.key);
            if reserved == Some(Key::State) {
                return Err(usage("pass the state as the STATE argument, not as a dwp-state trailer"));
            }
            if reserved.is_some_and(|k| k.runner_only() || k.runner_fact()) {
                return Err(usage(format!("trailer {:?} is written only by runners", t.key)));
            }
            if let Some(Err(e)) = reserved.and_then(|k| crate::history::budget::check_trailer(k, &t.value)) {
                return Err(usage(format!("trailer {:?}: {e}", t.key)));
            }
            if reserved == Some(Key::NotBefore) {
                if opts.not_before.is_some() {
                    return Err(usage("pass either --not-before or a dwp-not-before trailer, not both"));
                }
                if t.value.trim().parse::<i64>().is_err() {
                    return Err(usage(format!(
                        "trailer {:?} must be seconds since the epoch, not {:?} (--not-before takes dates and `in 2 hours`)",
                        t.key, t.value
                    )));
                }
            }
            extra.push(t);
        }
        if let Some(when) = &opts.not_before {
            let at = crate::history::parse_when(when, clock::now()).map_err(|e| usage(format!("--not-before: {e}")))?;
            extra.push(TrailerArg::reserved(Key::NotBefore, at.to_string()));
        }
        let envelope = envelope_args(opts)?;
        let body = match read_body(opts)? {
            Some(raw) => Some(validate_body(&raw).map_err(|e| usage(e.to_string()))?.to_owned()),
            None => None,
        };
        let body = match &opts.decision_card {
            Some(file) => Some(crate::humans::card::with_card_file(body.as_deref(), Path::new(file)).map_err(usage)?),
            None => body,
        };
        let subject = opts.subject.clone().unwrap_or_else(|| format!("baton: {state}"));
        let draft = Draft { subject, extra, body, envelope };
        // Checked before the branch is known (the envelope's id): the same message with a stand-in id.
        draft.message(state, "task", &[])?;
        Ok(draft)
    }

    /// The message for branch `id`, with `more` trailers before `dwp-state` (a usage error when
    /// it cannot be composed).
    pub(super) fn message(&self, state: &State, id: &str, more: &[TrailerArg]) -> Result<Vec<u8>> {
        let body = match &self.envelope {
            Some(e) => {
                let e = Envelope { id: id.to_owned(), ..e.clone() };
                Some(crate::humans::envelope::render_with_notes(&e, self.body.as_deref()))
            }
            None => self.body.clone(),
        };
        let trailers: Vec<TrailerArg> = self.extra.iter().chain(more).cloned().collect();
        compose(&self.subject, body.as_deref(), &trailers, state).map_err(|e| usage(e.to_string()))
    }

    pub(super) fn set_default_subject(&mut self, opts: &SendOptions, subject: String) {
        if opts.subject.is_none() {
            self.subject = subject;
        }
    }
}

impl SendOptions {
    /// `--branch`, `--force`, `--json` as given (for commands that reuse these options).
    pub(super) fn target(&self) -> (Option<&str>, bool, bool) {
        (self.branch.as_deref(), self.force, self.json)
    }
}

pub fn cmd_send(cwd: &Path, args: Args) -> Result<ExitCode> {
    let state = State::parse(&args.state).map_err(|e| usage(format!("invalid state: {e}")))?;
    if state.is(Reserved::Working) {
        return Err(usage(
            "state 'working' is written only by runners; a handler renews its lease with `git baton heartbeat`",
        ));
    }
    let opts = &args.common;
    let draft = Draft::new(opts, &state)?;

    let repo = Repo::discover(cwd)?;
    // Inside a handler the answer is a commit on the handler's detached HEAD; the runner publishes
    // it when the handler exits.
    let in_handler = handler_branch(&repo, opts.branch.as_deref())?;
    let branch = match &in_handler {
        Some(b) => b.clone(),
        None => target_branch(&repo, opts.branch.as_deref())?,
    };
    // AYNIG's set-state outside a handler: push to --dwp-remote, else to HEAD's dwp-source.
    let push_to = match (&in_handler, &opts.push_to) {
        (Some(_), Some(r)) => {
            // An unchanged AYNIG handler may always pass it: said, not refused.
            let runs = std::env::var("BATON_REMOTE").ok().filter(|x| !x.is_empty());
            if runs.as_deref() != Some(r.as_str()) {
                tracing::warn!(
                    "--dwp-remote {r} not used: this run publishes {}; the runner decides where a handler's commits go",
                    runs.map(|x| format!("to {x}")).unwrap_or_else(|| "locally".into())
                );
            }
            None
        }
        (Some(_), None) => None,
        (None, Some(r)) => Some(r.clone()),
        (None, None) if opts.set_state => crate::aynig::head_source_remote(&repo)?,
        (None, None) => None,
    };
    let mut source = Vec::new();
    if let Some(r) = &push_to {
        crate::runner::remote::check_remote_name(r).map_err(|e| usage(format!("--dwp-remote: {e}")))?;
        if !crate::runner::remote::is_configured(&repo, r) {
            return Err(usage(format!("--dwp-remote: no remote named {r:?} in this repository")));
        }
        if !opts
            .trailers
            .iter()
            .any(|t| t.parse::<TrailerArg>().is_ok_and(|t| Key::from_name_ignore_case(&t.key) == Some(Key::Source)))
        {
            source.push(TrailerArg::reserved(Key::Source, format!("git:{r}")));
        }
    }
    let message = draft.message(&state, &branch, &source)?;
    // The checked-out branch of this worktree (for the `aynig` command line's staged changes).
    let here = in_handler.is_none() && opts.commit_staged && repo.head_branch()?.as_deref() == Some(branch.as_str());
    let in_handler = in_handler.is_some();
    let refname = if in_handler { "HEAD".to_owned() } else { format!("refs/heads/{branch}") };
    let Some(head) = repo.ref_id(&refname)? else {
        bail!("branch {branch:?} does not exist or has no commits yet");
    };
    if let Some(kind) = repo.non_commit_head(&refname)? {
        bail!("branch {branch:?} points to a {kind}, not a commit; nothing was written");
    }
    if !in_handler && !opts.force {
        refuse_live_lease(&repo, &branch, head)?;
    }
    let reflog = format!("baton: send {state}");
    let (id, cas) = if in_handler || here {
        // What is staged goes in, as AYNIG's `git commit` does (nothing staged: the same tree).
        let tree = repo.index_tree()?.context("no index to commit: this repository has no worktree")?;
        let id = repo.write_commit(tree, &[head], &message, clock::commit_time())?;
        (id, repo.compare_and_swap(&refname, Some(head), id, &reflog)?)
    } else {
        repo.append_commit(&refname, head, &message, clock::commit_time(), &reflog)?
    };
    if let Cas::Moved { .. } = cas {
        return Err(anyhow!("branch {branch:?} moved while sending; nothing was written, try again"));
    }
    if let Some(r) = &push_to {
        use crate::runner::remote::{push, Pushed};
        match push(repo.common_dir(), r, &branch, id, None) {
            Pushed::Accepted => {}
            other => bail!("state written locally ({id}) but not pushed to {r}: {other:?}"),
        }
    }
    let mut out = Out::new();
    if opts.json {
        out.json(&Sent { branch, commit: id.to_string(), parent: head.to_string(), state: state.to_string() })?;
    } else {
        out.line(&id.to_string())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
