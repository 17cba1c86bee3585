//! `git baton hooks install|uninstall|status`: put git-baton's hook scripts where git looks for
//! hooks, without ever losing a hook that was there.
//!
//! The hooks directory is what `git rev-parse --git-path hooks` says, so `core.hooksPath` (also a
//! relative one) and linked worktrees are handled exactly as git handles them. A hook that is
//! already there is renamed to `<name>.baton-chained` — a rename, so its bytes, mode, owner and a
//! symlink stay exactly as they were — and git-baton's script runs it first, with the same
//! arguments and input, passing its exit status on. `uninstall` removes only scripts carrying
//! git-baton's marker line and renames the chained hook back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cli::output::usage;
use crate::cli::Out;
use crate::repo::Repo;

/// Where a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// In a repository people commit in.
    Client,
    /// In a repository that receives pushes (usually bare).
    Server,
}

/// One hook git-baton manages, with its script from `hooks/`.
pub struct Hook {
    pub name: &'static str,
    pub side: Side,
    script: &'static str,
}

pub const HOOKS: [Hook; 4] = [
    Hook {
        name: "reference-transaction",
        side: Side::Client,
        script: include_str!("../../../hooks/reference-transaction"),
    },
    Hook { name: "post-checkout", side: Side::Client, script: include_str!("../../../hooks/post-checkout") },
    Hook { name: "pre-receive", side: Side::Server, script: include_str!("../../../hooks/pre-receive") },
    Hook { name: "post-receive", side: Side::Server, script: include_str!("../../../hooks/post-receive") },
];

/// The line that marks a script as git-baton's (second line of every script in `hooks/`).
const MARKER: &str = "\n# git-baton-hook: ";
/// A hook that was there before git-baton is kept under this suffix and run first.
pub const CHAINED_SUFFIX: &str = ".baton-chained";
/// The line of every script that names the binary; install writes the absolute path there.
const BATON_LINE: &str = "\nbaton=git-baton\n";
/// The client scripts' default for the checked-out branch.
const CURRENT_INCLUDE: &str = "--current-branch include";

/// What a hook-started tick does with the branch checked out in the main worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HookCurrent {
    /// Run it too (refused while the checkout has uncommitted changes; logged) and bring the
    /// checkout along after a successful run.
    Include,
    /// Leave it alone; it runs when you switch away from it (`post-checkout`).
    Skip,
}

/// Install git-baton's hooks where git reads hooks from, chaining any hook already there.
///
/// The directory is `git rev-parse --git-path hooks`, so `core.hooksPath` is respected. Client side (default): `reference-transaction` and
/// `post-checkout` start a tick in the background for the branches that moved, and for the branch
/// you switched away from. `--server`: `pre-receive` refuses pushes that would corrupt the
/// protocol, `post-receive` starts a tick for the pushed branches. A hook already there is kept as
/// `<name>.baton-chained` and still runs, first. Re-running updates git-baton's scripts.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// Install the server-side hooks (`pre-receive`, `post-receive`) for a repository that
    /// receives pushes.
    #[arg(long)]
    server: bool,
    /// Client side: whether a hook-started tick also runs the branch checked out in the main
    /// worktree.
    #[arg(long, value_enum, default_value_t = HookCurrent::Include)]
    current_branch: HookCurrent,
}

/// Remove git-baton's hooks and put back the hooks they chained, byte for byte.
///
/// Both sides are removed; hooks that are not git-baton's are left alone.
#[derive(clap::Args, Debug)]
pub struct UninstallArgs {}

/// Show which of git-baton's hooks are installed, and where.
///
/// For each hook git-baton manages: installed or not, whether a previous hook is chained, and
/// whether someone else's hook sits in its place; plus the hooks directory in use. `--json`: one
/// object per hook, `{"name":"reference-transaction","side":"client","path":"…","installed":true,
/// "chained":false,"foreign":false,"hooks_dir":"…","bare":false}`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print JSON Lines (one object per hook) instead of a table.
    #[arg(long)]
    json: bool,
}

/// The hooks directory git uses for the repository at `cwd`, absolute.
///
/// Asked of git itself, in the caller's environment (a user's `GIT_DIR` counts here, as it does
/// for every other git command they run): `core.hooksPath`, relative paths and linked worktrees
/// then resolve exactly as when git runs the hooks.
pub fn hooks_dir(cwd: &Path) -> Result<PathBuf> {
    let out = Command::new("git")
        .args(["rev-parse", "--git-path", "hooks"])
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .context("running git rev-parse --git-path hooks")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("git rev-parse --git-path hooks failed: {}", err.lines().next().unwrap_or("").trim());
    }
    let text = String::from_utf8(out.stdout).context("the hooks path is not UTF-8")?;
    let dir = Path::new(text.trim_end_matches('\n'));
    Ok(if dir.is_absolute() { dir.to_path_buf() } else { cwd.join(dir) })
}

/// `'…'` for the shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script to install: the template with the binary's absolute path (so hooks work when
/// `git-baton` is not on the PATH git runs hooks with) and the `--current-branch` choice.
fn render(hook: &Hook, baton: &Path, current: HookCurrent) -> Result<String> {
    let baton = baton.to_str().context("the path of git-baton is not UTF-8")?;
    if !hook.script.contains(BATON_LINE) {
        bail!("internal: the {} script has no `baton=` line", hook.name);
    }
    let mut script = hook.script.replacen(BATON_LINE, &format!("\nbaton={}\n", shell_quote(baton)), 1);
    if current == HookCurrent::Skip {
        script = script.replace(CURRENT_INCLUDE, "--current-branch skip");
    }
    Ok(script)
}

/// Does `path` hold a script git-baton wrote?
fn is_ours(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| {
        let head = &b[..b.len().min(256)];
        head.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())
    })
}

/// For `doctor`: (client hooks of git-baton installed, client hooks in all, server hooks
/// installed) in the hooks directory git uses for `cwd`.
pub fn installed_counts(cwd: &Path) -> Result<(usize, usize, usize)> {
    let dir = hooks_dir(cwd)?;
    let ours = |side: Side| HOOKS.iter().filter(|h| h.side == side && is_ours(&dir.join(h.name))).count();
    let clients = HOOKS.iter().filter(|h| h.side == Side::Client).count();
    Ok((ours(Side::Client), clients, ours(Side::Server)))
}

/// Is there anything at `path` (a dangling symlink counts)?
fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn chained_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(CHAINED_SUFFIX);
    PathBuf::from(s)
}

/// Write `script` to `path` atomically (temp file, mode 0755, rename).
fn write_script(path: &Path, script: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().context("hook path has no folder")?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("hook");
    let tmp = dir.join(format!(".{name}.baton-tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(script.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("moving {} into place", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn cmd_install(cwd: &Path, args: InstallArgs) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    if repo.is_bare() && !args.server {
        return Err(usage(
            "this is a bare repository: it receives pushes, so install the server hooks with `git baton hooks install --server`",
        ));
    }
    let side = if args.server { Side::Server } else { Side::Client };
    let dir = hooks_dir(cwd)?;
    if dir.exists() && !dir.is_dir() {
        // `core.hooksPath=/dev/null` is the usual way to switch hooks off.
        bail!("git reads hooks from {}, which is not a folder: hooks are switched off here", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let baton = std::env::current_exe().context("locating the git-baton binary")?;
    let mut out = Out::new();
    for hook in HOOKS.iter().filter(|h| h.side == side) {
        let path = dir.join(hook.name);
        let chained = chained_path(&path);
        let script = render(hook, &baton, args.current_branch)?;
        let note = if is_ours(&path) {
            write_script(&path, &script)?;
            "updated"
        } else if present(&path) {
            if present(&chained) {
                bail!(
                    "{} and {} both exist: move one of them away, then install again",
                    path.display(),
                    chained.display()
                );
            }
            std::fs::rename(&path, &chained).with_context(|| format!("moving your hook {} aside", path.display()))?;
            if let Err(e) = write_script(&path, &script) {
                // Put the user's hook back rather than leave the name empty.
                let _ = std::fs::rename(&chained, &path);
                return Err(e);
            }
            "installed; your previous hook is kept as <name>.baton-chained and runs first"
        } else {
            write_script(&path, &script)?;
            if present(&chained) {
                "installed; runs the hook left at <name>.baton-chained first"
            } else {
                "installed"
            }
        };
        out.line(&format!("{}: {note}", path.display()))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn cmd_uninstall(cwd: &Path, _args: UninstallArgs) -> Result<ExitCode> {
    let dir = hooks_dir(cwd)?;
    let mut out = Out::new();
    let mut removed = 0;
    for hook in &HOOKS {
        let path = dir.join(hook.name);
        let chained = chained_path(&path);
        if is_ours(&path) {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed += 1;
            if present(&chained) {
                std::fs::rename(&chained, &path)
                    .with_context(|| format!("restoring {} from {}", path.display(), chained.display()))?;
                out.line(&format!("{}: removed; your previous hook is back", path.display()))?;
            } else {
                out.line(&format!("{}: removed", path.display()))?;
            }
        } else if present(&chained) {
            tracing::warn!("{} is not git-baton's: left it and {} as they are", path.display(), chained.display());
        }
    }
    if removed == 0 {
        tracing::info!("no git-baton hooks in {}", dir.display());
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct HookStatus {
    name: &'static str,
    side: Side,
    path: String,
    /// git-baton's script is in place.
    installed: bool,
    /// A hook that was there before is kept at `<path>.baton-chained` (and runs first).
    chained: bool,
    /// Someone else's hook occupies the name (install would chain it).
    foreign: bool,
}

/// One `--json` line: a hook and the directory it was looked for in.
#[derive(Debug, Serialize)]
struct HookLine<'a> {
    #[serde(flatten)]
    hook: &'a HookStatus,
    hooks_dir: &'a str,
    bare: bool,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    hooks_dir: String,
    bare: bool,
    hooks: Vec<HookStatus>,
}

pub fn cmd_status(cwd: &Path, args: StatusArgs) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let dir = hooks_dir(cwd)?;
    let hooks = HOOKS
        .iter()
        .map(|h| {
            let path = dir.join(h.name);
            let installed = is_ours(&path);
            HookStatus {
                name: h.name,
                side: h.side,
                chained: present(&chained_path(&path)),
                foreign: !installed && present(&path),
                installed,
                path: path.display().to_string(),
            }
        })
        .collect();
    let report = StatusReport { hooks_dir: dir.display().to_string(), bare: repo.is_bare(), hooks };
    let mut out = Out::new();
    if args.json {
        let (hooks_dir, bare) = (report.hooks_dir.as_str(), report.bare);
        out.json_each(report.hooks.iter().map(|hook| HookLine { hook, hooks_dir, bare }))?;
    } else {
        out.line(&format!("hooks dir: {}", report.hooks_dir))?;
        out.line(&format!("{:<22} {:<7} {:<10} {:<8} NOTE", "HOOK", "SIDE", "INSTALLED", "CHAINED"))?;
        let yes = |b: bool| if b { "yes" } else { "no" };
        for h in &report.hooks {
            let side = match h.side {
                Side::Client => "client",
                Side::Server => "server",
            };
            let note = if h.foreign { "another hook is there (install chains it)" } else { "" };
            let line = format!("{:<22} {:<7} {:<10} {:<8} {note}", h.name, side, yes(h.installed), yes(h.chained));
            out.line(line.trim_end())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_has_the_marker_and_the_baton_line() {
        for hook in &HOOKS {
            assert!(hook.script.starts_with("#!/bin/sh\n"), "{}", hook.name);
            assert!(hook.script.contains(&format!("{MARKER}{} ", hook.name)), "{}: marker line", hook.name);
            let s = render(hook, Path::new("/opt/it's here/git-baton"), HookCurrent::Skip).unwrap();
            assert!(s.contains("\nbaton='/opt/it'\\''s here/git-baton'\n"), "{s}");
            assert!(!s.contains(CURRENT_INCLUDE));
        }
    }

    #[test]
    fn client_scripts_pass_the_current_branch_choice() {
        for hook in HOOKS.iter().filter(|h| h.side == Side::Client) {
            assert!(hook.script.contains(CURRENT_INCLUDE), "{}", hook.name);
        }
    }
}
