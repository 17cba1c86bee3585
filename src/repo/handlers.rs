//! Handlers from a trusted tree: the `.dwp/` folder of that tree written out once per tree id
//! under `<common dir>/baton/handlers/<tree>/`, so the handler that runs is the trusted one while
//! its working directory is the task's worktree. A folder is written to a temporary name and
//! renamed into place, so a runner never sees half of one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gix::bstr::ByteSlice;

use super::{ObjectId, Repo};

/// The folder (inside the materialised tree) whose contents are written.
const DWP: &str = ".dwp";

/// Deepest folder nesting written (a hostile tree cannot make the runner recurse without end).
const MAX_DEPTH: usize = 32;

impl Repo {
    /// `<root>/<tree>/` holding the `.dwp/` folder of `tree`; written on first use.
    pub fn materialize_handlers(&self, root: &Path, tree: ObjectId) -> Result<PathBuf> {
        let dest = root.join(tree.to_string());
        if dest.join(".complete").exists() {
            return Ok(dest);
        }
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let tmp = root.join(format!("{tree}.tmp-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        let written = (|| -> Result<()> {
            std::fs::create_dir_all(&tmp)?;
            let top = self.inner.find_tree(tree).with_context(|| format!("reading tree {tree}"))?;
            if let Some(entry) = top.lookup_entry_by_path(DWP).context("looking up .dwp")? {
                if entry.mode().is_tree() {
                    self.write_tree(entry.object_id(), &tmp.join(DWP), 0)?;
                }
            }
            std::fs::write(tmp.join(".complete"), b"")?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e.context(format!("writing the trusted handlers of tree {tree}")));
        }
        if std::fs::rename(&tmp, &dest).is_err() {
            // Another runner was first: its copy is the same tree.
            let _ = std::fs::remove_dir_all(&tmp);
            if !dest.join(".complete").exists() {
                bail!("could not put the trusted handlers in place at {}", dest.display());
            }
        }
        Ok(dest)
    }

    fn write_tree(&self, tree: ObjectId, dir: &Path, depth: usize) -> Result<()> {
        use gix::object::tree::EntryKind;
        use std::os::unix::fs::PermissionsExt;
        if depth > MAX_DEPTH {
            bail!("{} is nested too deeply", dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tree = self.inner.find_tree(tree).with_context(|| format!("reading tree {tree}"))?;
        for entry in tree.iter() {
            let entry = entry.context("reading a tree entry")?;
            let name = entry.filename().to_str_lossy().into_owned();
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                continue;
            }
            let path = dir.join(&name);
            match entry.mode().kind() {
                EntryKind::Tree => self.write_tree(entry.object_id(), &path, depth + 1)?,
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let blob = self.inner.find_blob(entry.object_id()).with_context(|| format!("reading {name}"))?;
                    std::fs::write(&path, &blob.data).with_context(|| format!("writing {}", path.display()))?;
                    let mode = if entry.mode().kind() == EntryKind::BlobExecutable { 0o755 } else { 0o644 };
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
                }
                EntryKind::Link => {
                    let blob = self.inner.find_blob(entry.object_id()).with_context(|| format!("reading {name}"))?;
                    let target = blob.data.to_str_lossy().into_owned();
                    std::os::unix::fs::symlink(&target, &path)
                        .with_context(|| format!("writing symlink {}", path.display()))?;
                }
                EntryKind::Commit => {} // a submodule: nothing to run
            }
        }
        Ok(())
    }
}
