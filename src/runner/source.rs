//! Where handlers and the policy file come from: the task's own commit (AYNIG's behaviour), or a
//! trusted ref (`baton.trustedRef`, `--trusted-ref`, `BATON_TRUSTED_REF`) whose tree alone decides
//! what runs. With a trusted ref, nothing a pushed branch or a coding agent commits can change the
//! handler that runs next or lift its own policy.

use anyhow::{anyhow, bail, Context, Result};

use crate::repo::{ObjectId, Repo};

/// The git config key naming the trusted ref.
pub const CONFIG_KEY: &str = "baton.trustedRef";
/// The environment variable naming the trusted ref (beats the config, loses to the flag).
pub const ENV_VAR: &str = "BATON_TRUSTED_REF";

/// The configured trusted ref, if any, and where the setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedSetting {
    /// Full ref name, e.g. `refs/heads/main`.
    pub refname: String,
    /// `--trusted-ref`, `BATON_TRUSTED_REF` or `baton.trustedRef`.
    pub from: &'static str,
}

/// `main` → `refs/heads/main`; a full `refs/…` name stays. Anything git would not accept as a
/// ref name is refused.
pub fn normalize(name: &str, from: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        bail!("{from} is empty: name a ref such as refs/heads/main");
    }
    let full = if name.starts_with("refs/") { name.to_owned() } else { format!("refs/heads/{name}") };
    let _: gix::refs::FullName =
        full.as_str().try_into().map_err(|e| anyhow!("{from}: {name:?} is not a valid ref name ({e})"))?;
    Ok(full)
}

/// Read the setting: the flag, else `BATON_TRUSTED_REF`, else `baton.trustedRef`.
pub fn setting(repo: &Repo, flag: Option<&str>) -> Result<Option<TrustedSetting>> {
    if let Some(f) = flag {
        return Ok(Some(TrustedSetting { refname: normalize(f, "--trusted-ref")?, from: "--trusted-ref" }));
    }
    if let Some(v) = std::env::var_os(ENV_VAR) {
        let v = v.to_str().ok_or_else(|| anyhow!("{ENV_VAR} is not valid UTF-8"))?;
        return Ok(Some(TrustedSetting { refname: normalize(v, ENV_VAR)?, from: ENV_VAR }));
    }
    match repo.gix().config_snapshot().string(CONFIG_KEY) {
        None => Ok(None),
        Some(v) => {
            let v = String::from_utf8_lossy(v.as_ref()).into_owned();
            Ok(Some(TrustedSetting { refname: normalize(&v, CONFIG_KEY)?, from: CONFIG_KEY }))
        }
    }
}

/// The ref actually read for a trusted ref name: in remote mode a branch is read from its
/// remote-tracking ref (`refs/heads/main` → `refs/remotes/origin/main`), since the remote's
/// branch is what every runner agrees on; other refs (tags, `refs/baton/…`) are read as named.
pub fn ref_to_read(refname: &str, remote: Option<&str>) -> String {
    match (remote, refname.strip_prefix("refs/heads/")) {
        (Some(r), Some(b)) => format!("refs/remotes/{r}/{b}"),
        _ => refname.to_owned(),
    }
}

/// Handlers and policy for one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Each task's own commit (no trusted ref configured).
    Task,
    /// One tree for every branch.
    Trusted {
        /// The configured name, e.g. `refs/heads/main`.
        refname: String,
        /// The ref that was read (the remote-tracking ref in remote mode).
        read: String,
        commit: ObjectId,
        tree: ObjectId,
    },
}

impl Source {
    /// One line for people: which source is in use.
    pub fn describe(&self) -> String {
        match self {
            Source::Task => "handlers and policy come from each task's own commit (no baton.trustedRef set)".into(),
            Source::Trusted { read, commit, .. } => {
                format!("handlers and policy come from {read} ({})", &commit.to_string()[..12])
            }
        }
    }

    /// The tree handlers and policy are read from for a task whose head has `task_tree`.
    pub fn tree_for(&self, task_tree: ObjectId) -> ObjectId {
        match self {
            Source::Task => task_tree,
            Source::Trusted { tree, .. } => *tree,
        }
    }

    pub fn is_trusted(&self) -> bool {
        matches!(self, Source::Trusted { .. })
    }
}

/// Resolve the setting to a source. A trusted ref that does not exist, or does not point to a
/// commit, is an error — never a fallback to the task's commit.
pub fn resolve(repo: &Repo, setting: Option<&TrustedSetting>, remote: Option<&str>) -> Result<Source> {
    let Some(s) = setting else {
        return Ok(Source::Task);
    };
    let read = ref_to_read(&s.refname, remote);
    let Some(id) = repo.ref_id(&read).with_context(|| format!("reading the trusted ref {read} ({})", s.from))? else {
        bail!(
            "the trusted ref {read} ({} = {}) does not exist; refusing to run handlers from anywhere else",
            s.from,
            s.refname
        );
    };
    let commit =
        repo.commit(id).map_err(|_| anyhow!("the trusted ref {read} ({}) does not point to a commit", s.from))?;
    Ok(Source::Trusted { refname: s.refname.clone(), read, commit: id, tree: commit.tree })
}

/// The source in use: the setting ([`setting`]) resolved ([`resolve`]) — what every command that
/// reads handlers or policy calls.
pub fn configured(repo: &Repo, flag: Option<&str>, remote: Option<&str>) -> Result<Source> {
    resolve(repo, setting(repo, flag)?.as_ref(), remote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_and_checked() {
        assert_eq!(normalize("main", "x").unwrap(), "refs/heads/main");
        assert_eq!(normalize("refs/tags/v1", "x").unwrap(), "refs/tags/v1");
        assert!(normalize("", "x").unwrap_err().to_string().contains("empty"));
        assert!(normalize("a..b", "x").is_err());
        assert!(normalize("refs/heads/x y", "x").is_err());
    }

    #[test]
    fn remote_mode_reads_branches_from_tracking_refs() {
        assert_eq!(ref_to_read("refs/heads/main", Some("origin")), "refs/remotes/origin/main");
        assert_eq!(ref_to_read("refs/heads/main", None), "refs/heads/main");
        assert_eq!(ref_to_read("refs/tags/v1", Some("origin")), "refs/tags/v1");
    }
}
