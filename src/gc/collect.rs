//! The effects of gc: read the scratch space and the board, remove what [`super::decide`] says.
//!
//! Order matters for safety against runners working at the same time. The inventory (files, slot
//! locks, refs) is read first and the board after it, so anything a run creates after the board
//! was read is not in the inventory, and anything in the inventory whose run is running shows up
//! as running on the board. Each removal re-checks what it relies on: a ref is deleted by
//! compare-and-swap on the value read (a renewed lease survives), and a slot is removed while gc
//! holds its `flock` (no runner can take it meanwhile) and only if its kept mark and last use are
//! still what was read. A kept slot's uncommitted leftovers are saved to
//! `refs/baton/salvage/<branch_key>/<nanos>` before it goes; if that fails, the slot stays.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use gix::bstr::ByteSlice;
use serde::Serialize;

use super::{decide, usage, HeadFacts, Inventory, LogEntry, RefEntry, RefKind, ScratchUsage, SlotEntry, Verdict};
use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved, StateRead};
use crate::repo::worktree::Scratch;
use crate::repo::{BranchSource, Cas, ObjectId, Repo};

/// What gc removed (or, with `dry_run`, would remove).
///
/// JSON: `{"kind": "log"|"slot"|"ref"|"handlers", "path_or_ref": "<absolute path or full ref name>",
/// "bytes": <size on disk, null for refs>, "reason": "<why it could go>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub kind: Kind,
    pub path_or_ref: String,
    pub bytes: Option<u64>,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Log,
    Slot,
    Ref,
    /// A copy of a trusted tree's `.dwp/` folder.
    Handlers,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Log => "log",
            Kind::Slot => "slot",
            Kind::Ref => "ref",
            Kind::Handlers => "handlers",
        }
    }
}

/// Remove the scratch nothing needs any more (logs, slots and refs older than `older_than`, stale
/// lease refs at once); with `dry_run`, only say what would go. A removal that fails is logged and
/// skipped; reading the inventory or the board failing is an error.
pub fn run_gc(repo: &Repo, older_than: Duration, dry_run: bool, now: i64) -> Result<Vec<Removed>> {
    let scratch = Scratch::new(repo.common_dir());
    // The inventory before the board: see the module documentation.
    let inv = inventory(repo, &scratch)?;
    let heads = board_facts(repo)?;
    let decisions = decide(&inv, &heads, now, older_than);
    let mut removed = Vec::new();

    for (log, verdict) in inv.logs.iter().zip(&decisions.logs) {
        let Some(reason) = removal(verdict, &log.path.display().to_string()) else { continue };
        if !dry_run {
            if let Err(e) = std::fs::remove_file(&log.path) {
                tracing::warn!("could not remove {}: {e}", log.path.display());
                continue;
            }
            // The branch's folder goes with its last log (fails harmlessly while others remain).
            if let Some(dir) = log.path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        removed.push(Removed { kind: Kind::Log, path_or_ref: path_text(&log.path), bytes: Some(log.bytes), reason });
    }

    for (slot, verdict) in inv.slots.iter().zip(&decisions.slots) {
        let Some(mut reason) = removal(verdict, &slot.path.display().to_string()) else { continue };
        if !dry_run {
            match remove_slot(repo, &scratch, slot) {
                Ok(Some(salvaged)) => reason.push_str(&format!("; its uncommitted changes are saved in {salvaged}")),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("not removing {}: {e:#}", slot.path.display());
                    continue;
                }
            }
        } else if slot.kept_for.is_some() {
            reason.push_str("; its uncommitted changes, if any, would be saved under refs/baton/salvage/");
        }
        removed.push(Removed { kind: Kind::Slot, path_or_ref: path_text(&slot.path), bytes: Some(slot.bytes), reason });
    }

    for (r, verdict) in inv.refs.iter().zip(&decisions.refs) {
        let Some(reason) = removal(verdict, &r.name) else { continue };
        if !dry_run {
            match repo.delete_ref(&r.name, r.id) {
                Ok(Cas::Updated) => {}
                Ok(Cas::Moved { .. }) => {
                    tracing::debug!("{} moved since it was read; left alone", r.name);
                    continue;
                }
                Err(e) => {
                    tracing::warn!("could not delete {}: {e:#}", r.name);
                    continue;
                }
            }
        }
        removed.push(Removed { kind: Kind::Ref, path_or_ref: r.name.clone(), bytes: None, reason });
    }
    removed.extend(old_handler_copies(repo, &scratch, older_than, dry_run, now));
    Ok(removed)
}

/// Copies of trusted handler folders (`<scratch>/handlers/<tree>/`) last written before the limit,
/// except the current trusted tree's. A handler still running from a removed copy keeps its open
/// files (Linux); the next run writes the copy again.
fn old_handler_copies(repo: &Repo, scratch: &Scratch, older_than: Duration, dry_run: bool, now: i64) -> Vec<Removed> {
    let root = scratch.root.join("handlers");
    let current = crate::runner::source::configured(repo, None, None).ok().and_then(|src| match src {
        crate::runner::source::Source::Trusted { tree, .. } => Some(tree.to_string()),
        crate::runner::source::Source::Task => None,
    });
    let limit = i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for entry in read_dir(&root).unwrap_or_default() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if current.as_deref() == Some(name.as_str()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let age = now - mtime_secs(&meta);
        if age < limit {
            continue;
        }
        let path = entry.path();
        let bytes = dir_bytes(&path);
        if !dry_run {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!("could not remove {}: {e}", path.display());
                continue;
            }
        }
        out.push(Removed {
            kind: Kind::Handlers,
            path_or_ref: path_text(&path),
            bytes: Some(bytes),
            reason: format!("copy of trusted handlers of an older tree; {}s old", age),
        });
    }
    out
}

/// The reason to remove, or `None` (a kept item is logged at debug level with its reason).
fn removal(verdict: &Verdict, what: &str) -> Option<String> {
    match verdict {
        Verdict::Remove(reason) => Some(reason.clone()),
        Verdict::Keep(reason) => {
            tracing::debug!("keeping {what}: {reason}");
            None
        }
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The sizes of the scratch space (`git baton status --scratch`).
pub fn scratch_usage(repo: &Repo) -> Result<ScratchUsage> {
    let scratch = Scratch::new(repo.common_dir());
    let inv = inventory(repo, &scratch)?;
    let names: Vec<String> = baton_refs(repo)?.into_iter().map(|(name, _)| name).collect();
    Ok(usage(path_text(&scratch.root), &inv, &names))
}

/// Read the scratch space: logs, slots (with their locks tested) and the `refs/baton/` refs gc
/// looks after.
pub fn inventory(repo: &Repo, scratch: &Scratch) -> Result<Inventory> {
    let logs = list_logs(&scratch.root.join("logs"))?;
    let slots = list_slots(repo.common_dir(), &scratch.slots())?;
    let mut refs = Vec::new();
    for (name, id) in baton_refs(repo)? {
        let Some(kind) = RefKind::parse(&name) else { continue };
        // A ref gc cannot read as a commit is not one it wrote: leave it alone.
        let commit = match repo.commit(id) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("leaving {name} alone: {e:#}");
                continue;
            }
        };
        let run_id = last_text(&commit.trailers, Key::RunId);
        refs.push(RefEntry { name, id, kind, commit_time: commit.committer_time, run_id });
    }
    Ok(Inventory { logs, slots, refs })
}

/// What every branch head (local, and remote-tracking of every configured remote, named without
/// the remote's prefix) says about runs.
pub fn board_facts(repo: &Repo) -> Result<Vec<HeadFacts>> {
    let mut heads = Vec::new();
    let mut sources = vec![(BranchSource::Local, String::new())];
    for remote in repo.gix().remote_names() {
        let remote = remote.to_str_lossy().into_owned();
        let prefix = format!("{remote}/");
        sources.push((BranchSource::Remote(remote), prefix));
    }
    for (source, prefix) in sources {
        for head in repo.branches(&source)? {
            let commit = repo.commit(head.id)?;
            let working = matches!(commit.state(), StateRead::Valid(s) if s.is(Reserved::Working));
            heads.push(HeadFacts {
                branch: head.branch.strip_prefix(&prefix).unwrap_or(&head.branch).to_owned(),
                working,
                run_id: last_text(&commit.trailers, Key::RunId),
                stalled_run: last_text(&commit.trailers, Key::StalledRun),
            });
        }
    }
    Ok(heads)
}

/// Every ref under `refs/baton/` and the object it points to, sorted by name.
pub fn baton_refs(repo: &Repo) -> Result<Vec<(String, ObjectId)>> {
    let platform = repo.gix().references().context("reading refs")?;
    let mut out = Vec::new();
    for r in platform.prefixed("refs/baton/").context("reading refs/baton/")? {
        let r = r.map_err(|e| anyhow!("reading a ref: {e}"))?;
        let name = r.name().as_bstr().to_str_lossy().into_owned();
        // Symbolic refs are nobody's scratch; only direct ones are listed.
        if let Some(id) = r.target().try_id() {
            out.push((name, id.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

fn mtime_secs(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Entries of a folder; a missing folder has none.
fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            entries.collect::<std::io::Result<Vec<_>>>().with_context(|| format!("reading {}", dir.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// `logs/<branch_key>/<run_id>.log`; anything else in there is not ours to judge.
fn list_logs(root: &Path) -> Result<Vec<LogEntry>> {
    let mut logs = Vec::new();
    for dir in read_dir(root)? {
        if !dir.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let branch_key = dir.file_name().to_string_lossy().into_owned();
        for file in read_dir(&dir.path())? {
            let path = file.path();
            let Some(run_id) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".log")) else {
                continue;
            };
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            if !meta.is_file() || run_id.is_empty() {
                continue;
            }
            let run_id = run_id.to_owned();
            logs.push(LogEntry {
                path,
                branch_key: branch_key.clone(),
                run_id,
                mtime: mtime_secs(&meta),
                bytes: meta.len(),
            });
        }
    }
    logs.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(logs)
}

/// Slots are numbered folders `slot-N` with `slot-N.lock` and `slot-N.kept` beside them. The
/// folder is listed (not counted up from 0) so a gap never hides a slot.
fn list_slots(common_dir: &Path, dir: &Path) -> Result<Vec<SlotEntry>> {
    let mut numbers = std::collections::BTreeSet::new();
    for entry in read_dir(dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("slot-") else { continue };
        let digits = rest.strip_suffix(".kept").unwrap_or(rest);
        // `slot-N` (the worktree) or `slot-N.kept` (kept, maybe without its folder after a crash).
        if let Ok(n) = digits.parse::<u64>() {
            if n.to_string() == digits {
                numbers.insert(n);
            }
        }
    }
    let mut slots = Vec::new();
    for n in numbers {
        slots.push(read_slot(common_dir, dir, n)?);
    }
    Ok(slots)
}

struct SlotFiles {
    path: PathBuf,
    lock: PathBuf,
    kept: PathBuf,
    admin: PathBuf,
}

fn slot_files(common_dir: &Path, dir: &Path, name: &str) -> SlotFiles {
    SlotFiles {
        path: dir.join(name),
        lock: dir.join(format!("{name}.lock")),
        kept: dir.join(format!("{name}.kept")),
        admin: common_dir.join("worktrees").join(format!("baton-{name}")),
    }
}

fn read_slot(common_dir: &Path, dir: &Path, n: u64) -> Result<SlotEntry> {
    let name = format!("slot-{n}");
    let f = slot_files(common_dir, dir, &name);
    let locked = is_locked(&f.lock);
    let kept_for = read_kept(&f.kept);
    let bytes = dir_bytes(&f.path) + dir_bytes(&f.admin);
    Ok(SlotEntry { name, path: f.path.clone(), locked, kept_for, mtime: last_use(&f), bytes })
}

fn read_kept(kept: &Path) -> Option<String> {
    std::fs::read_to_string(kept).ok().map(|s| s.trim().to_owned())
}

/// The newest of: the folder, the kept mark, and git's admin files (HEAD and index are rewritten
/// by every checkout, detach and commit in the slot).
fn last_use(f: &SlotFiles) -> i64 {
    [f.path.clone(), f.kept.clone(), f.admin.clone(), f.admin.join("HEAD"), f.admin.join("index")]
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .map(|m| mtime_secs(&m))
        .max()
        .unwrap_or(0)
}

/// Bytes of the regular files under `path`; symlinks are counted as themselves, never followed.
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(_) => total += entry.metadata().map_or(0, |m| m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

/// Try the slot's lock without keeping it: a runner holding it makes the slot locked. A lock file
/// that cannot even be opened counts as locked (gc stays away from what it cannot check).
fn is_locked(lock: &Path) -> bool {
    match File::open(lock) {
        Ok(file) => !flock_nonblocking(&file),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// An exclusive, non-blocking `flock`; released when `file` is closed.
fn flock_nonblocking(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Remove a slot: under its lock, and only if its kept mark and last use are still what the
/// inventory read. Its kept leftovers are salvaged first. The lock file stays (deleting it could
/// let two processes lock two different files of the same name). Returns the salvage ref, if any.
fn remove_slot(repo: &Repo, scratch: &Scratch, slot: &SlotEntry) -> Result<Option<String>> {
    let f = slot_files(repo.common_dir(), &scratch.slots(), &slot.name);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&f.lock)
        .with_context(|| format!("opening {}", f.lock.display()))?;
    if !flock_nonblocking(&lock) {
        bail!("a runner took it meanwhile");
    }
    if read_kept(&f.kept) != slot.kept_for || last_use(&f) != slot.mtime {
        bail!("it was used meanwhile");
    }
    let salvaged = match &slot.kept_for {
        Some(branch) if f.path.join(".git").exists() => crate::repo::worktree::salvage_changes(&f.path, branch)?,
        _ => None,
    };
    for dir in [&f.path, &f.admin] {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        }
    }
    // The kept mark last: a slot half removed by a crash is still kept for its branch.
    match std::fs::remove_file(&f.kept) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", f.kept.display()))
        }
        _ => {}
    }
    drop(lock);
    Ok(salvaged)
}
