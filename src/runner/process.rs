//! Running one handler: its own process group, its environment, its log file, its timeout, and
//! the shutdown grace period.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::logcap::CappedLog;
use super::validate::Exit;
use crate::protocol::Trailer;

/// Settings that keep git's detached auto-maintenance (`git gc --auto`, `git maintenance run
/// --auto`) from starting inside a handler: it would outlive the handler, and every process of a
/// run is stopped when the run ends.
const NO_AUTO_MAINTENANCE: &[(&str, &str)] = &[("maintenance.auto", "false"), ("gc.auto", "0")];

/// The handler's group leader: runs `$1` in the background (so a trap can fire while it waits),
/// kills the whole group when the runner dies (SIGUSR1 from PR_SET_PDEATHSIG), and passes the
/// handler's exit status on — re-raising a signal that killed it.
const SUPERVISOR: &str = r#"trap 'kill -KILL 0' USR1
"$@" </dev/null &
pid=$!
wait "$pid"
status=$?
while [ "$status" -gt 128 ] && kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done
if [ "$status" -gt 128 ] && [ "$status" -lt 160 ]; then
  trap - USR1
  sig=$(kill -l "$status" 2>/dev/null) && { trap - "$sig" 2>/dev/null; kill -s "$sig" $$; }
fi
exit "$status""#;

/// How long output is still collected after the handler's process group was stopped (a process
/// that left the group with `setsid` may hold the pipe open; it is not waited for).
const DRAIN: Duration = Duration::from_secs(2);

/// Everything needed to start a handler.
pub struct HandlerRun<'a> {
    /// The program to run (in the worktree, or in the trusted handler folder).
    pub program: PathBuf,
    /// The folder the program must stay inside (symlinks included).
    pub folder: PathBuf,
    /// Repository-relative name, for messages (`.dwp/command/build`).
    pub handler: &'a str,
    pub worktree: &'a Path,
    pub log: &'a Path,
    pub log_max_bytes: u64,
    /// The complete environment of the handler (nothing else is inherited).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub grace: Duration,
    pub shutdown: watch::Receiver<bool>,
    /// Set by the lease keeper when the run lost its lease: stop the handler at once.
    pub lost: watch::Receiver<Option<String>>,
    /// A descriptor the handler inherits (the worktree slot's lock: held while any process of the
    /// run lives).
    pub inherit_fd: Option<std::os::fd::RawFd>,
}

/// `BATON_TRAILER_<KEY>` name: key uppercased, `-` → `_`.
pub fn trailer_env_name(prefix: &str, key: &str) -> String {
    let k: String = key.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }).collect();
    format!("{prefix}{k}")
}

/// The triggering commit's trailers as `BATON_TRAILER_*` and `AYNIG_TRAILER_*` variables.
///
/// A key given more than once: `BATON_TRAILER_*` holds the last value (the protocol's "last
/// wins"; the entries are in message order and the last one set wins), `AYNIG_TRAILER_*` holds all
/// of them joined with `,` in message order, as AYNIG passes them. Keys that differ only in case
/// or in `-`/`_` share one variable.
pub fn trailer_env(trailers: &[Trailer]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut aynig: Vec<(String, String)> = Vec::new();
    for t in trailers {
        let (key, value) = (t.key_lossy(), t.value_lossy());
        env.push((trailer_env_name("BATON_TRAILER_", &key), value.to_string()));
        let name = trailer_env_name("AYNIG_TRAILER_", &key);
        match aynig.iter_mut().find(|(n, _)| *n == name) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => aynig.push((name, value.to_string())),
        }
    }
    env.extend(aynig);
    env
}

/// Start the handler and wait for it, its timeout, a lost lease, or the end of the grace period
/// after a shutdown request. Never fails: a handler that cannot be started is an
/// [`Exit::SpawnFailed`]. Whatever way it ends, no process of its group outlives the run.
pub async fn run_handler(run: HandlerRun<'_>) -> Exit {
    match spawn_and_wait(run).await {
        Ok(exit) => exit,
        Err(e) => Exit::SpawnFailed(format!("{e:#}")),
    }
}

/// The handler must resolve (symlinks included) inside its own folder.
fn resolve_inside(program: &Path, folder: &Path, handler: &str) -> std::result::Result<PathBuf, String> {
    match (program.canonicalize(), folder.canonicalize()) {
        (Ok(p), Ok(f)) if p.starts_with(&f) => Ok(program.to_path_buf()),
        (Err(e), _) => Err(format!("{handler}: {e}")),
        _ => Err(format!("{handler} resolves outside {}", folder.display())),
    }
}

async fn spawn_and_wait(run: HandlerRun<'_>) -> Result<Exit> {
    let program = match resolve_inside(&run.program, &run.folder, run.handler) {
        Ok(p) => p,
        Err(why) => return Ok(Exit::SpawnFailed(why)),
    };
    // A file without `#!` is not run through a shell behind the handler's back (execvp would).
    if let Some(why) = not_a_program(&program) {
        return Ok(Exit::SpawnFailed(format!("{}: {why}", run.handler)));
    }
    if let Some(dir) = run.log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut log =
        CappedLog::create(run.log, run.log_max_bytes).with_context(|| format!("creating log {}", run.log.display()))?;
    // One pipe for stdout and stderr: the runner reads it and keeps the log within its cap.
    let (reader, writer) = std::io::pipe().context("creating the output pipe")?;
    let writer2 = writer.try_clone().context("duplicating the output pipe")?;

    // The group leader is a small `sh` that runs the handler and waits for it. If the runner dies
    // (even by SIGKILL) the kernel sends the leader SIGUSR1 (PR_SET_PDEATHSIG) and it kills the
    // whole group: no process of a run outlives its runner. A handler killed by a signal is
    // reported as such (the leader re-raises it on itself).
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(SUPERVISOR).arg("git-baton-handler").arg(&program);
    cmd.current_dir(run.worktree)
        .env_clear()
        .envs(run.env.iter().map(|(k, v)| (k, v)))
        .env("GIT_CONFIG_COUNT", NO_AUTO_MAINTENANCE.len().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0)
        .kill_on_drop(false);
    for (i, (k, v)) in NO_AUTO_MAINTENANCE.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), k).env(format!("GIT_CONFIG_VALUE_{i}"), v);
    }
    let inherit = run.inherit_fd;
    // SAFETY: only async-signal-safe calls (prctl, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // If the runner dies (even by SIGKILL), the leader gets SIGUSR1 and kills the group.
            // The runner's worker threads live as long as the runner, so the "parent thread"
            // rule of PR_SET_PDEATHSIG does not fire early.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1 as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = inherit {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // The runner's copies of the write end must go, or the reader never sees the end.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            // The handler itself was checked above; this is the supervisor shell failing to start.
            let _ = log.finish();
            return Ok(Exit::SpawnFailed(format!("{}: starting /bin/sh: {e}", run.handler)));
        }
    };
    // Read the output asynchronously: a process that escaped the group (a daemon) may keep the
    // pipe open for ever, and the reader must be droppable after the drain period.
    let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader))
        .context("reading the output pipe")?;
    let copier = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut reader = reader;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break,
                // A failed write (a full disk) still drains the pipe, so the handler never blocks.
                Ok(n) => {
                    let _ = log.write(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        log.finish()
    });
    let pid = child.id().map(|p| p as i32);
    let mut shutdown = run.shutdown.clone();
    let grace = run.grace;
    let stop_after_grace = async move {
        let _ = shutdown.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    let mut lost = run.lost.clone();
    let lease_lost = async move {
        let why = lost.wait_for(|l| l.is_some()).await.map(|w| w.clone().unwrap_or_default());
        match why {
            Ok(why) => why,
            Err(_) => std::future::pending().await,
        }
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
        why = lease_lost => Exit::LeaseLost(why),
    };
    // No process of a run survives it: whatever the handler left behind in its process group
    // (a background job, a daemon that did not leave the group) is stopped now.
    if let Some(pid) = pid {
        kill_group(pid, &mut child).await;
    }
    let abort = copier.abort_handle();
    if tokio::time::timeout(DRAIN, copier).await.is_err() {
        // Something outside the group still holds the pipe: stop reading (the log keeps what came).
        abort.abort();
    }
    Ok(exit)
}

/// Why `program` cannot be executed as a handler, judged from its first bytes: it must start with
/// `#!` (a script) or be an ELF binary.
fn not_a_program(program: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(program) {
        Ok(m) if m.permissions().mode() & 0o111 == 0 => return Some("Permission denied (not executable?)".into()),
        Ok(_) => {}
        Err(e) => return Some(e.to_string()),
    }
    let mut head = [0u8; 4];
    let n = match std::fs::File::open(program).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(e) => return Some(e.to_string()),
    };
    let head = &head[..n];
    if head.starts_with(b"#!") || head.starts_with(b"\x7fELF") {
        None
    } else {
        Some("Exec format error (no #! line?)".into())
    }
}

/// SIGTERM to the process group, SIGKILL after 2 s for whatever is left. Costs nothing when the
/// group is already empty.
async fn kill_group(pgid: i32, child: &mut tokio::process::Child) {
    // SAFETY: plain syscalls on a process group we created (the handler's pid is its pgid).
    let signal = |sig| unsafe { libc::killpg(pgid, sig) } == 0;
    if !signal(0) {
        let _ = child.wait().await;
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
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    fn aynig_joins_repeated_trailers_and_baton_keeps_the_last() {
        let t = |k: &str, v: &str| Trailer { key: k.as_bytes().to_vec(), value: v.as_bytes().to_vec() };
        let env = trailer_env(&[t("dwp-note", "a"), t("other", "x"), t("dwp-note", "b"), t("DWP-Note", "c")]);
        let last = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(last("BATON_TRAILER_DWP_NOTE"), Some("c"));
        assert_eq!(last("AYNIG_TRAILER_DWP_NOTE"), Some("a,b,c"));
        assert_eq!(env.iter().filter(|(k, _)| k == "AYNIG_TRAILER_DWP_NOTE").count(), 1);
        assert_eq!(last("AYNIG_TRAILER_OTHER"), Some("x"));
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
        let folder = dir.path().join(".dwp/command");
        assert!(resolve_inside(&folder.join("ok"), &folder, ".dwp/command/ok").is_ok());
        assert!(resolve_inside(&folder.join("x"), &folder, ".dwp/command/x").unwrap_err().contains("outside"));
    }
}
