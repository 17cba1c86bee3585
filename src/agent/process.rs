//! Running the agent's command line: `sh -c "$BATON_AGENT_CMD"` in the worktree, the prompt on
//! stdin (and in `$BATON_PROMPT_FILE`), stdout into a file (the reply), stderr passed through to
//! the handler's log. The command runs in a process group of its own, under a small `sh` leader
//! that kills the whole group should `git baton agent` die (even by SIGKILL: the runner stopping
//! the handler); on the timeout the group gets SIGTERM, then SIGKILL, and nothing of it is left.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The group's leader: runs the command in the background with the prompt on stdin, kills the
/// whole group on SIGUSR1 (sent by the kernel when `git baton agent` dies, PR_SET_PDEATHSIG), and
/// passes the command's status on.
const LEADER: &str = r#"trap 'kill -KILL 0' USR1
/bin/sh -c "$1" git-baton-agent-command <"$BATON_PROMPT_FILE" &
pid=$!
wait "$pid"
status=$?
while [ "$status" -gt 128 ] && kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done
exit "$status""#;

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Code(i32),
    Signal(i32),
    TimedOut,
}

/// Run `command` in `dir` with the prompt in `prompt_file` on stdin and the reply written to
/// `reply_file`; at most `timeout`. `env` is added to this process's environment.
pub fn run(
    command: &str,
    dir: &Path,
    prompt_file: &Path,
    reply_file: &Path,
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<Ended> {
    let reply = std::fs::File::create(reply_file).with_context(|| format!("creating {}", reply_file.display()))?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(LEADER)
        .arg("git-baton-agent")
        .arg(command)
        .current_dir(dir)
        .env("BATON_PROMPT_FILE", prompt_file)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(reply)
        .stderr(Stdio::inherit());
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    // SAFETY: only an async-signal-safe call (prctl) between fork and exec. The child is started
    // from the main thread, which lives as long as this process, so the "parent thread" rule of
    // PR_SET_PDEATHSIG does not fire early.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1 as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting /bin/sh for the agent command")?;
    let pgid = child.id() as i32;
    let deadline = Instant::now() + timeout;
    let ended = loop {
        if let Some(status) = child.try_wait().context("waiting for the agent command")? {
            use std::os::unix::process::ExitStatusExt;
            break match (status.code(), status.signal()) {
                (Some(c), _) => Ended::Code(c),
                (None, Some(s)) => Ended::Signal(s),
                _ => Ended::Code(-1),
            };
        }
        if Instant::now() >= deadline {
            break Ended::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now())));
    };
    // Whatever the command left behind in its group (or all of it, on the timeout) is stopped.
    stop_group(pgid);
    let _ = child.wait();
    Ok(ended)
}

/// SIGTERM to the group, SIGKILL after 2 s to whatever is left. Nothing when it is empty.
fn stop_group(pgid: i32) {
    // SAFETY: plain syscalls on a process group this process created.
    let signal = |sig| unsafe { libc::killpg(pgid, sig) } == 0;
    if !signal(0) {
        return;
    }
    signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        // Reap the leader if it went, so the group can empty.
        // SAFETY: waitpid on our own child, non-blocking.
        unsafe { libc::waitpid(pgid, std::ptr::null_mut(), libc::WNOHANG) };
        if !signal(0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(libc::SIGKILL);
}
