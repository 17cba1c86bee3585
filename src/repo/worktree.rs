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
    // The runner's own git calls run no hooks: a user's post-checkout hook has no business in a
    // runner slot, and a git-baton hook must not start ticks from inside a tick. (Server-side
    // hooks of a remote still run on push: they are the remote's to enforce.)
    cmd.args(["-c", "core.hooksPath=/dev/null"]);
    cmd.env("GIT_TERMINAL_PROMPT", "0").current_dir(dir).stdin(Stdio::null());
    cmd
}

/// Run a git command, return its stdout; a failure names the command and git's message.
pub fn run_git<I, S>(dir: &Path, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let shown = args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let out = git(dir).args(&args).output().with_context(|| format!("running git {shown}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        bail!("git {shown} failed: {first}");
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A file-system-safe, stable, unique name for a branch: readable part plus a hash.
pub fn branch_key(branch: &str) -> String {
    let readable: String = branch
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
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

/// A linked worktree as git's registry has it (`<common dir>/worktrees/<name>/`).
#[derive(Debug, Clone)]
pub struct Linked {
    /// Its admin folder under `<common dir>/worktrees/`.
    pub admin: PathBuf,
    /// Its folder, as registered (`gitdir` minus `/.git`).
    pub path: PathBuf,
    /// The branch its HEAD names (None when detached or unreadable).
    pub branch: Option<String>,
    /// `git worktree lock` was used on it.
    pub locked: bool,
}

/// Every linked worktree registered in the repository whose folder still exists (a stale
/// registration checks nothing out; `git worktree prune` handles those). One reader of git's
/// registry for the runner (branches checked out elsewhere), `conflicts apply` and AYNIG's
/// leftovers.
pub fn linked_worktrees(common_dir: &Path) -> Vec<Linked> {
    let Ok(entries) = std::fs::read_dir(common_dir.join("worktrees")) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let admin = entry.path();
        let Ok(gitdir) = std::fs::read_to_string(admin.join("gitdir")) else { continue };
        let Some(path) = Path::new(gitdir.trim()).parent().map(Path::to_path_buf) else { continue };
        if !path.exists() {
            continue;
        }
        let head = std::fs::read_to_string(admin.join("HEAD")).unwrap_or_default();
        let branch = head.trim().strip_prefix("ref: refs/heads/").map(str::to_owned);
        let locked = admin.join("locked").exists();
        out.push(Linked { admin, path, branch, locked });
    }
    out
}

/// Where the scratch data of git-baton lives: `<common dir>/baton/`.
pub struct Scratch {
    pub root: PathBuf,
}

impl Scratch {
    pub fn new(common_dir: &Path) -> Scratch {
        Scratch { root: common_dir.join("baton") }
    }
    pub fn slots(&self) -> PathBuf {
        self.root.join("worktrees")
    }
    pub fn log_file(&self, branch: &str, run_id: &str) -> PathBuf {
        self.root.join("logs").join(branch_key(branch)).join(format!("{run_id}.log"))
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

/// A slot's HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotHead {
    Detached(ObjectId),
    Ref(String),
}

/// A worktree slot held by this process for one run.
///
/// Handlers run in numbered slots `<common dir>/baton/worktrees/slot-N`. A slot is taken with an
/// exclusive lock file (`slot-N.lock`, holding the pid; a dead holder's lock is broken), so runners
/// on one machine never share one. Slots are reused: after a successful run the slot's HEAD is
/// detached (the branch is free again) and the next run — of any branch — switches it with
/// `git checkout`, which rewrites only the files that differ instead of checking out the whole
/// tree again. After a failed run the slot is kept for its branch (`slot-N.kept` names it) with
/// everything the handler left, until that branch runs again; then uncommitted leftovers are saved
/// to `refs/baton/salvage/…` before the reset, so nothing is ever lost.
#[derive(Debug)]
pub struct Slot {
    pub path: PathBuf,
    lock: PathBuf,
    kept: PathBuf,
    /// `slot-N.busy`: names the branch while a run holds the slot. Found at acquire time, it means
    /// the previous holder died mid-run: its leftovers are salvaged before the slot is reused.
    busy: PathBuf,
    /// The branch a crashed earlier run left in this slot (read from `busy` at acquire time).
    crashed: std::sync::Mutex<Option<String>>,
    /// The open, `flock`ed `slot-N.lock`; dropping it frees the slot.
    held: std::sync::Mutex<Option<std::fs::File>>,
}

/// Take an exclusive, non-blocking `flock` on `path`. The kernel releases it when the holder
/// exits, however it exits, so a crashed runner never leaves a slot locked.
fn try_lock(path: &Path) -> Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(Some(file))
    } else {
        Ok(None)
    }
}

impl Slot {
    fn at(dir: &Path, n: usize) -> Slot {
        Slot {
            path: dir.join(format!("slot-{n}")),
            lock: dir.join(format!("slot-{n}.lock")),
            kept: dir.join(format!("slot-{n}.kept")),
            busy: dir.join(format!("slot-{n}.busy")),
            crashed: std::sync::Mutex::new(None),
            held: std::sync::Mutex::new(None),
        }
    }

    fn kept_for(&self) -> Option<String> {
        std::fs::read_to_string(&self.kept).ok().map(|s| s.trim().to_owned())
    }

    /// Take a slot for `branch` (its kept slot first, else a free one, else a new one) and make
    /// sure it is a live worktree (new ones start detached at `start`). Nothing about the branch
    /// changes yet.
    pub fn acquire(common_dir: &Path, scratch: &Scratch, branch: &str, start: ObjectId) -> Result<Slot> {
        let dir = scratch.slots();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let slot = Slot::take(&dir, branch)?;
        tracing::debug!(slot = %slot.path.display(), branch, "took slot");
        if let Ok(left_by) = std::fs::read_to_string(&slot.busy) {
            *slot.crashed.lock().unwrap_or_else(|p| p.into_inner()) = Some(left_by.trim().to_owned());
        }
        if let Err(e) = std::fs::write(&slot.busy, branch) {
            slot.unlock();
            return Err(anyhow::anyhow!("marking {} busy: {e}", slot.busy.display()));
        }
        if let Err(e) = slot.ensure_worktree(common_dir, &dir, start) {
            slot.unlock();
            return Err(e);
        }
        Ok(slot)
    }

    /// Create the slot's worktree if it is missing (or only a folder left by a crash), detached at
    /// `start`. Creation is serialised across processes with an exclusive `flock` on
    /// `worktrees.lock`.
    fn ensure_worktree(&self, common_dir: &Path, dir: &Path, start: ObjectId) -> Result<()> {
        if self.path.exists() && is_registered(common_dir, &self.path) {
            return Ok(());
        }
        let lock_path = dir.join("worktrees.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("locking {}: {}", lock_path.display(), std::io::Error::last_os_error());
        }
        if self.path.exists() {
            std::fs::remove_dir_all(&self.path)
                .with_context(|| format!("removing stale worktree folder {}", self.path.display()))?;
        }
        let _ = std::fs::remove_file(&self.kept);
        tracing::debug!(slot = %self.path.display(), "creating worktree slot");
        self.register(common_dir, start)?;
        drop(lock);
        Ok(())
    }

    fn take(dir: &Path, branch: &str) -> Result<Slot> {
        let mut free = Vec::new();
        let mut n = 0;
        loop {
            let slot = Slot::at(dir, n);
            if !slot.path.exists() && !slot.lock.exists() && !slot.kept.exists() {
                break;
            }
            match slot.kept_for() {
                Some(b) if b == branch => {
                    if let Some(f) = try_lock(&slot.lock)? {
                        slot.hold(f);
                        return Ok(slot);
                    }
                }
                Some(_) => {}
                None => free.push(n),
            }
            n += 1;
        }
        for n in free.into_iter().chain(n..) {
            let slot = Slot::at(dir, n);
            if slot.kept.exists() {
                continue;
            }
            if let Some(f) = try_lock(&slot.lock)? {
                slot.hold(f);
                // Lost a race with a release that marked it kept in between? Then look further.
                if slot.kept.exists() {
                    slot.unlock();
                    continue;
                }
                return Ok(slot);
            }
        }
        unreachable!("slot numbers are unbounded")
    }

    /// Register the slot as a linked worktree by writing git's documented layout ourselves:
    /// `<common>/worktrees/<id>/{gitdir,commondir,HEAD}` and `<slot>/.git`.
    ///
    /// Why not `git worktree add`: git 2.47 rewrites the `commondir` file of *other* linked
    /// worktrees while it adds one (measured here: a concurrent reader saw it empty 11 times
    /// during 40 adds), so a handler's `git commit` in one slot failed with "failed to read
    /// …/commondir" whenever another runner added a slot. Writing the four small files is what
    /// `git worktree add --no-checkout --detach` does, without touching anything else; the
    /// checkout that follows fills in the index and the files.
    fn register(&self, common_dir: &Path, start: ObjectId) -> Result<()> {
        let name = self.path.file_name().and_then(|n| n.to_str()).context("slot path has no name")?;
        let admin = common_dir.join("worktrees").join(format!("baton-{name}"));
        if admin.exists() {
            std::fs::remove_dir_all(&admin).with_context(|| format!("removing stale {}", admin.display()))?;
        }
        std::fs::create_dir_all(&admin).with_context(|| format!("creating {}", admin.display()))?;
        std::fs::create_dir_all(&self.path).with_context(|| format!("creating {}", self.path.display()))?;
        let slot = self.path.canonicalize().with_context(|| format!("resolving {}", self.path.display()))?;
        let admin = admin.canonicalize().with_context(|| format!("resolving {}", admin.display()))?;
        let write =
            |p: PathBuf, text: String| std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()));
        write(admin.join("commondir"), "../..\n".into())?;
        write(admin.join("HEAD"), format!("{start}\n"))?;
        write(admin.join("gitdir"), format!("{}\n", slot.join(".git").display()))?;
        write(slot.join(".git"), format!("gitdir: {}\n", admin.display()))?;
        Ok(())
    }

    /// Detach the slot at `claim`: the handler works there and the runner publishes its result. A
    /// branch name never reaches git's command line (a branch called `-Bvictim` stays a name).
    ///
    /// `keep`: ignored paths (policy `worktree.keep`, e.g. `target/`) that survive the clean, so a
    /// branch's build caches live from one step to the next in its slot.
    pub fn check_out_detached(&self, branch: &str, claim: ObjectId, keep: &[String]) -> Result<()> {
        let crashed = self.crashed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(left_by) = &crashed {
            // A runner died mid-run here: whatever its handler left is saved before the reset.
            salvage_changes_except(&self.path, left_by, keep)?;
        } else if self.kept.exists() {
            salvage_changes_except(&self.path, branch, keep)?;
        }
        let _ = std::fs::remove_file(&self.kept);
        let id = claim.to_string();
        run_git(&self.path, ["checkout", "-q", "-f", "--detach", &id])?;
        // With -x git ignores .gitignore but still honours the -e patterns given here.
        let mut clean: Vec<String> = ["clean", "-q", "-f", "-f", "-d", "-x"].map(String::from).to_vec();
        for k in keep {
            clean.push("-e".into());
            clean.push(k.clone());
        }
        run_git(&self.path, &clean)?;
        Ok(())
    }

    /// What the slot's HEAD holds, read from git's files without a subprocess: a commit id when
    /// detached, or the ref it names (`ref: refs/heads/x`, when a handler checked a branch out).
    pub fn head(&self) -> Option<SlotHead> {
        let dot_git = std::fs::read_to_string(self.path.join(".git")).ok()?;
        let gitdir = PathBuf::from(dot_git.trim().strip_prefix("gitdir: ")?);
        let head = std::fs::read_to_string(gitdir.join("HEAD")).ok()?;
        let head = head.trim();
        match head.strip_prefix("ref: ") {
            Some(r) => Some(SlotHead::Ref(r.trim().to_owned())),
            None => head.parse::<ObjectId>().ok().map(SlotHead::Detached),
        }
    }

    /// Give the slot back. `keep_for`: keep it with everything in it for that branch (failed run or
    /// `--keep-worktrees`); otherwise it returns to the pool. Either way HEAD is detached so the
    /// branch can be checked out elsewhere.
    pub fn release(&self, keep_for: Option<&str>) {
        // Slots are detached already; only a handler that checked a branch out needs undoing.
        if let Some(SlotHead::Ref(_)) = self.head() {
            if let Err(e) = run_git(&self.path, ["checkout", "-q", "--detach"]) {
                tracing::debug!("detaching {}: {e:#}", self.path.display());
            }
        }
        match keep_for {
            Some(branch) => {
                if let Err(e) = std::fs::write(&self.kept, branch) {
                    tracing::warn!("could not mark {} as kept: {e}", self.path.display());
                }
            }
            None => {
                let _ = std::fs::remove_file(&self.kept);
            }
        }
        let _ = std::fs::remove_file(&self.busy);
        self.unlock();
    }

    /// The descriptor of the held slot lock. A handler inherits it, so the `flock` stays held as
    /// long as any process of the run lives — even if the runner dies — and no other run is
    /// started in a slot where an earlier run's process still works.
    pub fn lock_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.held.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|f| f.as_raw_fd())
    }

    fn hold(&self, f: std::fs::File) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Drop the `flock`. The lock file itself stays: deleting it could let two processes lock
    /// two different files of the same name.
    fn unlock(&self) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Keep uncommitted work of a previous run as a commit on `refs/baton/salvage/<branch>/<time>`,
/// without touching the user's stash or any branch.
pub fn salvage_changes(path: &Path, branch: &str) -> Result<Option<String>> {
    salvage_changes_except(path, branch, &[])
}

/// [`salvage_changes`], leaving out the paths a state keeps between steps (`worktree.keep`).
pub fn salvage_changes_except(path: &Path, branch: &str, keep: &[String]) -> Result<Option<String>> {
    let mut spec: Vec<String> = vec!["--".into(), ".".into()];
    spec.extend(keep.iter().map(|k| format!(":(exclude){k}")));
    let mut status: Vec<String> = ["status", "--porcelain", "--untracked-files=all"].map(String::from).to_vec();
    status.extend(spec.iter().cloned());
    if run_git(path, &status)?.trim().is_empty() {
        return Ok(None);
    }
    let mut add: Vec<String> = vec!["add".into(), "-A".into()];
    add.extend(spec);
    run_git(path, &add)?;
    let tree = run_git(path, ["write-tree"])?;
    let msg = format!("baton: uncommitted changes left in the worktree of {branch}");
    let commit = run_git(path, ["commit-tree", tree.trim(), "-p", "HEAD", "-m", &msg])?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let refname = format!("refs/baton/salvage/{}/{stamp}", branch_key(branch));
    // Create-only (the empty old value): a salvage ref is never overwritten.
    run_git(path, ["update-ref", &refname, commit.trim(), ""])?;
    tracing::info!(branch, %refname, "kept uncommitted changes of an earlier run");
    Ok(Some(refname))
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
