//! `git baton agent`: the agent handler. Run by `.dwp/command/agent` (and any wrapper of yours)
//! inside a runner's worktree, it builds the prompt from the task, runs `BATON_AGENT_CMD`, and
//! answers from the agent's reply: a commit of the worktree's changes naming the next state
//! (COMPLETED), `blocked` with a decision card (BLOCKED), or a non-zero exit the runner retries
//! (FAILED, a broken reply, a timeout).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use super::output::usage;
use super::Out;
use crate::agent::process::{self, Ended};
use crate::agent::prompt::{self, Children, Previous};
use crate::agent::reply::{self, Reply, Usage, Verdict};
use crate::agent::{answer, parse_timeout, DEFAULT_TIMEOUT};
use crate::policy::agent::NextState;
use crate::protocol::State;
use crate::recovery::classify::STATED_PREFIX;
use crate::repo::worktree::run_git;

/// Run a coding agent as a handler: `.dwp/command/agent` is `exec git baton agent`.
///
/// Builds a prompt from the task (its envelope, or its body; the previous attempt's failure on a
/// retry; the child tasks' results after a join, from `BATON_CHILDREN_JSON`; the reply contract),
/// runs `BATON_AGENT_CMD` with `sh -c` in the worktree with the prompt on stdin and in the file
/// `BATON_PROMPT_FILE`, and reads the first non-empty line of its reply (plain text, or the
/// `result`/`response` of the agent's JSON output, whose cost and tokens become `dwp-cost` and
/// `dwp-tokens`):
///
/// - `COMPLETED: summary` — commits every change in the worktree (`git add -A`) with the summary
///   as subject, naming the next state (`--next`, else `done`); exit 0.
///
/// - `BLOCKED: question` — commits the changes in state `blocked` with a decision card holding
///   the question (`dwp-escalation: agent`); exit 0.
///
/// - `FAILED: reason` — nothing committed; exit 1, the reason and `BATON-ERROR-TYPE: logic` last,
///   so the runner retries with the failure fed back.
///
/// Any other reply is a `logic` failure; a timeout stops the agent's whole process group and is
/// a `timeout` failure; a non-zero exit of the agent passes its status on. Outside a handler
/// (no `BATON_STATE`/`BATON_BRANCH`) it is a usage error. With `--json`, an answer prints one
/// object: `{"outcome":"completed"|"blocked","summary","next_state","commit","cost","tokens"}`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The agent's command line, run with `sh -c` in the worktree (the prompt on stdin and in
    /// `$BATON_PROMPT_FILE`). Examples: `claude -p --output-format json`, `codex exec --json -`.
    #[arg(long = "command", value_name = "CMD", env = "BATON_AGENT_CMD")]
    agent_cmd: Option<String>,
    /// How long the agent may run (`90`, `30m`, `2h`); then its process group is stopped.
    #[arg(long, value_name = "DURATION", env = "BATON_AGENT_TIMEOUT", default_value = DEFAULT_TIMEOUT)]
    timeout: String,
    /// The state a COMPLETED answer names. The runner sets `BATON_NEXT_STATE` from the policy's
    /// `agent.next`; default `done`.
    #[arg(long, value_name = "STATE", env = "BATON_NEXT_STATE")]
    next: Option<String>,
    /// Print the prompt and stop: no agent run, nothing committed.
    #[arg(long)]
    print_prompt: bool,
    /// Print the answer as one JSON object.
    #[arg(long)]
    json: bool,
}

/// What `--json` prints for an answer.
#[derive(Serialize)]
struct Answered<'a> {
    outcome: &'static str,
    summary: &'a str,
    next_state: &'a str,
    commit: &'a str,
    /// Dollars, as in `dwp-cost` (null: not reported).
    cost: Option<f64>,
    tokens: Option<u64>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Read a file a variable names; `None` when the variable is unset.
fn env_file(name: &str) -> Result<Option<String>> {
    match env(name) {
        None => Ok(None),
        Some(p) => std::fs::read_to_string(&p).map(Some).with_context(|| format!("reading {name} ({p})")),
    }
}

/// The prompt for this run, from the handler's environment.
fn prompt_from_env(branch: &str, state: &str) -> Result<String> {
    let body = match env_file("BATON_BODY_FILE")? {
        Some(b) => b,
        None => env("BATON_BODY").unwrap_or_default(),
    };
    let attempt = env("BATON_ATTEMPT").and_then(|a| a.trim().parse::<u32>().ok()).unwrap_or(1).max(1);
    let max_attempts = env("BATON_MAX_ATTEMPTS").and_then(|a| a.trim().parse::<u32>().ok());
    let previous = if attempt > 1 {
        let section = match env_file("BATON_PREVIOUS_LOG") {
            Ok(Some(s)) => Some(s),
            // The body holds the same section at its end.
            _ => crate::runner::messages::last_attempt_section(&body).map(str::to_owned),
        };
        Some(Previous {
            attempt: attempt - 1,
            error: env("BATON_PREVIOUS_ERROR"),
            error_type: env("BATON_PREVIOUS_ERROR_TYPE"),
            section,
        })
    } else {
        None
    };
    let (children, children_problem) = match env_file("BATON_CHILDREN_JSON") {
        Ok(None) => (None, None),
        Ok(Some(text)) => match Children::parse(&text) {
            Ok(c) => (Some(c), None),
            Err(why) => (None, Some(why)),
        },
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    if let Some(why) = &children_problem {
        tracing::warn!("BATON_CHILDREN_JSON: {why}; the prompt says so");
    }
    Ok(prompt::build(&prompt::Input {
        branch,
        state,
        body: &body,
        attempt,
        max_attempts,
        previous,
        children: children.as_ref(),
        children_problem,
        round: env("BATON_ROUND").and_then(|r| r.trim().parse().ok()),
    }))
}

/// A failure the runner reads: the reason, then the stated error type as the last line.
fn fail(why: &str, error_type: &str, code: u8) -> Result<ExitCode> {
    let mut out = Out::new();
    out.line(&format!("git-baton agent: {}", why.replace('\n', " ")))?;
    out.line(&format!("{STATED_PREFIX} {error_type}"))?;
    out.flush()?;
    Ok(ExitCode::from(code))
}

pub fn cmd_agent(cwd: &Path, args: Args) -> Result<ExitCode> {
    let not_handler = |v: &str| {
        usage(format!(
            "{v} is not set: git baton agent runs as a handler (from .dwp/command/<state>, started by git baton run)"
        ))
    };
    let state = env("BATON_STATE").ok_or_else(|| not_handler("BATON_STATE"))?;
    let branch = env("BATON_BRANCH").ok_or_else(|| not_handler("BATON_BRANCH"))?;
    let next = match &args.next {
        Some(n) => NextState::parse(n.trim()).map_err(|e| usage(format!("--next/BATON_NEXT_STATE: {e}")))?.0,
        None => "done".to_owned(),
    };
    let next = State::parse(&next).map_err(|e| usage(format!("--next: {e}")))?;
    let timeout = parse_timeout(&args.timeout).map_err(usage)?;
    let worktree = env("BATON_WORKTREE").map(PathBuf::from).unwrap_or_else(|| cwd.to_path_buf());
    let prompt = prompt_from_env(&branch, &state)?;
    if args.print_prompt {
        let mut out = Out::new();
        out.bytes(prompt.as_bytes())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(command) = args.agent_cmd.as_deref().map(str::trim).filter(|c| !c.is_empty()) else {
        return Err(usage(
            "BATON_AGENT_CMD is not set: name the coding agent's command line (e.g. `claude -p --output-format json`) \
             in .dwp/command/agent or pass it to handlers (git baton run --pass-env BATON_AGENT_CMD)",
        ));
    };

    // The prompt and the reply live outside the worktree: `git add -A` must not commit them.
    let scratch = tempfile::Builder::new().prefix("git-baton-agent-").tempdir().context("creating a scratch folder")?;
    let prompt_file = scratch.path().join("prompt.md");
    std::fs::write(&prompt_file, &prompt).with_context(|| format!("writing {}", prompt_file.display()))?;
    let reply_file = scratch.path().join("reply.out");
    tracing::info!("running the agent ({command}) for {branch} in {}", worktree.display());
    let ended = process::run(command, &worktree, &prompt_file, &reply_file, &[], timeout)?;
    let stdout = std::fs::read(&reply_file).unwrap_or_default();
    // The reply goes to the run's log as it was.
    let mut out = Out::new();
    out.bytes(&stdout)?;
    if !stdout.is_empty() && !stdout.ends_with(b"\n") {
        out.line("")?;
    }
    out.flush()?;
    drop(out);
    match ended {
        Ended::Code(0) => {}
        Ended::TimedOut => {
            let why = format!(
                "the agent ran out of time after {} (BATON_AGENT_TIMEOUT); its process group was stopped",
                crate::policy::duration::format_duration(timeout.as_secs())
            );
            return fail(&why, "timeout", 1);
        }
        Ended::Code(c) => {
            let why = format!("the agent command exited with status {c}");
            let mut o = Out::new();
            o.line(&format!("git-baton agent: {why}"))?;
            o.flush()?;
            // Its status passes on, so the policy's exit-code classes apply (75 transient, 77 auth).
            return Ok(ExitCode::from(u8::try_from(c).ok().filter(|c| (1..=125).contains(c)).unwrap_or(1)));
        }
        Ended::Signal(s) => return fail(&format!("the agent command was killed by signal {s}"), "logic", 1),
    }
    let (reply, usage_spent) = reply::parse(&String::from_utf8_lossy(&stdout));
    let reply = match reply {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string(), "logic", 1),
    };
    let (message, next_state) = match &reply.verdict {
        Verdict::Failed(reason) => return fail(&format!("the agent FAILED: {reason}"), "logic", 1),
        Verdict::Completed(summary) => {
            (answer::completed(summary, &reply.details, &usage_spent, &next), next.to_string())
        }
        Verdict::Blocked(question) => {
            (answer::blocked(&branch, &state, question, &reply.details, &usage_spent), "blocked".to_owned())
        }
    };
    let message = message.context("composing the answer commit")?;
    commit_answer(&worktree, &message, &next_state, &reply, usage_spent, args.json)
}

/// Commit every change in the worktree with `message`: the answer to a COMPLETED or BLOCKED reply.
fn commit_answer(
    worktree: &Path,
    message: &[u8],
    next_state: &str,
    reply: &Reply,
    usage_spent: Usage,
    json: bool,
) -> Result<ExitCode> {
    let file = tempfile::NamedTempFile::new().context("creating the commit message file")?;
    std::fs::write(file.path(), message).context("writing the commit message file")?;
    run_git(worktree, ["add", "-A"])?;
    let msg_path = file.path().as_os_str().to_owned();
    run_git(
        worktree,
        [
            std::ffi::OsStr::new("commit"),
            "-q".as_ref(),
            "--allow-empty".as_ref(),
            "--no-verify".as_ref(),
            "--cleanup=verbatim".as_ref(),
            "-F".as_ref(),
            msg_path.as_os_str(),
        ],
    )?;
    let commit = run_git(worktree, ["rev-parse", "HEAD"])?.trim().to_owned();
    let mut out = Out::new();
    let word = reply.verdict.word();
    if json {
        out.json(&Answered {
            outcome: word,
            summary: reply.verdict.line(),
            next_state,
            commit: &commit,
            cost: usage_spent.cost.map(|m| m.0 as f64 / 1_000_000.0),
            tokens: usage_spent.tokens,
        })?;
    } else {
        out.line(&format!("git-baton agent: {} → {next_state} ({commit})", word.to_uppercase()))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
