//! Running one notifier: a policy command (`sh -c` in the repository's top directory) or the
//! `.dwp/notify` program of the handler source, with the notification as one JSON line on stdin,
//! a scrubbed environment like a handler's, its own process group and a timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where a notifier comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notifier {
    /// A `notify = [...]` entry of the policy.
    Command(String),
    /// The executable `.dwp/notify` of a handler source, written out to `path`.
    Program { path: PathBuf },
}

/// The name a notifier goes by in records and messages: the command as written, or `.dwp/notify`.
pub const PROGRAM: &str = ".dwp/notify";

/// Why a notifier did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not found or not executable: nothing ran (or `sh` said 126/127).
    Missing(String),
    /// It ran and did not succeed (non-zero exit, signal, timeout).
    Failed(String),
}

/// Shell words that are not programs on `PATH` (builtins and keywords): not checked up front.
const SHELL_WORDS: &[&str] = &[
    ":", ".", "[", "{", "!", "alias", "bg", "break", "case", "cd", "command", "continue", "echo", "eval", "exec",
    "exit", "export", "false", "fg", "for", "getopts", "hash", "if", "jobs", "kill", "printf", "pwd", "read",
    "readonly", "return", "set", "shift", "test", "times", "trap", "true", "type", "ulimit", "umask", "unset", "until",
    "wait", "while",
];

fn is_executable_file(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Why a command's program cannot run, judged before anything is claimed: its first word, when it
/// is a plain path or name (not an assignment, not shell syntax), must be an executable file — a
/// relative path from `top`, a name on `path` (the notifier's `PATH`). None: it looks runnable (or
/// cannot be judged without running it; `sh` then says 127).
pub fn precheck(n: &Notifier, top: &Path, path: Option<&str>) -> Option<String> {
    match n {
        Notifier::Program { path } => {
            (!is_executable_file(path)).then(|| format!("{PROGRAM} is not an executable file"))
        }
        Notifier::Command(cmd) => {
            let first = cmd.split_whitespace().next()?;
            let plain = first.chars().all(|c| c.is_ascii_alphanumeric() || "-_./+@%,".contains(c));
            if !plain || SHELL_WORDS.contains(&first) {
                return None;
            }
            let found = if first.contains('/') {
                is_executable_file(&top.join(first))
            } else {
                path.unwrap_or("")
                    .split(':')
                    .filter(|d| !d.is_empty())
                    .any(|d| is_executable_file(&Path::new(d).join(first)))
            };
            (!found).then(|| format!("{first}: not found or not executable"))
        }
    }
}

/// Run `n` in `top` with exactly `env`, `input` on stdin; wait at most `timeout` (then its whole
/// process group is killed). Exit 0 is delivery; anything else is a [`Failure`] naming the exit and
/// the last line the notifier printed.
pub fn run(n: &Notifier, top: &Path, env: &[(String, String)], input: &[u8], timeout: Duration) -> Result<(), Failure> {
    let fail = |why: String| Failure::Failed(why);
    let out = tempfile::tempfile().map_err(|e| fail(format!("creating an output file: {e}")))?;
    let err = out.try_clone().map_err(|e| fail(format!("duplicating the output file: {e}")))?;
    let mut cmd = match n {
        Notifier::Command(c) => {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(c);
            cmd
        }
        Notifier::Program { path } => Command::new(path),
    };
    cmd.current_dir(top)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(out.try_clone().map_err(|e| fail(format!("duplicating the output file: {e}")))?)
        .stderr(err)
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) => {
            return Err(Failure::Missing(e.to_string()));
        }
        Err(e) => return Err(fail(format!("could not start it: {e}"))),
    };
    let pid = child.id() as i32;
    if let Some(mut stdin) = child.stdin.take() {
        let data = input.to_vec();
        // A notifier that does not read its input must not block the runner.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let started = Instant::now();
    let mut nap = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() >= timeout => {
                // SAFETY: a plain syscall on the process group we created (its pgid is its pid).
                unsafe { libc::killpg(pid, libc::SIGKILL) };
                let _ = child.wait();
                return Err(fail(format!("timed out after {timeout:?}")));
            }
            Ok(None) => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(25));
            }
            Err(e) => return Err(fail(format!("waiting for it: {e}"))),
        }
    };
    if status.success() {
        return Ok(());
    }
    let last = last_line(out);
    let said = if last.is_empty() { String::new() } else { format!(": {last}") };
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c @ (126 | 127)), _) if matches!(n, Notifier::Command(_)) => {
            Err(Failure::Missing(format!("not found or not executable (exit {c}){said}")))
        }
        (Some(c), _) => Err(fail(format!("exit {c}{said}"))),
        (None, Some(s)) => Err(fail(format!("killed by signal {s}{said}"))),
        _ => Err(fail(format!("failed{said}"))),
    }
}

/// The last non-empty line a notifier printed (from the end of its output), on one line.
fn last_line(mut f: std::fs::File) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    super::decide::one_line(text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn env() -> Vec<(String, String)> {
        vec![("PATH".into(), "/usr/bin:/bin".into()), ("X_TEXT".into(), "hi".into())]
    }

    #[test]
    fn commands_read_stdin_and_env_and_report_failures() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        let t = Duration::from_secs(10);
        let ok = Notifier::Command("cat > got.json; printf %s \"$X_TEXT\" > text".into());
        assert_eq!(run(&ok, top, &env(), b"{\"a\":1}\n", t), Ok(()));
        assert_eq!(std::fs::read_to_string(top.join("got.json")).unwrap(), "{\"a\":1}\n");
        assert_eq!(std::fs::read_to_string(top.join("text")).unwrap(), "hi");
        let bad = Notifier::Command("echo first; echo 'no route to host' >&2; exit 3".into());
        assert_eq!(run(&bad, top, &env(), b"", t), Err(Failure::Failed("exit 3: no route to host".into())));
        let missing = Notifier::Command("./nowhere --flag".into());
        assert!(matches!(run(&missing, top, &env(), b"", t), Err(Failure::Missing(_))));
        // A notifier that ignores stdin and sleeps past its timeout is stopped with its group.
        let slow = Notifier::Command("sleep 30 & sleep 30".into());
        let started = Instant::now();
        assert_eq!(
            run(&slow, top, &env(), &vec![b'x'; 1 << 20], Duration::from_millis(300)),
            Err(Failure::Failed("timed out after 300ms".into()))
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn programs_run_directly() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "notify", "#!/bin/sh\ncat > in.json\n", 0o755);
        assert_eq!(run(&Notifier::Program { path: p }, dir.path(), &env(), b"{}", Duration::from_secs(10)), Ok(()));
        assert_eq!(std::fs::read_to_string(dir.path().join("in.json")).unwrap(), "{}");
        let q = script(dir.path(), "plain", "#!/bin/sh\n", 0o644);
        assert!(matches!(
            run(&Notifier::Program { path: q }, dir.path(), &env(), b"", Duration::from_secs(10)),
            Err(Failure::Missing(_))
        ));
    }

    #[test]
    fn missing_programs_are_found_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        script(top, "hook", "#!/bin/sh\n", 0o755);
        script(top, "plain", "#!/bin/sh\n", 0o644);
        let path = Some("/usr/bin:/bin");
        let c = |s: &str| Notifier::Command(s.into());
        assert_eq!(precheck(&c("./hook --x"), top, path), None);
        assert_eq!(precheck(&c("sh -c 'exit 0'"), top, path), None);
        assert_eq!(precheck(&c("exit 0"), top, path), None, "a builtin");
        assert_eq!(precheck(&c("FOO=1 ./nowhere"), top, path), None, "an assignment: left to sh");
        assert_eq!(precheck(&c("./nowhere"), top, path).as_deref(), Some("./nowhere: not found or not executable"));
        assert_eq!(precheck(&c("./plain"), top, path).as_deref(), Some("./plain: not found or not executable"));
        assert_eq!(
            precheck(&c("no-such-program-xyz"), top, path).as_deref(),
            Some("no-such-program-xyz: not found or not executable")
        );
        assert!(precheck(&Notifier::Program { path: top.join("plain") }, top, path).is_some());
        assert!(precheck(&Notifier::Program { path: top.join("hook") }, top, path).is_none());
    }
}
