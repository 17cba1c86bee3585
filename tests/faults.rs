//! The fault suite: one test per finding of the adversarial pass (crashes, races, hostile input),
//! named after it, on real repositories with the real `git`. Each failed on round 1's main.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{has, repo_with, run_json, task, wait_until, TestRepo, BATON};
use serde_json::Value;

/// Finding 1: a runner killed with SIGKILL mid-handler. Its whole process group dies with it
/// (background jobs included), so nothing of the crashed run commits later; the run that takes
/// over salvages the crashed run's uncommitted work before it reuses the slot.
#[test]
fn f01_sigkilled_runner_leaves_no_handler_behind_and_its_work_is_salvaged() {
    let marker_dir = tempfile::tempdir().unwrap();
    let late = marker_dir.path().join("late-commit");
    let build = format!(
        "#!/bin/sh\necho wip > wip.txt\n(sleep 3; git commit -q --allow-empty -m late -m 'dwp-state: hijacked' && git rev-parse HEAD > {late}) &\nsleep 30.37\n",
        late = late.display()
    );
    let ledger = marker_dir.path().join("stalled-runs");
    let stalled = format!(
        "#!/bin/sh\nset -e\necho run >> {}\ngit commit -q --allow-empty -m recovered -m 'dwp-state: recovered'\n",
        ledger.display()
    );
    let r = repo_with(&[(".dwp/command/build", &build), (".dwp/command/stalled", &stalled)]);
    task(&r, "t1", "build");
    let mut first = r.baton_cmd(&["run", "--lease-seconds", "2"]).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the claim", Duration::from_secs(10), || r.state_of("t1") == "working");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    let _ = first.wait();
    // The group's leader kills the group when the kernel tells it its runner died; under load that
    // takes a moment, but well before the background job's commit (3 s after it started).
    let survivors = || {
        let ps = std::process::Command::new("sh")
            .args(["-c", "ps -eo args | grep -c '^[s]leep 30[.]37$'"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout).trim().to_owned()
    };
    let deadline = std::time::Instant::now() + Duration::from_millis(2000);
    while survivors() != "0" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(survivors(), "0", "a process of the run outlived its runner");
    // Three runners race for the expired lease: exactly one takes it over and runs `stalled`.
    let takeovers: usize = std::thread::scope(|s| {
        let racers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let started = Instant::now();
                    let mut mine = 0;
                    while r.state_of("t1") != "recovered" && started.elapsed() < Duration::from_secs(20) {
                        mine += run_json(&r, &["--lease-seconds", "2"])
                            .iter()
                            .filter(|e| e["action"] == "took-over")
                            .count();
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    mine
                })
            })
            .collect();
        racers.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(takeovers, 1, "the expired lease was taken over {takeovers} times");
    assert_eq!(r.state_of("t1"), "recovered");
    assert_eq!(std::fs::read_to_string(&ledger).unwrap().lines().count(), 1, "stalled ran more than once");
    let salvage = r.git(&["for-each-ref", "--format=%(refname)", "refs/baton/salvage/"]);
    let found = salvage.lines().any(|s| r.git(&["ls-tree", "--name-only", s]).lines().any(|f| f == "wip.txt"));
    assert!(found, "no salvage ref holds the crashed run's wip.txt: {salvage}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!late.exists(), "a process of the crashed run committed later");
}

/// Finding 1: a process that escaped its run's group (`setsid`) still holds the slot's lock, so
/// no later run is started in a slot where it works.
#[test]
fn f01c_slot_is_not_reused_while_a_process_of_an_earlier_run_lives() {
    let r = repo_with(&[
        (
            ".dwp/command/daemon",
            "#!/bin/sh\nset -e\nsetsid sleep 4 &\nsleep 0.5\ngit commit -q --allow-empty -m ok -m 'dwp-state: done'\n",
        ),
        (
            ".dwp/command/where",
            "#!/bin/sh\nset -e\npwd > where.txt\ngit add where.txt\ngit commit -q -m here -m 'dwp-state: done'\n",
        ),
    ]);
    task(&r, "t1", "daemon");
    task(&r, "t2", "where");
    run_json(&r, &["--jobs", "1", "--branch", "t1"]);
    run_json(&r, &["--jobs", "1", "--branch", "t2"]);
    let slot = r.git(&["show", "t2:where.txt"]);
    assert!(!slot.trim().ends_with("slot-0"), "t2 ran in the slot t1's daemon still works in: {slot}");
}

/// Finding 1, without a crash: a background process a handler leaves behind is stopped when the
/// run ends; it never commits onto the next branch that uses the slot.
#[test]
fn f01b_leftover_background_process_is_stopped_at_the_end_of_its_run() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("still-alive");
    let build = format!(
        "#!/bin/sh\nset -e\n(sleep 2; touch {m}; git commit -q --allow-empty -m sneaky -m 'dwp-state: hijacked') &\ngit commit -q --allow-empty -m ok -m 'dwp-state: done'\n",
        m = marker.display()
    );
    let r = repo_with(&[
        (".dwp/command/build", &build),
        (".dwp/command/slow", "#!/bin/sh\nsleep 3\ngit commit -q --allow-empty -m slow -m 'dwp-state: done'\n"),
    ]);
    task(&r, "t1", "build");
    task(&r, "t2", "slow");
    run_json(&r, &["--jobs", "1", "--branch", "t1"]);
    run_json(&r, &["--jobs", "1", "--branch", "t2"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!marker.exists(), "a process of t1's run outlived it");
    assert_eq!(r.state_of("t1"), "done");
    assert_eq!(r.state_of("t2"), "done");
    assert_eq!(r.git(&["log", "--format=%s", "t2", "-3"]).lines().next(), Some("slow"));
}

/// Finding 2: a handler that resets its work back to the trigger and exits 0 is recorded (a
/// `state` failure) and is not run again and again.
#[test]
fn f02_reset_to_trigger_is_recorded_and_not_rerun() {
    let ledger = tempfile::NamedTempFile::new().unwrap();
    let build = format!("#!/bin/sh\necho run >> {}\ngit reset -q --hard \"$BATON_COMMIT\"\n", ledger.path().display());
    let r = repo_with(&[(".dwp/command/build", &build)]);
    task(&r, "t1", "build");
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "failed"), "{events:#?}");
    assert_eq!(r.trailer_of("t1", "dwp-error-type").as_deref(), Some("state"));
    assert!(run_json(&r, &[]).is_empty());
    assert_eq!(std::fs::read_to_string(ledger.path()).unwrap().lines().count(), 1);
}

/// Finding 3: a person's commit on a branch whose handler is running stands: the runner notices at
/// its next renewal, stops the handler and publishes nothing over it.
#[test]
fn f03_persons_commit_during_a_run_is_not_reverted() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\nset -e\necho handler > h.txt\ngit add h.txt\nsleep 4\ngit commit -q -m handler -m 'dwp-state: done'\n",
    )]);
    task(&r, "t1", "build");
    let runner = r
        .baton_cmd(&["run", "--json", "--lease-seconds", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the claim", Duration::from_secs(10), || r.state_of("t1") == "working");
    let mine = r.baton_ok(&["send", "--force", "--branch", "t1", "canceled", "-m", "stop this"]);
    let started = Instant::now();
    let out = runner.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(4), "the handler was not stopped when the lease was lost");
    let events = String::from_utf8_lossy(&out.stdout);
    assert!(events.contains("lost its lease"), "{events}");
    assert_eq!(r.head("t1"), mine.trim(), "the person's commit was replaced");
    assert_eq!(r.state_of("t1"), "canceled");
}

/// Finding 4: `send` on a branch with a live lease refuses, naming the run and its expiry.
#[test]
fn f04_send_on_a_live_lease_refuses_without_force() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\nsleep 3\ngit commit -q --allow-empty -m x -m 'dwp-state: done'\n",
    )]);
    task(&r, "t1", "build");
    let runner = r.baton_cmd(&["run"]).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the claim", Duration::from_secs(10), || r.state_of("t1") == "working");
    let head = r.head("t1");
    let out = r.baton(&["send", "--branch", "t1", "canceled"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is held by run") && err.contains("lease ends in") && err.contains("--force"), "{err}");
    assert_eq!(err.lines().count(), 1);
    assert_eq!(r.head("t1"), head);
    runner.wait_with_output().unwrap();
    assert_eq!(r.state_of("t1"), "done");
}

/// Finding 5: one bad ref does not stop the board: a tag, a tree, a blob, a commit git-baton
/// cannot decode, or a missing object as a branch head is one notice; every other branch goes on,
/// and `status`, `log --all`, `metrics` and `graph` still answer.
#[test]
fn f05_one_bad_ref_does_not_stop_the_board() {
    let r = repo_with(&[(".dwp/command/build", "#!/bin/sh\ngit commit -q --allow-empty -m ok -m 'dwp-state: done'\n")]);
    task(&r, "good", "build");
    r.git(&["tag", "-a", "-m", "a tag", "v1", "main"]);
    let tag = r.head("refs/tags/v1");
    let tree = r.head("main^{tree}");
    let blob = r.git_bytes(&["hash-object", "-w", "--stdin"], b"blob\n");
    let blob = String::from_utf8_lossy(&blob).trim().to_owned();
    let authorless =
        format!("tree {tree}\ncommitter C <c@example.com> 1700000000 +0000\n\nno author\n\ndwp-state: build\n");
    let authorless =
        r.git_bytes(&["hash-object", "-t", "commit", "-w", "--literally", "--stdin"], authorless.as_bytes());
    let authorless = String::from_utf8_lossy(&authorless).trim().to_owned();
    // git refuses to point a branch at a non-commit; a bare remote accepts it by push, and a ref
    // file is just a file.
    std::fs::create_dir_all(r.path.join(".git/refs/heads/bad")).unwrap();
    for (name, id) in [("bad/tag", &tag), ("bad/tree", &tree), ("bad/blob", &blob), ("bad/noauthor", &authorless)] {
        std::fs::write(r.path.join(".git/refs/heads").join(name), format!("{id}\n")).unwrap();
    }
    // A branch whose object is missing (say, `git gc --prune=now` raced a handler's commit).
    std::fs::write(r.path.join(".git/refs/heads/missing"), "0123456789012345678901234567890123456789\n").unwrap();

    let events = run_json(&r, &[]);
    assert!(has(&events, "good", "succeeded"), "{events:#?}");
    for bad in ["bad/tag", "bad/tree", "bad/blob", "missing"] {
        assert!(has(&events, bad, "notice"), "no notice for {bad}: {events:#?}");
    }
    let status = r.baton(&["status", "--json"]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let rows = common::json_lines(&String::from_utf8_lossy(&status.stdout));
    let row = |b: &str| rows.iter().find(|x| x["branch"] == b).cloned().unwrap();
    assert_eq!(row("good")["state"], "done");
    assert!(row("bad/tree")["error"].is_string());
    for cmd in [&["log", "--all"][..], &["metrics"], &["graph"]] {
        let out = r.baton(cmd);
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = r.baton(&["send", "--branch", "bad/tag", "build"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("points to a tag") && !err.contains("lock"), "{err}");
}

/// Finding 6: two handler symlinks pointing at each other are a notice, not a crash.
#[test]
fn f06_symlink_loop_is_a_notice_not_a_crash() {
    let r = TestRepo::new();
    std::fs::create_dir_all(r.path.join(".dwp/command")).unwrap();
    std::os::unix::fs::symlink("y", r.path.join(".dwp/command/x")).unwrap();
    std::os::unix::fs::symlink("x", r.path.join(".dwp/command/y")).unwrap();
    r.commit_all("loop");
    task(&r, "t1", "x");
    let status = r.baton(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stderr));
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "notice"), "{events:#?}");
    let out = r.baton(&["watch", "--interval", "0.1", "--max-ticks", "1"]);
    assert_eq!(out.status.code(), Some(0));
}

/// Finding 7: a remote name cannot smuggle an option into git, and a branch named `-Bvictim`
/// never reaches git's command line (it cannot reset `victim`).
#[test]
fn f07_argument_injection_through_remote_and_branch_names() {
    let r = repo_with(&[(".dwp/command/build", "#!/bin/sh\ngit commit -q --allow-empty -m ok -m 'dwp-state: done'\n")]);
    let dir = tempfile::tempdir().unwrap();
    let pwn = dir.path().join("PWN");
    let evil = format!("--remote=--upload-pack=touch {}", pwn.display());
    let out = r.baton(&["run", &evil]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let out = r.baton(&["status", &evil]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!pwn.exists(), "the remote name ran a command");

    r.git(&["branch", "victim", "main"]);
    let victim = r.baton_ok(&["send", "--branch", "victim", "review"]).trim().to_owned();
    let task_head = r.baton_ok(&["send", "--branch", "main", "build"]).trim().to_owned();
    r.git(&["update-ref", "refs/heads/-Bvictim", &task_head]);
    r.git(&["update-ref", "refs/heads/main", &r.head("main~1")]);
    let events = run_json(&r, &[]);
    assert!(has(&events, "-Bvictim", "succeeded"), "{events:#?}");
    assert_eq!(r.head("victim"), victim, "victim was reset");
    assert_eq!(r.state_of("refs/heads/-Bvictim"), "done");
}

/// Finding 9: a body over 128 KiB runs: the whole body is in `BATON_BODY_FILE`, and the
/// environment copies are cut with a marker.
#[test]
fn f09_huge_body_reaches_the_handler_through_a_file() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\nset -e\ncp \"$BATON_BODY_FILE\" body.txt\nprintf %s \"$BATON_BODY\" | wc -c > env-size.txt\ngit add body.txt env-size.txt\ngit commit -q -m got -m 'dwp-state: done'\n",
    )]);
    r.git(&["branch", "t1", "main"]);
    let body: String = (0..200_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let file = r.dir.path().join("body.txt");
    std::fs::write(&file, &body).unwrap();
    r.baton_ok(&["send", "--branch", "t1", "build", "-F", file.to_str().unwrap()]);
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "succeeded"), "{events:#?}");
    assert_eq!(r.git(&["show", "t1:body.txt"]), body);
    let env_size: usize = r.git(&["show", "t1:env-size.txt"]).trim().parse().unwrap();
    assert!(env_size <= 64 * 1024, "{env_size}");
}

/// Finding 10: a pushed `working` commit with a far-future committer time cannot freeze a branch
/// (taken over, with a notice), and an enormous lease is bounded by `max_lease`.
#[test]
fn f10_frozen_leases_are_bounded() {
    let r =
        repo_with(&[(".dwp/command/stalled", "#!/bin/sh\ngit commit -q --allow-empty -m back -m 'dwp-state: done'\n")]);
    let lease = |name: &str, date: &str, seconds: &str| {
        r.git(&["branch", name, "main"]);
        let msg = format!("baton: build claimed\n\ndwp-origin-state: build\ndwp-run-id: r-{name}\ndwp-lease-seconds: {seconds}\ndwp-state: working");
        let out = r
            .git_cmd(&["commit-tree", "main^{tree}", "-p", name, "-m", &msg])
            .env("GIT_COMMITTER_DATE", date)
            .output()
            .unwrap();
        r.git(&["update-ref", &format!("refs/heads/{name}"), String::from_utf8_lossy(&out.stdout).trim()]);
    };
    lease("future", "4000000000 +0000", "60");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    lease("huge", &format!("{now} +0000"), "99999999999999");
    let rows = common::json_lines(&r.baton_ok(&["status", "--json"]));
    let huge = rows.into_iter().find(|x| x["branch"] == "huge").unwrap();
    assert!(huge["lease_seconds_left"].as_i64().unwrap() <= 86_400, "{huge}");
    let events = run_json(&r, &[]);
    assert!(has(&events, "future", "took-over"), "{events:#?}");
    assert!(events.iter().any(|e| e["branch"] == "future"
        && e["action"] == "notice"
        && e["error"].as_str().unwrap_or("").contains("future")));
    assert!(events.iter().any(|e| e["branch"] == "huge"
        && e["action"] == "notice"
        && e["error"].as_str().unwrap_or("").contains("max_lease")));
    assert!(!has(&events, "huge", "took-over"));
}

/// Finding 11: on Actions a handler does not get the job's files for environment, path, outputs
/// and summary, nor `ACTIONS_*` tokens.
#[test]
fn f11_handler_cannot_reach_the_jobs_files() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\nset -e\nenv > env.txt\ngit add env.txt\ngit commit -q -m env -m 'dwp-state: done'\n",
    )]);
    task(&r, "t1", "build");
    let mut cmd = r.baton_cmd(&["run", "--json"]);
    for var in
        ["GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "ACTIONS_RUNTIME_TOKEN", "GITHUB_TOKEN"]
    {
        cmd.env(var, "/tmp/secret-place");
    }
    assert!(cmd.output().unwrap().status.success());
    let env = r.git(&["show", "t1:env.txt"]);
    assert!(!env.contains("/tmp/secret-place"), "{env}");
}

/// Finding 13: the smaller ones.
#[test]
fn f13_smaller_findings() {
    let r = repo_with(&[(
        ".dwp/command/many",
        // 10,001 commits on top of the claim, made fast with fast-import, then an answer.
        "#!/bin/sh\nset -e\nbase=$(git rev-parse HEAD)\n{ i=0; while [ $i -le 10000 ]; do printf 'commit refs/heads/tmp-many\\ncommitter C <c@example.com> 1700000000 +0000\\ndata 2\\nc\\n'; [ $i = 0 ] && printf 'from %s\\n' \"$base\"; printf '\\n'; i=$((i+1)); done; } | git fast-import --quiet\ngit checkout -q --detach tmp-many\ngit branch -q -D tmp-many\ngit commit -q --allow-empty -m answer -m 'dwp-state: done'\n",
    )]);
    task(&r, "t1", "many");
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "succeeded"), "many commits are not a lost lease: {events:#?}");

    // A glob with ten stars against a 40-character name answers at once.
    let long = "a".repeat(40);
    r.git(&["branch", &long, "main"]);
    let started = Instant::now();
    run_json(&r, &["--branch", "*a*a*a*a*a*a*a*a*a*a*b"]);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Usage errors, each exit 2 with one line, nothing written.
    for args in [
        &["run", "--remote", ""][..],
        &["status", "--remote", "nope"],
        &["run", "--role", ""],
        &["send", "--branch", "t1", "review", "--trailer", "dwp-exit-code: 0"],
        &["send", "--branch", "t1", "review", "--trailer", "DWP-Run-Id: x"],
        &["send", "--branch", "t1", "review", "--trailer", "Dwp-Error: x"],
        &["send", "--branch", "a..b", "review"],
    ] {
        let out = r.baton(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("gix"), "{args:?}: {err}");
    }
    assert_eq!(r.state_of("t1"), "done");
}

/// Finding 8 (remote mode): a result the runner could not publish is kept on the remote too, so
/// it outlives an ephemeral runner.
#[test]
fn f08_rejected_results_are_pushed_to_the_remote() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin.git");
    let home = dir.path();
    common::git_in(home, dir.path(), &["init", "-q", "--bare", "-b", "main", origin.to_str().unwrap()]);
    common::git_in(home, dir.path(), &["clone", "-q", origin.to_str().unwrap(), "seed"]);
    let seed = dir.path().join("seed");
    let p = seed.join(".dwp/command/build");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(
        &p,
        "#!/bin/sh\nset -e\ngit reset -q --hard HEAD~2\ngit commit -q --allow-empty -m mine -m 'dwp-state: done'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    common::git_in(home, &seed, &["add", "-A"]);
    common::git_in(home, &seed, &["commit", "-q", "-m", "handlers"]);
    common::git_in(home, &seed, &["branch", "t1"]);
    let out = common::command_in(home, BATON, &seed, &["send", "--branch", "t1", "build"]).output().unwrap();
    assert!(out.status.success());
    common::git_in(home, &seed, &["push", "-q", "origin", "main", "t1"]);
    common::git_in(home, dir.path(), &["clone", "-q", origin.to_str().unwrap(), "runner"]);
    let runner = dir.path().join("runner");
    let out = common::command_in(home, BATON, &runner, &["run", "--remote", "origin", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let on_origin = common::git_in(home, &origin, &["for-each-ref", "--format=%(refname)", "refs/baton/rejected/"]);
    assert_eq!(on_origin.lines().count(), 1, "{on_origin}");
    assert_eq!(common::git_in(home, &origin, &["log", "-1", "--format=%s", on_origin.trim()]).trim(), "mine");
}

/// Finding 12: a handler whose output would fill the disk. The log stops while a reserve is left
/// (with a marker), so the run's failure is still recorded on the branch. Runs in a mount namespace
/// with a 16 MiB tmpfs (`unshare -rm`); where the kernel refuses that, the test says so loudly.
#[test]
fn f12_a_log_that_fills_the_disk_still_leaves_room_for_the_record() {
    let r = repo_with(&[
        (".dwp/command/build", "#!/bin/sh\nhead -c 64000000 /dev/zero | tr '\\0' x\nexit 1\n"),
        (".dwp/policy.toml", "[defaults]\nlog.max_bytes = \"1GiB\"\nretry.logic = 0\n"),
    ]);
    task(&r, "t1", "build");
    if !std::process::Command::new("unshare").args(["-rm", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED LOUDLY: f12 needs `unshare -rm` (user and mount namespaces) to make a small disk");
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let script = r#"set -e
mount -t tmpfs -o size=16m tmpfs "$1"
cp -a "$2" "$1/repo"
cd "$1/repo"
"$3" run --json > "$1/events" 2>/dev/null || echo "RUN-EXIT=$?"
cat "$1/events"
echo "STATE=$(git log -1 --format='%(trailers:key=dwp-state,valueonly)' t1)"
for f in $(find .git/baton -name '*.log'); do grep -ao '\[git-baton:[^]]*\]' "$f"; done
"#;
    let out = common::command_in(
        r.home(),
        "unshare",
        &r.path,
        &["-rm", "sh", "-c", script, "sh", mnt.path().to_str().unwrap(), r.path.to_str().unwrap(), BATON],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("STATE=failed"), "the failure was not recorded: {text}");
    assert!(text.contains("the disk is (nearly) full"), "no marker in the log: {text}");
    assert!(!text.contains("RUN-EXIT"), "{text}");
    assert!(text.contains("\"action\":\"failed\""), "{text}");
}

/// Finding 12: `--current-branch include` with a file in the person's checkout that the answer
/// also adds. The checkout is left exactly as it was and the person is told what is in the way;
/// without anything in the way, the checkout is brought along.
#[test]
fn f12_current_branch_include_leaves_a_conflicting_checkout_and_says_so() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\nset -e\nsleep 1\necho handler > new.txt\ngit add new.txt\ngit commit -q -m handler -m 'dwp-state: done'\n",
    )]);
    task(&r, "t1", "build");
    r.git(&["checkout", "-q", "t1"]);
    let runner = r
        .baton_cmd(&["run", "--json", "--current-branch", "include"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the claim", Duration::from_secs(10), || r.state_of("t1") == "working");
    std::fs::write(r.path.join("new.txt"), "mine\n").unwrap();
    let out = runner.wait_with_output().unwrap();
    let events: Vec<Value> = common::json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r.state_of("t1"), "done");
    assert_eq!(std::fs::read_to_string(r.path.join("new.txt")).unwrap(), "mine\n", "the person's file was touched");
    let notice = common::event(&events, "t1", "notice");
    let msg = notice["error"].as_str().unwrap();
    assert!(msg.contains("left as it was") && msg.contains("new.txt") && msg.contains("git read-tree"), "{msg}");

    // Following the notice brings the checkout along.
    std::fs::remove_file(r.path.join("new.txt")).unwrap();
    let cmd = msg.rsplit('`').nth(1).unwrap();
    let args: Vec<&str> = cmd.split(' ').skip(1).collect();
    r.git(&args);
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    assert_eq!(std::fs::read_to_string(r.path.join("new.txt")).unwrap(), "handler\n");

    // Nothing in the way: the checkout follows the answer by itself.
    r.git(&["checkout", "-q", "main"]);
    task(&r, "t2", "build");
    r.git(&["checkout", "-q", "t2"]);
    let events = run_json(&r, &["--current-branch", "include"]);
    assert!(has(&events, "t2", "succeeded") && !has(&events, "t2", "notice"), "{events:#?}");
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    assert_eq!(std::fs::read_to_string(r.path.join("new.txt")).unwrap(), "handler\n");
}
