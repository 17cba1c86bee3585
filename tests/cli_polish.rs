//! A tool that feels like git: manual pages `man` and `git baton --help` find, shell completion,
//! one-line usage errors, and no silent skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{event, repo_with, TestRepo, BATON};

const BUILD: (&str, &str) = (".dwp/command/build", "#!/bin/sh\ngit baton send done -m built\n");

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

/// `D/bin/git-baton`, a copy of the binary as an install would put it (hard-linked when possible).
fn installed(root: &Path) -> PathBuf {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("git-baton");
    if std::fs::hard_link(BATON, &exe).is_err() {
        std::fs::copy(BATON, &exe).unwrap();
    }
    exe
}

fn path_with(dir: &Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn man_renders_every_generated_page() {
    if !have("man") {
        eprintln!("SKIPPED: no `man` on this machine (.ci/run installs man-db)");
        return;
    }
    let r = TestRepo::new();
    let root = r.home().join("man");
    let out = r.baton(&["man", "--install", root.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pages: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = pages.iter().map(|p| p["page"].as_str().unwrap()).collect();
    for want in
        ["git-baton.1", "git-baton-run.1", "git-baton-doctor.1", "git-baton-hooks-install.1", "git-baton-dlq-retry.1"]
    {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(pages.iter().all(|p| p["written"] == true));
    for p in &pages {
        let path = p["path"].as_str().unwrap();
        let shown =
            Command::new("man").args(["-l", path]).env("MANPAGER", "cat").env("MANWIDTH", "80").output().unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "{path}: {}", String::from_utf8_lossy(&shown.stderr));
        let title = p["page"].as_str().unwrap().trim_end_matches(".1");
        assert!(text.contains("NAME") && text.contains("SYNOPSIS") && text.contains(title), "{path}:\n{text}");
    }
    // Every page carries the version (what the check on each run compares).
    for p in &pages {
        let text = std::fs::read_to_string(p["path"].as_str().unwrap()).unwrap();
        let th = text.lines().find(|l| l.starts_with(".TH ")).unwrap();
        assert!(th.contains(&format!("\"git-baton {}\"", env!("CARGO_PKG_VERSION"))), "{th}");
    }
    // A binary outside a bin/ folder needs the folder named.
    let out = r.baton(&["man", "--install"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name the folder"));
    // Written again: nothing changes.
    let again = r.baton(&["man", "--install", root.to_str().unwrap(), "--json"]);
    assert!(String::from_utf8_lossy(&again.stdout).lines().all(|l| l.contains("\"written\":false")));
}

/// What the README's install gives: the binary in `D/bin`. Its first run writes the pages to
/// `D/share/man/man1`, where man-db looks for a `D/bin` on PATH, so `git baton --help` (which
/// git turns into `man git-baton`) and `git help baton` open the page.
#[test]
fn git_baton_help_opens_the_page_after_an_install() {
    if !have("man") {
        eprintln!("SKIPPED: no `man` on this machine (.ci/run installs man-db)");
        return;
    }
    let r = TestRepo::new();
    let prefix = r.home().join("prefix");
    let exe = installed(&prefix);
    // Only the install and the system's folders: a git-baton installed on this machine for real
    // (~/.cargo/bin) must not be what the test finds.
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", prefix.join("bin").display());
    let run = |program: &str, args: &[&str]| {
        let mut cmd = common::command_in(r.home(), program, &r.path, args);
        cmd.env("PATH", &path).env("MANPAGER", "cat").env("PAGER", "cat").env("MANWIDTH", "80").env_remove("MANPATH");
        cmd.env_remove("BATON_NO_MAN_INSTALL").output().unwrap()
    };
    let page = prefix.join("share/man/man1/git-baton.1");
    assert!(!page.exists());
    let v = run(exe.to_str().unwrap(), &["--version"]);
    assert!(v.status.success());
    assert!(page.is_file());
    // The page man finds is the one just written (not one installed elsewhere on the machine).
    let found = run("man", &["-w", "git-baton"]);
    assert_eq!(String::from_utf8_lossy(&found.stdout).trim(), page.to_str().unwrap());
    assert!(prefix.join("share/man/man1/git-baton-run.1").is_file());
    for args in [&["baton", "--help"][..], &["help", "baton"][..]] {
        let out = run("git", args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("git-baton") && text.contains("SYNOPSIS") && text.contains("doctor"), "{text}");
    }
    // A binary not in a bin/ folder (target/debug) writes nothing beside itself.
    assert!(!Path::new(BATON).parent().unwrap().parent().unwrap().join("share/man/man1/git-baton.1").exists());
}

fn completion_script(r: &TestRepo, shell: &str) -> String {
    r.baton_ok(&["completions", shell])
}

/// Complete `words` (the word under the cursor last) in bash through the printed script.
fn bash_complete(r: &TestRepo, script: &Path, setup: &str) -> Vec<String> {
    let bin = Path::new(BATON).parent().unwrap();
    let code = format!("source {}\n{setup}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"", script.display());
    let out = common::command_in(r.home(), "bash", &r.path, &["--norc", "-c", &code])
        .env("PATH", path_with(bin))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[test]
fn bash_completes_subcommands_flags_and_branch_names() {
    let r = repo_with(&[BUILD]);
    r.git(&["branch", "task/alpha"]);
    r.git(&["branch", "task/beta"]);
    let script = r.home().join("git-baton.bash");
    std::fs::write(&script, completion_script(&r, "bash")).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    let direct = |words: &[&str]| {
        let cur = words.last().unwrap();
        let setup = format!(
            "COMP_WORDS=({}); COMP_CWORD={}; _clap_complete_git_baton git-baton '{cur}' ''",
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1
        );
        bash_complete(&r, &script, &setup)
    };
    assert!(direct(&["git-baton", "doc"]).contains(&"doctor".to_owned()));
    assert!(direct(&["git-baton", "run", "--current"]).contains(&"--current-branch".to_owned()));
    assert_eq!(direct(&["git-baton", "log", "task/"]), ["task/alpha", "task/beta"]);
    assert_eq!(direct(&["git-baton", "run", "--branch", "task/a"]), ["task/alpha"]);
    r.git(&["remote", "add", "upstream", "/nonexistent"]);
    assert_eq!(direct(&["git-baton", "status", "--remote", "up"]), ["upstream"]);
    // `git baton …` through git's own bash completion, which calls _git_baton.
    let via_git = bash_complete(&r, &script, "words=(git baton park task/b); cword=3; __git_cmd_idx=1; _git_baton");
    assert_eq!(via_git, ["task/beta"]);
    // And through git's real bash completion where the machine has it: `git baton park task/b<TAB>`.
    let git_completion = Path::new("/usr/share/bash-completion/completions/git");
    if git_completion.exists() {
        let setup = format!(
            "source {}\nCOMP_WORDS=(git baton park task/b); COMP_CWORD=3; COMP_LINE='git baton park task/b'; \
             COMP_POINT=${{#COMP_LINE}}; __git_wrap__git_main git task/b park",
            git_completion.display()
        );
        assert_eq!(bash_complete(&r, &script, &setup), ["task/beta"]);
    } else {
        eprintln!("SKIPPED: git's bash completion is not installed here; _git_baton was called directly");
    }
}

#[test]
fn zsh_and_fish_scripts_parse_and_hook_into_git() {
    let r = repo_with(&[BUILD]);
    r.git(&["branch", "task/alpha"]);
    r.git(&["branch", "task/beta"]);
    let zsh = completion_script(&r, "zsh");
    assert!(zsh.contains("compdef _clap_dynamic_completer_git_baton git-baton") && zsh.contains("_git-baton()"));
    let fish = completion_script(&r, "fish");
    assert!(fish.contains("--command git-baton") && fish.contains("__fish_seen_subcommand_from baton"));
    for (shell, script, check) in [("zsh", &zsh, &["-n"][..]), ("fish", &fish, &["--no-execute"][..])] {
        if !have(shell) {
            eprintln!("SKIPPED: {shell} -n: no {shell} on this machine (.ci/run installs it)");
            continue;
        }
        let file = r.home().join(format!("git-baton.{shell}"));
        std::fs::write(&file, script).unwrap();
        let out = Command::new(shell).args(check).arg(&file).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
    }
    if have("zsh") {
        // Loaded the way ~/.zshrc would: after compinit, compdef must accept it.
        let file = r.home().join("git-baton.zsh");
        let code = format!("autoload -U compinit && compinit -u && source {} && print loaded", file.display());
        let out = common::command_in(r.home(), "zsh", &r.path, &["-f", "-c", &code]).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("loaded"), "{}", String::from_utf8_lossy(&out.stderr));
    }
    if have("fish") {
        // fish can run a completion without a terminal: `complete -C LINE`.
        let file = r.home().join("git-baton.fish");
        let bin = Path::new(BATON).parent().unwrap();
        let complete = |line: &str| {
            let code = format!("source {}; complete -C '{line}'", file.display());
            let out = common::command_in(r.home(), "fish", &r.path, &["--no-config", "-c", &code])
                .env("PATH", path_with(bin))
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.split('\t').next().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(complete("git-baton log task/"), ["task/alpha", "task/beta"]);
        assert_eq!(complete("git baton park task/b"), ["task/beta"]);
        assert!(complete("git baton doc").contains(&"doctor".to_owned()));
    }
    // What the scripts call back: the same engine answers for every shell.
    let out = r.baton_cmd(&["--", "git-baton", "sta"]).env("_GIT_BATON_COMPLETE", "fish").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("status")));
}

#[test]
fn usage_errors_are_one_line_with_exit_2() {
    let r = TestRepo::new();
    for (args, names) in [
        (&["run", "--brnch", "x"][..], "unexpected argument '--brnch' found (a similar argument exists: '--branch')"),
        (&["send"][..], "required arguments were not provided: <STATE>"),
        (&["completions", "tcsh"][..], "invalid value 'tcsh'"),
        (&["frobnicate"][..], "unrecognized subcommand 'frobnicate'"),
    ] {
        let out = r.baton(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("git-baton: error: ") && err.contains(names), "{args:?}: {err}");
        assert!(!err.contains("Usage:"));
    }
    let help = r.baton(&["run", "--help"]);
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("Usage:"));
}

/// A task on the checked-out branch waits — and the tick says why.
#[test]
fn the_checked_out_branch_is_named_with_the_way_out() {
    let r = repo_with(&[BUILD]);
    r.baton_ok(&["send", "build", "-m", "on main"]);
    let before = r.head("main");
    let events = common::run_json(&r, &[]);
    let n = event(&events, "main", "notice");
    assert!(n["error"].as_str().unwrap().contains("--current-branch include"), "{n}");
    assert_eq!(r.head("main"), before);
}

#[test]
fn a_branch_glob_that_matches_nothing_is_named() {
    let r = repo_with(&[BUILD]);
    common::task(&r, "task/a", "build");
    let events = common::run_json(&r, &["--branch", "taks/*", "--branch", "task/*"]);
    let n = event(&events, "taks/*", "notice");
    assert!(n["error"].as_str().unwrap().contains("matches no branch"), "{n}");
    assert!(events.iter().all(|e| e["branch"] != "task/*"), "the glob that matched says nothing: {events:?}");
}

/// A handler that is not executable: one notice for all its branches, said once under watch, and
/// `status` says `not-executable`.
#[test]
fn an_unrunnable_handler_is_said_once_and_shown_in_status() {
    let r = repo_with(&[BUILD]);
    r.write(".dwp/command/plain", "#!/bin/sh\nexit 0\n");
    r.commit_all("plain handler");
    common::task(&r, "task/a", "plain");
    common::task(&r, "task/b", "plain");
    let out = r.baton_ok(&["watch", "--interval", "0.05", "--max-ticks", "4", "--json"]);
    let notices: Vec<&str> = out.lines().filter(|l| l.contains("not an executable")).collect();
    assert_eq!(notices.len(), 1, "{out}");
    assert!(notices[0].contains("2 branches wait on it"), "{}", notices[0]);
    let table = r.baton_ok(&["status", "--branch", "task/*"]);
    assert!(table.lines().any(|l| l.starts_with("task/a") && l.contains("not-executable")), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&r.baton_ok(&["status", "--json", "--branch", "task/a"])).unwrap();
    assert_eq!(json["handler_status"], "not-executable");
    assert_eq!(json["handler"], false);
}

#[test]
fn log_without_runs_init_twice_and_events_without_commits_say_so() {
    let r = repo_with(&[BUILD]);
    let out = r.baton(&["log", "main"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "no bare header");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no runs on main"));

    let fresh = TestRepo::new();
    let first = fresh.baton_ok(&["init"]);
    assert!(first.contains("created"), "{first}");
    let second = fresh.baton(&["init"]);
    assert!(second.status.success() && second.stdout.is_empty());
    assert!(String::from_utf8_lossy(&second.stderr).contains("nothing changed"));

    let out = fresh.baton(&["events"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not have any commits yet") && !err.contains("rev-spec"), "{err}");
}
