//! The runner owns the branch: handlers work on a detached HEAD, the runner publishes only results
//! that descend from the run's lease, keeps the lease alive itself, reads handlers and policy from
//! a trusted ref, and hands handlers a scrubbed environment and a capped log.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{event, repo_with, run_json, task, TestRepo, BATON};

fn is_ancestor(r: &TestRepo, a: &str, b: &str) -> bool {
    r.git_cmd(&["merge-base", "--is-ancestor", a, b]).status().unwrap().success()
}

/// A handler that rewinds to before its lease and answers `done`: not published. A `state`
/// failure event lands on top of the claim, which stays on the branch, and the handler's commits
/// are kept on `refs/baton/rejected/<branch>/<run>`.
#[test]
fn rewinding_handler_is_a_state_failure_and_its_result_is_kept() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\nset -e\ngit reset -q --hard HEAD~2\ngit commit -q --allow-empty -m mine -m 'dwp-state: done'\n",
    )]);
    let trigger = task(&r, "t1", "build");
    let events = run_json(&r, &[]);
    let failed = event(&events, "t1", "failed");
    let run_id = failed["run_id"].as_str().unwrap();
    assert_eq!(r.state_of("t1"), "failed");
    assert_eq!(r.trailer_of("t1", "dwp-error-type").as_deref(), Some("state"));
    assert_eq!(
        r.trailer_of("t1", "dwp-error").as_deref(),
        Some("the handler's result does not descend from its lease")
    );
    // The trigger and the claim are still on the branch, the failure right on top of the claim.
    let claim = r.head("t1^");
    assert_eq!(r.state_of(&claim), "working");
    assert_eq!(r.head("t1^^"), trigger);
    // The handler's answer is kept, not lost.
    let kept = format!("refs/baton/rejected/t1/{run_id}");
    assert_eq!(r.git(&["log", "-1", "--format=%s", &kept]).trim(), "mine");
    assert!(failed["error"].as_str().unwrap().contains(&kept), "{failed}");
}

/// A handler that moves another branch onto its work: the run is published as usual and the
/// runner says which branch now points at a commit of the run.
#[test]
fn branch_moving_handler_is_noticed() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\nset -e\ngit commit -q --allow-empty -m mine -m 'dwp-state: review'\ngit branch -f other HEAD\n",
    )]);
    r.git(&["branch", "other", "main"]);
    task(&r, "t1", "build");
    let events = run_json(&r, &[]);
    event(&events, "t1", "succeeded");
    let notice = event(&events, "t1", "notice");
    assert!(notice["error"].as_str().unwrap().contains("other"), "{notice}");
    assert_eq!(r.state_of("t1"), "review");
}

/// Inside a handler, `git rev-parse --abbrev-ref HEAD` says `HEAD`: the branch is the runner's.
/// A heartbeat publishes progress on the branch; the answer on top of it is published after.
#[test]
fn handler_heartbeats_then_answers() {
    let r = repo_with(&[(
        ".dwp/command/build",
        &format!(
            "#!/bin/sh\nset -e\ngit rev-parse --abbrev-ref HEAD > head.txt\ngit add head.txt\ngit commit -q -m progress\n\
             {BATON} heartbeat -m 'half way' >/dev/null\n\
             git log -1 --format=%H \"refs/heads/$BATON_BRANCH\" > published.txt\n\
             git add published.txt\ngit commit -q -m published\n{BATON} send review -m 'done with it' >/dev/null\n"
        ),
    )]);
    task(&r, "t1", "build");
    let events = run_json(&r, &[]);
    event(&events, "t1", "succeeded");
    assert_eq!(r.state_of("t1"), "review");
    // answer <- published <- heartbeat <- progress <- claim
    assert_eq!(r.git(&["log", "-1", "--format=%s", "t1~2"]).trim(), "baton: heartbeat");
    assert_eq!(r.state_of("t1~2"), "working");
    assert_eq!(r.git(&["log", "-1", "--format=%s", "t1~3"]).trim(), "progress");
    assert_eq!(r.state_of("t1~4"), "working");
    assert_eq!(r.git(&["show", "t1:head.txt"]).trim(), "HEAD");
    // While the handler still ran, the branch already was at its heartbeat.
    assert_eq!(r.git(&["show", "t1:published.txt"]).trim(), r.head("t1~2"));
}

/// With `baton.trustedRef` set, a task branch that changed a handler and the policy still runs
/// main's handler under main's policy.
#[test]
fn trusted_ref_decides_what_runs() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\nset -e\necho main > who.txt\nenv > env.txt\ngit add who.txt env.txt\ngit commit -q -m built -m 'dwp-state: done'\n",
    )]);
    r.git(&["config", "baton.trustedRef", "main"]);
    r.git(&["checkout", "-q", "-b", "t1"]);
    r.handler(
        ".dwp/command/build",
        "#!/bin/sh\nset -e\necho branch > who.txt\nenv > env.txt\ngit add who.txt env.txt\ngit commit -q -m built -m 'dwp-state: done'\n",
    );
    r.write(".dwp/policy.toml", "[defaults]\nenv.pass = [\"MY_SECRET\"]\n");
    r.commit_all("agent edits its own handler and policy");
    r.git(&["checkout", "-q", "main"]);
    r.baton_ok(&["send", "--branch", "t1", "build", "-m", "go"]);
    let out = r.baton_cmd(&["run", "--json"]).env("MY_SECRET", "hunter2-value").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r.state_of("t1"), "done");
    assert_eq!(r.git(&["show", "t1:who.txt"]).trim(), "main");
    let env = r.git(&["show", "t1:env.txt"]);
    assert!(!env.contains("MY_SECRET"), "the branch's policy passed a secret:\n{env}");

    // Without the trusted ref, the task's own commit decides (AYNIG's behaviour).
    r.git(&["config", "--unset", "baton.trustedRef"]);
    r.baton_ok(&["send", "--branch", "t1", "build", "-m", "again"]);
    let out = r.baton_cmd(&["run", "--json"]).env("MY_SECRET", "hunter2-value").output().unwrap();
    assert!(out.status.success());
    assert_eq!(r.git(&["show", "t1:who.txt"]).trim(), "branch");
    assert!(r.git(&["show", "t1:env.txt"]).contains("MY_SECRET=hunter2-value"));
}

/// A trusted ref that does not exist: one line, exit 1, nothing written, never a fallback.
#[test]
fn missing_trusted_ref_refuses() {
    let r = repo_with(&[(".dwp/command/build", "#!/bin/sh\ngit commit -q --allow-empty -m x -m 'dwp-state: done'\n")]);
    let head = task(&r, "t1", "build");
    for (args, env) in
        [(vec!["run", "--trusted-ref", "nope"], None), (vec!["run"], Some(("BATON_TRUSTED_REF", "refs/heads/nope")))]
    {
        let mut cmd = r.baton_cmd(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("refs/heads/nope") && err.contains("does not exist"), "{err}");
    }
    assert_eq!(r.head("t1"), head, "nothing written");
    let out = r.baton(&["run", "--trusted-ref", "a..b"]);
    assert_eq!(out.status.code(), Some(1));
}

/// A runner variable reaches a handler only when passed; a passed secret is masked in the
/// failure event the runner writes.
#[test]
fn secrets_stay_out_unless_passed_and_are_masked() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\necho \"token=${MY_TOKEN:-unset} other=${OTHER:-unset} path=${PATH:+set}\"\nexit 3\n",
    )]);
    task(&r, "t1", "build");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--json"];
        args.extend(extra);
        let out = r.baton_cmd(&args).env("MY_TOKEN", "s3cr3t-t0ken").env("OTHER", "x").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[]);
    let body = r.git(&["log", "-1", "--format=%b", "t1"]);
    assert!(body.contains("token=unset other=unset path=set"), "{body}");

    r.baton_ok(&["send", "--branch", "t1", "build"]);
    run(&["--pass-env", "MY_TOKEN"]);
    let body = r.git(&["log", "-1", "--format=%b", "t1"]);
    assert!(body.contains("token=*** other=unset"), "{body}");
    assert!(!body.contains("s3cr3t-t0ken"), "{body}");

    let out = r.baton(&["run", "--pass-env", "BAD NAME"]);
    assert_eq!(out.status.code(), Some(2));
}

/// 100 MB of output leaves a log no larger than the cap, with its beginning and its end.
#[test]
fn huge_output_leaves_a_capped_log() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\necho FIRST-LINE\nhead -c 100000000 /dev/zero | tr '\\0' 'x'\necho\necho LAST-LINE\nexit 1\n",
    )]);
    r.write(".dwp/policy.toml", "[defaults]\nlog.max_bytes = \"1MiB\"\nretry.logic = 0\n");
    r.commit_all("policy");
    task(&r, "t1", "build");
    let events = run_json(&r, &[]);
    let failed = event(&events, "t1", "failed");
    let log = Path::new(failed["log"].as_str().unwrap());
    let size = std::fs::metadata(log).unwrap().len();
    assert!(size <= 1 << 20, "log is {size} bytes");
    let text = std::fs::read(log).unwrap();
    assert!(text.starts_with(b"FIRST-LINE\n"));
    assert!(text.ends_with(b"LAST-LINE\n"));
    assert!(String::from_utf8_lossy(&text).contains("cut"));
}

/// A handler that runs three times its lease while a second runner polls the same board: the
/// runner renews the lease, so the handler runs exactly once and is never taken over.
#[test]
fn runner_renews_its_lease_while_the_handler_runs() {
    let ledger = tempfile::NamedTempFile::new().unwrap();
    let script = format!(
        "#!/bin/sh\nset -e\necho \"$BATON_RUN_ID\" >> {l}\nsleep 6\ngit commit -q --allow-empty -m slow -m 'dwp-state: done'\n",
        l = ledger.path().display()
    );
    let r = repo_with(&[(".dwp/command/build", &script), (".dwp/command/stalled", "#!/bin/sh\nexit 0\n")]);
    task(&r, "t1", "build");
    let first = r.baton_cmd(&["run", "--json", "--lease-seconds", "2"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let poller = r
        .baton_cmd(&["watch", "--json", "--interval", "0.5", "--max-ticks", "16", "--lease-seconds", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    let events = String::from_utf8_lossy(&out.stdout);
    assert!(events.contains("\"succeeded\""), "{events}");
    let polled = poller.wait_with_output().unwrap();
    let polled = String::from_utf8_lossy(&polled.stdout);
    assert!(!polled.contains("took-over"), "the second runner took a live run over: {polled}");
    assert_eq!(std::fs::read_to_string(ledger.path()).unwrap().lines().count(), 1);
    assert_eq!(r.state_of("t1"), "done");
    assert!(is_ancestor(&r, "t1^", "t1"));
    // The renewal record is gone once the run is over.
    assert!(r.git(&["for-each-ref", "refs/baton/leases/"]).trim().is_empty());
}

/// kill -9 of the runner: its renewals stop, the lease expires, and a second runner takes over.
#[test]
fn killed_runner_is_taken_over_after_expiry() {
    let r =
        repo_with(&[(".dwp/command/build", "#!/bin/sh\nsleep 30\n"), (".dwp/command/stalled", "#!/bin/sh\nexit 0\n")]);
    task(&r, "t1", "build");
    let mut first = r.baton_cmd(&["run", "--lease-seconds", "2"]).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.state_of("t1") != "working" {
        assert!(Instant::now() < deadline, "never claimed");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500)); // at least one renewal
    assert!(!r.git(&["for-each-ref", "refs/baton/leases/"]).trim().is_empty(), "no renewal record");
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    let _ = first.wait();
    let start = Instant::now();
    loop {
        let events = run_json(&r, &["--lease-seconds", "2"]);
        if events.iter().any(|e| e["action"] == "took-over") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "never taken over");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(start.elapsed() >= Duration::from_millis(500), "taken over before the renewal expired");
    let stalled = r.git(&["log", "--format=%(trailers:key=dwp-stalled-run,valueonly)", "t1"]);
    assert!(!stalled.trim().is_empty(), "no stalled commit on t1");
}
