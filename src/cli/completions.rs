//! `git baton completions bash|zsh|fish`: shell completion through clap_complete's dynamic engine.
//!
//! The printed script registers a completer that calls the binary back (`_GIT_BATON_COMPLETE=bash
//! git-baton -- WORDS…`); the binary answers from the same command-line definition that parses (so
//! subcommands and flags never drift from the code) and, for arguments that take a branch
//! (`BRANCH`, `--branch GLOB`, `REV`), with the repository's local branches, read in-process.
//! Besides `git-baton …` the script completes `git baton …` through git's own completion: bash's
//! git-completion calls `_git_baton`, zsh's `_git` calls `_git-baton`, fish gets a `git`
//! completion conditioned on the `baton` subcommand.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};

/// The environment variable that turns a run of the binary into a completion request (not clap's
/// default `COMPLETE`: a name that generic may be set for other reasons, and would turn every run
/// into a completion).
const VAR: &str = "_GIT_BATON_COMPLETE";
/// The program the scripts call back (found on PATH, where git finds it too).
const BIN: &str = "git-baton";

/// Print a completion script for SHELL. Load it with `source <(git baton completions bash)` (in
/// `~/.bashrc`), `source <(git baton completions zsh)` (in `~/.zshrc`, after `compinit`) or
/// `git baton completions fish | source` (in `~/.config/fish/config.fish`). It completes
/// subcommands, flags, and branch names for arguments that take a branch, for both `git-baton`
/// and `git baton`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Local branch names of the repository around the current directory (none outside one).
fn branches() -> Vec<CompletionCandidate> {
    let Ok(cwd) = std::env::current_dir() else { return Vec::new() };
    let Ok(repo) = crate::repo::Repo::discover(&cwd) else { return Vec::new() };
    repo.refs_under("refs/heads/")
        .unwrap_or_default()
        .into_iter()
        .map(|(name, _)| CompletionCandidate::new(name))
        .collect()
}

/// The repository's remotes.
fn remotes() -> Vec<CompletionCandidate> {
    let Ok(cwd) = std::env::current_dir() else { return Vec::new() };
    let Ok(repo) = crate::repo::Repo::discover(&cwd) else { return Vec::new() };
    repo.gix().remote_names().into_iter().map(|n| CompletionCandidate::new(n.to_string())).collect()
}

/// Whether an argument takes a branch name (or a revision, of which branches are the usual kind).
fn takes_branch(arg: &clap::Arg) -> bool {
    let names = arg.get_value_names().unwrap_or_default();
    let named = |n: &str| names.iter().any(|v| v.as_str() == n);
    !arg.is_positional() && arg.get_long() == Some("branch") || named("BRANCH") || named("REV")
}

/// The command-line definition with branch completion attached to every argument that takes a
/// branch, and remote names to `--remote`.
pub fn definition() -> clap::Command {
    fn decorate(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|a| {
            if takes_branch(&a) {
                a.add(ArgValueCandidates::new(branches))
            } else if a.get_long() == Some("remote") {
                a.add(ArgValueCandidates::new(remotes))
            } else {
                a
            }
        })
        .mut_subcommands(decorate)
    }
    decorate(super::Cli::command().name(BIN).bin_name(BIN))
}

/// Answer a completion request when the shell script calls back (`_GIT_BATON_COMPLETE` set); returns
/// normally on an ordinary run.
pub fn answer_if_asked() {
    if std::env::var_os(VAR).is_none_or(|v| v.is_empty()) {
        return;
    }
    clap_complete::CompleteEnv::with_factory(definition).var(VAR).bin(BIN).completer(BIN).complete();
}

/// git's own completion, handing `git baton …` to the completer registered for `git-baton`.
const BASH_GIT: &str = r#"
# `git baton <TAB>`: git-completion.bash calls _git_baton with its words and cword.
_git_baton() {
    local IFS=$'\013'
    local i=${__git_cmd_idx:-1}
    COMPREPLY=( $( \
        _CLAP_IFS="$IFS" \
        _CLAP_COMPLETE_INDEX="$((cword - i))" \
        _GIT_BATON_COMPLETE="bash" \
        "git-baton" -- "git-baton" "${words[@]:i+1}" \
    ) )
}
"#;

const ZSH_GIT: &str = r#"
# `git baton <TAB>`: zsh's _git calls _git-baton with words starting at "baton".
_git-baton() {
    words=("git-baton" "${(@)words[2,-1]}")
    _clap_dynamic_completer_git_baton "$@"
}
"#;

const FISH_GIT: &str = r#"
# `git baton <TAB>`: the words after "baton", handed to the completer of git-baton.
function __git_baton_complete
    set -l tokens (commandline --current-process --tokenize --cut-at-cursor)
    set -l at (contains --index -- baton $tokens)
    _GIT_BATON_COMPLETE=fish git-baton -- git-baton $tokens[(math $at + 1)..-1] (commandline --current-token)
end
complete --keep-order --exclusive --command git --condition '__fish_seen_subcommand_from baton' --arguments '(__git_baton_complete)'
"#;

pub fn cmd_completions(args: Args) -> Result<ExitCode> {
    let (shell, git): (&dyn EnvCompleter, &str) = match args.shell {
        Shell::Bash => (&Bash, BASH_GIT),
        Shell::Zsh => (&Zsh, ZSH_GIT),
        Shell::Fish => (&Fish, FISH_GIT),
    };
    let mut script = Vec::new();
    shell.write_registration(VAR, BIN, BIN, BIN, &mut script).context("writing the completion script")?;
    script.extend_from_slice(git.as_bytes());
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_arguments_are_recognised_by_their_names() {
        let cmd = definition();
        let sub = |path: &[&str]| {
            let mut c = &cmd;
            for p in path {
                c = c.find_subcommand(p).unwrap();
            }
            c.clone()
        };
        let has = |path: &[&str], id: &str| takes_branch(sub(path).get_arguments().find(|a| a.get_id() == id).unwrap());
        assert!(has(&["run"], "branches"), "--branch GLOB");
        assert!(has(&["log"], "branches"), "BRANCH...");
        assert!(has(&["park"], "branch"), "BRANCH");
        assert!(!has(&["run"], "role"), "--role takes no branch");
        assert!(!has(&["send"], "state"), "STATE takes no branch");
    }
}
