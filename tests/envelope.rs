//! Task envelopes end to end: `send --goal …` writes one, `task show` reads it back, and a handler
//! gets it as `$BATON_TASK_JSON`.

mod common;

use common::{has, repo_with, run_json};
use serde_json::Value;

const COPY_TASK: &str = "#!/bin/sh\nset -e\ncp \"$BATON_TASK_JSON\" task.json\ngit add task.json\ngit commit -q -m answer -m 'dwp-state: done'\n";

fn send_envelope(r: &common::TestRepo, branch: &str) {
    r.git(&["branch", branch, "main"]);
    r.baton_ok(&[
        "send",
        "--branch",
        branch,
        "build",
        "--goal",
        "Parse the config file.",
        "--accept",
        "cargo test passes",
        "--accept",
        "no new warnings",
        "--input",
        "src/a.rs=parser",
        "--input",
        "docs/spec.md",
        "--budget",
        "3 runs, 30m, $2",
        "--risk",
        "high",
        "--stop-if",
        "the spec contradicts itself",
        "-m",
        "free notes for the handler",
    ]);
}

fn assert_fields(v: &Value, branch: &str) {
    assert_eq!(v["id"], branch, "{v}");
    assert_eq!(v["goal"], "Parse the config file.");
    assert_eq!(v["acceptance_criteria"], serde_json::json!(["cargo test passes", "no new warnings"]));
    assert_eq!(
        v["inputs"],
        serde_json::json!([{"path": "src/a.rs", "summary": "parser"}, {"path": "docs/spec.md", "summary": null}])
    );
    assert_eq!(v["budget"], "3 runs, 30m, $2");
    assert_eq!(v["risk"], "high");
    assert_eq!(v["stop_conditions"], serde_json::json!(["the spec contradicts itself"]));
}

#[test]
fn send_writes_an_envelope_that_task_show_reads_back() {
    let r = repo_with(&[(".dwp/command/build", COPY_TASK)]);
    send_envelope(&r, "t1");
    let body = r.git(&["log", "-1", "--format=%b", "t1"]);
    assert!(body.starts_with("## Task: t1\n\nGoal: Parse the config file.\n"), "{body}");
    assert!(body.contains("- src/a.rs — parser\n"), "{body}");
    assert!(body.contains("Risk Level: high\n"), "{body}");
    assert!(body.contains("## Notes\n\nfree notes for the handler"), "{body}");
    let v: Value = serde_json::from_str(&r.baton_ok(&["task", "show", "t1", "--json"])).unwrap();
    assert_fields(&v, "t1");
    let block = r.baton_ok(&["task", "show", "t1"]);
    assert!(block.starts_with("## Task: t1\n\nGoal: Parse the config file.\n"), "{block}");
    assert!(!block.contains("free notes"), "{block}");

    // A later commit without an envelope: show finds the newest first-parent one.
    r.baton_ok(&["send", "--branch", "t1", "review", "-m", "look at it"]);
    let v: Value = serde_json::from_str(&r.baton_ok(&["task", "show", "t1", "--json"])).unwrap();
    assert_fields(&v, "t1");
}

#[test]
fn task_show_without_an_envelope_exits_1_with_one_line() {
    let r = repo_with(&[]);
    r.git(&["branch", "t1", "main"]);
    r.baton_ok(&["send", "--branch", "t1", "build", "-m", "do the task"]);
    let out = r.baton(&["task", "show", "t1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());

    // A malformed one names the problem.
    r.baton_ok(&["send", "--branch", "t1", "build", "-m", "## Task: t1\n\nGoal: g\nRisk Level: extreme\n"]);
    let out = r.baton(&["task", "show", "t1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("extreme"));
}

#[test]
fn a_handler_gets_the_envelope_as_baton_task_json() {
    let r = repo_with(&[(".dwp/command/build", COPY_TASK)]);
    send_envelope(&r, "t1");
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "succeeded"), "{events:#?}");
    let v: Value = serde_json::from_str(&r.git(&["show", "t1:task.json"])).unwrap();
    assert_fields(&v, "t1");
}

#[test]
fn a_malformed_envelope_gives_no_variable_and_still_runs() {
    let script = "#!/bin/sh\nset -e\necho \"${BATON_TASK_JSON:-none}\" > seen\ngit add seen\ngit commit -q -m answer -m 'dwp-state: done'\n";
    let r = repo_with(&[(".dwp/command/build", script)]);
    r.git(&["branch", "t1", "main"]);
    r.baton_ok(&["send", "--branch", "t1", "build", "-m", "## Task: t1\n\nInputs: a.rs\n"]);
    let out = r.baton(&["run", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r.git(&["show", "t1:seen"]), "none\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Inputs"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_envelope_flags_are_usage_errors_and_write_nothing() {
    let r = repo_with(&[]);
    r.git(&["branch", "t1", "main"]);
    let before = r.head("t1");
    for args in [
        &["send", "--branch", "t1", "build", "--goal", "g", "--risk", "extreme"][..],
        &["send", "--branch", "t1", "build", "--accept", "x"][..],
        &["send", "--branch", "t1", "build", "--risk", "low", "-m", "no goal"][..],
        &["send", "--branch", "t1", "build", "--goal", "  "][..],
        &["send", "--branch", "t1", "build", "--goal", "g", "--input", "=summary"][..],
    ] {
        let out = r.baton(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(r.head("t1"), before, "{args:?} wrote a commit");
    }
}
