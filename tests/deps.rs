//! Dependencies between tasks (`dwp-depends-on`), the frontier (`git baton ready`) and priorities.

mod common;

use common::{has, repo_with, run_json, TestRepo};

const DONE: &str = "#!/bin/sh\ngit commit -q --allow-empty -m ok -m 'dwp-state: done'\n";
const FAIL: &str = "#!/bin/sh\nexit 1\n";

fn send(r: &TestRepo, branch: &str, state: &str, trailers: &[&str]) {
    r.git(&["branch", branch, "main"]);
    let mut args = vec!["send", "--branch", branch, state];
    for t in trailers {
        args.extend(["--trailer", t]);
    }
    r.baton_ok(&args);
}

fn ready(r: &TestRepo) -> Vec<String> {
    common::json_lines(&r.baton_ok(&["ready", "--json"]))
        .iter()
        .map(|v| v["branch"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_task_waits_for_its_dependency_and_a_fallback_runs_only_on_failure() {
    let r = repo_with(&[common::NO_RETRIES, (".dwp/command/build", DONE), (".dwp/command/flaky", FAIL)]);
    send(&r, "api", "build", &[]);
    send(&r, "ui", "build", &["dwp-depends-on: api"]);
    send(&r, "rescue", "build", &["dwp-depends-on: shaky:failed"]);
    send(&r, "after", "build", &["dwp-depends-on: shaky"]);
    send(&r, "shaky", "flaky", &[]);
    let mut frontier = ready(&r);
    frontier.sort();
    assert_eq!(frontier, ["api", "shaky"].map(String::from), "only tasks without unmet dependencies");
    let events = run_json(&r, &[]);
    assert!(has(&events, "api", "succeeded") && has(&events, "shaky", "failed"));
    assert!(!events.iter().any(|e| e["branch"] == "ui" || e["branch"] == "rescue"), "{events:#?}");
    // Next tick: the dependency met runs; the fallback runs since shaky failed; `after` can never run.
    let events = run_json(&r, &[]);
    assert!(has(&events, "ui", "succeeded") && has(&events, "rescue", "succeeded"), "{events:#?}");
    assert!(has(&events, "after", "escalated"), "{events:#?}");
    assert_eq!(r.state_of("after"), "blocked");
    let card = r.git(&["log", "-1", "--format=%B", "after"]);
    assert!(
        card.contains("dependency shaky ended in failed, not done") && card.contains("## Decision required"),
        "{card}"
    );
    assert_eq!(r.trailer_of("after", "dwp-escalation").as_deref(), Some("dependency"));
}

#[test]
fn missing_dependencies_and_cycles_are_notices_not_loops() {
    let r = repo_with(&[(".dwp/command/build", DONE)]);
    send(&r, "orphan", "build", &["dwp-depends-on: nowhere"]);
    send(&r, "x", "build", &["dwp-depends-on: y"]);
    send(&r, "y", "build", &["dwp-depends-on: x"]);
    send(&r, "odd", "build", &["dwp-depends-on: a..b"]);
    let events = run_json(&r, &[]);
    let notices: Vec<&str> =
        events.iter().filter(|e| e["action"] == "notice").map(|e| e["error"].as_str().unwrap()).collect();
    assert!(notices.iter().any(|n| n.contains("depends on missing branch nowhere")), "{notices:?}");
    assert_eq!(notices.iter().filter(|n| n.contains("cycle: x -> y")).count(), 1, "{notices:?}");
    assert!(notices.iter().any(|n| n.contains("malformed dwp-depends-on \"a..b\"")), "{notices:?}");
    assert!(has(&events, "odd", "succeeded"), "a malformed value is ignored: {events:#?}");
    for b in ["orphan", "x", "y"] {
        assert_eq!(r.state_of(b), "build", "{b} must wait");
    }
    // A dependency outside a --branch selection is still seen.
    send(&r, "base", "build", &[]);
    run_json(&r, &["--branch", "base"]);
    send(&r, "top", "build", &["dwp-depends-on: base"]);
    assert!(has(&run_json(&r, &["--branch", "top"]), "top", "succeeded"));
}

#[test]
fn higher_priority_goes_first_when_jobs_are_scarce() {
    let r = repo_with(&[(".dwp/command/build", DONE)]);
    send(&r, "a-low", "build", &["dwp-priority: low"]);
    send(&r, "b-medium", "build", &[]);
    send(&r, "c-high", "build", &["dwp-priority: high"]);
    assert_eq!(ready(&r)[0], "c-high");
    assert_eq!(ready(&r)[2], "a-low");
    let events = run_json(&r, &["--jobs", "1"]);
    let claims: Vec<&str> =
        events.iter().filter(|e| e["action"] == "claimed").map(|e| e["branch"].as_str().unwrap()).collect();
    assert_eq!(claims, ["c-high", "b-medium", "a-low"]);
}

#[test]
fn graph_tasks_draws_the_dependencies() {
    let r = repo_with(&[(".dwp/command/build", DONE)]);
    send(&r, "api", "build", &[]);
    send(&r, "ui", "build", &["dwp-depends-on: api"]);
    send(&r, "rescue", "build", &["dwp-depends-on: api:failed"]);
    send(&r, "alone", "build", &[]);
    let m = r.baton_ok(&["graph", "--tasks"]);
    assert!(m.starts_with("flowchart LR\n"), "{m}");
    assert!(m.contains("[\"api (build)\"]") && m.contains("-->|failed|") && !m.contains("alone"), "{m}");
    let d = r.baton_ok(&["graph", "--tasks", "--format", "dot"]);
    assert!(d.contains("\"api (build)\" -> \"ui (build)\";"), "{d}");
}
