//! Linked worktrees for handlers, under `<common git dir>/baton/worktrees/`, and the `git`
//! subprocesses they need (gix cannot prune or repair worktrees). Every subprocess gets a scrubbed,
//! explicit environment: no `GIT_DIR`, `GIT_WORK_TREE`, `GIT_INDEX_FILE` or other variable of the
//! caller can redirect it to another repository or index.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::ObjectId;

/// Variables a git subprocess may inherit: where to find programs, config and identity.
const KEPT_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "XDG_CONFIG_HOME",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_EXEC_PATH",
    "SSH_AUTH_SOCK",
    "GIT_SSH_COMMAND",
];

/// A `git` command with a scrubbed environment, running in `dir`.
pub fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear();
    for var in KEPT_VARS {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .current_dir(dir)
        .stdin(Stdio::null());
    cmd
}

/// Run a git command, return its stdout; a failure names the command and git's message.
pub fn run_git<I, S>(dir: &Path, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let shown = args
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = git(dir)
        .args(&args)
        .output()
        .with_context(|| format!("running git {shown}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        bail!("git {shown} failed: {first}");
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A file-system-safe, stable, unique name for a branch: readable part plus a hash.
pub fn branch_key(branch: &str) -> String {
    let readable: String = branch
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    // FNV-1a: stable across Rust versions, unlike the std hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in branch.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{readable}-{:08x}", h as u32)
}

/// Where the scratch data of git-baton lives.
pub struct Scratch {
    pub root: PathBuf,
}

impl Scratch {
    pub fn new(common_dir: &Path) -> Scratch {
        Scratch {
            root: common_dir.join("baton"),
        }
    }
    pub fn worktree(&self, branch: &str) -> PathBuf {
        self.root.join("worktrees").join(branch_key(branch))
    }
    pub fn log_file(&self, branch: &str, run_id: &str) -> PathBuf {
        self.root
            .join("logs")
            .join(branch_key(branch))
            .join(format!("{run_id}.log"))
    }
}

/// Is `path` a live linked worktree of the repository at `common_dir`?
fn is_registered(common_dir: &Path, path: &Path) -> bool {
    let Ok(dot_git) = std::fs::read_to_string(path.join(".git")) else {
        return false;
    };
    let Some(gitdir) = dot_git.trim().strip_prefix("gitdir: ") else {
        return false;
    };
    let gitdir = Path::new(gitdir);
    let (Ok(gitdir), Ok(common)) = (gitdir.canonicalize(), common_dir.canonicalize()) else {
        return false;
    };
    gitdir.starts_with(common.join("worktrees")) && gitdir.join("HEAD").exists()
}

/// Make `path` a clean linked worktree with `branch` checked out at `expected_head`.
///
/// Reuses a worktree from an earlier run (after salvaging any uncommitted changes it kept to a
/// `refs/baton/salvage/…` ref, so nothing is lost), replaces a folder left behind by a crash, and
/// prunes stale registrations first. `force` allows a branch that is checked out elsewhere (the
/// main worktree, with `--current-branch include|only`).
pub fn prepare(
    common_dir: &Path,
    path: &Path,
    branch: &str,
    expected_head: ObjectId,
    force: bool,
) -> Result<()> {
    if path.exists() && is_registered(common_dir, path) {
        salvage_changes(path, branch)?;
        run_git(path, ["checkout", "-q", "-f", branch])?;
        run_git(path, ["reset", "-q", "--hard"])?;
        run_git(path, ["clean", "-q", "-f", "-f", "-d", "-x"])?;
    } else {
        if path.exists() {
            std::fs::remove_dir_all(path)
                .with_context(|| format!("removing stale worktree folder {}", path.display()))?;
        }
        run_git(common_dir, ["worktree", "prune"])?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut args = vec!["worktree", "add", "-q"];
        if force {
            args.push("--force");
        }
        let path_str = path.to_str().context("worktree path is not UTF-8")?;
        args.extend([path_str, branch]);
        run_git(common_dir, args)?;
    }
    let head = run_git(path, ["rev-parse", "HEAD"])?;
    if head.trim() != expected_head.to_string().as_str() {
        bail!(
            "worktree {} is at {} instead of {expected_head}",
            path.display(),
            head.trim()
        );
    }
    Ok(())
}

/// Keep uncommitted work of a previous run as a commit on `refs/baton/salvage/<branch>/<time>`,
/// without touching the user's stash or any branch.
fn salvage_changes(path: &Path, branch: &str) -> Result<Option<String>> {
    let status = run_git(path, ["status", "--porcelain", "--untracked-files=all"])?;
    if status.trim().is_empty() {
        return Ok(None);
    }
    run_git(path, ["add", "-A"])?;
    let tree = run_git(path, ["write-tree"])?;
    let msg = format!("baton: uncommitted changes left in the worktree of {branch}");
    let commit = run_git(path, ["commit-tree", tree.trim(), "-p", "HEAD", "-m", &msg])?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let refname = format!("refs/baton/salvage/{}/{stamp}", branch_key(branch));
    run_git(path, ["update-ref", &refname, commit.trim()])?;
    tracing::info!(branch, %refname, "kept uncommitted changes of an earlier run");
    Ok(Some(refname))
}

/// Remove a worktree after a successful run.
pub fn remove(common_dir: &Path, path: &Path) -> Result<()> {
    let path_str = path.to_str().context("worktree path is not UTF-8")?;
    run_git(common_dir, ["worktree", "remove", "--force", path_str])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_keys_are_safe_and_distinct() {
        let a = branch_key("feature/x");
        let b = branch_key("feature_x");
        assert_ne!(a, b);
        assert!(a.starts_with("feature_x-"));
        assert!(!branch_key("../../etc").contains('/'));
        assert_eq!(branch_key("a"), branch_key("a"));
    }
}
