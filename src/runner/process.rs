//! Running one handler: its own process group, its environment, its log file, its timeout, and
//! the shutdown grace period.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::validate::Exit;
use crate::protocol::Trailer;

/// Variables that would point a handler's git at another repository, index or worktree.
const SCRUBBED_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    // Set again below when (and only when) this run is in remote mode.
    "BATON_REMOTE",
];

/// Everything needed to start a handler.
pub struct HandlerRun<'a> {
    /// Repository-relative path of the handler, e.g. `.dwp/command/build`.
    pub handler: &'a str,
    pub worktree: &'a Path,
    pub log: &'a Path,
    pub env: Vec<(String, String)>,
    pub trigger_trailers: &'a [Trailer],
    pub timeout: Duration,
    pub grace: Duration,
    pub shutdown: watch::Receiver<bool>,
}

/// `BATON_TRAILER_<KEY>` name: key uppercased, `-` → `_`.
pub fn trailer_env_name(prefix: &str, key: &str) -> String {
    let k: String = key.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }).collect();
    format!("{prefix}{k}")
}

/// Start the handler and wait for it, its timeout, or the end of the grace period after a
/// shutdown request. Never fails: a handler that cannot be started is an [`Exit::SpawnFailed`].
pub async fn run_handler(run: HandlerRun<'_>) -> Exit {
    match spawn_and_wait(run).await {
        Ok(exit) => exit,
        Err(e) => Exit::SpawnFailed(format!("{e:#}")),
    }
}

/// The handler must resolve (symlinks included) inside its own folder.
fn resolve_inside(worktree: &Path, handler: &str) -> std::result::Result<PathBuf, String> {
    let program = worktree.join(handler);
    let Some(folder) = program.parent() else {
        return Err(format!("{handler} has no folder"));
    };
    match (program.canonicalize(), folder.canonicalize()) {
        (Ok(p), Ok(f)) if p.starts_with(&f) => Ok(program),
        (Err(e), _) => Err(format!("{handler}: {e}")),
        _ => Err(format!("{handler} resolves outside {}", folder.display())),
    }
}

async fn spawn_and_wait(run: HandlerRun<'_>) -> Result<Exit> {
    let program = match resolve_inside(run.worktree, run.handler) {
        Ok(p) => p,
        Err(why) => return Ok(Exit::SpawnFailed(why)),
    };
    if let Some(dir) = run.log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out = std::fs::File::create(run.log).with_context(|| format!("creating log {}", run.log.display()))?;
    let err = out.try_clone()?;

    let mut cmd = tokio::process::Command::new(&program);
    cmd.current_dir(run.worktree)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(false);
    for var in SCRUBBED_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in &run.env {
        cmd.env(k, v);
    }
    for t in run.trigger_trailers {
        let (key, value) = (t.key_lossy(), t.value_lossy());
        cmd.env(trailer_env_name("BATON_TRAILER_", &key), value.as_ref());
        cmd.env(trailer_env_name("AYNIG_TRAILER_", &key), value.as_ref());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let hint = match e.raw_os_error() {
                Some(libc::ENOEXEC) => " (no #! line?)",
                Some(libc::EACCES) => " (not executable?)",
                _ => "",
            };
            return Ok(Exit::SpawnFailed(format!("{}: {e}{hint}", run.handler)));
        }
    };
    let pid = child.id().map(|p| p as i32);
    let mut shutdown = run.shutdown.clone();
    let grace = run.grace;
    let stop_after_grace = async move {
        let _ = shutdown.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    let exit = tokio::select! {
        status = child.wait() => {
            let status = status.context("waiting for the handler")?;
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                _ => Exit::Code(-1),
            }
        }
        _ = tokio::time::sleep(run.timeout) => Exit::TimedOut { seconds: run.timeout.as_secs() },
        _ = stop_after_grace => Exit::Interrupted,
    };
    // A handler that timed out or was interrupted is stopped with its whole process group. After a
    // normal exit, background processes it started on purpose (git's own auto-maintenance, for
    // one) are left alone, as a shell would.
    if let (Some(pid), Exit::TimedOut { .. } | Exit::Interrupted) = (pid, &exit) {
        kill_group(pid, &mut child).await;
    }
    Ok(exit)
}

/// SIGTERM to the process group, SIGKILL after 2 s for whatever is left.
async fn kill_group(pgid: i32, child: &mut tokio::process::Child) {
    // SAFETY: plain syscalls on a process group we created (the handler's pid is its pgid).
    let signal = |sig| unsafe { libc::killpg(pgid, sig) } == 0;
    if !signal(0) {
        return;
    }
    signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    // Reap the handler itself, then wait for the rest of the group to go.
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    while Instant::now() < deadline {
        if !signal(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(libc::SIGKILL);
    let _ = child.wait().await;
}

/// The last `n` lines of a file (lossy UTF-8), reading only its end.
pub fn tail(path: &Path, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_env_names() {
        assert_eq!(trailer_env_name("BATON_TRAILER_", "dwp-next-on-failure"), "BATON_TRAILER_DWP_NEXT_ON_FAILURE");
        assert_eq!(trailer_env_name("AYNIG_TRAILER_", "Reviewed-by"), "AYNIG_TRAILER_REVIEWED_BY");
    }

    #[test]
    fn tail_reads_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, (1..=100).map(|i| i.to_string()).collect::<Vec<_>>().join("\n")).unwrap();
        assert_eq!(tail(&p, 3), "98\n99\n100");
        assert_eq!(tail(&dir.path().join("missing"), 3), "");
    }

    #[test]
    fn handlers_must_stay_in_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".dwp/command")).unwrap();
        std::fs::write(dir.path().join("outside"), "").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), dir.path().join(".dwp/command/x")).unwrap();
        std::fs::write(dir.path().join(".dwp/command/ok"), "").unwrap();
        assert!(resolve_inside(dir.path(), ".dwp/command/ok").is_ok());
        assert!(resolve_inside(dir.path(), ".dwp/command/x").unwrap_err().contains("outside"));
    }
}
