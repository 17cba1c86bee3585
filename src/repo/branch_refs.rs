//! Listing branches in two steps, so the expensive one can run on every core: first the names
//! (one directory walk of the loose refs plus the packed-refs buffer, no ref file opened), then
//! each name resolved to its commit (one small file read per loose ref, by gix).
//!
//! git's `for-each-ref` opens every loose ref file on one thread; with 2,000 loose branches that
//! is most of the time `status` or an idle tick takes. Reading the files in the same worker
//! threads that read the head commits puts git-baton ahead at every size (docs/performance.md).
//! Lookup follows git: a loose ref wins over its packed-refs entry; a packed entry alone counts.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use gix::bstr::ByteSlice;
use gix::refs::Target;

use super::{BranchHead, BranchSource, ObjectId, Repo};

/// A branch known by name, its ref file not read yet.
#[derive(Debug, Clone)]
pub struct BranchRef {
    /// Short name, as in [`BranchHead::branch`].
    pub branch: String,
    pub refname: String,
    /// Its packed-refs value; a loose file of the same name (`loose`) overrides it.
    packed: Option<ObjectId>,
    loose: bool,
}

impl Repo {
    /// The branches of `source`, sorted by ref name, without reading any loose ref file.
    pub fn branch_refs(&self, source: &BranchSource) -> Result<Vec<BranchRef>> {
        let prefix = match source {
            BranchSource::Local => "refs/heads/".to_owned(),
            BranchSource::Remote(remote) => format!("refs/remotes/{remote}/"),
        };
        let mut found: BTreeMap<String, (Option<ObjectId>, bool)> = BTreeMap::new();
        let packed = self.inner.refs.cached_packed_buffer().context("reading packed-refs")?;
        if let Some(buffer) = packed.as_ref() {
            let iter = buffer.iter_prefixed(prefix.clone().into()).context("reading packed-refs")?;
            for r in iter {
                match r {
                    Ok(r) => {
                        let name = r.name.as_bstr().to_str_lossy().into_owned();
                        found.entry(name).or_default().0 = Some(r.target());
                    }
                    Err(e) => tracing::warn!("skipping an unreadable line of packed-refs: {e}"),
                }
            }
        }
        let root = self.common_dir().join(prefix.trim_end_matches('/'));
        walk_loose(&root, &prefix, &mut |name| found.entry(name).or_default().1 = true)?;
        Ok(found
            .into_iter()
            .filter_map(|(refname, (packed, loose))| {
                let short = refname.strip_prefix(&prefix)?;
                if short == "HEAD" && matches!(source, BranchSource::Remote(_)) {
                    return None; // refs/remotes/<remote>/HEAD is a pointer, not a branch
                }
                let branch = match source {
                    BranchSource::Local => short.to_owned(),
                    BranchSource::Remote(remote) => format!("{remote}/{short}"),
                };
                Some(BranchRef { branch, refname, packed, loose })
            })
            .collect())
    }

    /// The commit a listed branch points to: its loose ref file read by gix (symbolic refs
    /// peeled), else its packed value. `None`, with a warning, when it cannot be read or is gone:
    /// one bad ref never stops the board.
    pub fn resolve_branch(&self, r: &BranchRef) -> Option<BranchHead> {
        let head = |id| BranchHead { branch: r.branch.clone(), refname: r.refname.clone(), id };
        if !r.loose {
            return r.packed.map(head);
        }
        match self.inner.refs.try_find_loose(r.refname.as_str()) {
            Ok(Some(loose)) => match loose.target {
                Target::Object(id) => Some(head(id)),
                Target::Symbolic(_) => {
                    match self.inner.find_reference(r.refname.as_str()).map(|mut x| x.peel_to_id()) {
                        Ok(Ok(id)) => Some(head(id.detach())),
                        Ok(Err(e)) => warn_skip(&r.refname, &e),
                        Err(e) => warn_skip(&r.refname, &e),
                    }
                }
            },
            Ok(None) => r.packed.map(head), // deleted since the walk: what packed-refs says
            Err(e) => warn_skip(&r.refname, &e),
        }
    }
}

fn warn_skip(refname: &str, e: &dyn std::fmt::Display) -> Option<BranchHead> {
    tracing::warn!("skipping {refname}: {e}");
    None
}

/// Every file under `dir` as a ref name `<prefix><relative path>`, `*.lock` files left out (a
/// ref being written, as git and gix skip them). A missing directory has no refs.
fn walk_loose(dir: &Path, prefix: &str, found: &mut dyn FnMut(String)) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::NotADirectory => {
            return Ok(())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!("skipping a ref whose name is not UTF-8: {}", entry.path().display());
            continue;
        };
        let kind = entry.file_type().with_context(|| format!("reading {}", entry.path().display()))?;
        let is_dir = kind.is_dir() || (kind.is_symlink() && entry.path().is_dir());
        if is_dir {
            walk_loose(&entry.path(), &format!("{prefix}{name}/"), found)?;
        } else if !name.ends_with(".lock") {
            found(format!("{prefix}{name}"));
        }
    }
    Ok(())
}
