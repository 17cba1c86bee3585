//! `git baton metrics` on what failures became: real runs with real retries, dead letters and a
//! circuit breaker that trips and closes again, counted from history alone.

mod common;

use std::time::Duration;

use common::{repo_with, run_json, task, wait_until};
use serde_json::{json, Value};

/// `build` exits 75 (transient) twice, then answers `done`; `check` always exits 1 (logic), with
/// one retry allowed. The build breaker opens after the second transient failure and closes when
/// the third attempt, its half-open probe, succeeds.
#[test]
fn retries_dead_letters_and_breaker_trips_are_counted() {
    let outside = tempfile::tempdir().unwrap();
    let counter = outside.path().join("build-runs");
    let build = format!(
        "#!/bin/sh\nn=$(cat '{c}' 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > '{c}'\n\
         if [ $n -le 2 ]; then echo 'rate limited' >&2; exit 75; fi\n\
         git commit -q --allow-empty -m built -m 'dwp-state: done'\n",
        c = counter.display()
    );
    let policy = "[defaults]\nretry.backoff = \"1s\"\nretry.logic = 1\n\n\
                  [states.build]\nbreaker.threshold = 2\nbreaker.cooldown = \"1s\"\n";
    let r = repo_with(&[
        (".dwp/command/build", &build),
        (".dwp/command/check", "#!/bin/sh\necho 'tests failed' >&2\nexit 1\n"),
        (".dwp/policy.toml", policy),
    ]);
    task(&r, "t1", "build");
    task(&r, "t2", "check");
    let mut retried = 0;
    wait_until("t1 done and t2 a dead letter", Duration::from_secs(40), || {
        retried += run_json(&r, &[]).iter().filter(|e| e["action"] == "retrying").count();
        r.state_of("t1") == "done" && r.state_of("t2") == "failed"
    });
    assert_eq!(retried, 3, "two transient retries and one logic retry");
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");
    assert_eq!(r.trailer_of("t2", "dwp-dead-letter").as_deref(), Some("logic"));

    let m: Value = serde_json::from_str(&r.baton_ok(&["metrics", "--json"])).unwrap();
    let build = &m["states"]["build"];
    assert_eq!(build["attempts"], json!({"1": 1, "2": 1, "3": 1}), "{m:#}");
    assert_eq!((&build["runs"], &build["succeeded"], &build["failed"]), (&json!(3), &json!(1), &json!(2)));
    assert_eq!((&build["rounds"], &build["mean_attempts"]), (&json!(1), &json!(3.0)));
    let check = &m["states"]["check"];
    assert_eq!(check["attempts"], json!({"1": 1, "2": 1}), "{m:#}");
    assert_eq!((&check["rounds"], &check["mean_attempts"]), (&json!(1), &json!(2.0)));
    let retries = &m["retries"];
    assert_eq!((&retries["runs"], &retries["finished"], &retries["succeeded"]), (&json!(3), &json!(3), &json!(1)));
    assert_eq!(retries["success_rate"].as_f64(), Some(1.0 / 3.0));
    assert_eq!(retries["scheduled"], json!({"transient": 2, "logic": 1}));
    assert_eq!(m["dead_letters"], json!({"logic": 1}));
    assert_eq!(m["breakers"]["build"]["trips"], json!(1), "{m:#}");
    assert_eq!(m["breakers"]["build"]["last_reason"], json!("2 failures within 60s"));
    assert_eq!(m["breakers"]["check"]["trips"], json!(0), "logic errors do not trip it");

    let text = r.baton_ok(&["metrics"]);
    for want in [
        "build       1            3.00  #1: 1, #2: 1, #3: 1",
        "check       1            2.00  #1: 1, #2: 1",
        "retries: 3 runs were retries; 1 of 3 finished succeeded (33.3%); scheduled: logic 1, transient 2",
        "dead letters: logic 1",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with("build  ") && l.contains("  1  ") && l.ends_with("2 failures within 60s")),
        "{text}"
    );

    // Nothing happened after the far future: no runs, and no trips in the window.
    let later: Value = serde_json::from_str(&r.baton_ok(&["metrics", "--json", "--since", "4000000000"])).unwrap();
    assert_eq!((&later["runs"], &later["dead_letters"]), (&json!(0), &json!({})));
    assert_eq!(later["breakers"]["build"], json!({"trips": 0, "last_trip": null, "last_reason": null}));
}
