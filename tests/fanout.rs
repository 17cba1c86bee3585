//! Fan-out and fan-in: `git baton spawn` inside a handler makes child tasks that appear with the
//! parent's answer (all or none), `git baton join` parks the parent until its children are
//! finished, and the runner writes exactly one join commit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{count, repo_with, wait_until, Cluster, TestRepo, BATON};
use serde_json::Value;

/// PATH with the git-baton binary first, so handlers can call `git baton`.
fn path_with_baton() -> String {
    let bin_dir = Path::new(BATON).parent().unwrap();
    format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap())
}

fn run(r: &TestRepo, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["run", "--json"];
    all.extend(args);
    let out = r.baton_cmd(&all).env("PATH", path_with_baton()).output().unwrap();
    assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Spawns the children listed on the body's lines 2.. (`CHILD STATE`), then joins with the first
/// line's options.
const PLAN: &str = r#"#!/bin/sh
set -e
opts=$(printf '%s\n' "$BATON_BODY" | head -n 1 | sed 's/^rule//')
for pair in $(printf '%s\n' "$BATON_BODY" | tail -n +2 | tr ' ' ':'); do
  git baton spawn "${pair%%:*}" "${pair#*:}" -m "child ${pair%%:*} of $BATON_BRANCH"
done
echo "planned by $BATON_RUN_ID" > plan.txt
git add plan.txt
git baton join --then merge $opts -m "waiting for the children"
"#;
const OK: &str = "#!/bin/sh\nset -e\ngit commit -q --allow-empty -m \"did $BATON_BRANCH\" -m \"the answer of $BATON_BRANCH\" -m 'dwp-cost: 1.5\ndwp-state: done'\n";
const BAD: &str = "#!/bin/sh\necho broken >&2\nexit 1\n";

fn merge_handler(out: &Path) -> String {
    format!(
        "#!/bin/sh\nset -e\ncp \"$BATON_CHILDREN_JSON\" {}/\"$BATON_BRANCH\".json\ngit commit -q --allow-empty -m merged -m 'dwp-state: done'\n",
        out.display()
    )
}

fn parent(r: &TestRepo, name: &str, body: &str) {
    r.git(&["branch", name, "main"]);
    r.baton_ok(&["send", "--branch", name, "plan", "-m", body]);
}

fn branches(r: &TestRepo) -> Vec<String> {
    r.git(&["for-each-ref", "--format=%(refname:short)", "refs/heads/"]).lines().map(str::to_owned).collect()
}

fn setup(out: &Path) -> TestRepo {
    let merge = merge_handler(out);
    repo_with(&[
        common::NO_RETRIES,
        (".dwp/command/plan", PLAN),
        (".dwp/command/ok", OK),
        (".dwp/command/bad", BAD),
        (".dwp/command/merge", &merge),
    ])
}

#[test]
fn children_run_and_the_parent_joins_exactly_once_with_a_summary_and_the_children_json() {
    let out = tempfile::tempdir().unwrap();
    let r = setup(out.path());
    parent(&r, "p", "rule --all\nc1 ok\nc2 ok\nc3 ok");
    let first = run(&r, &[]);
    assert!(common::has(&first, "p", "succeeded"), "{first:#?}");
    assert_eq!(r.state_of("p"), "waiting");
    let run_id = common::event(&first, "p", "claimed")["run_id"].as_str().unwrap().to_owned();
    assert_eq!(r.git(&["show", "p:plan.txt"]).trim(), format!("planned by {run_id}"), "join commits what is staged");
    for c in ["c1", "c2", "c3"] {
        assert_eq!(r.state_of(c), "ok", "{c}");
        assert_eq!(r.trailer_of(c, "dwp-parent").as_deref(), Some("p"));
        assert_eq!(r.trailer_of(c, "dwp-correlation-id").as_deref(), Some(run_id.as_str()));
    }
    assert!(r.git(&["for-each-ref", "refs/baton/spawn/"]).trim().is_empty(), "spawn records are cleared");
    // A join's wait is not a person's: no inbox item.
    let inbox = r.baton_ok(&["inbox", "--json"]);
    assert!(!inbox.contains("\"p\""), "{inbox}");
    let mut events = first;
    for _ in 0..4 {
        events.extend(run(&r, &[]));
    }
    assert_eq!(count(&events, "p", "joined"), 1, "{events:#?}");
    assert_eq!(r.state_of("p"), "done");
    for c in ["c1", "c2", "c3"] {
        assert_eq!(count(&events, c, "succeeded"), 1, "{c}");
    }
    // The join commit: state `merge`, a summary per child, machine-readable trailers.
    let join = r
        .git(&["log", "--format=%H %(trailers:key=dwp-joined,valueonly,separator=%x2C)", "p"])
        .lines()
        .find(|l| l.trim().ends_with("all"))
        .unwrap()[..40]
        .to_owned();
    assert_eq!(r.state_of(&join), "merge");
    let msg = r.git(&["log", "-1", "--format=%B", &join]);
    assert!(msg.contains("## c2: done") && msg.contains("> the answer of c2") && msg.contains("cost: 1.5"), "{msg}");
    let joined = r.git(&["log", "-1", "--format=%(trailers:key=dwp-joined-child,valueonly)", &join]);
    assert_eq!(joined.lines().filter(|l| l.ends_with(" done")).count(), 3, "{joined}");
    // The `merge` handler got the children as JSON.
    let json: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("p.json")).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["parent"], "p");
    assert_eq!(json["correlation_id"], run_id.as_str());
    assert_eq!(json["rule"], "all");
    assert_eq!(json["joined"], "merge");
    let kids = json["children"].as_array().unwrap();
    assert_eq!(kids.len(), 3);
    assert_eq!(kids[1]["branch"], "c2");
    assert_eq!(kids[1]["state"], "done");
    assert_eq!(kids[1]["outcome"], "done");
    assert_eq!(kids[1]["subject"], "did c2");
    assert_eq!(kids[1]["body"], "the answer of c2");
    assert_eq!(kids[1]["cost"], "1.5");
    assert_eq!(kids[1]["head"], r.head("c2").as_str());
}

fn settle(r: &TestRepo, parents: &[&str]) -> Vec<Value> {
    let mut events = Vec::new();
    for _ in 0..5 {
        events.extend(run(r, &[]));
    }
    for p in parents {
        assert!(count(&events, p, "joined") <= 1, "{p} joined twice: {events:#?}");
    }
    events
}

#[test]
fn any_quorum_fail_and_continue() {
    let out = tempfile::tempdir().unwrap();
    let r = setup(out.path());
    // `hold` has no handler: that child never finishes.
    parent(&r, "any", "rule --any\nany-a ok\nany-b hold");
    parent(&r, "quorum", "rule --quorum 2 --on-child-failure continue\nq-a ok\nq-b bad\nq-c ok");
    parent(&r, "strict", "rule --all\ns-a ok\ns-b bad");
    parent(&r, "lenient", "rule --all --on-child-failure continue\nl-a ok\nl-b bad");
    parent(&r, "hopeless", "rule --quorum 2 --on-child-failure continue\nh-a bad\nh-b bad\nh-c ok");
    let events = settle(&r, &["any", "quorum", "strict", "lenient", "hopeless"]);
    assert_eq!(r.state_of("any"), "done", "any: one child done is enough");
    assert_eq!(r.state_of("any-b"), "hold");
    assert_eq!(r.state_of("quorum"), "done");
    assert_eq!(r.state_of("lenient"), "done");
    assert_eq!(r.state_of("strict"), "failed");
    let err = r.trailer_of("strict", "dwp-error").unwrap();
    assert!(err.contains("1 of 2 children failed: s-b"), "{err}");
    assert_eq!(r.state_of("hopeless"), "failed");
    let err = r.trailer_of("hopeless", "dwp-error").unwrap();
    assert!(err.contains("can never be met"), "{err}");
    for p in ["any", "quorum", "strict", "lenient", "hopeless"] {
        assert_eq!(count(&events, p, "joined"), 1, "{p}");
    }
    let lenient: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("lenient.json")).unwrap()).unwrap();
    let outcomes: Vec<&str> =
        lenient["children"].as_array().unwrap().iter().map(|c| c["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes[1] == "failed" || outcomes[1] == "dead-letter", "{outcomes:?}");
}

#[test]
fn a_failing_parent_run_leaves_no_children() {
    let r = repo_with(&[
        common::NO_RETRIES,
        (
            ".dwp/command/plan",
            "#!/bin/sh\nset -e\ngit baton spawn c1 ok -m one\ngit baton spawn c2 ok -m two\nexit 3\n",
        ),
    ]);
    parent(&r, "p", "go");
    let events = run(&r, &[]);
    assert!(common::has(&events, "p", "failed"), "{events:#?}");
    assert_eq!(branches(&r), ["main", "p"]);
    assert!(r.git(&["for-each-ref", "refs/baton/spawn/"]).trim().is_empty());
}

#[test]
fn a_child_that_exists_at_publication_fails_the_parent_and_publishes_nothing() {
    let r = repo_with(&[
        common::NO_RETRIES,
        (
            ".dwp/command/plan",
            "#!/bin/sh\nset -e\ngit baton spawn c1 ok -m one\ngit baton spawn c2 ok -m two\ngit branch c2 main\ngit baton join --then merge\n",
        ),
    ]);
    parent(&r, "p", "go");
    let c2 = r.head("main");
    let events = run(&r, &[]);
    let failed = common::event(&events, "p", "failed");
    assert!(failed["error"].as_str().unwrap().contains("spawned child branch c2 already exists"), "{failed}");
    assert_eq!(branches(&r), ["c2", "main", "p"], "c1 was not created");
    assert_eq!(r.head("c2"), c2);
    assert_eq!(r.state_of("p"), "failed");
    assert!(r.git(&["for-each-ref", "refs/baton/spawn/"]).trim().is_empty());
}

#[test]
fn two_runners_racing_on_ready_joins_write_one_join_commit_each() {
    let r = repo_with(&[]);
    let mut parents = Vec::new();
    for i in 0..20 {
        let (p, c) = (format!("p{i:02}"), format!("c{i:02}"));
        r.git(&["branch", &c, "main"]);
        r.baton_ok(&["send", "--branch", &c, "done", "-m", "finished"]);
        r.git(&["branch", &p, "main"]);
        r.baton_ok(&[
            "send",
            "--branch",
            &p,
            "waiting",
            "--trailer",
            "dwp-join-then: review",
            "--trailer",
            &format!("dwp-join-child: {c}"),
        ]);
        parents.push(p);
    }
    let spawn = || {
        let mut cmd: Command = r.baton_cmd(&["run", "--json"]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let mut events: Vec<Value> = Vec::new();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        events.extend(String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
    }
    for p in &parents {
        assert_eq!(count(&events, p, "joined"), 1, "{p}: {events:#?}");
        assert_eq!(r.state_of(p), "review");
        let joins = r.git(&["log", "--format=%(trailers:key=dwp-joined,valueonly)", p]);
        assert_eq!(joins.lines().filter(|l| !l.is_empty()).count(), 1, "{p}");
    }
}

fn one_line_error(out: &std::process::Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{err}");
}

#[test]
fn bad_input_is_one_line_and_writes_nothing() {
    let out = tempfile::tempdir().unwrap();
    let log = out.path().display().to_string();
    let r = repo_with(&[
        common::NO_RETRIES,
        (
            ".dwp/command/plan",
            &format!(
                "#!/bin/sh\nbefore=$(git rev-parse HEAD)\n\
git baton join --then merge 2>{log}/join.err; echo $? > {log}/join.code\n\
git baton spawn c1 ok -m one --json > {log}/spawn.json\ngit baton spawn c1 ok -m again 2>{log}/twice.err; echo $? > {log}/twice.code\n\
git baton spawn main ok -m x 2>{log}/exists.err; echo $? > {log}/exists.code\n\
test \"$(git rev-parse HEAD)\" = \"$before\" && echo same > {log}/head\n\
git baton join --then merge --any --json > {log}/join.json\n"
            ),
        ),
    ]);
    let before = branches(&r);
    one_line_error(&r.baton(&["spawn", "kid", "ok", "-m", "x"]), 2, "spawn outside a handler needs --from REV");
    one_line_error(&r.baton(&["spawn", "bad..name", "ok", "--from", "main"]), 2, "invalid branch name");
    one_line_error(&r.baton(&["spawn", "main", "ok", "--from", "main"]), 1, "already exists");
    one_line_error(&r.baton(&["spawn", "kid", "working", "--from", "main"]), 2, "working");
    one_line_error(&r.baton(&["join", "--then", "merge"]), 2, "join runs inside a handler");
    assert_eq!(branches(&r), before);
    // Outside a handler with --from: the branch is created at once.
    let made =
        r.baton_ok(&["spawn", "kid", "ok", "--from", "main", "--role", "dev", "--correlation", "batch-1", "--json"]);
    let made: Value = serde_json::from_str(&made).unwrap();
    assert_eq!(made["pending"], false);
    assert_eq!(r.state_of("kid"), "ok");
    assert_eq!(r.trailer_of("kid", "dwp-parent").as_deref(), Some("main"));
    assert_eq!(r.trailer_of("kid", "dwp-correlation-id").as_deref(), Some("batch-1"));
    assert_eq!(r.trailer_of("kid", "dwp-role").as_deref(), Some("dev"));
    // Inside a handler: join with no child, a child spawned twice, an existing child.
    parent(&r, "p", "go");
    run(&r, &["--branch", "p"]);
    let read = |f: &str| std::fs::read_to_string(out.path().join(f)).unwrap().trim().to_owned();
    assert_eq!(read("join.code"), "1");
    assert!(
        read("join.err").contains("error: nothing to join: this run spawned no child")
            && read("join.err").lines().count() == 1
    );
    assert_eq!(read("twice.code"), "1");
    assert!(read("twice.err").contains("already spawned in this run"), "{}", read("twice.err"));
    assert_eq!(read("exists.code"), "1");
    assert!(read("exists.err").contains("already exists"));
    assert_eq!(read("head"), "same", "no failed command wrote a commit");
    assert_eq!(r.state_of("p"), "waiting");
    assert_eq!(r.state_of("c1"), "ok", "the one good spawn was published");
    let spawned: Value = serde_json::from_str(&read("spawn.json")).unwrap();
    assert_eq!(spawned["pending"], true);
    assert_eq!(spawned["parent_branch"], "p");
    assert_eq!(spawned["commit"], r.head("c1").as_str());
    let joined: Value = serde_json::from_str(&read("join.json")).unwrap();
    assert_eq!(joined["branch"], "p");
    assert_eq!(joined["commit"], r.head("p").as_str());
    assert_eq!(joined["then"], "merge");
    assert_eq!(joined["rule"], "any");
    assert_eq!(joined["on_child_failure"], "fail");
    assert_eq!(joined["children"], serde_json::json!(["c1"]));
    assert_eq!(r.trailer_of("p", "dwp-join-child").as_deref(), Some("c1"));
    assert_eq!(r.trailer_of("p", "dwp-join-correlation"), r.trailer_of("c1", "dwp-correlation-id"));
}

// ---- remote mode ----

fn watch(c: &Cluster, dir: &Path, ticks: &str) -> std::process::Child {
    c.cmd(
        BATON,
        dir,
        &["watch", "--remote", "origin", "--jobs", "2", "--interval", "0.2", "--max-ticks", ticks, "--json"],
    )
    .env("PATH", path_with_baton())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn remote_heads(c: &Cluster, prefix: &str) -> Vec<String> {
    c.git(&c.origin, &["for-each-ref", "--format=%(refname:short)", &format!("refs/heads/{prefix}*")])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn remote_three_clones_run_a_twelve_child_fan_out_and_join_once() {
    let ledger_dir = tempfile::tempdir().unwrap();
    let ledger = ledger_dir.path().join("ledger");
    let l = ledger.display();
    let plan = format!(
        "#!/bin/sh\nset -e\necho \"plan $BATON_BRANCH\" >> {l}\nfor i in $(seq -w 1 12); do git baton spawn kid-$i work -m \"part $i\"; done\ngit baton join --then merge\n"
    );
    let work = format!(
        "#!/bin/sh\nset -e\necho \"work $BATON_BRANCH\" >> {l}\ngit commit -q --allow-empty -m \"did $BATON_BRANCH\" -m 'dwp-state: done'\n"
    );
    let merge = format!(
        "#!/bin/sh\nset -e\necho \"merge $BATON_BRANCH $(grep -c '\"branch\"' \"$BATON_CHILDREN_JSON\")\" >> {l}\ngit commit -q --allow-empty -m merged -m 'dwp-state: done'\n"
    );
    let c = Cluster::new(&[(".dwp/command/plan", &plan), (".dwp/command/work", &work), (".dwp/command/merge", &merge)]);
    c.task("parent", "plan");
    let clones: Vec<PathBuf> = (0..3).map(|i| c.clone_as(&format!("runner{i}"))).collect();
    let runners: Vec<_> = clones.iter().map(|d| watch(&c, d, "100000")).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    // A parent that ended in `failed` ends the wait too (the assertions below say why).
    while !["done", "failed"].contains(&c.state("parent").as_str()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    for child in &runners {
        // SAFETY: signalling our own child; SIGTERM lets it finish its tick and stop.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    for child in runners {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("\"action\":\"error\""), "{text}");
    }
    assert_eq!(c.state("parent"), "done", "the parent did not finish in time");
    let ledger = std::fs::read_to_string(&ledger).unwrap();
    let mut lines: Vec<&str> = ledger.lines().collect();
    lines.sort();
    let mut want = vec!["merge parent 12".to_owned(), "plan parent".to_owned()];
    want.extend((1..=12).map(|i| format!("work kid-{i:02}")));
    want.sort();
    assert_eq!(lines, want, "every child once, the parent's plan and merge once");
    let joins = c.git(&c.origin, &["log", "--format=%(trailers:key=dwp-joined,valueonly)", "parent"]);
    assert_eq!(joins.lines().filter(|l| !l.is_empty()).count(), 1, "one join commit");
    assert_eq!(remote_heads(&c, "kid-").len(), 12);
}

#[test]
fn remote_a_runner_killed_mid_fan_out_leaves_no_children() {
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display();
    let plan = format!(
        "#!/bin/sh\nset -e\nfor i in 1 2 3 4 5 6; do git baton spawn kid-$i work -m \"part $i\"; done\ntouch {m}/spawned\nsleep 30\ngit baton join --then merge\n"
    );
    let c = Cluster::new(&[(".dwp/command/plan", &plan), (".dwp/command/stalled", "#!/bin/sh\nexit 0\n")]);
    c.task("parent", "plan");
    let a = c.clone_as("a");
    let mut runner = c
        .cmd(BATON, &a, &["run", "--remote", "origin", "--lease-seconds", "2"])
        .env("PATH", path_with_baton())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the children to be spawned", Duration::from_secs(30), || marks.path().join("spawned").exists());
    assert_eq!(c.git(&a, &["for-each-ref", "refs/baton/spawn/"]).lines().count(), 6);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(runner.id() as i32, libc::SIGKILL) };
    let _ = runner.wait();
    assert!(remote_heads(&c, "kid-").is_empty(), "no child reached the remote");
    // Once the lease is gone, the next tick takes the branch over and drops the unpublished children.
    wait_until("the takeover", Duration::from_secs(30), || {
        let out = c.baton(&a, &["run", "--remote", "origin", "--json", "--lease-seconds", "2"]);
        String::from_utf8_lossy(&out.stdout).contains("took-over")
    });
    c.baton_ok(&a, &["run", "--remote", "origin", "--lease-seconds", "2"]);
    assert!(c.git(&a, &["for-each-ref", "refs/baton/spawn/"]).trim().is_empty(), "stale spawn records swept");
    assert!(remote_heads(&c, "kid-").is_empty());
}
