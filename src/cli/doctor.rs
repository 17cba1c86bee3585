//! `git baton doctor`: gather the facts of a set-up (the effects live here), let
//! [`crate::doctor::judge`] decide each line, print.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Out;
use crate::doctor::{failed, judge, Facts, HandlerFact, HooksFact, RemoteFact, SourceFact, Uncommitted};
use crate::protocol::StateRead;
use crate::repo::{BranchSource, ObjectId, Repo};
use crate::runner::source::{self, Source};

/// Check the set-up, one line each — `ok`, `warn` or `fail`, with the fix: the repository, git's
/// version, the identity handlers commit with, where handlers come from (`baton.trustedRef`),
/// handlers that are not executable or lack `#!`, invalid states on branch heads, the policy file,
/// the size of the scratch space, git-baton's hooks, whether each remote answers (`git ls-remote`
/// within `--timeout`), and AYNIG's leftover `.worktrees/`. Exits 1 when any check fails.
///
/// `--json` prints one object per check: `{"check","verdict","detail","fix"}` with `verdict` one
/// of `ok`, `warn`, `fail` and `fix` null when nothing needs doing.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object per check.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for each remote to answer.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    timeout: f64,
    /// Only this remote, and a failure if it does not answer (the runner's `--remote`). Without
    /// it every configured remote is tried, and one that does not answer is a warning.
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    /// Where handlers come from, as `run --trusted-ref` (also `BATON_TRUSTED_REF`,
    /// `baton.trustedRef`).
    #[arg(long, value_name = "REF")]
    trusted_ref: Option<String>,
}

/// Run git with a clean stdin; Ok(stdout) on success, Err(first stderr line) otherwise.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("***")).unwrap_or("failed");
        Err(line.to_owned())
    }
}

/// The files of `.dwp/command/` (and every role's `command/`) in `tree`.
fn handler_facts(repo: &Repo, tree: ObjectId) -> Result<Vec<HandlerFact>> {
    use gix::object::tree::EntryKind;
    let mut dirs = vec![crate::runner::board::COMMAND_DIR.to_owned()];
    let top = repo.gix().find_tree(tree)?;
    if let Some(roles) = top.lookup_entry_by_path(".dwp/roles")? {
        if roles.mode().is_tree() {
            for r in repo.gix().find_tree(roles.object_id())?.iter() {
                let r = r?;
                if r.mode().is_tree() {
                    dirs.push(crate::runner::board::role_dir(&r.filename().to_string()));
                }
            }
        }
    }
    let mut out = Vec::new();
    for dir in dirs {
        let Some(entry) = top.lookup_entry_by_path(&dir)? else { continue };
        if !entry.mode().is_tree() {
            continue;
        }
        for e in repo.gix().find_tree(entry.object_id())?.iter() {
            let e = e?;
            let name = e.filename().to_string();
            let path = format!("{dir}/{name}");
            let fact = match e.mode().kind() {
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let blob = repo.gix().find_blob(e.object_id())?;
                    HandlerFact {
                        path,
                        executable: e.mode().kind() == EntryKind::BlobExecutable,
                        symlink: false,
                        head: blob.data.iter().take(4).copied().collect(),
                    }
                }
                EntryKind::Link => {
                    let found = repo.lookup_handler(tree, &dir, &name)?;
                    let executable = matches!(found, crate::repo::HandlerLookup::Found(_));
                    HandlerFact { path, executable, symlink: true, head: Vec::new() }
                }
                _ => continue,
            };
            out.push(fact);
        }
    }
    Ok(out)
}

/// Files of `<workdir>/.dwp/command/` that `handlers` (read from the handler tree) do not have
/// with the same content and executable bit.
fn uncommitted(repo: &Repo, tree: ObjectId, workdir: &Path, handlers: &[HandlerFact]) -> Vec<(String, Uncommitted)> {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::runner::board::COMMAND_DIR;
    let Ok(entries) = std::fs::read_dir(workdir.join(dir)) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
        if !meta.is_file() {
            continue;
        }
        let path = format!("{dir}/{}", e.file_name().to_string_lossy());
        let Some(h) = handlers.iter().find(|h| h.path == path) else {
            out.push((path, Uncommitted::New));
            continue;
        };
        let on_disk = std::fs::read(e.path()).ok();
        let in_tree = (|| {
            let t = repo.gix().find_tree(tree).ok()?;
            let entry = t.lookup_entry_by_path(&path).ok()??;
            Some(repo.gix().find_blob(entry.object_id()).ok()?.data.clone())
        })();
        let exec = meta.permissions().mode() & 0o111 != 0;
        if on_disk != in_tree || exec != h.executable {
            out.push((path, Uncommitted::Changed));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `git ls-remote NAME HEAD`, killed after `timeout`; prompts for credentials are refused.
fn reach(dir: &Path, name: &str, timeout: Duration, own_ssh: bool) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("git");
    cmd.args(["ls-remote", name, "HEAD"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("GIT_TERMINAL_PROMPT", "0")
        .process_group(0);
    if !own_ssh {
        // No password prompt from ssh either (unless the user configured their own ssh command).
        cmd.env("GIT_SSH_VARIANT", "ssh").env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run git: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if status.success() {
                    return Ok(());
                }
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                let line = err.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("git ls-remote failed");
                return Err(line.to_owned());
            }
            Ok(None) if start.elapsed() >= timeout => {
                // SAFETY: a signal to the process group this function started.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(format!("no answer within {:.1}s", timeout.as_secs_f64()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for git: {e}")),
        }
    }
}

/// AYNIG's leftover worktrees, as `migrate-aynig` finds them (so the two agree): (branch, path).
fn aynig_worktrees(repo: &Repo) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = crate::aynig::leftovers(repo)
        .unwrap_or_default()
        .into_iter()
        .map(|l| (l.branch.unwrap_or_else(|| "(detached)".to_owned()), l.path.display().to_string()))
        .collect();
    out.sort();
    out
}

fn gather(cwd: &Path, args: &Args) -> Facts {
    let mut f = Facts {
        git: Some(git(cwd, &["--version"]).and_then(|v| {
            crate::doctor::parse_git_version(&v).ok_or_else(|| format!("cannot read git's version from {v:?}"))
        })),
        ..Facts::default()
    };
    let repo = match Repo::discover(cwd) {
        Ok(r) => r,
        Err(e) => {
            f.repository = Some(Err(format!("{e:#}")));
            return f;
        }
    };
    f.repository = Some(Ok(repo.common_dir().display().to_string()));
    f.identity = Some(git(cwd, &["var", "GIT_COMMITTER_IDENT"]).map(|id| {
        // "Name <email> 1700000000 +0000": the time is not the point.
        id.rsplitn(3, ' ').nth(2).unwrap_or(&id).to_owned()
    }));
    let remote = args.remote.as_deref();
    let resolved =
        source::setting(&repo, args.trusted_ref.as_deref()).and_then(|s| source::resolve(&repo, s.as_ref(), remote));
    let tree = match resolved {
        Ok(Source::Trusted { read, commit, tree, .. }) => {
            f.source = Some(SourceFact::Trusted { read: read.clone(), commit: commit.to_string()[..12].to_owned() });
            f.handler_tree = Some(read);
            Some(tree)
        }
        Ok(Source::Task) => {
            f.source = Some(SourceFact::Task);
            f.handler_tree = Some("HEAD".into());
            repo.head_id().ok().flatten().and_then(|id| repo.commit(id).ok()).map(|c| c.tree)
        }
        Err(e) => {
            f.source = Some(SourceFact::Broken(format!("{e:#}")));
            None
        }
    };
    if let Some(tree) = tree {
        match handler_facts(&repo, tree) {
            Ok(h) => f.handlers = h,
            Err(e) => tracing::warn!("reading the handlers: {e:#}"),
        }
        if let Some(top) = repo.workdir() {
            f.uncommitted = uncommitted(&repo, tree, top, &f.handlers);
        }
        f.policy = match crate::policy::load::load(&repo, tree) {
            Ok(None) => None,
            Ok(Some(_)) => Some(Ok(())),
            Err(e) => Some(Err(format!("{e:#}").replace('\n', " "))),
        };
    }
    let heads = repo.branches(&BranchSource::Local).unwrap_or_else(|e| {
        tracing::warn!("reading the branches: {e:#}");
        Vec::new()
    });
    for head in heads {
        if let Ok(c) = repo.commit(head.id) {
            if let StateRead::Invalid(v) = c.state() {
                f.invalid_states.push((head.branch, v));
            }
        }
    }
    // A fact that cannot be read leaves its line out, and says why on stderr.
    match crate::gc::collect::scratch_usage(&repo) {
        Ok(u) => f.scratch = Some((u.logs.bytes, u.logs.count, u.slots.bytes, u.slots.count)),
        Err(e) => tracing::warn!("reading the scratch space: {e:#}"),
    }
    match super::hooks::installed_counts(cwd) {
        Ok((client_installed, client_total, server_installed)) => {
            f.hooks = Some(HooksFact { client_installed, client_total, server_installed, bare: repo.is_bare() })
        }
        Err(e) => tracing::warn!("reading the hooks: {e:#}"),
    }
    let names: Vec<String> = match remote {
        Some(r) => vec![r.to_owned()],
        None => repo.gix().remote_names().into_iter().map(|n| n.to_string()).collect(),
    };
    let timeout = Duration::try_from_secs_f64(args.timeout).unwrap_or(Duration::from_secs(5));
    // Every remote at once: the report waits for the slowest, not for their sum.
    let dir = repo.common_dir().to_path_buf();
    let own_ssh = std::env::var_os("GIT_SSH_COMMAND").is_some()
        || std::env::var_os("GIT_SSH").is_some()
        || repo.gix().config_snapshot().string("core.sshCommand").is_some();
    f.remotes = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                let dir = &dir;
                s.spawn(move || reach(dir, n, timeout, own_ssh))
            })
            .collect();
        names
            .iter()
            .zip(handles)
            .map(|(n, h)| RemoteFact {
                name: n.clone(),
                reached: h.join().unwrap_or_else(|_| Err("the check panicked".into())),
                required: remote.is_some(),
            })
            .collect()
    });
    f.aynig_worktrees = aynig_worktrees(&repo);
    f
}

pub fn cmd_doctor(cwd: &Path, args: Args) -> Result<ExitCode> {
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err(super::output::usage("--timeout must be a positive number of seconds"));
    }
    if let Some(r) = &args.remote {
        crate::runner::remote::check_remote_name(r).map_err(|e| super::output::usage(format!("--remote: {e}")))?;
    }
    let checks = judge(&gather(cwd, &args));
    let mut out = Out::new();
    for c in &checks {
        if args.json {
            out.json(c)?;
        } else {
            let fix = c.fix.as_deref().map(|f| format!(" — fix: {f}")).unwrap_or_default();
            out.line(&format!("{:<4} {:<15} {}{fix}", c.verdict.as_str(), c.check, c.detail))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::from(if failed(&checks) { 1 } else { 0 }))
}
