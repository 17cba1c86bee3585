//! Reading the policy file: from a git tree (what the runner and `git baton policy` use — the
//! task's commit or the trusted ref's, see [`crate::runner::source`]), or from a file on disk
//! (`git baton policy check`). A file that does not parse is an error carrying the
//! [`PolicyError`], never a silent fallback to the built-ins: a typo must not lift a limit.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::{Policy, PolicyError};
use crate::repo::{ObjectId, Repo};

/// Where the policy lives in a tree (and in a working tree).
pub const POLICY_PATH: &str = ".dwp/policy.toml";

/// A policy is a short text file; anything bigger is a mistake, not a policy.
const MAX_POLICY_BYTES: usize = 1 << 20;

/// The policy in `tree`, or None if the tree has no `.dwp/policy.toml`. A file that is not a
/// regular blob, not UTF-8 or does not parse is an error; a parse error downcasts to
/// [`PolicyError`].
pub fn load(repo: &Repo, tree: ObjectId) -> Result<Option<Policy>> {
    let tree_obj = repo.gix().find_tree(tree).with_context(|| format!("reading tree {tree}"))?;
    let Some(entry) =
        tree_obj.lookup_entry_by_path(POLICY_PATH).with_context(|| format!("looking up {POLICY_PATH}"))?
    else {
        return Ok(None);
    };
    use gix::object::tree::EntryKind;
    if !matches!(entry.mode().kind(), EntryKind::Blob | EntryKind::BlobExecutable) {
        bail!("{POLICY_PATH} is not a regular file");
    }
    let blob = repo.gix().find_blob(entry.object_id()).with_context(|| format!("reading {POLICY_PATH}"))?;
    parse_bytes(&blob.data, POLICY_PATH).map(Some)
}

/// The policy in a file on disk; errors name `path` as given.
pub fn parse_file(path: &Path) -> Result<Policy> {
    parse_file_as(path, &path.display().to_string())
}

/// The policy in a file on disk; errors call it `name` (e.g. `.dwp/policy.toml` for the file at
/// the top of the working tree, wherever the command runs).
pub fn parse_file_as(path: &Path, name: &str) -> Result<Policy> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read {name}: {e}"))?;
    parse_bytes(&bytes, name)
}

fn parse_bytes(bytes: &[u8], name: &str) -> Result<Policy> {
    if bytes.len() > MAX_POLICY_BYTES {
        bail!("{name} is larger than {} bytes; a policy file should be short", MAX_POLICY_BYTES);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| anyhow!("{name} is not valid UTF-8 ({e})"))?;
    Policy::parse(text, name).map_err(anyhow::Error::new::<PolicyError>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_on_disk_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "[defaults]\ntimeout = \"2h\"\n").unwrap();
        assert_eq!(parse_file(&good).unwrap().defaults().timeout.as_ref().unwrap().get_ref().0, 7200);

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[defaults]\n\ntimeout = \"5x\"\n").unwrap();
        let e = parse_file(&bad).unwrap_err();
        let pe = e.downcast_ref::<PolicyError>().expect("a PolicyError");
        assert_eq!((pe.line, pe.key.as_deref()), (Some(3), Some("defaults.timeout")));
        assert!(e.to_string().starts_with(&format!("{}:3: defaults.timeout: invalid duration", bad.display())));

        let binary = dir.path().join("bin.toml");
        std::fs::write(&binary, b"[defaults]\xff\n").unwrap();
        assert!(parse_file(&binary).unwrap_err().to_string().contains("not valid UTF-8"));

        let missing = dir.path().join("missing.toml");
        assert!(parse_file(&missing).unwrap_err().to_string().starts_with("cannot read "));
    }
}
