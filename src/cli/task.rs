//! `git baton task show BRANCH`: the task envelope a branch carries.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::Out;
use crate::humans::envelope;
use crate::protocol::message::body_of;
use crate::repo::Repo;

/// How far back `task show` looks along the first-parent chain for an envelope.
const WALK_LIMIT: usize = 10_000;

/// Task envelopes (`## Task: <id>`, `Goal:`, `Acceptance Criteria:`, `Inputs:`, `Budget:`,
/// `Risk Level:`, `Stop Conditions:`; `git baton send --goal …` writes them).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    Show(ShowArgs),
}

/// Show the envelope of the branch's head, or of the newest first-parent commit whose body has
/// one, as a block in the envelope's format; `--json` prints `{"id","goal","acceptance_criteria":
/// […],"inputs":[{"path","summary"}],"budget","risk","stop_conditions":[…]}` (what handlers get
/// in `$BATON_TASK_JSON`). Exit 1 with one line when there is none or it is malformed.
#[derive(clap::Args, Debug)]
struct ShowArgs {
    /// The task's branch.
    #[arg(value_name = "BRANCH")]
    branch: String,
    /// Print one JSON object instead of the block.
    #[arg(long)]
    json: bool,
}

pub fn cmd_task(cwd: &Path, args: Args) -> Result<ExitCode> {
    match args.command {
        Sub::Show(a) => show(cwd, a),
    }
}

fn show(cwd: &Path, args: ShowArgs) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let (branch, _, head) = super::send::branch_head(&repo, &args.branch)?;
    let found = repo
        .first_parents(head, None, WALK_LIMIT)?
        .into_iter()
        .find_map(|c| envelope::parse(&body_of(&c.message)).map(|e| (c.id, e)));
    let envelope = match found {
        None => bail!("branch {branch:?} has no task envelope (`## Task:`) on its first-parent history"),
        Some((id, Err(e))) => bail!("commit {id} on branch {branch:?}: {e}"),
        Some((_, Ok(e))) => e,
    };
    let mut out = Out::new();
    if args.json {
        out.json(&envelope)?;
    } else {
        out.bytes(envelope::render(&envelope).as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
