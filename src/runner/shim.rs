//! The `aynig` shim: handlers written for AYNIG call `aynig set-state …` and `aynig set-working`.
//! The runner puts a folder holding `aynig` — a symlink to the running git-baton executable, which
//! speaks AYNIG's command line when invoked under that name — first on each handler's `PATH`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::repo::worktree::Scratch;

/// The folder that holds the shim: `<common dir>/baton/bin`.
pub fn shim_dir(scratch: &Scratch) -> PathBuf {
    scratch.root.join("bin")
}

/// Make sure `<scratch>/bin/aynig` points to `exe`; replaced atomically (a symlink under a
/// temporary name, renamed over) when it points elsewhere, so runners sharing a repository never
/// see a missing shim. Returns the folder.
pub fn ensure_shim(scratch: &Scratch, exe: &Path) -> Result<PathBuf> {
    let dir = shim_dir(scratch);
    let link = dir.join("aynig");
    if std::fs::read_link(&link).is_ok_and(|target| target == exe) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".aynig.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(exe, &tmp).with_context(|| format!("creating {}", tmp.display()))?;
    std::fs::rename(&tmp, &link).with_context(|| format!("creating {}", link.display()))?;
    Ok(dir)
}

/// `PATH` with the shim folder first (the runner's own `PATH` after it, or the system default).
pub fn path_with_shim(dir: &Path, path: Option<&str>) -> String {
    match path.filter(|p| !p.is_empty()) {
        Some(p) => format!("{}:{p}", dir.display()),
        None => format!("{}:/usr/local/bin:/usr/bin:/bin", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_points_to_the_executable_and_is_replaced_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Scratch { root: dir.path().to_path_buf() };
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let bin = ensure_shim(&scratch, &a).unwrap();
        assert_eq!(std::fs::read_link(bin.join("aynig")).unwrap(), a);
        ensure_shim(&scratch, &b).unwrap();
        assert_eq!(std::fs::read_link(bin.join("aynig")).unwrap(), b);
        assert_eq!(path_with_shim(&bin, Some("/usr/bin")), format!("{}:/usr/bin", bin.display()));
        assert!(path_with_shim(&bin, None).ends_with(":/usr/bin:/bin"));
    }
}
