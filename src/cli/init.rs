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
const AGENT_HANDLER: &str = include_str!("../../state-scripts/agent");
/// What `.dwp/COMMANDS.md` says about the agent handler when `--with agent` installs it.
const COMMANDS_AGENT: &str = "| agent | runs a coding agent (`BATON_AGENT_CMD`) on the task; its first line \
`COMPLETED:` commits the changes, `FAILED:` retries, `BLOCKED:` asks a person (see `git baton agent --help`) |\n\n\
The agent handler needs `BATON_AGENT_CMD`, the agent's command line (run with `sh -c` in the\n\
worktree, the prompt on stdin and in `$BATON_PROMPT_FILE`): set it in `.dwp/command/agent`, or pass\n\
it from the runner with `git baton run --pass-env 'BATON_AGENT_*'`. `BATON_AGENT_TIMEOUT` (default\n\
30m) bounds a run; `agent.next` in `.dwp/policy.toml` names the state after COMPLETED (default\n\
`done`). Recipes: `claude -p --output-format json`, `codex exec --json -`, `gemini --output-format json`.\n";
const COMMANDS_MD: &str = "# Handlers\n\n\
Each executable file `.dwp/command/<state>` handles branches whose newest commit carries\n\
`dwp-state: <state>`. `git baton run` claims the branch, runs the handler in a linked worktree\n\
and expects it to answer with a commit naming the next state (`git commit` with a\n\
`dwp-state:` trailer, or `git baton send NEXT`). Role-specific handlers live in\n\
`.dwp/roles/<role>/command/<state>`.\n\n\
| state | what it does |\n|---|---|\n| hello | sample: writes hello.txt and moves the branch to `done` |\n";

/// Create `.dwp/command/` with a sample `hello` handler and `.dwp/COMMANDS.md` in the top of the
/// working tree (nothing goes to `.gitignore`: the runner's scratch lives under the git directory,
/// `.git/baton/`, which git never lists as untracked), and set
/// `baton.trustedRef` to the default branch when the repository has no such setting (handlers and
/// policy then run from that branch only, never from a task's commit). Existing files and settings
/// are left as they are; re-running changes nothing. Prints each thing it did.
///
/// `--with agent` also installs `.dwp/command/agent`, a thin `sh` wrapper around `git baton
/// agent` that runs the coding agent `BATON_AGENT_CMD` names, and documents it in
/// `.dwp/COMMANDS.md`.
///
/// `--json` prints one object per thing done: `{"action":"created","path"}` (a file, or a folder
/// with a trailing `/`), `{"action":"updated","path"}`, `{"action":"set","key","value"}` (git
/// config); nothing done: no lines.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also install this sample handler: `agent` (a coding agent, see `git baton agent --help`).
    #[arg(long = "with", value_name = "HANDLER")]
    with: Vec<String>,
    /// One JSON object per line for each thing done, instead of sentences.
    #[arg(long)]
    json: bool,
}

/// One thing `init` did.
#[derive(serde::Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
enum Done {
    Created { path: String },
    Updated { path: String },
    Set { key: String, value: String },
}

/// The sample handlers `--with` knows.
const EXTRAS: &[&str] = &["agent"];

fn create_if_missing(path: &Path, contents: &str, executable: bool, out: &mut Vec<Done>) -> Result<()> {
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
    out.push(Done::Created { path: path.display().to_string() });
    Ok(())
}

pub fn cmd_init(cwd: &Path, args: Args) -> Result<ExitCode> {
    if let Some(bad) = args.with.iter().find(|w| !EXTRAS.contains(&w.as_str())) {
        return Err(usage(format!("--with {bad}: no such handler (known: {})", EXTRAS.join(", "))));
    }
    let with_agent = args.with.iter().any(|w| w == "agent");
    let repo = Repo::discover(cwd)?;
    let top =
        repo.workdir().ok_or_else(|| usage("a bare repository has no working tree to put .dwp/ in"))?.to_path_buf();
    let mut done = Vec::new();
    let out = &mut done;
    let before = changes(&top);
    let command_dir = top.join(".dwp/command");
    if !command_dir.exists() {
        std::fs::create_dir_all(&command_dir).with_context(|| format!("creating {}", command_dir.display()))?;
        out.push(Done::Created { path: format!("{}/", command_dir.display()) });
    }
    create_if_missing(&command_dir.join("hello"), SAMPLE_HANDLER, true, out)?;
    let commands_md = top.join(".dwp/COMMANDS.md");
    if with_agent {
        create_if_missing(&command_dir.join("agent"), AGENT_HANDLER, true, out)?;
        create_if_missing(&commands_md, &format!("{COMMANDS_MD}{COMMANDS_AGENT}"), false, out)?;
        add_agent_to_commands(&commands_md, out)?;
    } else {
        create_if_missing(&commands_md, COMMANDS_MD, false, out)?;
    }

    let trusted = set_trusted_ref(&repo, &top)?;
    let wrote_config = trusted.is_some();
    if let Some(branch) = &trusted {
        out.push(Done::Set { key: source::CONFIG_KEY.to_owned(), value: format!("refs/heads/{branch}") });
    }
    if changes(&top) == before && !wrote_config {
        // For people (stderr): stdout lists what was done, and nothing was.
        eprintln!(
            "nothing changed: {} already has what init writes (.dwp/command/, .dwp/COMMANDS.md, {})",
            top.display(),
            source::CONFIG_KEY
        );
    }
    let mut out = Out::new();
    for d in &done {
        if args.json {
            out.json(d)?;
            continue;
        }
        match d {
            Done::Created { path } => out.line(&format!("created {path}"))?,
            Done::Updated { path } => out.line(&format!("updated {path}"))?,
            Done::Set { key, value } => {
                let branch = value.strip_prefix("refs/heads/").unwrap_or(value);
                out.line(&format!(
                    "set {key} = {value}: handlers and .dwp/policy.toml run from {branch} only \
                     (commit them there; `git config --unset {key}` runs each task's own, as AYNIG does)"
                ))?
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// An existing `.dwp/COMMANDS.md` without the agent's row gets it (and its note) appended.
fn add_agent_to_commands(path: &Path, out: &mut Vec<Done>) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.contains("| agent |") {
        return Ok(());
    }
    let sep = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
    let mut f =
        std::fs::OpenOptions::new().append(true).open(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(format!("{sep}{COMMANDS_AGENT}").as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    out.push(Done::Updated { path: path.display().to_string() });
    Ok(())
}

/// What `init` may create or change, as found on disk: every file under `.dwp/` with its size and
/// mode, sorted, and the `.gitignore`'s size.
fn changes(top: &Path) -> (Vec<(std::path::PathBuf, u64, u32)>, u64) {
    use std::os::unix::fs::PermissionsExt;
    fn walk(dir: &Path, out: &mut Vec<(std::path::PathBuf, u64, u32)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
            if meta.is_dir() {
                walk(&e.path(), out);
            }
            out.push((e.path(), meta.len(), meta.permissions().mode()));
        }
    }
    let mut files = Vec::new();
    walk(&top.join(".dwp"), &mut files);
    files.sort();
    (files, std::fs::metadata(top.join(".gitignore")).map(|m| m.len()).unwrap_or(0))
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
