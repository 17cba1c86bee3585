//! Runners on many machines: one bare "origin", several clones, git's push as the
//! compare-and-swap. Also `watch`, the poller.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{wait_until, Cluster, BATON};

fn ledger_script(ledger: &Path) -> String {
    format!(
        "#!/bin/sh\nset -e\necho \"$BATON_BRANCH $BATON_RUN_ID\" >> {}\necho \"$BATON_RUN_ID\" > result.txt\ngit add result.txt\ngit commit -q -m \"handled by $BATON_RUN_ID\" -m 'dwp-state: done'\n",
        ledger.display()
    )
}

/// Three clones run ticks in a loop with `--jobs 2` over 30 tasks: every handler ran exactly
/// once, all 30 are done on the remote, and every handler commit is reachable from it.
#[test]
fn three_clones_share_one_remote_and_run_every_task_once() {
    let ledger_dir = tempfile::tempdir().unwrap();
    let ledger = ledger_dir.path().join("ledger");
    let c = Cluster::new(&[(".dwp/command/todo", &ledger_script(&ledger))]);
    let names: Vec<String> = (0..30).map(|i| format!("task-{i:02}")).collect();
    for n in &names {
        c.task(n, "todo");
    }
    let clones: Vec<PathBuf> = (0..3).map(|i| c.clone_as(&format!("runner{i}"))).collect();
    let children: Vec<_> = clones
        .iter()
        .map(|dir| {
            c.cmd(
                BATON,
                dir,
                &["watch", "--remote", "origin", "--jobs", "2", "--interval", "0.2", "--max-ticks", "15", "--json"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut lost = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("\"action\":\"error\""), "{text}");
        lost += text.matches("\"lost-race\"").count();
    }
    let ledger = std::fs::read_to_string(&ledger).unwrap();
    let mut ran: Vec<&str> = ledger.lines().map(|l| l.split(' ').next().unwrap()).collect();
    ran.sort();
    assert_eq!(ran, names, "each task exactly once ({lost} lost races)");
    for line in ledger.lines() {
        let (branch, run) = line.split_once(' ').unwrap();
        assert_eq!(c.state(branch), "done", "{branch}");
        let log = c.git(&c.origin, &["log", "--format=%s", branch]);
        assert!(
            log.lines().any(|s| s == format!("handled by {run}")),
            "handler commit of {run} reachable from {branch}"
        );
        assert_eq!(c.git(&c.origin, &["show", &format!("{branch}:result.txt")]).trim(), run);
        let source =
            c.git(&c.origin, &["log", "-1", "--format=%(trailers:key=dwp-source,valueonly)", &format!("{branch}^")]);
        assert_eq!(source.trim(), "git:origin", "the runner's claim says where it came from");
    }
}

/// A runner killed with SIGKILL mid-handler: once its lease expires another runner takes over
/// (`stalled`), its `stalled` handler runs, and the branch finishes.
#[test]
fn killed_runner_is_taken_over_after_its_lease() {
    let pid_dir = tempfile::tempdir().unwrap();
    let slow = format!("#!/bin/sh\necho $$ > {}/pid\nsleep 60\n", pid_dir.path().display());
    let stalled = "#!/bin/sh\nset -e\ngit commit -q --allow-empty -m recovered -m 'dwp-state: done'\n";
    let c = Cluster::new(&[(".dwp/command/slow", &slow), (".dwp/command/stalled", stalled)]);
    c.task("t1", "slow");
    let a = c.clone_as("a");
    let b = c.clone_as("b");
    let mut runner =
        c.cmd(BATON, &a, &["run", "--remote", "origin", "--lease-seconds", "2"]).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the claim on origin", Duration::from_secs(20), || c.state("t1") == "working");
    wait_until("the handler", Duration::from_secs(20), || pid_dir.path().join("pid").exists());
    let dead_run =
        c.git(&c.origin, &["log", "-1", "--format=%(trailers:key=dwp-run-id,valueonly)", "t1"]).trim().to_owned();
    runner.kill().unwrap(); // SIGKILL
    runner.wait().unwrap();
    // The orphaned handler is still sleeping in its own process group; it can no longer publish.
    let pid: i32 = std::fs::read_to_string(pid_dir.path().join("pid")).unwrap().trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(3200));
    let out = c.baton(&b, &["run", "--remote", "origin", "--json"]);
    // SAFETY: signalling the orphaned handler group this test started.
    unsafe { libc::killpg(pid, libc::SIGKILL) };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"took-over\""), "{text}");
    assert_eq!(c.state("t1"), "done");
    let stalled_commit = c.git(&c.origin, &["rev-parse", "t1~2"]);
    let st = c.git(
        &c.origin,
        &[
            "log",
            "-1",
            "--format=%(trailers:key=dwp-state,valueonly)%n%(trailers:key=dwp-stalled-run,valueonly)",
            stalled_commit.trim(),
        ],
    );
    let mut lines = st.lines().filter(|l| !l.is_empty());
    assert_eq!(lines.next(), Some("stalled"));
    assert_eq!(lines.next(), Some(dead_run.as_str()));
}

/// A result the remote refuses after the handler ran is a real conflict: kept on
/// `refs/baton/conflicts/<branch>/<run-id>`, reported, never forced over the other work.
#[test]
fn rejected_result_is_kept_on_a_conflict_ref() {
    // The handler's own answer, then someone else pushes another commit on the claim first.
    let c = Cluster::new(&[]);
    let other = c.clone_as("other");
    let script = format!(
        "#!/bin/sh\nset -e\ngit commit -q --allow-empty -m mine -m 'dwp-state: done'\ncd {o}\ngit fetch -q origin\ngit push -q origin \"$BATON_CLAIM_COMMIT:refs/heads/sidestep\"\ngit checkout -q -B x \"$BATON_CLAIM_COMMIT\"\ngit commit -q --allow-empty -m theirs -m 'dwp-state: review'\ngit push -q origin \"x:refs/heads/$BATON_BRANCH\"\n",
        o = other.display()
    );
    let seed = c.dir.path().join("seed");
    let p = seed.join(".dwp/command/work");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    c.git(&seed, &["add", "-A"]);
    c.git(&seed, &["commit", "-q", "-m", "handler"]);
    c.git(&seed, &["push", "-q", "origin", "main"]);
    c.task("t1", "work");
    let r = c.clone_as("r");
    let out = c.baton(&r, &["run", "--remote", "origin", "--json"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refs/baton/rejected/t1/"), "{text}");
    assert_eq!(c.state("t1"), "review", "their work stands");
    let kept = c.git(&r, &["for-each-ref", "--format=%(refname)", "refs/baton/rejected/"]);
    assert_eq!(kept.lines().count(), 1);
    // Kept on the remote too: an ephemeral runner's result outlives its machine.
    let on_origin = c.git(&c.origin, &["for-each-ref", "--format=%(refname)", "refs/baton/rejected/"]);
    assert_eq!(on_origin, kept);
    assert_eq!(c.git(&r, &["log", "-1", "--format=%s", kept.trim()]).trim(), "mine");
}

/// An unreachable remote is a one-line error and exit 1 for a single tick.
#[test]
fn unreachable_remote_fails_cleanly() {
    let c = Cluster::new(&[]);
    let r = c.clone_as("r");
    c.git(&r, &["remote", "add", "nowhere", "/nonexistent/repo.git"]);
    let out = c.baton(&r, &["run", "--remote", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("git-baton: error: fetching nowhere"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// `watch`: a task pushed after it started is processed; SIGTERM makes it exit 0 within the
/// grace period.
#[test]
fn watch_processes_new_tasks_and_stops_on_sigterm() {
    let ledger_dir = tempfile::tempdir().unwrap();
    let ledger = ledger_dir.path().join("ledger");
    let c = Cluster::new(&[(".dwp/command/todo", &ledger_script(&ledger))]);
    let w = c.clone_as("w");
    let mut child = c
        .cmd(BATON, &w, &["watch", "--remote", "origin", "--interval", "0.2", "--grace", "2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.task("late", "todo");
    wait_until("the late task", Duration::from_secs(20), || c.state("late") == "done");
    let started = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(std::fs::read_to_string(&ledger).unwrap().lines().count(), 1);
}

/// `watch` in a local repository (no remote) works the same way.
#[test]
fn watch_works_locally_too() {
    let r = common::TestRepo::new();
    r.handler(".dwp/command/todo", "#!/bin/sh\ngit commit -q --allow-empty -m ok -m 'dwp-state: done'\n");
    r.commit_all("handlers");
    r.git(&["branch", "t1"]);
    r.baton_ok(&["send", "--branch", "t1", "todo"]);
    let out = r.baton(&["watch", "--interval", "0.1", "--max-ticks", "2"]);
    assert!(out.status.success());
    assert_eq!(r.state_of("t1"), "done");
}

/// A handler that runs three times its lease on one clone while a second clone polls the same
/// remote: the runner's renewals reach the remote (`refs/baton/leases/<branch>`), the poller
/// never takes the live run over, and the handler runs exactly once.
#[test]
fn remote_runner_renews_its_lease_while_the_handler_runs() {
    let ledger_dir = tempfile::tempdir().unwrap();
    let ledger = ledger_dir.path().join("ledger");
    let script = format!(
        "#!/bin/sh\nset -e\necho \"$BATON_RUN_ID\" >> {l}\nsleep 6\ngit commit -q --allow-empty -m slow -m 'dwp-state: done'\n",
        l = ledger.display()
    );
    let c = Cluster::new(&[(".dwp/command/todo", &script), (".dwp/command/stalled", "#!/bin/sh\nexit 0\n")]);
    c.task("t1", "todo");
    let (a, b) = (c.clone_as("a"), c.clone_as("b"));
    let first =
        c.cmd(BATON, &a, &["run", "--remote", "origin", "--lease-seconds", "2"]).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the claim", Duration::from_secs(10), || c.state("t1") == "working");
    let poller = c
        .cmd(BATON, &b, &["watch", "--remote", "origin", "--json", "--interval", "0.5", "--max-ticks", "14"])
        .args(["--lease-seconds", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    let polled = poller.wait_with_output().unwrap();
    let polled = String::from_utf8_lossy(&polled.stdout);
    assert!(!polled.contains("took-over"), "the second runner took a live run over: {polled}");
    assert_eq!(std::fs::read_to_string(&ledger).unwrap().lines().count(), 1);
    assert_eq!(c.state("t1"), "done");
    let leases = c.git(&c.origin, &["for-each-ref", "refs/baton/leases/"]);
    assert!(leases.trim().is_empty(), "renewal record left on origin: {leases}");
}

/// kill -9 of a remote runner: its renewals stop, the lease expires on the remote, and a runner
/// on another clone takes over.
#[test]
fn remote_killed_runner_is_taken_over_after_expiry() {
    let c = Cluster::new(&[
        (".dwp/command/todo", "#!/bin/sh\nsleep 30\n"),
        (".dwp/command/stalled", "#!/bin/sh\nexit 0\n"),
    ]);
    c.task("t1", "todo");
    let (a, b) = (c.clone_as("a"), c.clone_as("b"));
    let mut first =
        c.cmd(BATON, &a, &["run", "--remote", "origin", "--lease-seconds", "2"]).stderr(Stdio::null()).spawn().unwrap();
    wait_until("a renewal on origin", Duration::from_secs(10), || {
        !c.git(&c.origin, &["for-each-ref", "refs/baton/leases/"]).trim().is_empty()
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    let _ = first.wait();
    let start = Instant::now();
    wait_until("the takeover", Duration::from_secs(20), || {
        let out = c.baton(&b, &["run", "--remote", "origin", "--json", "--lease-seconds", "2"]);
        String::from_utf8_lossy(&out.stdout).contains("took-over")
    });
    assert!(start.elapsed() >= Duration::from_millis(500), "taken over before the renewal expired");
    let stalled = c.git(&c.origin, &["log", "--format=%(trailers:key=dwp-stalled-run,valueonly)", "t1"]);
    assert!(!stalled.trim().is_empty(), "no stalled commit on origin");
}
