//! `git baton hooks check-push`: the `pre-receive` check of a server that receives pushes.
//!
//! A pushed branch head is refused when it would corrupt the protocol:
//! - its `dwp-state` is not a valid state name (it would name a path, or nothing a runner can
//!   ever run), or
//! - it is a `working` claim whose `dwp-run-id` differs from the run holding the lease it
//!   replaces while that lease is live (committer time + `dwp-lease-seconds` not yet past).
//!   A heartbeat of the same run, a claim over a finished state and a takeover of an expired
//!   lease all pass.
//!
//! Everything else passes: deletions, tags, heads without a state. Only the new head commit of
//! each branch is read, not the commits below it.
//!
//! During `pre-receive` the pushed objects sit in a quarantine directory that git announces in
//! the hook's environment (`GIT_OBJECT_DIRECTORY`, `GIT_ALTERNATE_OBJECT_DIRECTORIES`,
//! `GIT_QUARANTINE_PATH`). gix 0.90 reads none of these (its object store follows only
//! `objects/info/alternates`), so the commits are read by one `git cat-file --batch` run in the
//! hook's own environment — deliberately not the scrubbed one of `repo::worktree::git` — and
//! their trailers parsed by the same git-identical parser as everywhere else.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};

use crate::protocol::state::last_text;
use crate::protocol::{trailers, Key, Lease, LeaseStatus, Reserved, State, StateRead, Trailer};
use crate::runner::clock;

/// Used by the installed `pre-receive` hook: refuse pushes that would corrupt the protocol.
///
/// Reads `<old> <new> <ref>` lines on stdin and refuses branch heads that would corrupt the protocol (an invalid `dwp-state`, a `working`
/// claim over another run's live lease), one `git-baton: rejected <ref>: <reason>` line each on
/// stderr, exit 1. Exit 0 when everything may pass.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// One line of `pre-receive` input that concerns a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Update {
    /// `None` for a new branch.
    old: Option<String>,
    new: String,
    refname: String,
}

fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// Branch updates that set a head (deletions and other refs are not checked).
fn branch_updates(input: &str) -> Vec<Update> {
    input
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (old, new, refname) = (parts.next()?, parts.next()?, parts.next()?);
            if !refname.starts_with("refs/heads/") || is_zero(new) {
                return None;
            }
            Some(Update {
                old: (!is_zero(old)).then(|| old.to_owned()),
                new: new.to_owned(),
                refname: refname.to_owned(),
            })
        })
        .collect()
}

/// What the check needs of a commit.
#[derive(Debug, Clone)]
pub struct CommitFacts {
    pub id: String,
    pub trailers: Vec<Trailer>,
    /// Committer time, seconds since the epoch.
    pub committer_time: i64,
}

/// Parse a raw commit object (`git cat-file commit` output): headers, blank line, message.
fn parse_commit(id: &str, raw: &[u8]) -> CommitFacts {
    let split = raw.windows(2).position(|w| w == b"\n\n");
    let (headers, message) = match split {
        Some(i) => (&raw[..i], &raw[i + 2..]),
        None => (raw, &raw[raw.len()..]),
    };
    let committer_time = headers
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"committer "))
        .and_then(|l| {
            // `Name <email> <seconds> <offset>`: the seconds are the second field from the end.
            let text = String::from_utf8_lossy(l);
            text.rsplit(' ').nth(1).and_then(|s| s.parse().ok())
        })
        .unwrap_or(0);
    CommitFacts { id: id.to_owned(), trailers: trailers::parse(message), committer_time }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Why a branch must not move to `new` (from `old`, its current head), if it must not. Pure.
pub fn refusal(new: &CommitFacts, old: Option<&CommitFacts>, now: i64) -> Option<String> {
    let state = match StateRead::from_trailers(&new.trailers) {
        StateRead::None => return None,
        StateRead::Invalid(value) => {
            let why = match State::parse(&value) {
                Err(e) => e.to_string(),
                Ok(_) => "it is not valid UTF-8".to_owned(),
            };
            return Some(format!("commit {} has an invalid dwp-state {value:?}: {why}", short(&new.id)));
        }
        StateRead::Valid(s) => s,
    };
    if !state.is(Reserved::Working) {
        return None;
    }
    let old = old?;
    let held = Lease::from_commit(&old.trailers, old.committer_time)?;
    let LeaseStatus::Active { seconds_left } = held.status(now) else {
        return None; // an expired lease may be taken over
    };
    let claimed_by = last_text(&new.trailers, Key::RunId);
    if claimed_by == held.run_id {
        return None; // a heartbeat of the run holding the lease
    }
    Some(format!(
        "commit {} claims the branch for run {} but run {} holds a live lease (commit {}) until {} ({seconds_left}s left); only that run may renew it before it expires",
        short(&new.id),
        claimed_by.as_deref().unwrap_or("(none)"),
        held.run_id.as_deref().unwrap_or("(none)"),
        short(&old.id),
        clock::iso_utc(held.expires_at()),
    ))
}

/// Read commits with one `git cat-file --batch` in the hook's environment (quarantine
/// included). Objects that are missing or not commits are left out.
fn read_commits(ids: &[String]) -> Result<HashMap<String, CommitFacts>> {
    let mut child = Command::new("git")
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running git cat-file --batch")?;
    let mut input = child.stdin.take().context("git cat-file stdin")?;
    let request: String = ids.iter().map(|id| format!("{id}\n")).collect();
    // Written from a thread: git answers while it reads, and a large push would fill both pipes.
    let writer = std::thread::spawn(move || input.write_all(request.as_bytes()));
    let mut out = Vec::new();
    child.stdout.take().context("git cat-file stdout")?.read_to_end(&mut out).context("reading git cat-file output")?;
    let status = child.wait().context("waiting for git cat-file")?;
    let _ = writer.join();
    if !status.success() {
        bail!("git cat-file --batch failed ({status})");
    }
    let mut commits = HashMap::new();
    let mut pos = 0;
    while pos < out.len() {
        let end = out[pos..].iter().position(|&b| b == b'\n').map_or(out.len(), |i| pos + i);
        let header = String::from_utf8_lossy(&out[pos..end]).into_owned();
        pos = end + 1;
        let fields: Vec<&str> = header.split(' ').collect();
        let [id, kind, size] = fields[..] else {
            continue; // `<id> missing`
        };
        let size: usize = size.parse().with_context(|| format!("git cat-file header {header:?}"))?;
        let body = out.get(pos..pos + size).context("git cat-file output is cut short")?;
        if kind == "commit" {
            commits.insert(id.to_owned(), parse_commit(id, body));
        }
        pos += size + 1;
    }
    Ok(commits)
}

pub fn cmd_check_push(_args: Args) -> Result<ExitCode> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("reading the pushed refs on stdin")?;
    let updates = branch_updates(&input);
    if updates.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut ids: Vec<String> =
        updates.iter().flat_map(|u| std::iter::once(u.new.clone()).chain(u.old.clone())).collect();
    ids.sort();
    ids.dedup();
    let commits = read_commits(&ids)?;
    let now = clock::now();
    let mut refused = 0;
    for u in &updates {
        let Some(new) = commits.get(&u.new) else { continue };
        let old = u.old.as_ref().and_then(|o| commits.get(o));
        if let Some(why) = refusal(new, old, now) {
            eprintln!("git-baton: rejected {}: {why}", u.refname);
            refused += 1;
        }
    }
    if refused == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("git-baton: push refused ({refused} branch head(s) would corrupt the dwp protocol); nothing was updated");
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(id: &str, time: i64, trailers: &str) -> CommitFacts {
        let raw = format!(
            "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> {time} +0000\ncommitter C <c@x> {time} +0200\n\nsubject\n\n{trailers}\n"
        );
        parse_commit(id, raw.as_bytes())
    }

    fn lease(id: &str, time: i64, run: &str, secs: u64) -> CommitFacts {
        commit(
            id,
            time,
            &format!("dwp-origin-state: build\ndwp-run-id: {run}\ndwp-lease-seconds: {secs}\ndwp-state: working"),
        )
    }

    #[test]
    fn reads_committer_time_and_trailers() {
        let c = lease("a", 1_700_000_000, "r1", 60);
        assert_eq!(c.committer_time, 1_700_000_000);
        assert_eq!(last_text(&c.trailers, Key::RunId).as_deref(), Some("r1"));
    }

    #[test]
    fn only_branch_heads_that_are_set_are_checked() {
        let z = "0".repeat(40);
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let input =
            format!("{z} {a} refs/heads/new\n{a} {b} refs/heads/x\n{a} {z} refs/heads/gone\n{z} {a} refs/tags/v1");
        let u = branch_updates(&input);
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].old, None);
        assert_eq!(u[1].old.as_deref(), Some(a.as_str()));
        assert_eq!(u[1].refname, "refs/heads/x");
    }

    #[test]
    fn invalid_states_are_refused_with_the_reason() {
        let why = refusal(&commit("abc", 0, "dwp-state: ../x"), None, 0).unwrap();
        assert!(why.contains("invalid dwp-state \"../x\""), "{why}");
        assert!(refusal(&commit("abc", 0, "dwp-state: review"), None, 0).is_none());
        assert!(refusal(&commit("abc", 0, "Signed-off-by: x"), None, 0).is_none());
    }

    #[test]
    fn a_claim_over_a_live_lease_of_another_run_is_refused() {
        let old = lease("old", 1000, "r1", 60);
        let hijack = lease("new", 1010, "r2", 60);
        let why = refusal(&hijack, Some(&old), 1030).unwrap();
        assert!(why.contains("run r2") && why.contains("run r1 holds a live lease"), "{why}");
        // A heartbeat of the same run, a takeover after expiry, a claim over a finished state.
        assert!(refusal(&lease("new", 1010, "r1", 60), Some(&old), 1030).is_none());
        assert!(refusal(&hijack, Some(&old), 1061).is_none());
        assert!(refusal(&hijack, Some(&commit("old", 1000, "dwp-state: build")), 1030).is_none());
        // A new branch, and a state other than `working` over a live lease.
        assert!(refusal(&hijack, None, 1030).is_none());
        assert!(refusal(&commit("new", 1010, "dwp-state: done"), Some(&old), 1030).is_none());
    }
}
