//! Budgets (real repositories, the real binary): a task that used up its runs, seconds or cost is
//! blocked for a person with a decision card instead of being run again; handlers near the limit
//! are told; `git baton budget` and `metrics` report what was spent.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{count, has, repo_with, run_json, tick_until, TestRepo};
use serde_json::Value;

/// A `work` handler that writes its `BATON_BUDGET_*` variables to `ledger` (one line per run)
/// and sends the task back to itself, with `trailers` (lines) before its `dwp-state`.
fn self_loop(ledger: &Path, trailers: &str) -> String {
    format!(
        "#!/bin/sh\n(env | grep '^BATON_BUDGET_' | sort | tr '\\n' ' '; echo) >> {l}\n\
         git commit -q --allow-empty -m again -m '{trailers}dwp-state: work'\n",
        l = ledger.display()
    )
}

fn ledger_lines(ledger: &Path) -> Vec<String> {
    std::fs::read_to_string(ledger).unwrap_or_default().lines().map(|l| l.trim().to_owned()).collect()
}

fn budget_json(r: &TestRepo, branch: &str) -> Value {
    serde_json::from_str(&r.baton_ok(&["budget", branch, "--json"])).unwrap()
}

fn send(r: &TestRepo, branch: &str, state: &str, trailers: &[&str]) -> String {
    r.git(&["branch", branch, "main"]);
    let mut args = vec!["send", "--branch", branch, state, "-m", "do the task"];
    for t in trailers {
        args.extend(["--trailer", t]);
    }
    r.baton_ok(&args).trim().to_owned()
}

/// `dwp-budget-runs: 2` on the task: two runs, the second warned; the third is not run but
/// blocked with `dwp-escalation: budget` and a decision card. A reset lets it run again.
#[test]
fn a_budget_of_two_runs_stops_the_third() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let r = repo_with(&[(".dwp/command/work", &self_loop(&ledger, ""))]);
    send(&r, "t1", "work", &["dwp-budget-runs: 2"]);
    let events = tick_until(&r, "t1", Duration::from_secs(30), |s| s == "blocked");
    assert_eq!(count(&events, "t1", "claimed"), 2, "{events:#?}");
    assert_eq!(count(&events, "t1", "escalated"), 1);
    let escalated = events.iter().find(|e| e["action"] == "escalated").unwrap();
    assert!(escalated["error"].as_str().unwrap().contains("budget used up (runs: 2 of 2 used)"), "{escalated}");
    assert_eq!(
        ledger_lines(&ledger),
        ["BATON_BUDGET_RUNS_LEFT=1", "BATON_BUDGET_RUNS_LEFT=0 BATON_BUDGET_WARNING=runs: this is run 2 of 2"]
    );
    assert_eq!(r.trailer_of("t1", "dwp-escalation").as_deref(), Some("budget"));
    assert_eq!(r.trailer_of("t1", "dwp-origin-state").as_deref(), Some("work"));
    // The inbox lists the exhausted budget with its card and the command that raises it.
    let inbox = r.baton(&["inbox", "--json"]);
    assert_eq!(inbox.status.code(), Some(3));
    let item: Value = serde_json::from_str(String::from_utf8_lossy(&inbox.stdout).lines().next().unwrap()).unwrap();
    assert_eq!((item["kind"].as_str(), item["escalation"].as_str()), (Some("blocked"), Some("budget")));
    assert!(item["summary"].as_str().unwrap().contains("budget is used up"), "{item}");
    assert!(item["command"].as_str().unwrap().contains("dwp-budget-reset: yes"), "{item}");
    let card = r.git(&["log", "-1", "--format=%B", "t1"]);
    for part in [
        "## Decision required",
        "Context: this task's budget is used up (runs: 2 of 2 used), so work was not run again.",
        "A. Raise the budget — a fresh one: git baton send --branch t1 work --trailer 'dwp-budget-reset: yes'",
        "--trailer 'dwp-budget-runs: 4'",
        "B. Accept the partial result — git baton send --branch t1 done -m",
        "C. Cancel the task — git baton send --branch t1 canceled -m",
        "Recommended:",
        "Risk:",
        "Default:",
    ] {
        assert!(card.contains(part), "{part:?} missing: {card}");
    }
    // Nothing runs it while it waits for a person.
    assert!(run_json(&r, &[]).is_empty());

    let b = budget_json(&r, "t1");
    assert_eq!(b["status"], "exhausted", "{b}");
    assert_eq!(b["state"], "work");
    assert_eq!((b["limits"]["runs"]["value"].clone(), b["limits"]["runs"]["from"].clone()), (2.into(), "task".into()));
    assert_eq!((b["spent"]["runs"].clone(), b["left"]["runs"].clone()), (2.into(), 0.into()));
    assert_eq!(b["limits"]["cost"], serde_json::json!({"value": null, "from": "none", "at": null}));
    assert_eq!(b["since"], Value::Null);
    let text = r.baton_ok(&["budget", "t1"]);
    assert!(text.starts_with("t1 (work): exhausted — runs: 2 of 2 used\n"), "{text}");
    assert!(text.contains("spent since the task began: 2 runs"), "{text}");

    // A person grants a fresh budget: it runs again, counting from the reset.
    let reset = r.baton_ok(&["send", "--branch", "t1", "work", "--trailer", "dwp-budget-reset: yes"]);
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "succeeded"), "{events:#?}");
    assert_eq!(ledger_lines(&ledger).last().map(String::as_str), Some("BATON_BUDGET_RUNS_LEFT=1"));
    let b = budget_json(&r, "t1");
    assert_eq!((b["spent"]["runs"].clone(), b["status"].clone()), (1.into(), "warning".into()), "{b}");
    assert_eq!(b["since"], reset.trim());
}

/// `budget.runs = 2` in the policy applies when the task says nothing; a person raises it with a
/// higher `dwp-budget-runs` (no reset: what was spent still counts).
#[test]
fn the_policy_sets_the_default_and_a_higher_trailer_raises_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let r = repo_with(&[
        (".dwp/command/work", &self_loop(&ledger, "")),
        (".dwp/policy.toml", "[defaults]\nbudget.runs = 2\n"),
    ]);
    send(&r, "t1", "work", &[]);
    let events = tick_until(&r, "t1", Duration::from_secs(30), |s| s == "blocked");
    assert_eq!(count(&events, "t1", "claimed"), 2, "{events:#?}");
    assert_eq!(r.trailer_of("t1", "dwp-escalation").as_deref(), Some("budget"));
    let b = budget_json(&r, "t1");
    assert_eq!(
        b["limits"]["runs"],
        serde_json::json!({"value": 2, "from": "policy", "at": ".dwp/policy.toml:2 [defaults]"})
    );
    assert_eq!(b["status"], "exhausted");

    r.baton_ok(&["send", "--branch", "t1", "work", "--trailer", "dwp-budget-runs: 3"]);
    let events = tick_until(&r, "t1", Duration::from_secs(30), |s| s == "blocked");
    assert_eq!(count(&events, "t1", "claimed"), 1, "one more run: 3 of 3 {events:#?}");
    let b = budget_json(&r, "t1");
    assert_eq!((b["spent"]["runs"].clone(), b["limits"]["runs"]["from"].clone()), (3.into(), "task".into()));
    assert_eq!(ledger_lines(&ledger).len(), 3);
}

/// Cost: answers reporting `dwp-cost: 0.6` under `budget.cost = 1`. A run starts only while less
/// than the limit is spent: run 1 (0 spent), run 2 (0.6 spent, told 0.4 is left — under 80 %, no
/// warning) takes the task to 1.2, and run 3 is blocked. Metrics report the cost and tokens per
/// state and per task, and the escalation band.
#[test]
fn a_cost_budget_stops_the_run_after_the_one_that_crossed_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let r = repo_with(&[
        (".dwp/command/work", &self_loop(&ledger, "dwp-cost: 0.6\ndwp-tokens: 1000\n")),
        (".dwp/policy.toml", "[states.work]\nbudget.cost = 1\n"),
    ]);
    send(&r, "t1", "work", &[]);
    let events = tick_until(&r, "t1", Duration::from_secs(30), |s| s == "blocked");
    assert_eq!(count(&events, "t1", "claimed"), 2, "{events:#?}");
    assert_eq!(ledger_lines(&ledger), ["BATON_BUDGET_COST_LEFT=1", "BATON_BUDGET_COST_LEFT=0.4"]);
    let card = r.git(&["log", "-1", "--format=%B", "t1"]);
    assert!(card.contains("(cost: 1.2 of 1 spent)") && card.contains("--trailer 'dwp-budget-cost: 2.2'"), "{card}");
    let b = budget_json(&r, "t1");
    assert_eq!(b["status"], "exhausted", "{b}");
    assert_eq!((b["spent"]["cost"].clone(), b["spent"]["tokens"].clone()), (1.2.into(), 2000.into()));
    assert_eq!(b["left"]["cost"], 0.0);
    assert_eq!(b["limits"]["cost"]["at"], ".dwp/policy.toml:2 [states.work]");

    // Metrics: 2 finished runs and 1 escalation commit — 1 of 3 decisions went to a person.
    let m: Value = serde_json::from_str(&r.baton_ok(&["metrics", "--json"])).unwrap();
    assert_eq!((m["states"]["work"]["cost"].clone(), m["states"]["work"]["tokens"].clone()), (1.2.into(), 2000.into()));
    assert_eq!(m["tasks"]["t1"]["cost"], 1.2, "{m}");
    assert_eq!((m["tasks"]["t1"]["runs"].clone(), m["tasks"]["t1"]["tokens"].clone()), (2.into(), 2000.into()));
    assert_eq!((m["escalations"].clone(), m["escalation_commits"].clone()), (1.into(), 1.into()));
    assert_eq!(m["escalation_band"], "human does the work");
    assert!(m["tasks"].get("main").is_none(), "the default branch is no task: {m}");
    let text = r.baton_ok(&["metrics"]);
    assert!(text.contains("escalation band: human does the work (healthy: 10-15%)"), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["work", "1.2", "2000"]), "{text}");
    let task: Vec<&str> = text.lines().find(|l| l.starts_with("t1 ")).expect("a TASK row").split_whitespace().collect();
    assert_eq!((task[0], task[1], task[3], task[4]), ("t1", "2", "1.2", "2000"), "{text}");
}

/// A seconds budget counts handler wall time, from the claim to the answer.
#[test]
fn a_seconds_budget_counts_handler_time() {
    let r = repo_with(&[(
        ".dwp/command/work",
        "#!/bin/sh\nsleep 2\ngit commit -q --allow-empty -m again -m 'dwp-state: work'\n",
    )]);
    send(&r, "t1", "work", &["dwp-budget-seconds: 1"]);
    let events = tick_until(&r, "t1", Duration::from_secs(30), |s| s == "blocked");
    assert_eq!(count(&events, "t1", "claimed"), 1, "{events:#?}");
    let b = budget_json(&r, "t1");
    assert!(b["spent"]["seconds"].as_u64().unwrap() >= 2, "{b}");
    assert!(b["reasons"][0].as_str().unwrap().starts_with("seconds: "), "{b}");
}

/// `send` refuses malformed budget values (a usage error); a handler's malformed `dwp-cost` is a
/// notice naming the value, ignored, and never stops the tick.
#[test]
fn malformed_values_are_refused_or_noticed() {
    let r = repo_with(&[
        (".dwp/command/work", "#!/bin/sh\ngit commit -q --allow-empty -m w -m 'dwp-cost: lots\ndwp-state: check'\n"),
        (".dwp/command/check", "#!/bin/sh\ngit commit -q --allow-empty -m c -m 'dwp-state: done'\n"),
    ]);
    r.git(&["branch", "t1", "main"]);
    for bad in ["dwp-budget-runs: many", "dwp-budget-cost: $5", "dwp-budget-seconds: soon", "dwp-tokens: 1k"] {
        let out = r.baton(&["send", "--branch", "t1", "work", "--trailer", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid"), "{bad}: {err}");
    }
    r.baton_ok(&["send", "--branch", "t1", "work", "--trailer", "dwp-budget-cost: 5", "--trailer", "dwp-cost: 0.25"]);
    let events = tick_until(&r, "t1", Duration::from_secs(30), |s| s == "done");
    let notice = events.iter().find(|e| e["action"] == "notice").expect("a notice");
    let why = notice["error"].as_str().unwrap();
    assert!(why.contains("dwp-cost ignored: invalid amount \"lots\""), "{why}");
    let b = budget_json(&r, "t1");
    assert_eq!((b["spent"]["cost"].clone(), b["status"].clone()), (0.25.into(), "ok".into()), "{b}");
    assert_eq!(b["problems"].as_array().unwrap().len(), 1, "{b}");
}
