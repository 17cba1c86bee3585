//! `git baton migrate-aynig`: remove the per-branch worktrees an AYNIG runner left behind.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::Out;
use crate::aynig::{leftovers, Leftover};
use crate::repo::worktree::{run_git, salvage_changes};
use crate::repo::Repo;

/// AYNIG keeps one worktree per branch it ran (`.worktrees/worktree-<branch>-<hash>`), with the
/// branch checked out, and git-baton leaves a branch checked out elsewhere alone. This removes
/// them: uncommitted work in one (staged, unstaged or untracked, ignored files aside) is first
/// saved as a commit on `refs/baton/salvage/<branch>/<time>` (its parent is the worktree's HEAD;
/// `git baton` never deletes it), then `git worktree remove --force`. A locked worktree, and the
/// one you are standing in, are left in place and said so. The empty `.worktrees/` folder goes
/// too. Stop AYNIG's runner first: a handler still running in one of these would lose its folder.
///
/// One line per worktree; `--json`: one object per line `{"path","branch","dirty","action",
/// "salvage_ref","why"}` with `action` one of `removed`, `would-remove`, `skipped`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Say what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object per worktree.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
struct Migrated {
    path: String,
    branch: Option<String>,
    dirty: bool,
    action: &'static str,
    salvage_ref: Option<String>,
    why: Option<String>,
}

fn migrate_one(repo: &Repo, cwd: &Path, l: &Leftover, dry_run: bool) -> Migrated {
    let mut m = Migrated {
        path: l.path.display().to_string(),
        branch: l.branch.clone(),
        dirty: false,
        action: "skipped",
        salvage_ref: None,
        why: None,
    };
    if l.locked {
        m.why = Some("locked (git worktree unlock it first)".into());
        return m;
    }
    if cwd.canonicalize().is_ok_and(|c| c.starts_with(&l.path)) {
        m.why = Some("you are inside it".into());
        return m;
    }
    match run_git(&l.path, ["status", "--porcelain", "--untracked-files=all"]) {
        Ok(s) => m.dirty = !s.trim().is_empty(),
        Err(e) => {
            m.why = Some(format!("cannot read its status: {e:#}"));
            return m;
        }
    }
    if dry_run {
        m.action = "would-remove";
        return m;
    }
    if m.dirty {
        let key = l.branch.clone().unwrap_or_else(|| "detached".into());
        match salvage_changes(&l.path, &key) {
            Ok(r) => m.salvage_ref = r,
            Err(e) => {
                m.why = Some(format!("uncommitted work could not be saved, left in place: {e:#}"));
                return m;
            }
        }
    }
    let dir = repo.workdir().unwrap_or(repo.common_dir());
    match run_git(dir, ["worktree", "remove", "--force", &l.path.display().to_string()]) {
        Ok(_) => m.action = "removed",
        Err(e) => m.why = Some(format!("{e:#}")),
    }
    m
}

pub fn cmd_migrate_aynig(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let found = leftovers(&repo)?;
    let mut out = Out::new();
    let mut failed = false;
    for l in &found {
        let m = migrate_one(&repo, cwd, l, args.dry_run);
        failed |= m.action == "skipped" && !l.locked && m.why.as_deref() != Some("you are inside it");
        if args.json {
            out.json(&m)?;
        } else {
            let branch = m.branch.as_deref().unwrap_or("(detached)");
            let mut line = format!("{} {} {}", m.action, branch, m.path);
            if let Some(r) = &m.salvage_ref {
                line.push_str(&format!(" (uncommitted work saved on {r})"));
            } else if m.dirty && args.dry_run {
                line.push_str(" (has uncommitted work: it would be saved on refs/baton/salvage/…)");
            }
            if let Some(w) = &m.why {
                line.push_str(&format!(": {w}"));
            }
            out.line(&line)?;
        }
    }
    out.flush()?;
    if found.is_empty() {
        tracing::info!("no AYNIG worktrees in this repository");
    }
    if !args.dry_run {
        if let Some(dir) = repo.workdir().map(|w| w.join(".worktrees")) {
            // Only when empty: anything else in it is not ours to delete.
            if std::fs::remove_dir(&dir).is_ok() {
                tracing::info!("removed the empty {}", dir.display());
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
