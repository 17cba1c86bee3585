//! `git baton events`: the state events of a branch, newest first, streamed as history is walked.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::Out;
use crate::protocol::StateRead;
use crate::repo::Repo;
use crate::runner::clock::iso_utc;

/// List the commits that carry a `dwp-state` trailer on the first-parent history of REV (default
/// HEAD), newest first: the last 10 by default, all of them with `--history`.
///
/// Text: `<sha> <time> <state> <subject>`. `--json`: one object per line,
/// `{"commit","time","state","invalid_state","subject","author","trailers":[{"key","value"}]}`
/// (`time` in seconds since the epoch).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Walk the whole history instead of stopping after 10 events.
    #[arg(long)]
    pub(crate) history: bool,
    /// Stop after N events (`--limit`: AYNIG's spelling).
    #[arg(short = 'n', long = "max-count", visible_alias = "limit", value_name = "N")]
    pub(crate) max_count: Option<usize>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Where to start (a branch, a commit); default HEAD.
    #[arg(value_name = "REV", default_value = "HEAD")]
    rev: String,
}

#[derive(Serialize)]
struct Event {
    commit: String,
    time: i64,
    state: Option<String>,
    invalid_state: Option<String>,
    subject: String,
    author: String,
    trailers: Vec<KeyValue>,
}

#[derive(Serialize)]
struct KeyValue {
    key: String,
    value: String,
}

impl Args {
    /// `aynig events`: from HEAD, in the form `--json` asks for (the count is set by the caller).
    pub(crate) fn parse_from_aynig(json: bool) -> Args {
        Args { history: false, max_count: None, json, rev: "HEAD".into() }
    }
}

pub fn cmd_events(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    if args.rev == "HEAD" && repo.head_id()?.is_none() {
        // As git log says it: an unborn branch has no history (gix's own message names a parser).
        let branch = repo.head_branch()?.map(|b| format!(" {b:?}")).unwrap_or_default();
        anyhow::bail!("your current branch{branch} does not have any commits yet: no events to show");
    }
    let tip = repo.resolve_commit(&args.rev)?;
    let limit = args.max_count.unwrap_or(if args.history { usize::MAX } else { 10 });
    let mut out = Out::new();
    let mut next = Some(tip);
    let mut shown = 0;
    while let (Some(id), true) = (next, shown < limit) {
        let commit = repo.commit(id)?;
        next = commit.parents.first().copied();
        let state = commit.state();
        if state == StateRead::None {
            continue;
        }
        shown += 1;
        let subject = String::from_utf8_lossy(
            commit.message.split(|&c| c == b'\n').find(|l| !l.iter().all(u8::is_ascii_whitespace)).unwrap_or(b""),
        )
        .trim()
        .to_owned();
        if args.json {
            out.json(&Event {
                commit: id.to_string(),
                time: commit.committer_time,
                state: state.valid().map(|s| s.to_string()),
                invalid_state: match &state {
                    StateRead::Invalid(v) => Some(v.clone()),
                    _ => None,
                },
                subject,
                author: commit.author.clone(),
                trailers: commit
                    .trailers
                    .iter()
                    .map(|t| KeyValue { key: t.key_lossy().into_owned(), value: t.value_lossy().into_owned() })
                    .collect(),
            })?;
        } else {
            let shown_state = match &state {
                StateRead::Invalid(v) => format!("INVALID({v})"),
                s => s.text().unwrap_or("-").to_owned(),
            };
            out.line(&format!("{} {} {:12} {}", id, iso_utc(commit.committer_time), shown_state, subject))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
