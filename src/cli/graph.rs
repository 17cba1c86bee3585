//! `git baton graph`: the state machine as it was actually run, from history.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::scan::{local_branches, parse_since, records_of_branches};
use super::Out;
use crate::history::Transitions;
use crate::repo::Repo;

/// Draw the transitions observed on every local branch (or those matching `--branch`), with how
/// often each was taken: the origin state of every finished run to the state it ended in
/// (`failed` and `stalled` included), and the state a person moved a branch from to the state
/// they sent or resumed. History shared by several branches is counted once.
///
/// `--format mermaid` (default) prints a `stateDiagram-v2` with `A --> B: N` edges (a name
/// with `.` or `-` is declared as `state "name" as sN`); `--format dot` prints
/// `digraph baton { "A" -> "B" [label="N"]; }` for Graphviz (`| dot -Tsvg > states.svg`).
///
/// `--tasks` draws the task graph instead: every branch that takes part in a `dwp-depends-on`
/// (its head's, or named by one) with its current state, and an edge from each dependency to the
/// task waiting for it, labelled with the wanted state when it is not `done` (Mermaid
/// `flowchart LR`, or `digraph tasks` with `--format dot`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Mermaid)]
    format: Format,
    /// Only branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    branches: Vec<String>,
    /// Only transitions at or after DATE (any date git reads: `2026-11-23`,
    /// `2026-11-23T09:00:00Z`, `@1700000000`, `2.weeks.ago`, "2 weeks ago", `yesterday`; UTC).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Draw the task graph (`dwp-depends-on` between branches) instead of the state graph.
    #[arg(long, conflicts_with = "since")]
    tasks: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Mermaid,
    Dot,
}

pub fn cmd_graph(cwd: &Path, args: Args) -> Result<ExitCode> {
    let since = parse_since(args.since.as_deref())?;
    let repo = Repo::discover(cwd)?;
    let branches = local_branches(&repo, &args.branches)?;
    if args.tasks {
        let mut g = crate::runner::deps::TaskGraph::default();
        for b in &branches {
            let Ok(c) = repo.commit(b.id) else { continue };
            let state = c.state();
            g.add(&b.branch, state.valid().map(|s| s.as_str()), &crate::runner::deps::dependencies(&c.trailers).0);
        }
        let g = g.connected();
        let text = match args.format {
            Format::Mermaid => g.mermaid(),
            Format::Dot => g.dot(),
        };
        let mut out = Out::new();
        out.bytes(text.as_bytes())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Transitions::default();
    for r in records_of_branches(&repo, &branches, since)? {
        t.add(&r);
    }
    let text = match args.format {
        Format::Mermaid => t.mermaid(),
        Format::Dot => t.dot(),
    };
    let mut out = Out::new();
    out.bytes(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
