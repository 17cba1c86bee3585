//! `git baton init`: prepare a repository for git-baton handlers.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::output::usage;
use super::Out;
use crate::repo::worktree::run_git;
use crate::repo::Repo;
use crate::runner::source;

const SAMPLE_HANDLER: &str = include_str!("../../state-scripts/hello");
const GITIGNORE_LINES: &[&str] = &["# git-baton scratch (runner worktrees and logs live under .git/baton)", "/.baton/"];
const COMMANDS_MD: &str = "# Handlers\n\n\
Each executable file `.dwp/command/<state>` handles branches whose newest commit carries\n\
`dwp-state: <state>`. `git baton run` claims the branch, runs the handler in a linked worktree\n\
and expects it to answer with a commit naming the next state (`git commit` with a\n\
`dwp-state:` trailer, or `git baton send NEXT`). Role-specific handlers live in\n\
`.dwp/roles/<role>/command/<state>`.\n\n\
| state | what it does |\n|---|---|\n| hello | sample: writes hello.txt and moves the branch to `done` |\n";

/// Create `.dwp/command/` with a sample `hello` handler, `.dwp/COMMANDS.md`, and `.gitignore`
/// entries for the runner's scratch folder, in the top of the working tree, and set
/// `baton.trustedRef` to the default branch when the repository has no such setting (handlers and
/// policy then run from that branch only, never from a task's commit). Existing files and settings
/// are left as they are; re-running changes nothing. Prints each thing it did.
#[derive(clap::Args, Debug)]
pub struct Args {}

fn create_if_missing(path: &Path, contents: &str, executable: bool, out: &mut Out) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    out.line(&format!("created {}", path.display()))?;
    Ok(())
}

pub fn cmd_init(cwd: &Path, _args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let top =
        repo.workdir().ok_or_else(|| usage("a bare repository has no working tree to put .dwp/ in"))?.to_path_buf();
    let mut out = Out::new();
    let command_dir = top.join(".dwp/command");
    if !command_dir.exists() {
        std::fs::create_dir_all(&command_dir).with_context(|| format!("creating {}", command_dir.display()))?;
        out.line(&format!("created {}/", command_dir.display()))?;
    }
    create_if_missing(&command_dir.join("hello"), SAMPLE_HANDLER, true, &mut out)?;
    create_if_missing(&top.join(".dwp/COMMANDS.md"), COMMANDS_MD, false, &mut out)?;

    let gitignore = top.join(".gitignore");
    let existing = std::fs::read_to_string(&gitignore).unwrap_or_default();
    let missing: Vec<&str> =
        GITIGNORE_LINES.iter().copied().filter(|l| !existing.lines().any(|e| e.trim() == *l)).collect();
    if missing.iter().any(|l| !l.starts_with('#')) {
        let mut text = String::new();
        if !existing.is_empty() && !existing.ends_with('\n') {
            text.push('\n');
        }
        for l in &missing {
            text.push_str(l);
            text.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&gitignore)
            .with_context(|| format!("writing {}", gitignore.display()))?;
        f.write_all(text.as_bytes())?;
        out.line(&format!("updated {}", gitignore.display()))?;
    }
    if let Some(branch) = set_trusted_ref(&repo, &top)? {
        out.line(&format!(
            "set {} = refs/heads/{branch}: handlers and .dwp/policy.toml run from {branch} only \
             (commit them there; `git config --unset {}` runs each task's own, as AYNIG does)",
            source::CONFIG_KEY,
            source::CONFIG_KEY
        ))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The repository's default branch: the one `origin/HEAD` names in a clone, else the branch
/// checked out here, else `init.defaultBranch`, else `main`.
fn default_branch(repo: &Repo) -> String {
    let config = repo.gix().config_snapshot();
    if let Ok(Some(r)) = repo.gix().try_find_reference("refs/remotes/origin/HEAD") {
        if let Some(name) = r.target().try_name() {
            if let Some(b) = name.as_bstr().to_string().strip_prefix("refs/remotes/origin/") {
                return b.to_owned();
            }
        }
    }
    if let Some(b) = crate::runner::tick::main_branch(repo) {
        return b;
    }
    config.string("init.defaultBranch").map(|b| b.to_string()).unwrap_or_else(|| "main".into())
}

/// Set `baton.trustedRef` to the default branch unless the repository already has a setting.
fn set_trusted_ref(repo: &Repo, top: &Path) -> Result<Option<String>> {
    if repo.gix().config_snapshot().string(source::CONFIG_KEY).is_some() {
        return Ok(None);
    }
    let branch = default_branch(repo);
    run_git(top, ["config", source::CONFIG_KEY, &format!("refs/heads/{branch}")])?;
    Ok(Some(branch))
}
