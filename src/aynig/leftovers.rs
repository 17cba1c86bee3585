//! What an AYNIG runner leaves behind: one linked worktree per branch it ran, at
//! `<repo>/.worktrees/worktree-<branch with / as _>-<8 hex>` (or under its `-w` folder), with the
//! branch checked out. git-baton then sees the branch "checked out in worktree" and leaves it
//! alone; `git baton migrate-aynig` removes them (saving uncommitted work first) and `doctor`
//! reports them.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::repo::worktree::Scratch;
use crate::repo::Repo;

/// One AYNIG worktree still registered with git.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    /// Where it is on disk.
    pub path: PathBuf,
    /// The branch it has checked out (None when detached).
    pub branch: Option<String>,
    /// `git worktree lock` was used on it: it is reported, never removed.
    pub locked: bool,
}

/// Does a worktree's folder name follow AYNIG's scheme for `branch`
/// (`worktree-<branch, '/' → '_'>-<first 8 hex digits of sha256(branch)>`)?
pub fn is_aynig_name(dir_name: &str, branch: &str) -> bool {
    let prefix = format!("worktree-{}-", branch.replace('/', "_"));
    dir_name
        .strip_prefix(&prefix)
        .is_some_and(|hash| hash.len() == 8 && hash.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
}

/// AYNIG's worktrees registered in this repository: those under `<workdir>/.worktrees/`, and those
/// elsewhere whose folder name follows AYNIG's scheme for the branch they hold (a custom `-w`).
/// git-baton's own slots (under `<common dir>/baton/`) are never listed. A registration whose
/// folder is gone is not listed either (`git worktree prune` handles those).
pub fn leftovers(repo: &Repo) -> Result<Vec<Leftover>> {
    let scratch = Scratch::new(repo.common_dir()).root;
    let ours = scratch.canonicalize().unwrap_or(scratch);
    let aynig_dir = repo.workdir().map(|w| w.join(".worktrees")).and_then(|d| d.canonicalize().ok());
    let mut out = Vec::new();
    for w in crate::repo::worktree::linked_worktrees(repo.common_dir()) {
        let Ok(real) = w.path.canonicalize() else {
            continue;
        };
        if real.starts_with(&ours) {
            continue;
        }
        let name = real.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let under_aynig_dir = aynig_dir.as_ref().is_some_and(|d| real.starts_with(d));
        let named_like_aynig = w.branch.as_deref().is_some_and(|b| is_aynig_name(&name, b));
        if under_aynig_dir || named_like_aynig {
            out.push(Leftover { path: real, branch: w.branch, locked: w.locked });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aynig_worktree_names() {
        assert!(is_aynig_name("worktree-feature_x-0a1b2c3d", "feature/x"));
        assert!(is_aynig_name("worktree-main-deadbeef", "main"));
        assert!(!is_aynig_name("worktree-main-deadbee", "main"));
        assert!(!is_aynig_name("worktree-main-DEADBEEF", "main"));
        assert!(!is_aynig_name("worktree-other-deadbeef", "main"));
        assert!(!is_aynig_name("main", "main"));
    }
}
