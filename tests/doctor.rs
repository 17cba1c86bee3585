//! `git baton doctor` on real repositories, one problem each: the line names the problem, the exit
//! status is 1 exactly when a check fails.

mod common;

use common::{repo_with, TestRepo};

const OK_HANDLER: (&str, &str) = (".dwp/command/build", "#!/bin/sh\nexit 0\n");

/// A repository with a committed, executable handler and `baton.trustedRef` set to main.
fn sound() -> TestRepo {
    let r = repo_with(&[OK_HANDLER]);
    r.git(&["config", "baton.trustedRef", "refs/heads/main"]);
    r
}

/// `doctor ARGS…`: (exit code, stdout lines).
fn doctor(r: &TestRepo, args: &[&str]) -> (i32, Vec<String>) {
    let mut all = vec!["doctor"];
    all.extend(args);
    let out = r.baton(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text.lines().map(str::to_owned).collect())
}

/// The line of `check` with `verdict` (panics with the report otherwise).
fn line<'a>(lines: &'a [String], verdict: &str, check: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.split_whitespace().take(2).eq([verdict, check]))
        .unwrap_or_else(|| panic!("no `{verdict} {check}` line in:\n{}", lines.join("\n")))
}

#[test]
fn a_sound_repository_passes_every_check() {
    let r = sound();
    let (code, lines) = doctor(&r, &[]);
    assert_eq!(code, 0, "{lines:#?}");
    for check in ["repository", "git", "identity", "handler-source", "handler", "state", "policy", "scratch", "hooks"] {
        line(&lines, "ok", check);
    }
    assert!(line(&lines, "ok", "handler-source").contains("refs/heads/main"));
    assert!(!lines.iter().any(|l| l.starts_with("fail") || l.starts_with("warn")), "{lines:#?}");
}

#[test]
fn json_is_one_object_per_check() {
    let r = sound();
    let out = r.baton_ok(&["doctor", "--json"]);
    let checks: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert!(checks.len() >= 9);
    for c in &checks {
        assert!(c["check"].is_string() && c["detail"].is_string(), "{c}");
        assert!(["ok", "warn", "fail"].contains(&c["verdict"].as_str().unwrap()), "{c}");
        assert!(c["fix"].is_null() || c["fix"].is_string(), "{c}");
    }
}

#[test]
fn outside_a_repository_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::command_in(dir.path(), common::BATON, dir.path(), &["doctor"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("fail repository") && l.contains("not a git repository")), "{text}");
}

#[test]
fn handlers_that_cannot_run_fail_naming_the_file() {
    let r = sound();
    r.write(".dwp/command/plain", "#!/bin/sh\nexit 0\n");
    r.handler(".dwp/command/noshebang", "echo hi\n");
    r.commit_all("two broken handlers");
    let (code, lines) = doctor(&r, &[]);
    assert_eq!(code, 1);
    let plain = lines.iter().find(|l| l.contains(".dwp/command/plain")).expect("plain named");
    assert!(plain.starts_with("fail handler") && plain.contains("not executable") && plain.contains("--chmod=+x"));
    let nosh = lines.iter().find(|l| l.contains(".dwp/command/noshebang")).expect("noshebang named");
    assert!(nosh.starts_with("fail handler") && nosh.contains("#!"), "{nosh}");
}

#[test]
fn handler_source_without_trusted_ref_warns_and_a_missing_one_fails() {
    let r = repo_with(&[OK_HANDLER]);
    let (code, lines) = doctor(&r, &[]);
    assert_eq!(code, 0);
    assert!(line(&lines, "warn", "handler-source").contains("baton.trustedRef"));
    r.git(&["config", "baton.trustedRef", "refs/heads/nope"]);
    let (code, lines) = doctor(&r, &[]);
    assert_eq!(code, 1);
    assert!(line(&lines, "fail", "handler-source").contains("refs/heads/nope"));
}

#[test]
fn invalid_states_on_heads_are_named() {
    let r = sound();
    r.git(&["checkout", "-q", "-b", "task/odd"]);
    r.git(&["commit", "-q", "--allow-empty", "-m", "t\n\ndwp-state: ../up"]);
    r.git(&["checkout", "-q", "main"]);
    let (code, lines) = doctor(&r, &[]);
    assert_eq!(code, 0, "an invalid state is a warning");
    assert!(line(&lines, "warn", "state").contains("task/odd"));
}

#[test]
fn a_broken_policy_fails_with_its_error() {
    let r = sound();
    r.write(".dwp/policy.toml", "[defaults]\nno_such_key = 1\n");
    r.commit_all("bad policy");
    let (code, lines) = doctor(&r, &[]);
    assert_eq!(code, 1);
    assert!(line(&lines, "fail", "policy").contains("no_such_key"), "{lines:#?}");
}

#[test]
fn a_missing_identity_fails() {
    let r = sound();
    r.git(&["config", "user.useConfigOnly", "true"]);
    let out = r
        .baton_cmd(&["doctor"])
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_AUTHOR_EMAIL")
        .env_remove("GIT_COMMITTER_NAME")
        .env_remove("GIT_COMMITTER_EMAIL")
        .env_remove("EMAIL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("fail identity") && l.contains("user.email")), "{text}");
}

#[test]
fn partly_installed_hooks_warn() {
    let r = sound();
    r.baton_ok(&["hooks", "install"]);
    let (_, lines) = doctor(&r, &[]);
    line(&lines, "ok", "hooks");
    std::fs::remove_file(r.path.join(".git/hooks/post-checkout")).unwrap();
    let (code, lines) = doctor(&r, &[]);
    assert_eq!(code, 0);
    assert!(line(&lines, "warn", "hooks").contains("1 of 2"));
}

#[test]
fn remotes_that_do_not_answer_are_named_within_the_timeout() {
    let r = sound();
    let up = TestRepo::bare();
    r.git(&["remote", "add", "up", up.path.to_str().unwrap()]);
    r.git(&["remote", "add", "gone", "/nonexistent/repo.git"]);
    // An ssh "server" that never answers: the check must give up after --timeout.
    r.git(&["remote", "add", "slow", "ssh://example.invalid/repo.git"]);
    r.git(&["config", "core.sshCommand", "sh -c 'sleep 30'"]);
    let start = std::time::Instant::now();
    let (code, lines) = doctor(&r, &["--timeout", "1"]);
    assert!(start.elapsed() < std::time::Duration::from_secs(10), "took {:?}", start.elapsed());
    assert_eq!(code, 0, "an unreachable remote is a warning unless named: {lines:#?}");
    assert!(line(&lines, "ok", "remote").contains("up answers"));
    assert!(lines.iter().any(|l| l.starts_with("warn remote") && l.contains("gone is not reachable")), "{lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("warn remote") && l.contains("slow") && l.contains("no answer within 1.0s")));
    let (code, lines) = doctor(&r, &["--remote", "gone"]);
    assert_eq!(code, 1);
    assert!(line(&lines, "fail", "remote").contains("gone"));
}

#[test]
fn aynig_worktrees_are_found_and_migrate_aynig_is_suggested() {
    let r = sound();
    r.git(&["worktree", "add", "-q", "-b", "task/x", ".worktrees/task-x"]);
    let (code, lines) = doctor(&r, &[]);
    assert_eq!(code, 0);
    let l = line(&lines, "warn", "aynig-worktrees");
    assert!(l.contains("task/x") && l.contains("git baton migrate-aynig"), "{l}");
}

#[test]
fn handlers_left_uncommitted_are_named_with_where_to_commit_them() {
    let r = sound();
    r.handler(".dwp/command/review", "#!/bin/sh\nexit 0\n");
    r.handler(".dwp/command/build", "#!/bin/sh\necho changed\n");
    let (code, lines) = doctor(&r, &[]);
    assert_eq!(code, 0, "a warning: {lines:#?}");
    let new = lines.iter().find(|l| l.contains(".dwp/command/review")).expect("review named");
    assert!(
        new.starts_with("warn handler") && new.contains("not in refs/heads/main") && new.contains("commit it to main")
    );
    let changed = lines.iter().find(|l| l.contains(".dwp/command/build")).expect("build named");
    assert!(changed.starts_with("warn handler") && changed.contains("differs"), "{changed}");
    r.commit_all("handlers");
    let (_, lines) = doctor(&r, &[]);
    assert!(!lines.iter().any(|l| l.starts_with("warn handler")), "{lines:#?}");
}
