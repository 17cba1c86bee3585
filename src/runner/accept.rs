//! Acceptance checks — the definition of done, decided by the orchestrator and not taken on the
//! agent's word. After a handler answers with a new state, each check of the state's policy
//! (`accept = ["cargo test --quiet", "test -s report.md"]`) runs in the worktree at the answer,
//! with the handler's environment, in its own process group, under `accept.timeout`. The first
//! check that fails turns the answer into a `logic` failure naming the check, with its output at
//! the end of the run's log — so the retry policy sends the task back with that context. The checks
//! come with the policy, from the trusted ref or the task's commit as it was before the run: an
//! answer cannot change what it is checked against.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::context::Ctx;
use super::exec::{blocking, Job};
use super::process::{run_handler, HandlerRun};
use super::validate::Exit;
use crate::repo::worktree::run_git;
use crate::repo::ObjectId;

/// Put the worktree at the answer exactly (what is checked is what would be published): reset to
/// it and remove untracked files, keeping ignored ones (build caches help checks too).
fn at_answer(wt: &Path, answer: ObjectId) -> Result<()> {
    run_git(wt, ["reset", "-q", "--hard", &answer.to_string()])?;
    run_git(wt, ["clean", "-q", "-f", "-d"])?;
    Ok(())
}

/// Append a check's output to the run's log, framed, so the log's tail (what a failure event and
/// a retry's body quote) ends with it.
fn append(log: &Path, check: &str, check_log: &Path, exit: &Exit) -> Result<()> {
    use std::io::Write;
    let output = std::fs::read(check_log).unwrap_or_default();
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(log).context("opening the run's log")?;
    writeln!(f, "\n[git-baton: acceptance check `{check}`: {}]", describe(exit))?;
    f.write_all(&output)?;
    Ok(())
}

fn describe(exit: &Exit) -> String {
    match exit {
        Exit::Code(0) => "passed".into(),
        Exit::Code(c) => format!("exit {c}"),
        Exit::Signal(s) => format!("killed by signal {s}"),
        Exit::TimedOut { seconds } => format!("timed out after {seconds}s"),
        Exit::Interrupted => "interrupted".into(),
        Exit::SpawnFailed(why) => format!("could not start: {why}"),
        Exit::LeaseLost(why) => format!("stopped: {why}"),
    }
}

/// The answer to check and where.
pub(super) struct Answer<'a> {
    pub run_id: &'a str,
    /// The run's worktree slot.
    pub wt: &'a Path,
    pub commit: ObjectId,
    /// The handler's environment (the checks get the same).
    pub env: &'a [(String, String)],
    /// The run's log: each check's output is appended to it.
    pub log: &'a Path,
    /// The slot's lock, held by the checks' processes too.
    pub inherit_fd: Option<std::os::fd::RawFd>,
}

/// Run the state's checks against the answer. None: all passed (or there are none);
/// Some(reason): the first that did not.
pub(super) async fn check_answer(ctx: &Ctx, job: &Job, a: Answer<'_>) -> Option<String> {
    let Answer { run_id, wt, commit: answer, env, log, inherit_fd } = a;
    let checks = job.settings.humans.accept.value.clone();
    if checks.is_empty() {
        return None;
    }
    let w = wt.to_path_buf();
    if let Err(e) = blocking(move || at_answer(&w, answer)).await {
        return Some(format!("the acceptance checks could not put the worktree at the answer: {e:#}"));
    }
    let dir = ctx.scratch().root.join("checks");
    let timeout = Duration::from_secs(job.settings.humans.accept_timeout.value);
    for (i, check) in checks.iter().enumerate() {
        let script = dir.join(format!("{run_id}-{i}"));
        let check_log = dir.join(format!("{run_id}-{i}.log"));
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&script, format!("#!/bin/sh\n{check}\n"))?;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))
        });
        if let Err(e) = written {
            return Some(format!("acceptance check `{check}` could not be written: {e}"));
        }
        let (_never, lost) = watch::channel(None);
        let exit = run_handler(HandlerRun {
            program: script.clone(),
            folder: dir.clone(),
            handler: &format!("acceptance check `{check}`"),
            worktree: wt,
            log: &check_log,
            log_max_bytes: job.settings.log_max_bytes,
            env: env.to_vec(),
            timeout,
            grace: ctx.opts.grace,
            shutdown: ctx.shutdown.clone(),
            lost,
            inherit_fd,
        })
        .await;
        let _ = append(log, check, &check_log, &exit);
        let _ = std::fs::remove_file(&script);
        let _ = std::fs::remove_file(&check_log);
        if exit != Exit::Code(0) {
            return Some(format!(
                "acceptance check `{check}` failed ({}); the answer was not published",
                describe(&exit)
            ));
        }
    }
    None
}
