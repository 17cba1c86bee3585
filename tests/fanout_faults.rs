//! Fan-out and fan-in under hostile or unlucky input: hand-written join trailers, joins too big
//! for one commit, child names git refuses.

mod common;

use common::{count, repo_with, run_json, TestRepo, NO_RETRIES};

/// Branch `name` off `main` whose head is a hand-written commit with these trailers (the last
/// paragraph of the message), as anybody who can push a task branch could write it.
fn hand_written(r: &TestRepo, name: &str, trailers: &str) {
    r.git(&["branch", name, "main"]);
    r.git(&["checkout", "-q", name]);
    let message = format!("hand-written wait\n\n{trailers}\n");
    r.git_bytes(&["commit", "-q", "--allow-empty", "-F", "-"], message.as_bytes());
    r.git(&["checkout", "-q", "main"]);
}

fn finished_child(r: &TestRepo, name: &str) {
    r.git(&["branch", name, "main"]);
    r.baton_ok(&["send", "--branch", name, "done", "-m", "finished"]);
}

#[test]
fn a_join_whose_then_is_a_runner_state_is_malformed_and_nothing_is_written() {
    for then in ["working", "waiting"] {
        let r = repo_with(&[NO_RETRIES]);
        finished_child(&r, "c");
        hand_written(&r, "p", &format!("dwp-join-then: {then}\ndwp-join-child: c\ndwp-state: waiting"));
        let before = r.head("p");
        let events = run_json(&r, &[]);
        assert_eq!(r.head("p"), before, "then {then}: the runner wrote {}", r.git(&["log", "-1", "--format=%B", "p"]));
        assert_eq!(count(&events, "p", "joined"), 0, "{events:#?}");
        let notice = common::event(&events, "p", "notice");
        assert!(notice["error"].as_str().unwrap().contains("malformed join"), "{notice}");
    }
}

#[test]
fn a_join_that_waits_on_its_own_branch_is_malformed() {
    let r = repo_with(&[NO_RETRIES]);
    finished_child(&r, "c");
    hand_written(&r, "p", "dwp-join-then: merge\ndwp-join-child: c\ndwp-join-child: p\ndwp-state: waiting");
    let events = run_json(&r, &[]);
    let notice = common::event(&events, "p", "notice");
    assert!(notice["error"].as_str().unwrap().contains("waits on its own branch"), "{notice}");
    assert_eq!(r.state_of("p"), "waiting");
}

#[test]
fn a_join_too_big_for_one_commit_fails_the_parent_once_instead_of_erroring_every_tick() {
    // 4,700 children with 200-character names: the waiting commit fits in 1 MiB, the join commit
    // (each child's head and state added) does not. All are missing: with `continue` the rule
    // `all` is met at once.
    let r = repo_with(&[NO_RETRIES]);
    let mut trailers = String::from("dwp-join-then: merge\ndwp-join-on-failure: continue\n");
    for i in 0..4700 {
        trailers.push_str(&format!("dwp-join-child: c{i:05}-{}\n", "x".repeat(194)));
    }
    trailers.push_str("dwp-state: waiting");
    assert!(trailers.len() < 1 << 20);
    hand_written(&r, "p", &trailers);
    let events = run_json(&r, &[]);
    assert_eq!(
        count(&events, "p", "joined"),
        1,
        "{:#?}",
        events.iter().filter(|e| e["branch"] == "p").collect::<Vec<_>>()
    );
    assert_eq!(r.state_of("p"), "failed");
    let error = r.trailer_of("p", "dwp-error").unwrap();
    assert!(error.contains("4700 children") && error.contains("1 MiB"), "{error}");
    let again = run_json(&r, &[]);
    assert!(again.iter().all(|e| e["branch"] != "p"), "{again:#?}");
}

#[test]
fn a_failed_join_of_many_children_names_a_bounded_list() {
    // 300 deleted children: the error names the first ones and counts the rest.
    let r = repo_with(&[NO_RETRIES]);
    let mut trailers = String::from("dwp-join-then: merge\n");
    for i in 0..300 {
        trailers.push_str(&format!("dwp-join-child: gone-{i:03}\n"));
    }
    trailers.push_str("dwp-state: waiting");
    hand_written(&r, "p", &trailers);
    let events = run_json(&r, &[]);
    assert_eq!(count(&events, "p", "joined"), 1, "{events:#?}");
    assert_eq!(r.state_of("p"), "failed");
    let error = r.trailer_of("p", "dwp-error").unwrap();
    assert!(error.starts_with("300 of 300 children failed: gone-000, gone-001"), "{error}");
    assert!(error.len() < 400 && error.contains("and 290 more"), "{error}");
}

#[test]
fn spawn_refuses_names_git_refuses_as_branches() {
    let r = repo_with(&[NO_RETRIES]);
    for name in ["HEAD", "-x", "a..b", "refs/heads/HEAD", "x.lock"] {
        let out = r.baton(&["spawn", name, "build", "--from", "main", "-m", "x"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(r.git(&["for-each-ref", "--format=%(refname)", "refs/heads/"]).lines().all(|l| l == "refs/heads/main"));
    }
}

#[test]
fn a_child_named_below_an_existing_branch_fails_the_run_instead_of_leaving_it_working() {
    // `p/api` cannot exist next to `p` (git keeps branches as paths). Refused at spawn time…
    let spawn_below =
        "#!/bin/sh\nset -e\ngit baton spawn \"$BATON_BRANCH/api\" ok -m child\ngit baton join --then merge\n";
    // …and, for a branch that appears after the spawn, at publication.
    let clash_later =
        "#!/bin/sh\nset -e\ngit baton spawn q/x ok -m child\ngit update-ref refs/heads/q HEAD\ngit baton join --then merge\n";
    let r = repo_with(&[NO_RETRIES, (".dwp/command/plan", spawn_below), (".dwp/command/later", clash_later)]);
    r.git(&["branch", "p", "main"]);
    r.baton_ok(&["send", "--branch", "p", "plan", "-m", "go"]);
    r.git(&["branch", "l", "main"]);
    r.baton_ok(&["send", "--branch", "l", "later", "-m", "go"]);
    let path = format!(
        "{}:{}",
        std::path::Path::new(common::BATON).parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let out = r.baton_cmd(&["run", "--json"]).env("PATH", path).output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout);
    assert_eq!(r.state_of("p"), "failed", "{events}");
    let log = std::fs::read_to_string(
        serde_json::from_str::<serde_json::Value>(
            events.lines().find(|l| l.contains("\"p\"") && l.contains("\"failed\"")).unwrap(),
        )
        .unwrap()["log"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(log.contains("cannot be created next to branch \"p\""), "{log}");
    assert_eq!(r.state_of("l"), "failed", "{events}");
    let error = r.trailer_of("l", "dwp-error").unwrap();
    assert!(error.contains("q/x (next to q)"), "{error}");
    assert!(r.git(&["for-each-ref", "refs/baton/spawn/"]).trim().is_empty());
    assert!(r.git(&["for-each-ref", "--format=%(refname)", "refs/heads/q/"]).trim().is_empty());
}

#[test]
fn a_local_tick_keeps_the_spawns_of_a_remote_run_in_the_same_clone() {
    // A runner in remote mode is inside its handler (children spawned, not yet published) when a
    // tick in local mode — a hook, a hand-run `git baton run` — runs in the same clone.
    let marks = tempfile::tempdir().unwrap();
    let plan = format!(
        "#!/bin/sh\nset -e\ngit baton spawn kid ok -m child\ntouch {m}/spawned\nwhile [ ! -e {m}/go ]; do sleep 0.05; done\ngit baton join --then merge\n",
        m = marks.path().display()
    );
    let c = common::Cluster::new(&[(".dwp/command/plan", &plan)]);
    c.task("parent", "plan");
    let a = c.clone_as("a");
    let path = format!(
        "{}:{}",
        std::path::Path::new(common::BATON).parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let runner = c
        .cmd(common::BATON, &a, &["run", "--remote", "origin"])
        .env("PATH", &path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until("the child to be spawned", std::time::Duration::from_secs(30), || {
        marks.path().join("spawned").exists()
    });
    let local = c.cmd(common::BATON, &a, &["run"]).env("PATH", &path).output().unwrap();
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    let kept = c.git(&a, &["for-each-ref", "refs/baton/spawn/"]).lines().count();
    std::fs::write(marks.path().join("go"), "").unwrap();
    let out = runner.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(kept, 1, "the local tick swept the spawns of a live run");
    assert_eq!(c.state("parent"), "waiting");
    assert_eq!(c.state("kid"), "ok", "the child was published with the parent's answer");
}
