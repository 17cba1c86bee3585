//! `git baton policy`: what `.dwp/policy.toml` makes of a state, read from where the runner would
//! read it (the trusted ref, if one is set); `git baton policy check`: validate a policy file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use super::output::usage;
use super::Out;
use crate::policy::duration::{format_duration, format_size};
use crate::policy::{self, Base, Effective, Policy, POLICY_PATH};
use crate::protocol::State;
use crate::repo::Repo;
use crate::runner::source::{self, Source};

/// Show the effective policy of a state (timeout, lease, log cap, passed environment variables)
/// and where each value comes from, or check a policy file.
///
/// The policy is read like the runner reads it: from the trusted ref's tree when one is set
/// (`--trusted-ref`, `BATON_TRUSTED_REF`, git config `baton.trustedRef`), else from HEAD's commit.
/// Without `--state`, shows what a state without its own `[states.<name>]` table gets. Values
/// from the runner's command line (`git baton run --timeout …`) are not known here; they sit
/// between `[defaults]` and the built-ins.
///
/// `--json` prints one object:
/// `{"source":"refs/heads/main"|"HEAD","trusted":bool,"commit":SHA|null,"policy_file":bool,
/// "state":NAME|null,"timeout":{"value":SECS,"from":ORIGIN},"lease":{"value":SECS,"from":ORIGIN},
/// "log_max_bytes":{"value":BYTES,"from":ORIGIN},"max_lease":{"value":SECS,"from":ORIGIN},
/// "clock_skew":{"value":SECS,"from":ORIGIN},"env_pass":[{"value":NAME_OR_GLOB,"from":ORIGIN}],
/// "failure":{"retry_transient":V,"retry_timeout":V,"retry_logic":V,"retry_auth":V,
/// "retry_state":V,"retry_backoff":V,"retry_factor":V (thousandths),"retry_max_delay":V,
/// "transient_exit_codes":V (extra to 75),"auth_exit_codes":V (extra to 77),"loop_soft":V,
/// "loop_hard":V,"dlq_retry_after":V (null: by priority),"dlq_archive_after":V,"dlq_sweep":V,
/// "breaker":V (name),"breaker_threshold":V,"breaker_window":V,"breaker_identical":V,
/// "breaker_cooldown":V,"breaker_max_cooldown":V} (each V is {"value":…,"from":ORIGIN}, durations
/// in seconds), "humans":{"tier","gate_approvers","gate_require_signed","gate_on_reject",
/// "gate_on_changes","gate_timeout","gate_default","notify","budget_runs","budget_seconds",
/// "budget_cost","concurrency_group","concurrency_max","worktree_keep","accept","accept_timeout"}
/// (each {"value":…,"from":ORIGIN}), "agent_next":{"value":STATE|null,"from":ORIGIN},
/// "states":[NAMES WITH A TABLE]}` where ORIGIN is `"built-in"`, `"command line"`,
/// `".dwp/policy.toml:LINE [defaults]"` or `".dwp/policy.toml:LINE [states.NAME]"`. `commit` is
/// null on an unborn HEAD; `policy_file` is false when the tree has no `.dwp/policy.toml`.
///
/// Exits 1 when the policy file is invalid (one line naming file, line and key) or the trusted
/// ref is missing.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Show the policy of this state (default: a state without its own table).
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Read the policy from this ref's tree (also `BATON_TRUSTED_REF`, git config
    /// `baton.trustedRef`).
    #[arg(long, value_name = "REF")]
    trusted_ref: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Check a policy file: `ok: FILE` and exit 0, or the error and exit 1.
    ///
    /// Prints `ok: FILE` and exits 0 when the file is valid; prints the error (file, line, key)
    /// and exits 1 when it is not, or cannot be read. FILE defaults to `.dwp/policy.toml` at the
    /// top of the working tree; when that file does not exist there is nothing to check
    /// (`ok: no .dwp/policy.toml`, exit 0: the built-ins apply).
    Check {
        /// The file to check.
        file: Option<PathBuf>,
    },
}

#[derive(Serialize)]
struct Report<'a> {
    source: &'a str,
    trusted: bool,
    commit: Option<String>,
    policy_file: bool,
    state: Option<&'a str>,
    #[serde(flatten)]
    effective: &'a Effective,
    states: Vec<&'a str>,
}

pub fn cmd_policy(cwd: &Path, args: Args) -> Result<ExitCode> {
    match args.action {
        Some(Action::Check { file }) => cmd_check(cwd, file),
        None => cmd_show(cwd, args),
    }
}

fn cmd_show(cwd: &Path, args: Args) -> Result<ExitCode> {
    let state = match &args.state {
        Some(s) => Some(State::parse(s).map_err(|e| usage(format!("--state: {e}")))?),
        None => None,
    };
    let repo = Repo::discover(cwd)?;
    let source = source::configured(&repo, args.trusted_ref.as_deref(), None)?;
    let (name, commit, tree) = match &source {
        Source::Trusted { read, commit, tree, .. } => (read.as_str(), Some(*commit), Some(*tree)),
        Source::Task => match repo.head_id()? {
            Some(id) => ("HEAD", Some(id), Some(repo.commit(id)?.tree)),
            None => ("HEAD", None, None),
        },
    };
    let short = commit.map(|c| c.to_string()[..12].to_owned());
    let loaded = match (tree, &short) {
        (Some(t), Some(c)) => policy::load(&repo, t).with_context(|| format!("reading the policy of {name} ({c})"))?,
        _ => None,
    };
    match (&source, &short) {
        (Source::Task, Some(c)) => tracing::info!("{}; showing HEAD ({c})", source.describe()),
        (Source::Task, None) => tracing::info!("{}; HEAD has no commit yet", source.describe()),
        (Source::Trusted { .. }, _) => tracing::info!("{}", source.describe()),
    }
    if loaded.is_none() {
        tracing::info!("no {POLICY_PATH} in {name}: built-in values apply");
    }
    let policy = loaded.as_ref().cloned().unwrap_or_default();
    // No state is named "" (names are validated), so "" is "a state without its own table".
    let effective = policy.effective(state.as_ref().map_or("", State::as_str), &Base::default());
    let report = Report {
        source: name,
        trusted: source.is_trusted(),
        commit: commit.map(|c| c.to_string()),
        policy_file: loaded.is_some(),
        state: state.as_ref().map(State::as_str),
        effective: &effective,
        states: policy.states().collect(),
    };
    let mut out = Out::new();
    if args.json {
        out.json(&report)?;
    } else {
        print_table(&mut out, &report, &policy)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_table(out: &mut Out, r: &Report<'_>, policy: &Policy) -> Result<()> {
    match r.state {
        Some(s) if policy.state(s).is_some() => out.line(&format!("state: {s}"))?,
        Some(s) => out.line(&format!("state: {s} (no [states.{s}] table)"))?,
        None => out.line("state: any state without its own table")?,
    }
    let e = r.effective;
    let mut rows = vec![
        ("timeout", format_duration(e.timeout.value), e.timeout.from.to_string()),
        ("lease", format_duration(e.lease.value), e.lease.from.to_string()),
        ("log.max_bytes", format_size(e.log_max_bytes.value), e.log_max_bytes.from.to_string()),
        ("max_lease", format_duration(e.max_lease.value), e.max_lease.from.to_string()),
        ("clock_skew", format_duration(e.clock_skew.value), e.clock_skew.from.to_string()),
    ];
    if e.env_pass.is_empty() {
        rows.push(("env.pass", "-".into(), "(base variables only)".into()));
    }
    rows.extend(e.env_pass.iter().map(|p| ("env.pass", p.value.clone(), p.from.to_string())));
    let f = &e.failure;
    let n = |r: &policy::Resolved<u32>| (r.value.to_string(), r.from.to_string());
    let d = |r: &policy::Resolved<u64>| (format_duration(r.value), r.from.to_string());
    let codes = |r: &policy::Resolved<Vec<u8>>, base: &str| {
        let mut all = vec![base.to_owned()];
        all.extend(r.value.iter().map(u8::to_string));
        (all.join(","), r.from.to_string())
    };
    let failure: Vec<(&str, (String, String))> = vec![
        ("retry.transient", n(&f.retry_transient)),
        ("retry.timeout", n(&f.retry_timeout)),
        ("retry.logic", n(&f.retry_logic)),
        ("retry.auth", n(&f.retry_auth)),
        ("retry.state", n(&f.retry_state)),
        ("retry.backoff", d(&f.retry_backoff)),
        ("retry.factor", (f.retry_factor.value.to_string(), f.retry_factor.from.to_string())),
        ("retry.max_delay", d(&f.retry_max_delay)),
        ("classify.transient", codes(&f.transient_exit_codes, "75")),
        ("classify.auth", codes(&f.auth_exit_codes, "77")),
        ("loop.soft", n(&f.loop_soft)),
        ("loop.hard", n(&f.loop_hard)),
        (
            "dlq.retry_after",
            (f.dlq_retry_after.value.map_or("by priority".into(), format_duration), f.dlq_retry_after.from.to_string()),
        ),
        ("dlq.archive_after", d(&f.dlq_archive_after)),
        ("dlq.sweep", d(&f.dlq_sweep)),
        ("breaker", (f.breaker.value.clone(), f.breaker.from.to_string())),
        ("breaker.threshold", n(&f.breaker_threshold)),
        ("breaker.window", d(&f.breaker_window)),
        ("breaker.identical", n(&f.breaker_identical)),
        ("breaker.cooldown", d(&f.breaker_cooldown)),
        ("breaker.max_cooldown", d(&f.breaker_max_cooldown)),
    ];
    rows.extend(failure.into_iter().map(|(k, (v, from))| (k, v, from)));
    let h = &e.humans;
    let list = |v: &[String]| if v.is_empty() { "-".to_owned() } else { v.join(", ") };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let humans: Vec<(&str, String, String)> = vec![
        ("tier", format!("{:?}", h.tier.value).to_lowercase(), h.tier.from.to_string()),
        ("gate.approvers", list(&h.gate_approvers.value), h.gate_approvers.from.to_string()),
        ("gate.require_signed", h.gate_require_signed.value.to_string(), h.gate_require_signed.from.to_string()),
        ("gate.on_reject", h.gate_on_reject.value.clone(), h.gate_on_reject.from.to_string()),
        (
            "gate.on_changes",
            h.gate_on_changes.value.clone().unwrap_or_else(|| "the producing state".into()),
            h.gate_on_changes.from.to_string(),
        ),
        ("gate.timeout", opt(h.gate_timeout.value.map(format_duration)), h.gate_timeout.from.to_string()),
        ("gate.default", h.gate_default.value.to_string(), h.gate_default.from.to_string()),
        ("notify", list(&h.notify.value), h.notify.from.to_string()),
        ("budget.runs", opt(h.budget_runs.value.map(|v| v.to_string())), h.budget_runs.from.to_string()),
        ("budget.seconds", opt(h.budget_seconds.value.map(format_duration)), h.budget_seconds.from.to_string()),
        ("budget.cost", opt(h.budget_cost.value.map(|v| v.to_string())), h.budget_cost.from.to_string()),
        ("concurrency.group", opt(h.concurrency_group.value.clone()), h.concurrency_group.from.to_string()),
        ("concurrency.max", opt(h.concurrency_max.value.map(|v| v.to_string())), h.concurrency_max.from.to_string()),
        ("worktree.keep", list(&h.worktree_keep.value), h.worktree_keep.from.to_string()),
        ("accept", list(&h.accept.value), h.accept.from.to_string()),
        ("accept.timeout", format_duration(h.accept_timeout.value), h.accept_timeout.from.to_string()),
    ];
    rows.extend(humans);
    let next = &e.agent_next;
    rows.push(("agent.next", next.value.clone().unwrap_or_else(|| "done".into()), next.from.to_string()));
    let width = rows.iter().map(|(_, v, _)| v.len()).max().unwrap_or(0).max(5);
    out.line(&format!("{:20}  {:width$}  FROM", "KEY", "VALUE"))?;
    for (key, value, from) in rows {
        out.line(&format!("{key:20}  {value:width$}  {from}"))?;
    }
    let states = if r.states.is_empty() { "(none)".to_owned() } else { r.states.join(", ") };
    out.line(&format!("states with a table: {states}"))?;
    Ok(())
}

fn cmd_check(cwd: &Path, file: Option<PathBuf>) -> Result<ExitCode> {
    let shown = match &file {
        Some(f) => {
            // Errors name the file as the user wrote it.
            let shown = f.display().to_string();
            policy::parse_file_as(&cwd.join(f), &shown)?;
            shown
        }
        None => {
            let repo = Repo::discover(cwd)?;
            let top = repo.workdir().ok_or_else(|| usage("a bare repository has no working tree; name the FILE"))?;
            let path = top.join(POLICY_PATH);
            if !path.exists() {
                tracing::info!("no {POLICY_PATH} in the working tree: built-in values apply");
                Out::new().line(&format!("ok: no {POLICY_PATH}"))?;
                return Ok(ExitCode::SUCCESS);
            }
            policy::parse_file_as(&path, POLICY_PATH)?;
            POLICY_PATH.to_owned()
        }
    };
    let mut out = Out::new();
    out.line(&format!("ok: {shown}"))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
