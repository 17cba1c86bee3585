//! `git baton man`: manual pages generated from the command-line definition (clap_mangen), one per
//! command and subcommand (`git-baton.1`, `git-baton-run.1`, `git-baton-hooks-install.1`, …).
//!
//! git turns `git baton --help` into `man git-baton` (and `git help baton` likewise), so the page
//! must be where `man` looks before the user ever runs git-baton with `--help`. man-db derives
//! its search path from `PATH`: for a directory `D/bin` on `PATH` it also searches `D/share/man`
//! (and `D/man`). A binary installed as `D/bin/git-baton` (`cargo install` puts it in
//! `~/.cargo/bin`) therefore writes its pages to `D/share/man/man1` — automatically, the first time
//! it runs after an install or upgrade (see [`auto_install`]), so the README's install command
//! needs no extra step; `git baton man --install [DIR]` does it on demand.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;
use serde::Serialize;

use super::Out;

/// Print the manual page of git-baton (roff, for `man -l -`), or with `--install` write the pages
/// of every command to `DIR/man1/` (default: `../share/man` beside the running binary, where
/// `man` finds them through `PATH`). The binary also does this by itself when it runs from a
/// `bin/` folder and finds no page of its version there.
///
/// `--json` (with `--install`) prints one object per page: `{"page","path","written"}`
/// (`written` false when the file already had that content).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write every page to DIR/man1/ (DIR defaults to ../share/man beside the binary).
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    install: Option<Option<PathBuf>>,
    /// Print the page of this subcommand instead (e.g. `run`, `hooks install`).
    #[arg(value_name = "COMMAND", num_args = 0.., conflicts_with = "install")]
    command: Vec<String>,
    /// One JSON object per page written (with --install).
    #[arg(long, requires = "install")]
    json: bool,
}

/// One rendered page: its file name (`git-baton-run.1`) and roff text.
pub struct Page {
    pub file: String,
    pub roff: Vec<u8>,
}

/// The command-line definition as the pages show it: display names `git-baton-run`, …
fn definition() -> clap::Command {
    let mut cmd = super::Cli::command().name("git-baton").bin_name("git-baton").disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every page: the top command and each (nested) visible subcommand.
pub fn pages() -> Result<Vec<Page>> {
    fn walk(cmd: &clap::Command, out: &mut Vec<Page>) -> Result<()> {
        let man = clap_mangen::Man::new(cmd.clone()).manual("git-baton Manual").source(version_stamp());
        let mut roff = Vec::new();
        man.render(&mut roff).context("rendering a manual page")?;
        out.push(Page { file: man.get_filename(), roff });
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&definition(), &mut out)?;
    Ok(out)
}

/// `<exe dir>/../share/man` when the binary runs from a folder named `bin` (an installed binary,
/// not `target/debug`); None otherwise.
fn default_root() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    Some(bin.parent()?.join("share/man"))
}

/// What the `.TH` line of a current page carries: the name and version of this build.
fn version_stamp() -> String {
    format!("git-baton {}", env!("CARGO_PKG_VERSION"))
}

/// Write `pages` to `root/man1/`; returns (file, path, written) per page. A file that already has
/// the page's content is left untouched.
fn install(root: &Path, pages: &[Page]) -> Result<Vec<(String, PathBuf, bool)>> {
    let dir = root.join("man1");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for p in pages {
        let path = dir.join(&p.file);
        let same = std::fs::read(&path).is_ok_and(|old| old == p.roff);
        if !same {
            // Written beside and renamed: a `man` reading at the same time never sees half a page.
            let tmp = dir.join(format!(".{}.tmp-{}", p.file, std::process::id()));
            std::fs::write(&tmp, &p.roff).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        }
        out.push((p.file.clone(), path, !same));
    }
    Ok(out)
}

/// Called at every start: when the binary runs from `D/bin/` and `D/share/man/man1/git-baton.1`
/// is missing or of another version, write every page there. The check is one `stat` and a read
/// of the page's first bytes; failure (a read-only prefix) is logged at debug level and changes
/// nothing else — the pages are a convenience, and `git baton man --install DIR` remains.
/// `BATON_NO_MAN_INSTALL=1` turns it off (e.g. for a package that ships its own pages).
pub fn auto_install() {
    if std::env::var_os("BATON_NO_MAN_INSTALL").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    let Some(root) = default_root() else { return };
    if is_current(&root.join("man1/git-baton.1")) {
        return;
    }
    let done = pages().and_then(|p| install(&root, &p));
    match done {
        Ok(_) => tracing::debug!("installed the manual pages in {}", root.display()),
        Err(e) => tracing::debug!("could not install the manual pages in {}: {e:#}", root.display()),
    }
}

/// Whether the page at `path` is this version's (its `.TH` line, in the first lines, names it).
fn is_current(path: &Path) -> bool {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(path) else { return false };
    let mut head = Vec::with_capacity(512);
    if f.take(512).read_to_end(&mut head).is_err() {
        return false;
    }
    let stamp = version_stamp();
    String::from_utf8_lossy(&head).lines().any(|l| l.starts_with(".TH ") && l.contains(&stamp))
}

#[derive(Serialize)]
struct Written {
    page: String,
    path: String,
    written: bool,
}

pub fn cmd_man(args: Args) -> Result<ExitCode> {
    let pages = pages()?;
    let mut out = Out::new();
    match args.install {
        None => {
            let file = if args.command.is_empty() {
                "git-baton.1".to_owned()
            } else {
                format!("git-baton-{}.1", args.command.join("-"))
            };
            let page = pages.iter().find(|p| p.file == file).ok_or_else(|| {
                super::output::usage(format!("no command {:?}: see git baton --help", args.command.join(" ")))
            })?;
            out.bytes(&page.roff)?;
        }
        Some(dir) => {
            let root = match dir {
                Some(dir) => dir,
                None => default_root().ok_or_else(|| {
                    super::output::usage(
                        "this binary does not run from a bin/ folder: name the folder, e.g. --install ~/.local/share/man",
                    )
                })?,
            };
            let written = install(&root, &pages)?;
            let n = written.iter().filter(|w| w.2).count();
            for (page, path, w) in written {
                if args.json {
                    out.json(&Written { page, path: path.display().to_string(), written: w })?;
                }
            }
            let _ = writeln!(
                std::io::stderr(),
                "{n} of {} manual page(s) written to {} ({})",
                pages.len(),
                root.join("man1").display(),
                if man_finds(&root) {
                    "man finds them through PATH".to_owned()
                } else {
                    format!("add {} to MANPATH if `man git-baton` does not find it", root.display())
                }
            );
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Whether `root` is `D/share/man` for a `D/bin` on PATH (man-db's derived search path) or is
/// named in MANPATH.
fn man_finds(root: &Path) -> bool {
    let on_path = std::env::var_os("PATH").is_some_and(|v| {
        std::env::split_paths(&v)
            .any(|p| p.file_name().is_some_and(|n| n == "bin") && p.with_file_name("share/man") == root)
    });
    on_path || std::env::var_os("MANPATH").is_some_and(|v| std::env::split_paths(&v).any(|p| p == root))
}
