//! `git baton run` against real repositories: one tick claims, runs, validates and records.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{event, repo_with, TestRepo};

impl TestRepoExt for TestRepo {
    fn task(&self, name: &str, state: &str, extra: &[&str]) -> String {
        self.git(&["branch", name, "main"]);
        let mut args = vec!["send", "--branch", name, state, "-m", "do the task"];
        for t in extra {
            args.extend(["--trailer", t]);
        }
        self.baton_ok(&args).trim().to_owned()
    }
    fn run_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["run", "--json"];
        all.extend(args);
        let out = self.baton_ok(&all);
        common::json_lines(&out)
    }
}

trait TestRepoExt {
    fn task(&self, name: &str, state: &str, extra: &[&str]) -> String;
    fn run_json(&self, args: &[&str]) -> Vec<serde_json::Value>;
}

fn actions<'a>(events: &'a [serde_json::Value], branch: &str) -> Vec<&'a str> {
    events.iter().filter(|e| e["branch"] == branch).map(|e| e["action"].as_str().unwrap()).collect()
}

const ADVANCE: &str = "#!/bin/sh\nset -e\nenv | grep -E '^(BATON|AYNIG)_' | sort > env.txt\ngit add env.txt\ngit commit -q -m 'did it' -m 'dwp-state: review'\n";

/// The handler advances the state, sees its environment; the history shows claim and answer;
/// the worktree is removed and the user's checkout is untouched.
#[test]
fn hello_world_advances_state_and_sees_its_environment() {
    let r = repo_with(&[(".dwp/command/build", ADVANCE)]);
    r.write("scratch.txt", "user's uncommitted file\n");
    let trigger = r.task("t1", "build", &["Reviewed-by: Bob <b@example.com>"]);
    let events = r.run_json(&[]);
    assert_eq!(actions(&events, "t1"), ["claimed", "succeeded"]);
    let done = event(&events, "t1", "succeeded");
    assert_eq!(done["next_state"], "review");
    assert_eq!(r.state_of("t1"), "review");

    // History: trigger <- claim (working) <- handler's commit.
    let claim = r.head("t1^");
    assert_eq!(r.head("t1^^"), trigger);
    assert_eq!(r.state_of(&claim), "working");
    assert_eq!(r.trailer_of(&claim, "dwp-origin-state").as_deref(), Some("build"));
    let run_id = r.trailer_of(&claim, "dwp-run-id").unwrap();
    assert_eq!(run_id.len(), 36, "uuid v4");
    assert_eq!(done["run_id"], run_id.as_str());
    assert_eq!(r.trailer_of(&claim, "dwp-lease-seconds").as_deref(), Some("300"));
    assert!(r.trailer_of(&claim, "dwp-runner-id").unwrap().contains(':'));

    let env = r.git(&["show", "t1:env.txt"]);
    for want in [
        "BATON_STATE=build".to_owned(),
        "BATON_BODY=do the task".to_owned(),
        format!("BATON_COMMIT={trigger}"),
        "BATON_BRANCH=t1".to_owned(),
        format!("BATON_RUN_ID={run_id}"),
        "BATON_LEASE_SECONDS=300".to_owned(),
        "BATON_TRAILER_REVIEWED_BY=Bob <b@example.com>".to_owned(),
        "BATON_TRAILER_DWP_STATE=build".to_owned(),
        "AYNIG_BODY=do the task".to_owned(),
        format!("AYNIG_COMMIT_HASH={trigger}"),
        "AYNIG_TRAILER_DWP_STATE=build".to_owned(),
    ] {
        assert!(env.lines().any(|l| l == want), "missing {want} in\n{env}");
    }
    // The runner's slot went back to the pool detached: the branch is free, the user's checkout as
    // it was.
    let worktrees = r.git(&["worktree", "list", "--porcelain"]);
    assert!(!worktrees.contains("branch refs/heads/t1"), "{worktrees}");
    r.git(&["worktree", "add", "-q", "../t1-checkout", "t1"]);
    assert_eq!(r.git(&["status", "--porcelain"]), "?? scratch.txt\n");
    assert_eq!(r.git(&["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "main");
    // A second tick finds nothing to do (review has no handler).
    assert!(r.run_json(&[]).is_empty());
}

/// A crashing handler: its commits stay, a failure event records exit code, reason and output,
/// and the worktree with uncommitted changes is kept.
#[test]
fn crash_is_recorded_as_failure_commit() {
    let script = "#!/bin/sh\necho partial > part.txt\ngit add part.txt\ngit commit -q -m 'partial work'\necho 'uncommitted' > wip.txt\necho 'something broke' >&2\nexit 3\n";
    let r = repo_with(&[common::NO_RETRIES, (".dwp/command/build", script)]);
    r.task("t1", "build", &[]);
    let events = r.run_json(&[]);
    let failed = event(&events, "t1", "failed");
    assert_eq!(failed["exit_code"], 3);
    assert_eq!(failed["next_state"], "failed");
    assert_eq!(r.state_of("t1"), "failed");
    assert_eq!(r.trailer_of("t1", "dwp-exit-code").as_deref(), Some("3"));
    assert_eq!(r.trailer_of("t1", "dwp-origin-state").as_deref(), Some("build"));
    assert!(r.trailer_of("t1", "dwp-error").unwrap().contains("status 3"));
    assert_eq!(r.trailer_of("t1", "dwp-run-id"), r.trailer_of("t1^^", "dwp-run-id"));
    let body = r.git(&["log", "-1", "--format=%b", "t1"]);
    assert!(body.contains("    something broke"), "{body}");
    assert!(body.contains("Full log: "));
    // The handler's own commit is in history, right below the failure event.
    assert_eq!(r.git(&["log", "-1", "--format=%s", "t1^"]).trim(), "partial work");
    let wt = failed["worktree"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(Path::new(wt).join("wip.txt")).unwrap(), "uncommitted\n");
    let log = std::fs::read_to_string(failed["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("something broke"));
}

/// `dwp-next-on-failure` on the triggering commit names the failure state.
#[test]
fn next_on_failure_trailer_chooses_failure_state() {
    let r = repo_with(&[common::NO_RETRIES, (".dwp/command/build", "#!/bin/sh\nexit 1\n")]);
    r.task("t1", "build", &["dwp-next-on-failure: triage"]);
    r.run_json(&[]);
    assert_eq!(r.state_of("t1"), "triage");
}

/// Exit 0 without a commit, or with a commit that names no state, is a failure too.
#[test]
fn silent_handler_and_stateless_answer_fail() {
    let r = repo_with(&[
        common::NO_RETRIES,
        (".dwp/command/silent", "#!/bin/sh\nexit 0\n"),
        (".dwp/command/nostate", "#!/bin/sh\ngit commit -q --allow-empty -m 'forgot the trailer'\n"),
    ]);
    r.task("a", "silent", &[]);
    r.task("b", "nostate", &[]);
    let events = r.run_json(&[]);
    assert!(event(&events, "a", "failed")["error"].as_str().unwrap().contains("without a new commit"));
    assert!(event(&events, "b", "failed")["error"].as_str().unwrap().contains("no dwp-state"));
    assert_eq!(r.state_of("a"), "failed");
    assert_eq!(r.state_of("b"), "failed");
    assert_eq!(r.git(&["log", "-1", "--format=%s", "b^"]).trim(), "forgot the trailer");
}

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{}", pid.trim())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default().contains(") Z ")
}

/// On timeout the handler's whole process group is killed, and the failure is recorded.
#[test]
fn timeout_kills_the_process_group() {
    let pids = tempfile::tempdir().unwrap();
    let script = format!(
        "#!/bin/sh\nsleep 300 &\necho $! > {d}/child\necho $$ > {d}/main\nsleep 300\n",
        d = pids.path().display()
    );
    let r = repo_with(&[common::NO_RETRIES, (".dwp/command/slow", &script)]);
    r.task("t1", "slow", &[]);
    let started = Instant::now();
    let events = r.run_json(&["--timeout", "1"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(event(&events, "t1", "failed")["error"].as_str().unwrap().contains("timed out"));
    let child = std::fs::read_to_string(pids.path().join("child")).unwrap();
    let main = std::fs::read_to_string(pids.path().join("main")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(&child), "background child {child} survived");
    assert!(!alive(&main), "handler {main} survived");
    assert_eq!(r.state_of("t1"), "failed");
}

/// A `working` head whose lease expired is taken over with `stalled`, and the `stalled`
/// handler runs in the same tick.
#[test]
fn expired_lease_is_taken_over_and_stalled_handler_runs() {
    let r = repo_with(&[(
        ".dwp/command/stalled",
        "#!/bin/sh\ngit commit -q --allow-empty -m recovered -m 'dwp-state: done'\n",
    )]);
    r.git(&["branch", "t1", "main"]);
    r.git(&["checkout", "-q", "t1"]);
    // A lease from 2023 (the fixed test date), 60 s long: long expired.
    r.git(&[
        "commit", "-q", "--allow-empty", "-m", "baton: build claimed", "-m",
        "dwp-origin-state: build\ndwp-run-id: dead-run\ndwp-runner-id: gone:1\ndwp-lease-seconds: 60\ndwp-state: working",
    ]);
    r.git(&["checkout", "-q", "main"]);
    // And a live lease that must be left alone.
    r.git(&["branch", "t2", "main"]);
    let live = r.git_cmd(&[
        "commit-tree", "main^{tree}", "-p", "t2", "-m",
        "baton: build claimed\n\ndwp-origin-state: build\ndwp-run-id: live\ndwp-lease-seconds: 50000\ndwp-state: working",
    ])
    .env_remove("GIT_COMMITTER_DATE")
    .output()
    .unwrap();
    let live = String::from_utf8(live.stdout).unwrap();
    r.git(&["update-ref", "refs/heads/t2", live.trim()]);

    let events = r.run_json(&[]);
    assert_eq!(actions(&events, "t1"), ["took-over", "claimed", "succeeded"]);
    assert!(actions(&events, "t2").is_empty());
    assert_eq!(r.state_of("t1"), "done");
    let stalled = r.head("t1~2");
    assert_eq!(r.state_of(&stalled), "stalled");
    assert_eq!(r.trailer_of(&stalled, "dwp-stalled-run").as_deref(), Some("dead-run"));
    assert_eq!(r.trailer_of(&stalled, "dwp-origin-state").as_deref(), Some("build"));
    assert_eq!(r.trailer_of("t1^", "dwp-origin-state").as_deref(), Some("stalled"));
    assert_eq!(r.head("t2"), live.trim());
}

/// Path-like state names are reported and never executed, even when a file sits where the path
/// would lead.
#[test]
fn traversal_states_are_refused() {
    let marker = tempfile::tempdir().unwrap();
    let evil = format!("#!/bin/sh\ntouch {}/ran\n", marker.path().display());
    let r = repo_with(&[(".dwp/x", &evil), (".dwp/command/ok", "#!/bin/sh\nexit 0\n")]);
    for (branch, state) in [("a", "../x"), ("b", "/bin/sh"), ("c", "a/../../b")] {
        r.git(&["branch", branch, "main"]);
        let msg = format!("task\n\ndwp-state: {state}");
        let id = r.git(&["commit-tree", "main^{tree}", "-p", branch, "-m", &msg]);
        r.git(&["update-ref", &format!("refs/heads/{branch}"), id.trim()]);
    }
    let before: Vec<String> = ["a", "b", "c"].iter().map(|b| r.head(b)).collect();
    let events = r.run_json(&[]);
    for b in ["a", "b", "c"] {
        assert_eq!(actions(&events, b), ["notice"], "{b}");
        assert!(event(&events, b, "notice")["error"].as_str().unwrap().contains("invalid state"));
    }
    let after: Vec<String> = ["a", "b", "c"].iter().map(|b| r.head(b)).collect();
    assert_eq!(before, after);
    assert!(!marker.path().join("ran").exists());
}

/// An AYNIG handler (only AYNIG_* variables, plain git commit with trailers) runs unchanged.
#[test]
fn aynig_handler_runs_unchanged() {
    let script = "#!/usr/bin/env bash\nset -euo pipefail\necho \"$AYNIG_BODY\" > prompt.txt\necho \"$AYNIG_COMMIT_HASH\" >> prompt.txt\ngit add prompt.txt\ngit commit -q -m \"answered\" -m \"dwp-state: ${AYNIG_TRAILER_DWP_NEXT:-done}\"\n";
    let r = repo_with(&[(".dwp/command/ask", script)]);
    let trigger = r.task("t1", "ask", &["dwp-next: review"]);
    r.run_json(&[]);
    assert_eq!(r.state_of("t1"), "review");
    // AYNIG_BODY is what AYNIG passes: git's %b, the trailer block included.
    assert_eq!(
        r.git(&["show", "t1:prompt.txt"]),
        format!("do the task\n\ndwp-next: review\ndwp-state: ask\n{trigger}\n")
    );
}

/// Role handlers take precedence when a role is set.
#[test]
fn role_handlers_take_precedence() {
    let r = repo_with(&[
        (".dwp/command/build", "#!/bin/sh\ngit commit -q --allow-empty -m x -m 'dwp-state: by-default'\n"),
        (".dwp/roles/ci/command/build", "#!/bin/sh\ngit commit -q --allow-empty -m x -m 'dwp-state: by-role'\n"),
    ]);
    r.task("a", "build", &[]);
    r.task("b", "build", &[]);
    r.run_json(&["--branch", "a"]);
    r.run_json(&["--branch", "b", "--role", "ci"]);
    assert_eq!(r.state_of("a"), "by-default");
    assert_eq!(r.state_of("b"), "by-role");
}

/// A handler that is not executable, or has no `#!` line: reported, never silent.
#[test]
fn unexecutable_and_shebangless_handlers_are_reported() {
    let r = repo_with(&[common::NO_RETRIES, (".dwp/command/noshebang", "echo hi\n")]);
    r.write(".dwp/command/plain", "#!/bin/sh\nexit 0\n");
    r.commit_all("plain handler");
    r.task("a", "plain", &[]);
    r.task("b", "noshebang", &[]);
    let before = r.head("a");
    let events = r.run_json(&[]);
    assert_eq!(actions(&events, "a"), ["notice"]);
    assert!(event(&events, "a", "notice")["error"].as_str().unwrap().contains("not an executable"));
    assert_eq!(r.head("a"), before);
    let failed = event(&events, "b", "failed");
    assert!(failed["error"].as_str().unwrap().contains("could not be started"), "{failed}");
    assert_eq!(r.state_of("b"), "failed");
}

/// A branch deleted while its handler runs is reported, not silently dropped.
#[test]
fn branch_deleted_mid_run_is_reported() {
    let r = repo_with(&[(".dwp/command/vanish", "#!/bin/sh\ngit update-ref -d refs/heads/$BATON_BRANCH\n")]);
    r.task("t1", "vanish", &[]);
    let events = r.run_json(&[]);
    assert!(event(&events, "t1", "error")["error"].as_str().unwrap().contains("deleted"));
}

/// A ref locked by another git process: that branch is reported, the others still run.
#[test]
fn locked_ref_is_reported_and_others_proceed() {
    let r = repo_with(&[(".dwp/command/build", ADVANCE)]);
    r.task("a", "build", &[]);
    r.task("b", "build", &[]);
    let lock = r.path.join(".git/refs/heads/a.lock");
    std::fs::write(&lock, "").unwrap();
    let before = r.head("a");
    let events = r.run_json(&[]);
    std::fs::remove_file(&lock).unwrap();
    assert!(event(&events, "a", "error")["error"].as_str().unwrap().contains("lock"));
    assert_eq!(r.head("a"), before);
    assert_eq!(r.state_of("b"), "review");
}

/// A worktree folder left behind by a crashed runner does not stop the next run.
#[test]
fn leftover_worktree_folder_is_replaced() {
    let r = repo_with(&[(".dwp/command/build", ADVANCE)]);
    r.task("t1", "build", &[]);
    let wt = r.path.join(".git/baton/worktrees").join(git_baton::repo::worktree::branch_key("t1"));
    std::fs::create_dir_all(wt.join("junk")).unwrap();
    std::fs::write(wt.join("junk/file"), "x").unwrap();
    let events = r.run_json(&[]);
    assert_eq!(actions(&events, "t1"), ["claimed", "succeeded"]);
}

/// A kept worktree is reused on the next run; its uncommitted changes are saved to a
/// `refs/baton/salvage/` ref first, never lost.
#[test]
fn reused_worktree_salvages_uncommitted_changes() {
    let r = repo_with(&[common::NO_RETRIES, (".dwp/command/build", "#!/bin/sh\necho wip > wip.txt\nexit 1\n")]);
    r.task("t1", "build", &["dwp-next-on-failure: build"]);
    r.run_json(&[]);
    assert_eq!(r.state_of("t1"), "build");
    let events = r.run_json(&[]);
    assert_eq!(actions(&events, "t1"), ["claimed", "failed"]);
    let salvage = r.git(&["for-each-ref", "--format=%(refname)", "refs/baton/salvage/"]);
    assert_eq!(salvage.lines().count(), 1, "{salvage}");
    assert_eq!(r.git(&["show", &format!("{}:wip.txt", salvage.trim())]), "wip\n");
}

/// The user's checkout, index and stash are never touched by a tick.
#[test]
fn user_checkout_index_and_stash_are_untouched() {
    let r = repo_with(&[(".dwp/command/build", ADVANCE)]);
    r.write("README", "stashed change\n");
    r.git(&["stash", "-q"]);
    r.write("README", "staged change\n");
    r.git(&["add", "README"]);
    r.write("README", "unstaged change\n");
    r.task("t1", "build", &[]);
    let status = r.git(&["status", "--porcelain"]);
    let stash = r.git(&["stash", "list"]);
    let diff_cached = r.git(&["diff", "--cached"]);
    r.run_json(&[]);
    assert_eq!(r.state_of("t1"), "review");
    assert_eq!(r.git(&["status", "--porcelain"]), status);
    assert_eq!(r.git(&["stash", "list"]), stash);
    assert_eq!(r.git(&["diff", "--cached"]), diff_cached);
    assert_eq!(std::fs::read_to_string(r.path.join("README")).unwrap(), "unstaged change\n");
}

/// `--current-branch only` refuses a dirty checkout and writes nothing; on a clean checkout it
/// runs the current branch and brings the checkout along.
#[test]
fn current_branch_only_needs_a_clean_checkout() {
    let r = repo_with(&[(".dwp/command/build", ADVANCE)]);
    r.baton_ok(&["send", "build"]);
    r.task("other", "build", &[]);
    r.write("README", "dirty\n");
    let before = r.head("main");
    let out = r.baton(&["run", "--current-branch", "only"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("uncommitted changes"));
    assert_eq!(r.head("main"), before);
    r.git(&["checkout", "-q", "README"]);
    let events = r.run_json(&["--current-branch", "only"]);
    assert_eq!(actions(&events, "main"), ["claimed", "succeeded"]);
    assert!(actions(&events, "other").is_empty());
    assert_eq!(r.state_of("main"), "review");
    assert!(r.path.join("env.txt").exists(), "checkout follows the branch");
    assert_eq!(r.git(&["status", "--porcelain"]), "");
}

/// `--fail-on-error` turns a failed handler into exit 1; without it the tick exits 0.
#[test]
fn fail_on_error_sets_exit_status() {
    let r = repo_with(&[common::NO_RETRIES, (".dwp/command/build", "#!/bin/sh\nexit 1\n")]);
    r.task("a", "build", &["dwp-next-on-failure: build"]);
    assert_eq!(r.baton(&["run"]).status.code(), Some(0));
    assert_eq!(r.baton(&["run", "--fail-on-error"]).status.code(), Some(1));
}

/// A handler that renews its own lease with `git baton heartbeat` parks the branch.
#[test]
fn handler_can_park_with_heartbeat() {
    let r = repo_with(&[
        common::NO_RETRIES,
        (
            ".dwp/command/wait",
            "#!/bin/sh\nset -e\ngit baton heartbeat --lease-seconds 86400 -m 'waiting for a human'\n",
        ),
    ]);
    r.task("t1", "wait", &[]);
    let bin_dir = Path::new(common::BATON).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let out = r.baton_cmd(&["run", "--json"]).env("PATH", path).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"action\":\"parked\""), "{text}");
    assert_eq!(r.state_of("t1"), "working");
    assert_eq!(r.trailer_of("t1", "dwp-run-id"), r.trailer_of("t1^", "dwp-run-id"));
    assert_eq!(r.trailer_of("t1", "dwp-lease-seconds").as_deref(), Some("86400"));
}

/// SIGINT: no new claims, the running handler gets the grace period, then is killed and the
/// failure is recorded.
#[test]
fn sigint_stops_claiming_and_records_interrupted_handler() {
    let r = repo_with(&[common::NO_RETRIES, (".dwp/command/slow", "#!/bin/sh\nsleep 60\n")]);
    r.task("t1", "slow", &[]);
    r.task("t2", "slow", &[]);
    let mut child = r
        .baton_cmd(&["run", "--json", "--jobs", "1", "--grace", "0.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while r.state_of("t1") != "working" && r.state_of("t2") != "working" {
        assert!(Instant::now() < deadline, "never claimed");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    let states = [r.state_of("t1"), r.state_of("t2")];
    assert!(states.contains(&"failed".to_owned()), "{states:?}");
    assert!(states.contains(&"slow".to_owned()), "the second branch was never claimed: {states:?}");
    let failed = if states[0] == "failed" { "t1" } else { "t2" };
    assert!(r.trailer_of(failed, "dwp-error").unwrap().contains("interrupted"));
}

/// Three runners started together on one repository with 24 tasks run every task exactly once.
#[test]
fn three_runners_race_and_every_task_runs_exactly_once() {
    let ledger = tempfile::tempdir().unwrap();
    let script = format!(
        "#!/bin/sh\nset -e\necho \"$BATON_BRANCH $BATON_RUN_ID\" >> {}/ledger\nsleep 0.05\ngit commit -q --allow-empty -m done -m 'dwp-state: done'\n",
        ledger.path().display()
    );
    let r = repo_with(&[(".dwp/command/todo", &script)]);
    for i in 0..24 {
        r.task(&format!("task-{i:02}"), "todo", &[]);
    }
    let children: Vec<_> = (0..3)
        .map(|_| r.baton_cmd(&["run", "--json", "--jobs", "3"]).stdout(Stdio::piped()).spawn().unwrap())
        .collect();
    let mut lost = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        lost += String::from_utf8_lossy(&out.stdout).matches("\"lost-race\"").count();
    }
    let ledger = std::fs::read_to_string(ledger.path().join("ledger")).unwrap();
    let mut branches: Vec<&str> = ledger.lines().map(|l| l.split(' ').next().unwrap()).collect();
    branches.sort();
    let expected: Vec<String> = (0..24).map(|i| format!("task-{i:02}")).collect();
    assert_eq!(branches, expected, "each task exactly once ({lost} lost races)");
    for b in &expected {
        assert_eq!(r.state_of(b), "done");
        let claims = r.git(&["log", "--format=%(trailers:key=dwp-state,valueonly)", b]);
        assert_eq!(claims.lines().filter(|l| *l == "working").count(), 1, "{b} claimed once");
    }
}
