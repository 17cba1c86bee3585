//! The README's tutorial and the quickstart, run as a newcomer runs them.
//!
//! The tutorial's commands are read from README.md itself — every ```sh block of the section
//! "A five-minute tutorial", in order — and run with bash in a fresh temp dir with the built
//! `git-baton` first on PATH. Every ```text block of the section is output the README promises:
//! it must appear, verbatim, in what the commands printed. So the test breaks when the README
//! drifts from what git-baton does, and the README cannot drift from what the test runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{base_env, BATON};

const SECTION: &str = "## A five-minute tutorial";

/// The fenced blocks of the tutorial section: (info string, text), in order.
fn tutorial_blocks(readme: &str) -> Vec<(String, String)> {
    let start = readme.find(SECTION).expect("README.md has the tutorial section");
    let body = &readme[start + SECTION.len()..];
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in body.lines() {
        match &mut open {
            None if line.starts_with("## ") => break,
            None if line.starts_with("```") => open = Some((line[3..].trim().to_owned(), String::new())),
            None => {}
            Some(_) if line == "```" => blocks.push(open.take().unwrap()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(open.is_none(), "an unclosed code block in the tutorial");
    blocks
}

/// A command in `dir` with the tests' fixed environment, `git-baton` first on PATH and temp
/// files under `tmp`.
fn newcomer_command(program: &str, dir: &Path, home: &Path, tmp: &Path) -> Command {
    let bin_dir = Path::new(BATON).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new(program);
    base_env(&mut cmd, home);
    cmd.current_dir(dir).env("PATH", path).env("TMPDIR", tmp).stdin(Stdio::null());
    cmd
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every directory under `dir` (one level) whose name starts with `prefix`.
fn dirs_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    common::git_in(home, dir, args)
}

#[test]
fn the_readme_tutorial_runs_as_written_and_prints_what_it_promises() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = tutorial_blocks(&readme);
    let script: String = blocks.iter().filter(|(info, _)| info == "sh").map(|(_, t)| t.as_str()).collect();
    let promised: Vec<&str> = blocks.iter().filter(|(info, _)| info == "text").map(|(_, t)| t.as_str()).collect();
    assert!(script.contains("git baton run"), "the tutorial runs the runner:\n{script}");
    assert!(promised.len() >= 2, "the tutorial shows what its commands print");

    let scratch = tempfile::tempdir().unwrap();
    let (home, tmp) = (scratch.path().join("home"), scratch.path().join("tmp"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let out = newcomer_command("bash", scratch.path(), &home, &tmp)
        .args(["-e", "-u", "-o", "pipefail", "-c", &script])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the tutorial failed: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", out.status);
    for block in promised {
        assert!(stdout.contains(block), "the README promises\n{block}\nbut the tutorial printed\n{stdout}");
    }

    // What the tutorial says happened, checked with git on the repository it made.
    let made: Vec<PathBuf> = dirs_starting(&tmp, "tmp.").iter().map(|d| d.join("tutorial")).collect();
    assert_eq!(made.len(), 1, "one tutorial repository under {}", tmp.display());
    let repo = &made[0];
    let state = git(repo, &home, &["log", "-1", "--format=%(trailers:key=dwp-state,valueonly)", "task/greet"]);
    assert_eq!(state.trim(), "done");
    assert_eq!(git(repo, &home, &["show", "task/greet:greet.sh"]), "#!/bin/sh\necho \"Hello, team!\"\n");
    // plan -> implement -> review -> implement (sent back) -> review -> done, each run recorded.
    let log = newcomer_command(BATON, repo, &home, &tmp).args(["log", "task/greet", "--json"]).output().unwrap();
    assert!(log.status.success(), "{}", text(&log).1);
    let runs: Vec<(String, String)> = text(&log)
        .0
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "run")
        .map(|v| (v["state"].as_str().unwrap().to_owned(), v["outcome"].as_str().unwrap().to_owned()))
        .collect();
    let pairs: Vec<(&str, &str)> = runs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("plan", "implement"),
            ("implement", "review"),
            ("review", "implement"),
            ("implement", "review"),
            ("review", "done")
        ]
    );
    // The checkout the tutorial works in stays clean: the runner wrote nothing there.
    assert_eq!(git(repo, &home, &["status", "--porcelain"]), "");
}

/// The block reader itself: sh and text blocks of the section only, in order.
#[test]
fn tutorial_blocks_are_read_from_the_section_only() {
    let readme = "# x\n```sh\nbefore\n```\n## A five-minute tutorial: y\ntext\n```sh\none\n```\n\n```text\nout\n```\n```sh\ntwo\n```\n## Next\n```sh\nafter\n```\n";
    let blocks = tutorial_blocks(readme);
    let expect = [("sh", "one\n"), ("text", "out\n"), ("sh", "two\n")];
    assert_eq!(blocks.iter().map(|(i, t)| (i.as_str(), t.as_str())).collect::<Vec<_>>(), expect);
}

/// `examples/quickstart.sh` (the README's set-up command after `cargo install`): it echoes each
/// command, keeps its repository and prints its path; with `--clean` it removes it.
#[test]
fn the_quickstart_keeps_its_repository_and_cleans_up_only_when_asked() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.sh");
    let scratch = tempfile::tempdir().unwrap();
    let (home, tmp) = (scratch.path().join("home"), scratch.path().join("tmp"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();

    let out = newcomer_command("bash", scratch.path(), &home, &tmp).arg(&script).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "quickstart failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    for echoed in
        ["$ git baton init", "$ git baton send --branch task/greet plan -m 'greet the world'", "$ git baton run"]
    {
        assert!(stdout.lines().any(|l| l == echoed), "quickstart echoes `{echoed}`:\n{stdout}");
    }
    let kept = dirs_starting(&tmp, "baton-quickstart.");
    assert_eq!(kept.len(), 1, "the repository is kept");
    let path = kept[0].display().to_string();
    assert!(stdout.contains(&format!("the demo repository is {path}")), "the path is printed first:\n{stdout}");
    assert!(stdout.contains(&format!("cd {path}")), "and again at the end:\n{stdout}");
    let state = git(&kept[0], &home, &["log", "-1", "--format=%(trailers:key=dwp-state,valueonly)", "task/greet"]);
    assert_eq!(state.trim(), "done");

    let out = newcomer_command("bash", scratch.path(), &home, &tmp).arg(&script).arg("--clean").output().unwrap();
    assert!(out.status.success(), "quickstart --clean failed: {}", text(&out).1);
    assert_eq!(dirs_starting(&tmp, "baton-quickstart."), kept, "--clean removed its own repository only");

    let out = newcomer_command("bash", scratch.path(), &home, &tmp).arg(&script).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown argument is a usage error");
    assert_eq!(dirs_starting(&tmp, "baton-quickstart.").len(), 1, "and makes nothing");
}
