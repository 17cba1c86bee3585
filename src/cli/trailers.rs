//! `git baton trailers`: the trailers of commits, exactly as git reads them.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::Out;
use crate::protocol::trailers::format_git;
use crate::repo::Repo;

/// Print each commit's trailers: text is byte-identical to
/// `git log --no-walk --format=%(trailers:only,unfold) REV…` (one block per commit, each followed
/// by an empty line); `--json` prints one object per line:
/// `{"commit":"<full sha>","trailers":[{"key":"…","value":"…"}]}`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object per commit and line (invalid UTF-8 replaced).
    #[arg(long)]
    json: bool,
    /// Commits to read (anything `git rev-parse` understands that names a commit).
    #[arg(required = true, value_name = "REV")]
    revs: Vec<String>,
}

#[derive(Serialize)]
struct JsonTrailer<'a> {
    key: std::borrow::Cow<'a, str>,
    value: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
struct JsonCommit<'a> {
    commit: String,
    trailers: Vec<JsonTrailer<'a>>,
}

pub fn cmd_trailers(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    // Resolve everything first: a bad revision fails the call before anything is printed.
    let mut ids = args.revs.iter().map(|r| repo.resolve_commit(r)).collect::<Result<Vec<_>>>()?;
    // Like `git log --no-walk=unsorted`: each commit once, in the order first named.
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    let mut out = Out::new();
    for id in ids {
        let commit = repo.commit(id)?;
        if args.json {
            let trailers =
                commit.trailers.iter().map(|t| JsonTrailer { key: t.key_lossy(), value: t.value_lossy() }).collect();
            out.json(&JsonCommit { commit: id.to_string(), trailers })?;
        } else {
            out.bytes(&format_git(&commit.trailers))?;
            out.bytes(b"\n")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
