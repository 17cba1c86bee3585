//! When handlers fail (real repositories, the real binary): retries with the failure fed back,
//! backoff timers, dead letters, fix-loop caps and circuit breakers shared by every runner.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{count, has, repo_with, run_json, task, tick_until, BATON};
use serde_json::Value;

/// A flaky handler (exit 75 twice, then success) reaches `done` on its third attempt, and that
/// attempt sees the failures fed back: the enriched body, `BATON_ATTEMPT=3`, the previous error.
#[test]
fn a_flaky_handler_is_retried_with_the_failure_fed_back() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let build = format!(
        "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\n\
         if [ $n -lt 3 ]; then echo \"rate limited, try $n\"; exit 75; fi\n\
         set -e\nprintf '%s' \"$BATON_BODY\" > body.txt\nenv | grep '^BATON_' | sort > env.txt\n\
         cp \"$BATON_PREVIOUS_LOG\" previous.txt\ngit add body.txt env.txt previous.txt\n\
         git commit -q -m built -m 'dwp-state: done'\n",
        c = counter.display()
    );
    let r = repo_with(&[(".dwp/command/build", &build)]);
    task(&r, "t1", "build");
    let events = tick_until(&r, "t1", Duration::from_secs(20), |s| s == "done");
    assert_eq!(count(&events, "t1", "retrying"), 2, "{events:#?}");
    assert_eq!(count(&events, "t1", "claimed"), 3);
    let body = r.git(&["show", "t1:body.txt"]);
    assert!(body.starts_with("do the task"), "{body}");
    assert!(body.contains("## Attempt 1 failed") && body.contains("## Attempt 2 failed"), "{body}");
    assert!(body.contains("- error type: transient") && body.contains("rate limited, try 2"), "{body}");
    let env = r.git(&["show", "t1:env.txt"]);
    for want in ["BATON_ATTEMPT=3", "BATON_MAX_ATTEMPTS=4", "BATON_PREVIOUS_ERROR_TYPE=transient"] {
        assert!(env.lines().any(|l| l == want), "{want} missing: {env}");
    }
    assert!(env.contains("BATON_PREVIOUS_ERROR=handler exited with status 75"), "{env}");
    let previous = r.git(&["show", "t1:previous.txt"]);
    assert!(previous.starts_with("## Attempt 2 failed") && !previous.contains("Attempt 1"), "{previous}");
    // The retry commits: one each, back in `build`, with the timer and the run they retry.
    let retries = r.git(&["log", "--format=%H", "--grep=^baton: retry build", "t1"]);
    let retries: Vec<&str> = retries.lines().collect();
    assert_eq!(retries.len(), 2);
    let newest = retries[0];
    assert_eq!(r.trailer_of(newest, "dwp-attempt").as_deref(), Some("3"));
    assert_eq!(r.trailer_of(newest, "dwp-max-attempts").as_deref(), Some("4"));
    assert_eq!(r.trailer_of(newest, "dwp-error-type").as_deref(), Some("transient"));
    assert!(r.trailer_of(newest, "dwp-not-before").is_some_and(|t| t.parse::<i64>().is_ok()));
    assert!(r.trailer_of(newest, "dwp-retry-of").is_some());
    assert_eq!(r.state_of(newest), "build");
}

/// A logic failure on every attempt is retried twice (three attempts), then becomes a dead letter.
#[test]
fn a_logic_failure_on_every_attempt_becomes_a_dead_letter() {
    let r = repo_with(&[(".dwp/command/build", "#!/bin/sh\necho 'tests failed: 3 of 10'\nexit 1\n")]);
    task(&r, "t1", "build");
    let events = tick_until(&r, "t1", Duration::from_secs(20), |s| s == "failed");
    assert_eq!(count(&events, "t1", "claimed"), 3, "{events:#?}");
    assert_eq!(count(&events, "t1", "retrying"), 2);
    assert_eq!(count(&events, "t1", "failed"), 1);
    for (key, want) in [
        ("dwp-dead-letter", "logic"),
        ("dwp-attempt", "3"),
        ("dwp-max-attempts", "3"),
        ("dwp-error-type", "logic"),
        ("dwp-origin-state", "build"),
    ] {
        assert_eq!(r.trailer_of("t1", key).as_deref(), Some(want), "{key}");
    }
    assert_eq!(r.trailer_of("t1", "dwp-retry-after"), None, "a logic error is not swept");
    assert_eq!(r.trailer_of("t1", "dwp-breaker"), None);
    // Nothing runs it again.
    assert!(run_json(&r, &[]).is_empty());
}

/// A retry waits for its `dwp-not-before`: not claimed before it.
#[test]
fn a_retry_is_not_claimed_before_its_timer() {
    let r = repo_with(&[
        (".dwp/command/build", "#!/bin/sh\nexit 75\n"),
        (".dwp/policy.toml", "[defaults]\nretry.backoff = \"1m\"\n"),
    ]);
    task(&r, "t1", "build");
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "retrying"), "{events:#?}");
    let due: i64 = r.trailer_of("t1", "dwp-not-before").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now + 40..=now + 75).contains(&due), "a 1m backoff ±20 %: {due} vs {now}");
    for _ in 0..3 {
        assert!(run_json(&r, &[]).is_empty(), "claimed before its timer");
    }
}

/// The handler may state its error type on its last line; the policy may add exit codes.
#[test]
fn stated_types_and_extra_exit_codes_classify_failures() {
    let r = repo_with(&[
        (".dwp/command/stated", "#!/bin/sh\necho 'upstream said 503'\necho 'BATON-ERROR-TYPE: transient'\nexit 1\n"),
        (".dwp/command/denied", "#!/bin/sh\necho 'token expired'\nexit 3\n"),
        (".dwp/policy.toml", "[defaults]\nretry.backoff = \"1m\"\nclassify.auth_exit_codes = [3]\n"),
    ]);
    task(&r, "t1", "stated");
    task(&r, "t2", "denied");
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "retrying") && has(&events, "t2", "failed"), "{events:#?}");
    assert_eq!(r.trailer_of("t1", "dwp-error-type").as_deref(), Some("transient"));
    assert_eq!(r.trailer_of("t1", "dwp-max-attempts").as_deref(), Some("4"));
    // auth: no retries by default; a dead letter with a retry-after for the person who renews the credentials.
    assert_eq!(r.trailer_of("t2", "dwp-dead-letter").as_deref(), Some("auth"));
    assert!(r.trailer_of("t2", "dwp-retry-after").is_some());
    assert_eq!(r.trailer_of("t2", "dwp-breaker").as_deref(), Some("denied"));
}

const FLAKY_POLICY: &str =
    "[defaults]\nretry.transient = 0\n\n[states.build]\nbreaker = { name = \"provider\", cooldown = \"10s\" }\n";

/// Three transient failures on three branches open the breaker; a fourth branch in that state is
/// not claimed (one notice for the breaker). After the cooldown, two runners started together
/// make exactly one probe; its success closes the breaker.
#[test]
fn three_transient_failures_open_the_breaker_and_one_probe_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = dir.path().join("healthy");
    let build = format!(
        "#!/bin/sh\nif [ ! -e {h} ]; then echo 'HTTP 429'; exit 75; fi\nsleep 2\ngit commit -q --allow-empty -m ok -m 'dwp-state: done'\n",
        h = healthy.display()
    );
    let r = repo_with(&[(".dwp/command/build", &build), (".dwp/policy.toml", FLAKY_POLICY)]);
    for t in ["t1", "t2", "t3"] {
        task(&r, t, "build");
    }
    let events = run_json(&r, &[]);
    assert_eq!(events.iter().filter(|e| e["action"] == "failed").count(), 3, "{events:#?}");
    let breaker = r.git(&["log", "-1", "--format=%B", "refs/baton/breakers/provider"]);
    assert!(breaker.contains("dwp-breaker-open-until:"), "{breaker}");
    assert!(breaker.contains("dwp-breaker-reason: 3 failures within 60s"), "{breaker}");

    for t in ["t4", "t5"] {
        task(&r, t, "build");
    }
    let events = run_json(&r, &[]);
    assert!(!events.iter().any(|e| e["action"] == "claimed"), "claimed while open: {events:#?}");
    let notices: Vec<&Value> = events.iter().filter(|e| e["action"] == "notice").collect();
    assert_eq!(notices.len(), 1, "{events:#?}");
    assert!(notices[0]["error"].as_str().unwrap().contains("circuit breaker provider is open"), "{notices:?}");

    // Cooldown over: two runners at once; exactly one claims (the probe), the other stays out.
    // (A cooldown long enough that a slow machine cannot pass it between the two ticks above;
    // instead of waiting it out, the test moves the breaker's timer to now — the same commit the
    // runner would read, rewritten with git.)
    std::fs::write(&healthy, "").unwrap();
    let open: Vec<String> = breaker.lines().map(str::to_owned).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let moved: String = open
        .iter()
        .map(|l| {
            if l.starts_with("dwp-breaker-open-until:") {
                format!("dwp-breaker-open-until: {now}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let tree = r.git(&["rev-parse", "refs/baton/breakers/provider^{tree}"]);
    let id = r.git(&["commit-tree", tree.trim(), "-p", "refs/baton/breakers/provider", "-m", moved.trim()]);
    r.git(&["update-ref", "refs/baton/breakers/provider", id.trim()]);
    let runners: Vec<_> = (0..2)
        .map(|_| r.baton_cmd(&["run", "--json"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap())
        .collect();
    let claims: usize = runners
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("\"action\":\"claimed\"")).count()
        })
        .sum();
    assert_eq!(claims, 1, "a half-open breaker let more than one probe through");
    let states = [r.state_of("t4"), r.state_of("t5")];
    assert_eq!(states.iter().filter(|s| *s == "done").count(), 1, "{states:?}");
    let breaker = r.git(&["log", "-1", "--format=%B", "refs/baton/breakers/provider"]);
    assert!(breaker.starts_with("baton: breaker provider closed"), "{breaker}");
    // Closed: the other branch runs on the next tick.
    let events = run_json(&r, &[]);
    assert_eq!(events.iter().filter(|e| e["action"] == "succeeded").count(), 1, "{events:#?}");
}

/// A → B → A ping-pong stops at `blocked` after 10 rounds, with a decision card; past round 3
/// handlers are told the round.
#[test]
fn a_ping_pong_workflow_is_blocked_after_ten_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("rounds");
    let ping = format!(
        "#!/bin/sh\necho \"${{BATON_ROUND:-quiet}}\" >> {l}\ngit commit -q --allow-empty -m ping -m 'dwp-state: pong'\n",
        l = ledger.display()
    );
    let r = repo_with(&[
        (".dwp/command/ping", &ping),
        (".dwp/command/pong", "#!/bin/sh\ngit commit -q --allow-empty -m pong -m 'dwp-state: ping'\n"),
    ]);
    task(&r, "t1", "ping");
    let events = tick_until(&r, "t1", Duration::from_secs(60), |s| s == "blocked");
    assert_eq!(count(&events, "t1", "escalated"), 1, "{events:#?}");
    let rounds = std::fs::read_to_string(&ledger).unwrap();
    let rounds: Vec<&str> = rounds.lines().collect();
    assert_eq!(rounds, ["quiet", "quiet", "quiet", "4", "5", "6", "7", "8", "9", "10"]);
    assert_eq!(r.trailer_of("t1", "dwp-escalation").as_deref(), Some("loop-cap"));
    assert_eq!(r.trailer_of("t1", "dwp-origin-state").as_deref(), Some("ping"));
    let card = r.git(&["log", "-1", "--format=%B", "t1"]);
    for part in
        ["## Decision required", "Context:", "Options:", "A. Resume", "B. Cancel", "Recommended:", "Risk:", "Default:"]
    {
        assert!(card.contains(part), "{part} missing: {card}");
    }
    // A person resumes: the count starts again after the escalation.
    r.baton_ok(&["send", "--branch", "t1", "ping", "-m", "try a different approach"]);
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "succeeded"), "{events:#?}");
    assert_eq!(std::fs::read_to_string(&ledger).unwrap().lines().last(), Some("quiet"));
}

/// Remote mode: two clones share one breaker through the remote. Failures in one clone open it;
/// the other clone does not claim a task in that state.
#[test]
fn two_clones_share_one_breaker_through_the_remote() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let origin = home.join("origin.git");
    let git = |cwd: &std::path::Path, args: &[&str]| common::git_in(home, cwd, args);
    git(home, &["init", "-q", "--bare", "-b", "main", origin.to_str().unwrap()]);
    git(home, &["clone", "-q", origin.to_str().unwrap(), "seed"]);
    let seed = home.join("seed");
    std::fs::create_dir_all(seed.join(".dwp/command")).unwrap();
    let build = seed.join(".dwp/command/build");
    std::fs::write(&build, "#!/bin/sh\necho 'HTTP 503'\nexit 75\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&build, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(seed.join(".dwp/policy.toml"), "[defaults]\nretry.transient = 0\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "handlers"]);
    let send = |branch: &str| {
        git(&seed, &["branch", branch, "main"]);
        let out = common::command_in(home, BATON, &seed, &["send", "--branch", branch, "build"]).output().unwrap();
        assert!(out.status.success());
    };
    for t in ["t1", "t2", "t3"] {
        send(t);
    }
    git(&seed, &["push", "-q", "origin", "main", "t1", "t2", "t3"]);
    git(home, &["clone", "-q", origin.to_str().unwrap(), "a"]);
    git(home, &["clone", "-q", origin.to_str().unwrap(), "b"]);
    let run = |clone: &str| {
        let out = common::command_in(home, BATON, &home.join(clone), &["run", "--remote", "origin", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        common::json_lines(&String::from_utf8_lossy(&out.stdout))
    };
    let events = run("a");
    assert_eq!(events.iter().filter(|e| e["action"] == "failed").count(), 3, "{events:#?}");
    let on_origin = git(&origin, &["log", "-1", "--format=%B", "refs/baton/breakers/build"]);
    assert!(on_origin.contains("dwp-breaker-open-until:"), "{on_origin}");

    send("t4");
    git(&seed, &["push", "-q", "origin", "t4"]);
    let events = run("b");
    assert!(!events.iter().any(|e| e["action"] == "claimed"), "clone b claimed past an open breaker: {events:#?}");
    assert!(events
        .iter()
        .any(|e| e["action"] == "notice" && e["error"].as_str().unwrap().contains("circuit breaker build")));
}

/// `watch` wakes for a retry's timer instead of sleeping its whole interval.
#[test]
fn watch_wakes_for_the_earliest_due_retry() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let build = format!(
        "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}\n[ $n -ge 1 ] || exit 75\ngit commit -q --allow-empty -m ok -m 'dwp-state: done'\n",
        c = counter.display()
    );
    let r = repo_with(&[(".dwp/command/build", &build)]);
    task(&r, "t1", "build");
    let started = std::time::Instant::now();
    let out = r.baton_cmd(&["watch", "--interval", "60", "--max-ticks", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(r.state_of("t1"), "done");
    assert!(started.elapsed() < Duration::from_secs(30), "watch slept its whole interval");
}

/// A run that took a half-open breaker's probe but could not start (here: its concurrency group
/// is full) gives the probe back, instead of leaving the breaker unprobed until the probe's hold
/// runs out.
#[test]
fn a_probe_that_could_not_run_is_given_back() {
    let r = repo_with(&[
        (".dwp/command/build", "#!/bin/sh\ngit commit -q --allow-empty -m ok -m 'dwp-state: done'\n"),
        (".dwp/policy.toml", "[states.build]\nconcurrency = { group = \"heavy\", max = 1 }\n"),
    ]);
    task(&r, "t1", "build");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // The breaker cooled down (half-open, nobody probing) and the group's only token is taken.
    let tree = r.git(&["hash-object", "-t", "tree", "-w", "/dev/null"]);
    let breaker = format!("baton: breaker build open\n\ndwp-breaker: build\ndwp-breaker-open-until: {now}\ndwp-breaker-cooldown: 300\ndwp-breaker-trips: 1\n");
    let id = r.git(&["commit-tree", tree.trim(), "-m", &breaker]);
    r.git(&["update-ref", "refs/baton/breakers/build", id.trim()]);
    let token = format!("baton: concurrency group/heavy slot 0\n\ndwp-run-id: other\ndwp-token-branch: elsewhere\ndwp-token-until: {}\n", now + 3600);
    // Taken just now (a token only seconds old is never stale).
    let out = r
        .git_cmd(&["commit-tree", tree.trim(), "-m", &token])
        .env("GIT_COMMITTER_DATE", format!("{now} +0000"))
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    r.git(&["update-ref", "refs/baton/concurrency/group/heavy/0", &id]);

    let events = run_json(&r, &[]);
    assert!(!has(&events, "t1", "claimed"), "{events:#?}");
    let head = r.git(&["log", "-1", "--format=%B", "refs/baton/breakers/build"]);
    assert!(!head.contains("dwp-breaker-probe:"), "the probe was kept: {head}");
    let taken = r.git(&["log", "--format=%B", "refs/baton/breakers/build"]);
    assert!(taken.contains("dwp-breaker-probe:"), "the run took the probe first: {taken}");
}
