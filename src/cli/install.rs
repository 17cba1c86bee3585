//! `git baton install <repo> [ref] [subfolder]`: install a workflow pack (AYNIG's `install`).

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::output::usage;
use super::Out;
use crate::repo::worktree::run_git;
use crate::repo::Repo;

/// Copy another repository's `.dwp/` (or SUBFOLDER of it) into this repository's `.dwp/`: a
/// shallow clone (`git clone --depth 1 [--branch REF]`) into a temporary folder, then a copy of
/// its files (modes kept, `README.md` files and `.git` left out). Refused, with nothing changed,
/// when the local `.dwp/` has uncommitted changes (so `git diff .dwp` shows exactly what the
/// install did, and `git checkout .dwp` undoes it). `owner/name` means
/// `https://github.com/owner/name.git` unless a folder of that name exists here. Prints the files
/// installed and overwritten (`--json`: one object `{"source","ref","subfolder","installed",
/// "overwritten","unchanged"}`). No merge tool is ever run: an overwritten `COMMANDS.md` is
/// reported for you to review.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository: a URL, a path, or GitHub's `owner/name`.
    #[arg(value_name = "REPO")]
    repo: String,
    /// A branch or tag to clone (default: the remote's default branch).
    #[arg(value_name = "REF")]
    git_ref: Option<String>,
    /// Copy this folder of the clone instead of its `.dwp/`.
    #[arg(value_name = "SUBFOLDER")]
    subfolder: Option<String>,
    /// One JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug, Default)]
struct Installed {
    source: String,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    subfolder: Option<String>,
    installed: Vec<String>,
    overwritten: Vec<String>,
    unchanged: Vec<String>,
}

/// `owner/name` (GitHub's shorthand) → its https URL, unless it is a local folder; anything else
/// as given (AYNIG's rule, with the local folder first).
pub fn normalize_repo(repo: &str, exists_here: bool) -> String {
    let full = ["http://", "https://", "git@", "ssh://", "file://"].iter().any(|p| repo.starts_with(p));
    let slug = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c));
    let parts: Vec<&str> = repo.split('/').collect();
    if !full && !exists_here && parts.len() == 2 && parts.iter().all(|p| slug(p)) && parts[0] != "." && parts[0] != ".."
    {
        format!("https://github.com/{repo}.git")
    } else {
        repo.to_owned()
    }
}

/// A subfolder must stay inside the clone: relative, no `..`.
fn check_subfolder(sub: &str) -> Result<()> {
    let p = Path::new(sub);
    if sub.is_empty() || p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(usage(format!("subfolder {sub:?} must be a relative path inside the repository (no '..')")));
    }
    Ok(())
}

/// Every file (and symlink) under `src`, relative, sorted; `README.md` and `.git` left out.
fn files_under(src: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = src.join(&rel);
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name();
            if name == "README.md" || name == ".git" {
                continue;
            }
            let rel = rel.join(&name);
            if entry.file_type()?.is_dir() {
                stack.push(rel);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Copy one file (or symlink) with its mode; returns whether the destination changed and whether
/// it existed before.
fn copy_one(from: &Path, to: &Path) -> Result<(bool, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(from)?;
    let existed = std::fs::symlink_metadata(to).is_ok();
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from)?;
        if std::fs::read_link(to).ok().as_ref() == Some(&target) {
            return Ok((false, existed));
        }
        if existed {
            std::fs::remove_file(to).with_context(|| format!("replacing {}", to.display()))?;
        }
        std::os::unix::fs::symlink(&target, to).with_context(|| format!("creating {}", to.display()))?;
        return Ok((true, existed));
    }
    let data = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    let same = existed
        && std::fs::symlink_metadata(to).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o777 == mode)
        && std::fs::read(to).is_ok_and(|old| old == data);
    if same {
        return Ok((false, true));
    }
    if existed && std::fs::symlink_metadata(to)?.is_dir() {
        bail!("{} is a folder here and a file in the pack", to.display());
    }
    if std::fs::symlink_metadata(to).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(to)?;
    }
    std::fs::write(to, &data).with_context(|| format!("writing {}", to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok((true, existed))
}

pub fn cmd_install(cwd: &Path, args: Args) -> Result<ExitCode> {
    if let Some(sub) = &args.subfolder {
        check_subfolder(sub)?;
    }
    if args.repo.trim().is_empty() || args.repo.starts_with('-') {
        return Err(usage(format!("invalid repository {:?}", args.repo)));
    }
    if args.git_ref.as_deref().is_some_and(|r| r.is_empty() || r.starts_with('-')) {
        return Err(usage(format!("invalid ref {:?}", args.git_ref.as_deref().unwrap_or(""))));
    }
    let repo = Repo::discover(cwd)?;
    let Some(workdir) = repo.workdir().map(Path::to_path_buf) else {
        bail!("a bare repository has no .dwp/ to install into");
    };
    // Refused before anything is fetched: the install must be reviewable and undoable with git.
    let dirty = run_git(&workdir, ["status", "--porcelain", "--untracked-files=all", "--", ".dwp"])?;
    if !dirty.trim().is_empty() {
        let first = dirty.lines().next().unwrap_or("").trim();
        bail!(".dwp/ has uncommitted changes ({first}…); commit or stash them first, nothing was installed");
    }
    let local = cwd.join(&args.repo);
    let source = normalize_repo(&args.repo, local.exists());
    let source = if local.exists() { local.canonicalize()?.display().to_string() } else { source };
    let tmp = tempfile::Builder::new().prefix("git-baton-install-").tempdir().context("creating a temporary folder")?;
    let clone = tmp.path().join("pack");
    let mut clone_args: Vec<String> = vec!["clone".into(), "--quiet".into(), "--depth".into(), "1".into()];
    if let Some(r) = &args.git_ref {
        clone_args.extend(["--branch".into(), r.clone()]);
    }
    // A local path as a file:// URL: git ignores --depth for a plain path.
    let url = if local.exists() { format!("file://{source}") } else { source.clone() };
    clone_args.extend(["--".into(), url, clone.display().to_string()]);
    tracing::info!("cloning {source}{}", args.git_ref.as_deref().map(|r| format!(" at {r}")).unwrap_or_default());
    run_git(tmp.path(), &clone_args).with_context(|| format!("cloning {source}"))?;
    let from = match &args.subfolder {
        Some(sub) => clone.join(sub),
        None => clone.join(".dwp"),
    };
    let at = args.git_ref.as_deref().map(|r| format!(" at {r}")).unwrap_or_default();
    if !from.is_dir() {
        match &args.subfolder {
            Some(sub) => bail!("no folder {sub} in {source}{at}; nothing was installed"),
            None => bail!("no .dwp/ folder in {source}{at}; nothing was installed"),
        }
    }
    let dest = workdir.join(".dwp");
    let mut report = Installed {
        source: source.clone(),
        git_ref: args.git_ref.clone(),
        subfolder: args.subfolder.clone(),
        ..Installed::default()
    };
    for rel in files_under(&from)? {
        let shown = format!(".dwp/{}", rel.display());
        match copy_one(&from.join(&rel), &dest.join(&rel))? {
            (false, _) => report.unchanged.push(shown),
            (true, false) => report.installed.push(shown),
            (true, true) => report.overwritten.push(shown),
        }
    }
    let mut out = Out::new();
    if args.json {
        out.json(&report)?;
    } else {
        for f in &report.installed {
            out.line(&format!("installed {f}"))?;
        }
        for f in &report.overwritten {
            out.line(&format!("overwritten {f}"))?;
        }
        tracing::info!(
            "{} installed, {} overwritten, {} unchanged from {source}{at}",
            report.installed.len(),
            report.overwritten.len(),
            report.unchanged.len()
        );
        if report.overwritten.iter().any(|f| f == ".dwp/COMMANDS.md") {
            tracing::warn!("COMMANDS.md was overwritten: review it with `git diff .dwp/COMMANDS.md`");
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_as_aynig_reads_them() {
        assert_eq!(normalize_repo("owner/name", false), "https://github.com/owner/name.git");
        assert_eq!(normalize_repo("owner/name", true), "owner/name");
        assert_eq!(normalize_repo("https://x/y.git", false), "https://x/y.git");
        assert_eq!(normalize_repo("git@github.com:o/n.git", false), "git@github.com:o/n.git");
        assert_eq!(normalize_repo("../pack", false), "../pack");
        assert_eq!(normalize_repo("/abs/pack", false), "/abs/pack");
        assert_eq!(normalize_repo("a/b/c", false), "a/b/c");
    }

    #[test]
    fn subfolders_stay_inside() {
        assert!(check_subfolder("packs/review").is_ok());
        assert!(check_subfolder("../x").is_err());
        assert!(check_subfolder("/etc").is_err());
        assert!(check_subfolder("").is_err());
    }
}
