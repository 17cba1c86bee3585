//! `git baton conflicts`: the handler results the runner could not publish. When a branch moved
//! under a run (or the handler rewound its lease, or the remote refused), the runner keeps the
//! result on `refs/baton/rejected/<branch>/<run-id>` (older versions: `refs/baton/conflicts/…`)
//! instead of forcing it over anyone's work. This command lists them, shows what they hold, makes
//! one the branch head (a compare-and-swap, fast-forward unless forced) or drops them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use gix::bstr::ByteSlice;
use serde::Serialize;

use super::output::{branch_selected, usage};
use super::Out;
use crate::gc::RefKind;
use crate::protocol::LeaseStatus;
use crate::repo::worktree::run_git;
use crate::repo::{BranchSource, Cas, ObjectId, Repo};
use crate::runner::clock;
use crate::runner::remote::{self, ls_remote, push_ref, Pushed};

/// List, show, apply or drop the results the runner kept instead of publishing them.
///
/// A result is kept on `refs/baton/rejected/<branch>/<run-id>` (older runners:
/// `refs/baton/conflicts/<branch>/<run-id>`) when its branch moved during the run, the handler
/// rewound its lease or the remote refused the push. Without a subcommand, lists them: one line
/// each with the branch, run id, kind, the result's state, how many of its commits the branch
/// does not have, the branch head and the result's age.
///
/// `--json` prints one object per line (none when nothing is kept):
/// `{"ref","branch","run_id","kind":"rejected"|"conflict","commit","state","commits",
/// "branch_head","age_seconds"}` — `state` is the result commit's `dwp-state` (null without one), `commits` the
/// number of commits reachable from the result but not from `branch_head` (not from any branch
/// when the branch is gone), `branch_head` null when the branch no longer exists.
///
/// `--remote NAME` first fetches the remote's branches and its kept results (so the work of
/// runners on other machines is seen); the branch heads are then the remote's, `apply` pushes to
/// the remote and `drop` deletes there too. Every change is a compare-and-swap on the value read:
/// a ref that moved meanwhile is left alone and reported.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Print JSON Lines (one object per line) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// List only results of branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    branches: Vec<String>,
    /// Work against this remote: fetch its branches and kept results first, apply and drop there.
    #[arg(long, value_name = "NAME", global = true)]
    remote: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Show a kept result: its commits the branch does not have, and the diff stat against the
    /// branch head.
    ///
    /// `--json` prints the list's object for it plus `"log":[{"commit","subject","state"}]`
    /// (newest first) and `"files":[{"path","added","deleted"}]` (`added`/`deleted` null for
    /// binary files; empty when the branch is gone).
    Show {
        /// The full ref name (`refs/baton/rejected/<branch>/<run-id>`) or the run id.
        target: String,
    },
    /// Make a kept result the branch head, then drop it.
    ///
    /// Only as a fast-forward (the branch head must be an ancestor of the result) unless
    /// `--force`; never while a run holds the branch, nor (locally) while the branch is checked
    /// out in a worktree. `--force` replaces the branch head and keeps the old one on
    /// `refs/baton/rejected/<branch>/replaced-<unix time>`. With `--remote`, the branch is pushed
    /// with `--force-with-lease` on the head fetched. `--json` prints
    /// `{"ref","branch","commit","old_head","fast_forward","old_head_kept_at"}`.
    Apply {
        /// The full ref name or the run id.
        target: String,
        /// Replace a branch head that is not an ancestor of the result (the old head is kept).
        #[arg(long)]
        force: bool,
    },
    /// Delete kept results (compare-and-swap on the value read; with `--remote`, there too).
    ///
    /// Prints `dropped <ref> <commit>` per ref; `--json` one `{"ref","commit"}` per line,
    /// printed as each is dropped (so after a failure the lines say what was done).
    Drop {
        /// Full ref names or run ids; nothing is deleted unless every one names a kept result.
        #[arg(required = true)]
        targets: Vec<String>,
    },
}

/// One kept result, as read.
#[derive(Debug, Clone)]
struct Kept {
    refname: String,
    branch: String,
    run_id: String,
    kind: &'static str,
    id: ObjectId,
}

impl Kept {
    /// `refs/baton/rejected|conflicts/<branch>/<run-id>`; the branch may contain slashes.
    fn parse(refname: String, id: ObjectId) -> Option<Kept> {
        let (branch, run_id, kind) = match RefKind::parse(&refname)? {
            RefKind::Rejected { branch, run_id } => (branch, run_id, "rejected"),
            RefKind::Conflict { branch, run_id } => (branch, run_id, "conflict"),
            _ => return None,
        };
        Some(Kept { refname, branch, run_id, kind, id })
    }
}

/// Where branches live: local heads, or the remote-tracking refs of `--remote`.
struct Board<'a> {
    repo: &'a Repo,
    remote: Option<&'a str>,
}

impl Board<'_> {
    fn branch_ref(&self, branch: &str) -> String {
        match self.remote {
            Some(r) => format!("refs/remotes/{r}/{branch}"),
            None => format!("refs/heads/{branch}"),
        }
    }

    fn head(&self, branch: &str) -> Result<Option<ObjectId>> {
        self.repo.ref_id(&self.branch_ref(branch))
    }

    fn source(&self) -> BranchSource {
        self.remote.map_or(BranchSource::Local, |r| BranchSource::Remote(r.to_owned()))
    }

    /// The commits of `tip` the branch does not have (newest first); when the branch is gone,
    /// the ones no branch has.
    fn beyond(&self, tip: ObjectId, head: Option<ObjectId>) -> Result<Vec<ObjectId>> {
        let hidden: Vec<ObjectId> = match head {
            Some(h) => vec![h],
            None => self.repo.branches(&self.source())?.into_iter().map(|b| b.id).collect(),
        };
        let walk = self.repo.gix().rev_walk([tip]).with_hidden(hidden).all().context("walking history")?;
        walk.map(|info| Ok(info.context("walking history")?.id)).collect()
    }
}

#[derive(Serialize)]
struct Row {
    #[serde(rename = "ref")]
    refname: String,
    branch: String,
    run_id: String,
    kind: &'static str,
    commit: String,
    state: Option<String>,
    commits: usize,
    branch_head: Option<String>,
    age_seconds: i64,
}

pub fn cmd_conflicts(cwd: &Path, args: Args) -> Result<ExitCode> {
    if let Some(r) = &args.remote {
        // The same rule as `run --remote`: never an option to git, always a ref name component.
        remote::check_remote_name(r).map_err(|e| usage(format!("--remote: {e}")))?;
    }
    if args.action.is_some() && !args.branches.is_empty() {
        return Err(usage("--branch only filters the list; it does not go with show, apply or drop"));
    }
    let repo = Repo::discover(cwd)?;
    if let Some(r) = &args.remote {
        fetch(&repo, r)?;
    }
    let board = Board { repo: &repo, remote: args.remote.as_deref() };
    let kept = kept_refs(&repo)?;
    let mut out = Out::new();
    match args.action {
        None => list(&board, &kept, &args.branches, args.json, &mut out)?,
        Some(Action::Show { target }) => show(&board, resolve(&kept, &target)?, args.json, &mut out)?,
        Some(Action::Apply { target, force }) => apply(&board, resolve(&kept, &target)?, force, args.json, &mut out)?,
        Some(Action::Drop { targets }) => {
            let mut chosen: Vec<&Kept> = Vec::new();
            for t in &targets {
                let k = resolve(&kept, t)?;
                if !chosen.iter().any(|c| c.refname == k.refname) {
                    chosen.push(k);
                }
            }
            drop_kept(&board, &chosen, args.json, &mut out)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Fetch the remote's branches (as the runner does) and its kept results. Kept refs are fetched
/// without pruning: results kept only here (local runs) must survive.
fn fetch(repo: &Repo, name: &str) -> Result<()> {
    if !remote::is_configured(repo, name) {
        return Err(usage(format!("no remote named {name:?} in this repository")));
    }
    let dir = repo.common_dir();
    remote::fetch(dir, name).map_err(|why| anyhow!("fetching {name}: {why}"))?;
    let specs = ["+refs/baton/rejected/*:refs/baton/rejected/*", "+refs/baton/conflicts/*:refs/baton/conflicts/*"];
    let mut args = vec!["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", name];
    args.extend(specs);
    run_git(dir, args).with_context(|| format!("fetching the kept results of {name}"))?;
    Ok(())
}

/// Every ref under `refs/baton/rejected/` and `refs/baton/conflicts/` that names a branch and a
/// run, sorted by branch, then oldest first.
fn kept_refs(repo: &Repo) -> Result<Vec<Kept>> {
    let platform = repo.gix().references().context("reading refs")?;
    let mut out = Vec::new();
    for prefix in ["refs/baton/rejected/", "refs/baton/conflicts/"] {
        for r in platform.prefixed(prefix).with_context(|| format!("reading {prefix}"))? {
            let mut r = r.map_err(|e| anyhow!("reading a ref under {prefix}: {e}"))?;
            let refname = r.name().as_bstr().to_str_lossy().into_owned();
            if RefKind::parse(&refname).is_none() {
                continue; // not `<branch>/<run-id>`: not a result the runner kept
            }
            let id = r.peel_to_id().with_context(|| format!("resolving {refname}"))?.detach();
            out.extend(Kept::parse(refname, id));
        }
    }
    let time = |k: &Kept| repo.commit(k.id).map(|c| c.committer_time).unwrap_or(0);
    let mut keyed: Vec<(i64, Kept)> = out.into_iter().map(|k| (time(&k), k)).collect();
    keyed.sort_by(|(ta, a), (tb, b)| (&a.branch, ta, &a.refname).cmp(&(&b.branch, tb, &b.refname)));
    Ok(keyed.into_iter().map(|(_, k)| k).collect())
}

/// The kept result `target` names: a full ref name, or a run id (unique).
fn resolve<'a>(kept: &'a [Kept], target: &str) -> Result<&'a Kept> {
    let matches: Vec<&Kept> = if target.starts_with("refs/") {
        kept.iter().filter(|k| k.refname == target).collect()
    } else {
        kept.iter().filter(|k| k.run_id == target).collect()
    };
    match matches.as_slice() {
        [] => bail!("no kept result {target:?} (`git baton conflicts` lists them)"),
        [one] => Ok(one),
        many => {
            let names: Vec<&str> = many.iter().map(|k| k.refname.as_str()).collect();
            Err(usage(format!("{target:?} names {} kept results, use the full ref: {}", many.len(), names.join(", "))))
        }
    }
}

fn row(board: &Board<'_>, k: &Kept, now: i64) -> Result<Row> {
    let commit = board.repo.commit(k.id)?;
    let head = board.head(&k.branch)?;
    Ok(Row {
        refname: k.refname.clone(),
        branch: k.branch.clone(),
        run_id: k.run_id.clone(),
        kind: k.kind,
        commit: k.id.to_string(),
        state: commit.state().text().map(str::to_owned),
        commits: board.beyond(k.id, head)?.len(),
        branch_head: head.map(|h| h.to_string()),
        age_seconds: now - commit.committer_time,
    })
}

fn list(board: &Board<'_>, kept: &[Kept], globs: &[String], json: bool, out: &mut Out) -> Result<()> {
    let now = clock::now();
    let rows: Vec<Row> =
        kept.iter().filter(|k| branch_selected(globs, &k.branch)).map(|k| row(board, k, now)).collect::<Result<_>>()?;
    if json {
        return out.json_each(&rows);
    }
    let bw = rows.iter().map(|r| r.branch.len()).max().unwrap_or(0).max(6);
    let rw = rows.iter().map(|r| r.run_id.len()).max().unwrap_or(0).max(6);
    let sw = rows.iter().map(|r| r.state.as_deref().map_or(1, str::len)).max().unwrap_or(0).max(5);
    out.line(&format!(
        "{:bw$}  {:rw$}  {:8}  {:sw$}  {:>7}  {:>5}  {:12}  HEAD",
        "BRANCH", "RUN ID", "KIND", "STATE", "COMMITS", "AGE", "COMMIT"
    ))?;
    for r in &rows {
        let head = r.branch_head.as_deref().map_or("(deleted)", |h| &h[..12]);
        out.line(&format!(
            "{:bw$}  {:rw$}  {:8}  {:sw$}  {:>7}  {:>5}  {:12}  {head}",
            r.branch,
            r.run_id,
            r.kind,
            r.state.as_deref().unwrap_or("-"),
            r.commits,
            clock::human_age(r.age_seconds),
            &r.commit[..12],
        ))?;
    }
    Ok(())
}

#[derive(Serialize)]
struct LogEntry {
    commit: String,
    subject: String,
    state: Option<String>,
}

#[derive(Serialize)]
struct FileStat {
    path: String,
    added: Option<u64>,
    deleted: Option<u64>,
}

#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    row: Row,
    log: Vec<LogEntry>,
    files: Vec<FileStat>,
}

fn show(board: &Board<'_>, k: &Kept, json: bool, out: &mut Out) -> Result<()> {
    let row = row(board, k, clock::now())?;
    let head = board.head(&k.branch)?;
    let mut log = Vec::new();
    for id in board.beyond(k.id, head)? {
        let c = board.repo.commit(id)?;
        let subject = c.message.lines().next().unwrap_or_default().to_str_lossy().into_owned();
        log.push(LogEntry { commit: id.to_string(), subject, state: c.state().text().map(str::to_owned) });
    }
    let dir = board.repo.common_dir();
    let (from, to) = (head.map(|h| h.to_string()), k.id.to_string());
    if json {
        let files = match &from {
            None => Vec::new(),
            Some(from) => {
                let text = run_git(dir, ["diff", "--numstat", "-z", "--no-renames", "--no-ext-diff", from, &to])?;
                numstat(&text)
            }
        };
        return out.json(&Shown { row, log, files });
    }
    let on = board.remote.map_or(String::new(), |r| format!(" on {r}"));
    let (branch_text, lacking) = match &from {
        Some(h) => (format!("{} (head {}{on})", k.branch, &h[..12]), format!("{} does not have", k.branch)),
        None => (format!("{} (deleted{on})", k.branch), "no branch has".to_owned()),
    };
    out.line(&format!("ref      {}", k.refname))?;
    out.line(&format!("branch   {branch_text}"))?;
    out.line(&format!("kind     {}", k.kind))?;
    out.line(&format!("commit   {} ({} old)", to, clock::human_age(row.age_seconds)))?;
    out.line(&format!("state    {}", row.state.as_deref().unwrap_or("-")))?;
    out.line("")?;
    out.line(&format!("{} commit(s) {lacking}, newest first:", log.len()))?;
    for e in &log {
        out.line(&format!("  {} {:12} {}", &e.commit[..12], e.state.as_deref().unwrap_or("-"), e.subject))?;
    }
    if let Some(from) = &from {
        out.line("")?;
        out.line(&format!("diff against {}:", k.branch))?;
        let stat = run_git(dir, ["diff", "--stat", "--no-color", "--no-ext-diff", from, &to])?;
        match stat.is_empty() {
            true => out.line("  (same files)")?,
            false => out.bytes(stat.as_bytes())?,
        }
    }
    Ok(())
}

/// `git diff --numstat -z --no-renames`: `added TAB deleted TAB path NUL`, `-` for binary.
fn numstat(text: &str) -> Vec<FileStat> {
    text.split('\0')
        .filter_map(|rec| {
            let mut parts = rec.splitn(3, '\t');
            let (added, deleted, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some(FileStat { path: path.to_owned(), added: added.parse().ok(), deleted: deleted.parse().ok() })
        })
        .collect()
}

#[derive(Serialize)]
struct Applied {
    #[serde(rename = "ref")]
    refname: String,
    branch: String,
    commit: String,
    old_head: Option<String>,
    fast_forward: bool,
    old_head_kept_at: Option<String>,
}

/// Where `branch` is checked out (the main worktree or a linked one), if anywhere: moving its
/// ref there would leave the files and index behind.
fn checked_out_in(repo: &Repo, branch: &str) -> Option<PathBuf> {
    let common = repo.common_dir();
    if !repo.is_bare() && crate::runner::tick::main_branch(repo).as_deref() == Some(branch) {
        return Some(common.parent().unwrap_or(common).to_path_buf());
    }
    crate::repo::worktree::linked_worktrees(common)
        .into_iter()
        .find(|w| w.branch.as_deref() == Some(branch))
        .map(|w| w.path)
}

/// The active lease on `head`, renewals included: (run id, seconds left).
fn active_lease(board: &Board<'_>, branch: &str, head: ObjectId, now: i64) -> Result<Option<(String, i64)>> {
    // The runner's own rule (renewals, bounded by max_lease and clock_skew), so an oversized
    // `dwp-lease-seconds` cannot hold `apply` off for ever.
    let tracking = board.remote.map_or(branch.to_owned(), |r| format!("{r}/{branch}"));
    let lease = crate::runner::board::live_lease_on(board.repo, &board.source(), &tracking, head, now)?;
    Ok(lease.and_then(|l| match l.status(now) {
        LeaseStatus::Active { seconds_left } => Some((l.run_id.unwrap_or_else(|| "?".into()), seconds_left)),
        LeaseStatus::Expired { .. } => None,
    }))
}

/// A free `refs/baton/rejected/<branch>/replaced-<now>[-n]` for a replaced head.
fn replaced_ref(repo: &Repo, branch: &str, now: i64) -> Result<String> {
    for n in 0..100 {
        let name = match n {
            0 => format!("refs/baton/rejected/{branch}/replaced-{now}"),
            n => format!("refs/baton/rejected/{branch}/replaced-{now}-{n}"),
        };
        if repo.ref_id(&name)?.is_none() {
            return Ok(name);
        }
    }
    bail!("no free refs/baton/rejected/{branch}/replaced-{now}-N name")
}

fn apply(board: &Board<'_>, k: &Kept, force: bool, json: bool, out: &mut Out) -> Result<()> {
    let repo = board.repo;
    let branch = &k.branch;
    let head = board.head(branch)?;
    let now = clock::now();
    let where_ = board.remote.map_or(String::new(), |r| format!(" on {r}"));
    if let Some(h) = head {
        if h == k.id || repo.descends_from(h, k.id)? {
            // Nothing to move: the branch already has every commit of the result.
            drop_one(board, k)?;
            let a = Applied {
                refname: k.refname.clone(),
                branch: branch.clone(),
                commit: k.id.to_string(),
                old_head: Some(h.to_string()),
                fast_forward: true,
                old_head_kept_at: None,
            };
            return report_applied(a, true, json, out);
        }
        if let Some((run, left)) = active_lease(board, branch, h, now)? {
            bail!("{branch}{where_} is held by run {run} for {left} s more; apply after it ends or its lease expires");
        }
    }
    let fast_forward = match head {
        Some(h) => repo.descends_from(k.id, h)?,
        None => false,
    };
    if !fast_forward && !force {
        match head {
            Some(h) => bail!(
                "{branch}{where_} moved since the run (its head {h} is not an ancestor of {}): merge or \
                 cherry-pick it yourself (`git merge {}`), or use --force to replace the branch head",
                k.id,
                k.refname
            ),
            None => bail!("branch {branch}{where_} does not exist any more; use --force to create it at {}", k.id),
        }
    }
    if board.remote.is_none() {
        if let Some(path) = checked_out_in(repo, branch) {
            bail!(
                "{branch} is checked out in {}: moving it would leave its files behind; run \
                 `git merge --ff-only {}` there, then `git baton conflicts drop {}`",
                path.display(),
                k.id,
                k.refname
            );
        }
    }
    let kept_old = match (force && !fast_forward, head) {
        (true, Some(h)) => Some(keep_old_head(board, branch, h, now)?),
        _ => None,
    };
    let reflog = format!("baton: conflicts apply {}", k.refname);
    let moved = match board.remote {
        None => match repo.compare_and_swap(&format!("refs/heads/{branch}"), head, k.id, &reflog)? {
            Cas::Updated => None,
            Cas::Moved { .. } => Some(format!("{branch} moved meanwhile")),
        },
        Some(r) => match push_ref(repo.common_dir(), r, &format!("refs/heads/{branch}"), Some(k.id), Some(head)) {
            Pushed::Accepted => None,
            Pushed::Rejected(why) => Some(format!("{branch} moved on {r} since it was fetched ({why})")),
            Pushed::Failed(why) => Some(format!("pushing {branch} to {r}: {why}")),
        },
    };
    if let Some(why) = moved {
        if let (Some(name), Some(h)) = (&kept_old, head) {
            // The head was not replaced, so its copy goes again; if that fails, a spare copy of a
            // head that is still the branch's is harmless (gc removes it in time).
            let _ = unkeep(board, name, h);
        }
        bail!("{why}; nothing was changed");
    }
    if let Err(e) = drop_one(board, k) {
        tracing::warn!("{branch} now points to {}, but {} could not be dropped: {e:#}", k.id, k.refname);
    }
    let a = Applied {
        refname: k.refname.clone(),
        branch: branch.clone(),
        commit: k.id.to_string(),
        old_head: head.map(|h| h.to_string()),
        fast_forward,
        old_head_kept_at: kept_old,
    };
    report_applied(a, false, json, out)
}

/// Keep a head `apply --force` replaces: on `refs/baton/rejected/<branch>/replaced-<now>`,
/// locally and, with `--remote`, on the remote first.
fn keep_old_head(board: &Board<'_>, branch: &str, head: ObjectId, now: i64) -> Result<String> {
    let name = replaced_ref(board.repo, branch, now)?;
    if let Some(r) = board.remote {
        match push_ref(board.repo.common_dir(), r, &name, Some(head), Some(None)) {
            Pushed::Accepted => {}
            Pushed::Rejected(why) | Pushed::Failed(why) => {
                bail!("keeping the old head of {branch} on {r} at {name}: {why}")
            }
        }
    }
    match board.repo.compare_and_swap(&name, None, head, "baton: conflicts apply --force keeps the old head")? {
        Cas::Updated => Ok(name),
        Cas::Moved { .. } => bail!("{name} appeared meanwhile; nothing was changed"),
    }
}

/// Undo [`keep_old_head`] after the branch could not be moved.
fn unkeep(board: &Board<'_>, name: &str, head: ObjectId) -> Result<()> {
    if let Some(r) = board.remote {
        let _ = push_ref(board.repo.common_dir(), r, name, None, Some(Some(head)));
    }
    delete_local(board.repo, name, head)
}

/// Delete a kept ref locally by compare-and-swap; one that moved meanwhile is an error.
fn delete_local(repo: &Repo, refname: &str, expected: ObjectId) -> Result<()> {
    match repo.delete_ref(refname, expected)? {
        Cas::Updated | Cas::Moved { actual: None } => Ok(()),
        Cas::Moved { actual: Some(now) } => bail!("{refname} now holds {now}, not {expected}; left alone"),
    }
}

fn report_applied(a: Applied, already: bool, json: bool, out: &mut Out) -> Result<()> {
    if json {
        return out.json(&a);
    }
    let old = a.old_head.as_deref().map_or("(none)", |h| &h[..12]);
    let line = match (already, &a.old_head_kept_at) {
        (true, _) => format!("{} already has {}; dropped {}", a.branch, &a.commit[..12], a.refname),
        (false, None) if a.old_head.is_none() => {
            format!("{}: created at {}; dropped {}", a.branch, &a.commit[..12], a.refname)
        }
        (false, None) => format!("{}: {old}..{} (fast-forward); dropped {}", a.branch, &a.commit[..12], a.refname),
        (false, Some(kept)) => format!(
            "{}: {old} replaced by {}; the old head is kept at {kept}; dropped {}",
            a.branch,
            &a.commit[..12],
            a.refname
        ),
    };
    out.line(&line)?;
    Ok(())
}

/// Delete one kept ref: on the remote first (if it has it, with the value read as the lease),
/// then locally, both compare-and-swap.
fn drop_one(board: &Board<'_>, k: &Kept) -> Result<()> {
    if let Some(r) = board.remote {
        let dir = board.repo.common_dir();
        match ls_remote(dir, r, &k.refname).map_err(|why| anyhow!("reading {} on {r}: {why}", k.refname))? {
            None => {}
            Some(id) if id == k.id => match push_ref(dir, r, &k.refname, None, Some(Some(id))) {
                Pushed::Accepted => {}
                Pushed::Rejected(why) | Pushed::Failed(why) => bail!("deleting {} on {r}: {why}", k.refname),
            },
            Some(other) => bail!("{} on {r} now holds {other}, not {}; left alone", k.refname, k.id),
        }
    }
    delete_local(board.repo, &k.refname, k.id)
}

#[derive(Serialize)]
struct Dropped<'a> {
    #[serde(rename = "ref")]
    refname: &'a str,
    commit: String,
}

fn drop_kept(board: &Board<'_>, chosen: &[&Kept], json: bool, out: &mut Out) -> Result<()> {
    let mut dropped = Vec::new();
    for k in chosen {
        if let Err(e) = drop_one(board, k) {
            let done: Vec<&str> = dropped.iter().map(|d: &Dropped<'_>| d.refname).collect();
            let done = if done.is_empty() { "nothing".to_owned() } else { done.join(", ") };
            return Err(e.context(format!("dropped {done} before this")));
        }
        let d = Dropped { refname: &k.refname, commit: k.id.to_string() };
        if json {
            out.json(&d)?;
        } else {
            out.line(&format!("dropped {} {}", k.refname, k.id))?;
        }
        dropped.push(d);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numstat_reads_text_and_binary_files() {
        let stats = numstat("1\t2\ta b.txt\0-\t-\timg.png\0");
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[0].path.as_str(), stats[0].added, stats[0].deleted), ("a b.txt", Some(1), Some(2)));
        assert_eq!((stats[1].path.as_str(), stats[1].added, stats[1].deleted), ("img.png", None, None));
    }

    fn kept(refname: &str) -> Kept {
        Kept::parse(refname.into(), ObjectId::null(gix::hash::Kind::Sha1)).expect(refname)
    }

    #[test]
    fn kept_refs_name_a_branch_with_slashes_and_a_run() {
        let k = kept("refs/baton/rejected/feature/x/0b5c6f2e-1111-4a4a-8888-123456789abc");
        assert_eq!(
            (k.branch.as_str(), k.run_id.as_str(), k.kind),
            ("feature/x", "0b5c6f2e-1111-4a4a-8888-123456789abc", "rejected")
        );
        assert_eq!(kept("refs/baton/conflicts/t/r").kind, "conflict");
        for not_kept in ["refs/baton/rejected/onlyrun", "refs/baton/leases/t", "refs/heads/t"] {
            assert!(Kept::parse(not_kept.into(), ObjectId::null(gix::hash::Kind::Sha1)).is_none(), "{not_kept}");
        }
    }

    #[test]
    fn targets_resolve_by_ref_or_unique_run_id() {
        let all = [
            kept("refs/baton/rejected/feature/x/r1"),
            kept("refs/baton/conflicts/feature/x/r1"),
            kept("refs/baton/rejected/t2/r2"),
        ];
        assert_eq!(resolve(&all, "r2").unwrap().branch, "t2");
        assert_eq!(resolve(&all, "refs/baton/conflicts/feature/x/r1").unwrap().kind, "conflict");
        let ambiguous = resolve(&all, "r1").unwrap_err();
        assert!(ambiguous.downcast_ref::<super::super::UsageError>().is_some());
        assert!(ambiguous.to_string().contains("refs/baton/rejected/feature/x/r1"));
        let unknown = resolve(&all, "r3").unwrap_err();
        assert!(unknown.downcast_ref::<super::super::UsageError>().is_none());
    }
}
