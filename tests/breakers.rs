//! A person's hands on the board: circuit breakers opened and reset by hand (`git baton
//! breakers`), branches parked and brought back exactly (`park` / `unpark`), states scheduled for
//! later (`send --not-before`), and what `status` says about each. Real repositories, real `git`.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{has, repo_with, run_json, task, wait_until, Cluster, TestRepo};
use serde_json::Value;

const DONE: &str = "#!/bin/sh\nset -e\ngit commit -q --allow-empty -m built -m 'dwp-state: done'\n";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn json_lines(text: &str) -> Vec<Value> {
    common::json_lines(text)
}

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: one line on stderr: {err}");
}

fn breaker_notices<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    let needle = format!("circuit breaker {name} ");
    events
        .iter()
        .filter(|e| e["action"] == "notice" && e["error"].as_str().is_some_and(|m| m.contains(&needle)))
        .collect()
}

fn status_row(r: &TestRepo, branch: &str) -> Value {
    let rows = common::json_lines(&r.baton_ok(&["status", "--json"]));
    rows.into_iter().find(|x| x["branch"] == branch).unwrap_or_else(|| panic!("no {branch}"))
}

fn status_line(r: &TestRepo, branch: &str) -> String {
    let table = r.baton_ok(&["status"]);
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(branch))
        .unwrap_or_else(|| panic!("no line for {branch}:\n{table}"))
        .to_owned()
}

/// `breakers open build --for 1h`: no `build` task is claimed, one notice for the breaker however
/// many branches wait; the list shows it open by hand; `reset` lets the next run claim them all.
#[test]
fn a_breaker_opened_by_hand_holds_every_branch_until_reset() {
    let r = repo_with(&[(".dwp/command/build", DONE)]);
    for t in ["t1", "t2", "t3"] {
        task(&r, t, "build");
    }
    let t0 = now();
    let opened = json_lines(&r.baton_ok(&["breakers", "open", "build", "--for", "1h", "--json"]));
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["status"], "open");
    assert!(r.git(&["rev-parse", "--verify", "refs/baton/breakers/build"]).trim().len() == 40);

    let events = run_json(&r, &[]);
    assert!(!events.iter().any(|e| e["action"] == "claimed"), "claimed through an open breaker: {events:#?}");
    let notices = breaker_notices(&events, "build");
    assert_eq!(notices.len(), 1, "one notice for the breaker: {events:#?}");
    assert!(notices[0]["error"].as_str().unwrap().contains("3 branches not claimed"), "{notices:#?}");
    for t in ["t1", "t2", "t3"] {
        assert_eq!(r.state_of(t), "build");
    }

    let list = json_lines(&r.baton_ok(&["breakers", "--json"]));
    assert_eq!(list.len(), 1, "{list:#?}");
    let b = &list[0];
    assert_eq!(b["name"], "build");
    assert_eq!(b["status"], "open");
    assert_eq!(b["reason"], "opened by hand");
    assert_eq!(b["states"], serde_json::json!(["build"]));
    assert_eq!(b["trips"], 1);
    assert_eq!(b["cooldown"], 3600);
    let until = b["open_until"].as_i64().unwrap();
    assert!(until >= t0 + 3600 && until <= now() + 3600, "{b}");
    let left = b["seconds_left"].as_i64().unwrap();
    assert!(left > 3500 && left <= 3600, "{b}");
    assert_eq!(b["commit"], r.head("refs/baton/breakers/build"));
    let table = r.baton_ok(&["breakers"]);
    assert!(table.lines().nth(1).is_some_and(|l| l.starts_with("build") && l.contains("opened by hand")), "{table}");

    // status says why the branches wait.
    let row = status_row(&r, "t1");
    assert_eq!(row["breaker"], "build");
    assert_eq!(row["breaker_status"], "open");
    assert!(status_line(&r, "t1").ends_with("breaker open"), "{}", status_line(&r, "t1"));

    let reset = r.baton_ok(&["breakers", "reset", "build"]);
    assert_eq!(reset.trim(), "build: closed");
    let b = &json_lines(&r.baton_ok(&["breakers", "--json"]))[0];
    assert_eq!((b["status"].as_str(), b["trips"].as_i64(), &b["open_until"]), (Some("closed"), Some(1), &Value::Null));
    let row = status_row(&r, "t1");
    assert_eq!((row["breaker"].clone(), row["breaker_status"].clone()), (Value::Null, Value::from("closed")));

    let events = run_json(&r, &[]);
    assert!(breaker_notices(&events, "build").is_empty(), "{events:#?}");
    for t in ["t1", "t2", "t3"] {
        assert!(has(&events, t, "claimed"), "{t} not claimed: {events:#?}");
        assert_eq!(r.state_of(t), "done");
    }
}

/// Usage errors exit 2 with one line; resetting a breaker the board does not have exits 1; none
/// of them writes a ref.
#[test]
fn breaker_commands_refuse_bad_names_durations_and_remotes() {
    let r = repo_with(&[(".dwp/command/build", DONE)]);
    for (args, what) in [
        (&["breakers", "open", "../x"][..], "a name that is not a ref component"),
        (&["breakers", "open", "-x"][..], "an option-looking name"),
        (&["breakers", "reset", "a b"][..], "a name with a space"),
        (&["breakers", "open", "build", "--for", "90"][..], "a duration without a unit"),
        (&["breakers", "open", "build", "--for", "1.5h"][..], "a fractional duration"),
        (&["breakers", "open", "build", "--for", "0s"][..], "a zero duration"),
        (&["breakers", "--remote", "nowhere"][..], "a remote that is not configured"),
        (&["breakers", "open", "build", "--remote", "--upload-pack=x"][..], "a remote name that is an option"),
    ] {
        let out = r.baton(args);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_exit(&r.baton(&["breakers", "reset", "build"]), 1, "reset of a breaker that does not exist");
    assert_eq!(r.git(&["for-each-ref", "refs/baton/"]), "", "nothing written");
    // An empty board lists nothing.
    assert_eq!(r.baton_ok(&["breakers", "--json"]), "");
}

/// The states a breaker lists are the ones whose policy names it (a shared provider breaker),
/// and `*` when `[defaults]` names it.
#[test]
fn breakers_list_the_states_that_use_them() {
    let policy = "[defaults]\nbreaker = \"anthropic\"\n[states.build]\nbreaker = \"anthropic\"\n[states.review]\nbreaker = \"openai\"\n[states.plan]\n";
    let r = repo_with(&[(".dwp/command/build", DONE), (".dwp/policy.toml", policy)]);
    r.baton_ok(&["breakers", "open", "anthropic", "--for", "30m"]);
    r.baton_ok(&["breakers", "open", "review", "--for", "2h"]);
    let list = json_lines(&r.baton_ok(&["breakers", "--json"]));
    let by = |n: &str| list.iter().find(|b| b["name"] == n).cloned().unwrap();
    // `plan` has a table without a breaker of its own: `[defaults]`'s; so has a state named
    // `anthropic`, if there is one.
    assert_eq!(by("anthropic")["states"], serde_json::json!(["anthropic", "build", "plan"]));
    assert_eq!(by("anthropic")["default"], true);
    assert_eq!(by("anthropic")["cooldown"], 1800);
    // `review` uses `openai`: the breaker named `review` holds no state.
    assert_eq!(by("review")["states"], serde_json::json!([]));
    assert_eq!(by("review")["default"], false);
    // A `build` task waits on `anthropic`, and status names it.
    task(&r, "t1", "build");
    assert!(!has(&run_json(&r, &[]), "t1", "claimed"));
    assert_eq!(status_row(&r, "t1")["breaker"], "anthropic");
    assert!(status_line(&r, "t1").ends_with("breaker anthropic open"), "{}", status_line(&r, "t1"));
}

/// `park` then `unpark` gives a head whose message is exactly the pre-park head's; runners skip
/// the parked branch; unparking a head that is not parked, or parking twice, writes nothing.
#[test]
fn park_and_unpark_round_trip_exactly() {
    let r = repo_with(&[(".dwp/command/build", DONE)]);
    r.git(&["branch", "t1", "main"]);
    r.baton_ok(&[
        "send",
        "--branch",
        "t1",
        "build",
        "-m",
        "build the thing\n\nwith two paragraphs",
        "--subject",
        "please build",
        "--trailer",
        "Ticket: 42",
        "--trailer",
        "dwp-priority: high",
    ]);
    let before = r.head("t1");
    let message = |rev: &str| r.git(&["log", "-1", "--format=%B", rev]);
    let before_msg = message(&before);

    let parked = json_lines(&r.baton_ok(&["park", "t1", "-m", "waiting for the vendor", "--json"]));
    let p = &parked[0];
    assert_eq!(p["branch"], "t1");
    assert_eq!(p["state"], "parked");
    assert_eq!(p["parked_from"], before.as_str());
    assert_eq!(p["parent"], before.as_str());
    assert_eq!(p["commit"], r.head("t1"));
    assert_eq!(r.state_of("t1"), "parked");
    assert_eq!(r.trailer_of("t1", "dwp-parked-from").as_deref(), Some(before.as_str()));
    assert!(message("t1").contains("waiting for the vendor"));
    assert_eq!(r.head("t1^{tree}"), r.head(&format!("{before}^{{tree}}")));

    // Parking twice: exit 1, nothing written.
    let parked_head = r.head("t1");
    assert_exit(&r.baton(&["park", "t1"]), 1, "park of a parked branch");
    assert_eq!(r.head("t1"), parked_head);

    // Runners skip it; status says so.
    let events = run_json(&r, &[]);
    assert!(!events.iter().any(|e| e["branch"] == "t1"), "{events:#?}");
    assert_eq!(r.head("t1"), parked_head);
    let row = status_row(&r, "t1");
    assert_eq!(row["parked_from"], before.as_str());
    assert_eq!(row["breaker_status"], Value::Null);
    assert!(status_line(&r, "t1").ends_with("parked (was build)"), "{}", status_line(&r, "t1"));

    let unparked = json_lines(&r.baton_ok(&["unpark", "t1", "--json"]));
    let u = &unparked[0];
    assert_eq!(u["state"], "build");
    assert_eq!(u["parked_from"], before.as_str());
    assert_eq!(u["parent"], parked_head.as_str());
    let after = r.head("t1");
    assert_eq!(u["commit"], after.as_str());
    assert_eq!(message(&after), before_msg, "the exact message comes back");
    let raw = |rev: &str| {
        let c = r.git(&["cat-file", "commit", rev]);
        c.split_once("\n\n").unwrap().1.to_owned()
    };
    assert_eq!(raw(&after), raw(&before), "byte for byte");
    assert_eq!(r.state_of("t1"), "build");
    assert_eq!(r.trailer_of("t1", "dwp-priority").as_deref(), Some("high"));
    assert_eq!(r.head("t1^{tree}"), r.head(&format!("{before}^{{tree}}")));

    // Unparking a head that is not parked: exit 1, nothing written.
    assert_exit(&r.baton(&["unpark", "t1"]), 1, "unpark of a branch that is not parked");
    assert_eq!(r.head("t1"), after);
    assert_exit(&r.baton(&["unpark", "main"]), 1, "unpark of main");
    assert_exit(&r.baton(&["unpark", "nothere"]), 1, "unpark of a missing branch");
    assert_eq!(r.baton(&["park", "a..b"]).status.code(), Some(2), "a bad branch name");

    // Back on the board: the next run claims it.
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "claimed"), "{events:#?}");
    assert_eq!(r.state_of("t1"), "done");
}

/// `park` refuses a branch a runner holds (exit 1, nothing written); `--force` parks it and the
/// run's result is kept aside.
#[test]
fn park_refuses_a_live_lease_unless_forced() {
    let slow = "#!/bin/sh\nsleep 3\ngit commit -q --allow-empty -m slow -m 'dwp-state: done'\n";
    let r = repo_with(&[(".dwp/command/slow", slow)]);
    task(&r, "t1", "slow");
    let mut runner = r.baton_cmd(&["run"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the claim", Duration::from_secs(10), || r.state_of("t1") == "working");
    let held = r.head("t1");
    let out = r.baton(&["park", "t1", "-m", "stop"]);
    assert_exit(&out, 1, "park on a live lease");
    assert!(String::from_utf8_lossy(&out.stderr).contains("held by run"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r.head("t1"), held);

    r.baton_ok(&["park", "t1", "--force", "-m", "stop now"]);
    assert_eq!(r.state_of("t1"), "parked");
    assert_eq!(r.trailer_of("t1", "dwp-parked-from").as_deref(), Some(held.as_str()));
    assert!(runner.wait().unwrap().success());
    assert_eq!(r.state_of("t1"), "parked", "the run's answer did not overwrite the park");
    let kept = r.git(&["for-each-ref", "--format=%(refname)", "refs/baton/rejected/t1/"]);
    assert_eq!(kept.lines().count(), 1, "the run's result is kept: {kept}");
    // Unparking restores the task the run was answering, not the dead run's lease.
    r.baton_ok(&["unpark", "t1"]);
    assert_eq!(r.state_of("t1"), "slow");
    assert_eq!(r.trailer_of("t1", "dwp-run-id"), None);
    assert!(has(&run_json(&r, &[]), "t1", "claimed"), "runnable again at once");
}

/// `send --not-before "in 2 hours"` waits (status: `scheduled in 2h`); a past date is due at once;
/// a bad date or a non-numeric `dwp-not-before` trailer is a usage error.
#[test]
fn send_not_before_schedules_a_state() {
    let r = repo_with(&[(".dwp/command/build", DONE)]);
    r.git(&["branch", "later", "main"]);
    r.git(&["branch", "past", "main"]);
    let t0 = now();
    r.baton_ok(&["send", "--branch", "later", "build", "--not-before", "in 2 hours"]);
    let t1 = now();
    let at: i64 = r.trailer_of("later", "dwp-not-before").unwrap().parse().unwrap();
    assert!(at >= t0 + 7200 && at <= t1 + 7200, "{at}");
    r.baton_ok(&["send", "--branch", "past", "build", "--not-before", "2001-01-01"]);
    assert_eq!(r.trailer_of("past", "dwp-not-before").as_deref(), Some("978307200"));

    let row = status_row(&r, "later");
    assert_eq!(row["not_before"], at);
    assert_eq!(row["attempt"], Value::Null);
    assert_eq!(row["breaker_status"], "closed");
    let line = status_line(&r, "later");
    assert!(line.contains("scheduled in"), "{line}");
    assert!(line.ends_with("scheduled in 2h"), "{line}");
    assert_eq!(status_row(&r, "past")["not_before"], 978_307_200);
    assert!(!status_line(&r, "past").contains("scheduled"));

    let events = run_json(&r, &[]);
    assert!(!has(&events, "later", "claimed"), "{events:#?}");
    assert!(has(&events, "past", "claimed"), "{events:#?}");
    assert_eq!(r.state_of("later"), "build");
    assert_eq!(r.state_of("past"), "done");

    let head = r.head("later");
    for args in [
        &["send", "--branch", "later", "build", "--not-before", "tomorrow"][..],
        &["send", "--branch", "later", "build", "--not-before", "in 2 fortnights"][..],
        &["send", "--branch", "later", "build", "--not-before", "2023-13-01"][..],
        &["send", "--branch", "later", "build", "--trailer", "dwp-not-before: soon"][..],
        &["send", "--branch", "later", "build", "--trailer", "dwp-not-before: 1", "--not-before", "now"][..],
    ] {
        assert_exit(&r.baton(args), 2, &format!("{args:?}"));
        assert_eq!(r.head("later"), head, "{args:?} wrote something");
    }
    r.baton_ok(&["send", "--branch", "later", "build", "--trailer", "dwp-not-before: 978307200", "--force"]);
    assert_eq!(r.trailer_of("later", "dwp-not-before").as_deref(), Some("978307200"));
}

/// A runner's retry (`dwp-retry-of` and a future `dwp-not-before`) reads `retry in …`, with its
/// attempt number.
#[test]
fn status_tells_a_retry_from_a_schedule() {
    let r = repo_with(&[(".dwp/command/build", DONE)]);
    let at = now() + 40;
    let msg = format!(
        "baton: build (retry)\n\ndwp-attempt: 2\ndwp-retry-of: run-1\ndwp-not-before: {at}\ndwp-state: build\n"
    );
    let id = r.git(&["commit-tree", "main^{tree}", "-p", "main", "-m", &msg]);
    r.git(&["branch", "t1", id.trim()]);
    let row = status_row(&r, "t1");
    assert_eq!(row["not_before"], at);
    assert_eq!(row["attempt"], 2);
    let line = status_line(&r, "t1");
    assert!(line.contains("retry in"), "{line}");
    assert!(!line.contains("scheduled"), "{line}");
}

/// A breaker opened on one machine holds the runners of another: it travels through the remote
/// (`refs/baton/breakers/build` on origin); a reset there lets them claim again.
#[test]
fn a_breaker_opened_on_one_clone_holds_runners_on_another() {
    let c = Cluster::new(&[(".dwp/command/build", DONE)]);
    let (a, b) = (c.clone_as("a"), c.clone_as("b"));
    c.task("t1", "build");
    c.task("t2", "build");
    let opened = c.baton_ok(&a, &["breakers", "open", "build", "--for", "2h", "--remote", "origin"]);
    assert!(opened.starts_with("build: open until "), "{opened}");
    let on_origin = c.git(&c.origin, &["for-each-ref", "--format=%(refname)", "refs/baton/breakers/"]);
    assert_eq!(on_origin.trim(), "refs/baton/breakers/build");

    let events: Vec<Value> = json_lines(&c.baton_ok(&b, &["run", "--remote", "origin", "--json"]));
    assert!(!events.iter().any(|e| e["action"] == "claimed"), "{events:#?}");
    assert_eq!(breaker_notices(&events, "build").len(), 1, "{events:#?}");
    assert_eq!(c.state("t1"), "build");

    let listed = json_lines(&c.baton_ok(&b, &["breakers", "--remote", "origin", "--json"]));
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0]["name"].as_str(), listed[0]["status"].as_str()), (Some("build"), Some("open")));
    assert_eq!(listed[0]["reason"], "opened by hand");
    // status --remote reads the breakers the last fetch brought.
    let rows = common::json_lines(&c.baton_ok(&b, &["status", "--remote", "origin", "--json"]));
    let t1 = rows.into_iter().find(|r| r["branch"] == "origin/t1").unwrap();
    assert_eq!((t1["breaker"].as_str(), t1["breaker_status"].as_str()), (Some("build"), Some("open")));

    // Reset on B (through the remote): the next tick claims.
    let reset = json_lines(&c.baton_ok(&b, &["breakers", "reset", "build", "--remote", "origin", "--json"]));
    assert_eq!(reset[0]["status"], "closed");
    assert_eq!(reset[0]["trips"], 1);
    let events: Vec<Value> = json_lines(&c.baton_ok(&b, &["run", "--remote", "origin", "--json"]));
    assert!(has(&events, "t1", "claimed") && has(&events, "t2", "claimed"), "{events:#?}");
    assert_eq!((c.state("t1"), c.state("t2")), ("done".to_owned(), "done".to_owned()));
    // The breaker on origin has its history: opened, then reset.
    let log = c.git(&c.origin, &["log", "--format=%s", "refs/baton/breakers/build"]);
    assert_eq!(log.lines().collect::<Vec<_>>(), ["baton: breaker build closed", "baton: breaker build open"]);
}
