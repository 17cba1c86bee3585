//! The dead-letter queue (`git baton dlq`): tasks whose retries ran out, on real repositories with
//! the real runner — listed with every field, retried with a note the next handler reads, dropped,
//! swept back when a transient error's time came (and not while its circuit breaker is open), and
//! archived after `dlq.archive_after`.

mod common;

use std::time::Duration;

use common::{git_in, repo_with, run_json, task, wait_until, TestRepo, NO_RETRIES};
use serde_json::Value;

/// Fails with a logic error unless its body holds the note; then records its body and attempt.
const BUILD: &str = "#!/bin/sh
if printf '%s' \"$BATON_BODY\" | grep -q 'use the other API'; then
  printf '%s\\n' \"$BATON_BODY\" > body.txt
  echo \"$BATON_ATTEMPT\" > attempt.txt
  git add body.txt attempt.txt
  git commit -q -m fixed -m 'dwp-state: done'
  exit 0
fi
echo compiling
echo 'error: it broke'
exit 1
";

/// `git baton ARGS… --json` (exit 0), one object per line.
fn json_lines(r: &TestRepo, args: &[&str]) -> Vec<Value> {
    common::json_lines(&r.baton_ok(args))
}

/// Run ticks until `branch` is in `state`.
fn run_until(r: &TestRepo, branch: &str, state: &str) {
    wait_until(&format!("{branch} in {state}"), Duration::from_secs(60), || {
        run_json(r, &[]);
        r.state_of(branch) == state
    });
}

/// A commit's committer time as ISO 8601 UTC, by git.
fn iso_of(r: &TestRepo, rev: &str) -> String {
    let out = r
        .git_cmd(&["log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ", rev])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn epoch_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Sleep until the clock reads at least `t` (epoch seconds).
fn sleep_until(t: i64) {
    while epoch_now() < t {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A commit's body without its trailer block (the last paragraph), by git.
fn body_of(r: &TestRepo, rev: &str) -> String {
    let b = r.git(&["log", "-1", "--format=%b", rev]);
    let b = b.trim_end();
    b.rsplit_once("\n\n").map_or("", |(body, _)| body).to_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_logic_dead_letter_is_listed_in_full_and_retried_with_a_note() {
    let r = repo_with(&[(".dwp/command/build", BUILD), (".dwp/policy.toml", "[defaults]\nretry.backoff = \"1s\"\n")]);
    r.git(&["branch", "t1", "main"]);
    let sent = r
        .baton_ok(&[
            "send",
            "--branch",
            "t1",
            "build",
            "-m",
            "Build it with care.",
            "--subject",
            "Build the thing",
            "--trailer",
            "Ticket: T-7",
        ])
        .trim()
        .to_owned();
    run_until(&r, "t1", "failed");
    assert_eq!(r.trailer_of("t1", "dwp-dead-letter").as_deref(), Some("logic"));

    let lines = json_lines(&r, &["dlq", "--json"]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let e = &lines[0];
    assert_eq!(e["task_id"], "t1");
    assert_eq!(e["original_task"]["commit"], sent.as_str());
    assert_eq!(e["original_task"]["subject"], "Build the thing");
    assert_eq!(e["original_task"]["body"], "Build it with care.", "no attempt sections");
    assert_eq!(e["error"], "handler exited with status 1");
    assert_eq!(e["error_type"], "logic");
    assert_eq!((e["attempts"].as_u64(), e["max_attempts"].as_u64()), (Some(3), Some(3)));
    // The first attempt is the first claim after the task; the last is the dead letter.
    let first_claim = r.git(&["rev-list", "--first-parent", "--reverse", &format!("{sent}..t1")]);
    let first_claim = first_claim.lines().next().unwrap();
    assert_eq!(r.state_of(first_claim), "working");
    assert_eq!(e["first_attempt"], iso_of(&r, first_claim).as_str());
    assert_eq!(e["last_attempt"], iso_of(&r, "t1").as_str());
    assert!(e["first_attempt"].as_str().unwrap() <= e["last_attempt"].as_str().unwrap());
    assert!(e["last_attempt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        e["context_summary"],
        "build failed 3 times (logic): handler exited with status 1; last output: error: it broke"
    );
    assert_eq!(e["retry_after"], Value::Null, "a logic error has no retry_after");
    assert_eq!(e["priority"], "medium");
    assert_eq!(e["related_circuit_breaker"], Value::Null);
    assert_eq!(e["commit"], r.head("t1").as_str());
    assert_eq!(e["origin_state"], "build");
    assert_eq!(e["archived"], false);
    assert_eq!(e["problems"], serde_json::json!([]));
    // The table, and the explicit `list`.
    let table = r.baton_ok(&["dlq"]);
    let mut rows = table.lines();
    let header = rows.next().unwrap();
    for col in ["BRANCH", "ERROR TYPE", "ATTEMPTS", "LAST ATTEMPT", "RETRY AFTER", "PRIORITY", "ERROR"] {
        assert!(header.contains(col), "{header}");
    }
    let row: Vec<&str> = rows.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["t1", "logic", "3/3"], "{table}");
    assert!(table.contains("medium") && table.contains("handler exited with status 1"), "{table}");
    assert_eq!(json_lines(&r, &["dlq", "list", "--json", "--branch", "t*"]).len(), 1);
    assert!(json_lines(&r, &["dlq", "list", "--json", "--branch", "other*"]).is_empty());

    // Back to build with a note: the task's subject, body and own trailers; attempts reset.
    let dead = r.head("t1");
    let retried = json_lines(&r, &["dlq", "retry", "t1", "-m", "use the other API", "--json"]);
    assert_eq!(retried[0]["dead_letter"], dead.as_str());
    assert_eq!(retried[0]["parent"], dead.as_str());
    assert_eq!(retried[0]["state"], "build");
    assert_eq!(r.head("t1"), retried[0]["commit"].as_str().unwrap());
    assert_eq!(r.state_of("t1"), "build");
    assert_eq!(r.git(&["log", "-1", "--format=%s", "t1"]).trim(), "Build the thing");
    assert_eq!(r.trailer_of("t1", "Ticket").as_deref(), Some("T-7"));
    assert_eq!(r.trailer_of("t1", "dwp-attempt"), None);
    assert_eq!(r.trailer_of("t1", "dwp-dead-letter"), None);
    assert_eq!(body_of(&r, "t1"), "Build it with care.\n\n## Note\n\nuse the other API");
    assert!(json_lines(&r, &["dlq", "--json"]).is_empty(), "no dead letter any more");

    // The next run's handler reads the note, as attempt 1.
    run_until(&r, "t1", "done");
    let seen = r.git(&["show", "t1:body.txt"]);
    assert!(
        seen.contains("Build it with care.") && seen.contains("## Note") && seen.contains("use the other API"),
        "{seen}"
    );
    assert!(!seen.contains("## Attempt"), "{seen}");
    assert_eq!(r.git(&["show", "t1:attempt.txt"]).trim(), "1");
}

#[test]
fn retry_and_drop_refuse_what_is_not_a_dead_letter_and_drop_cancels() {
    let r = repo_with(&[(".dwp/command/build", "#!/bin/sh\necho nope\nexit 1\n"), NO_RETRIES]);
    task(&r, "t1", "build");
    task(&r, "t2", "review");
    run_json(&r, &[]);
    assert_eq!(r.state_of("t1"), "failed");
    assert_eq!(r.trailer_of("t1", "dwp-max-attempts").as_deref(), Some("1"));

    // Not a dead letter: exit 1, one line, nothing written.
    let before = r.head("t2");
    for cmd in [&["dlq", "retry", "t2", "-m", "x"][..], &["dlq", "drop", "t2"][..]] {
        let out = r.baton(cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("is not a dead letter"), "{}", stderr(&out));
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert_eq!(r.head("t2"), before);
    }
    assert_eq!(r.baton(&["dlq", "retry", "no-such-branch"]).status.code(), Some(1));
    assert_eq!(r.baton(&["dlq", "retry", "bad..name"]).status.code(), Some(2));

    // A live lease on top of the dead letter (a handler of `failed` claimed it): refused unless
    // --force.
    let dead = r.head("t1");
    let claim = git_in(
        r.home(),
        &r.path,
        &[
            "commit-tree",
            "t1^{tree}",
            "-p",
            "t1",
            "-m",
            "baton: failed claimed",
            "-m",
            "dwp-origin-state: failed\ndwp-run-id: 0b6c2f7e-1111\ndwp-runner-id: elsewhere:1\ndwp-lease-seconds: 600\ndwp-state: working",
        ],
    );
    let claim = claim.trim();
    r.git(&["update-ref", "refs/heads/t1", claim, &dead]);
    let out = r.baton(&["dlq", "retry", "t1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("held by run 0b6c2f7e-1111"), "{}", stderr(&out));
    assert_eq!(r.head("t1"), claim);
    let forced = json_lines(&r, &["dlq", "retry", "t1", "--force", "--json"]);
    assert_eq!((forced[0]["dead_letter"].as_str(), forced[0]["parent"].as_str()), (Some(dead.as_str()), Some(claim)));
    assert_eq!(r.state_of("t1"), "build");
    assert_eq!(body_of(&r, "t1"), "do the task");

    // Fails again; dropped with a reason.
    run_json(&r, &[]);
    assert_eq!(r.state_of("t1"), "failed");
    let dropped = r.baton_ok(&["dlq", "drop", "t1", "-m", "not needed any more"]);
    assert_eq!(dropped.trim(), r.head("t1"));
    assert_eq!(r.state_of("t1"), "canceled");
    assert_eq!(body_of(&r, "t1"), "not needed any more");
    assert!(json_lines(&r, &["dlq", "--json"]).is_empty());
    assert_eq!(r.baton(&["dlq", "drop", "t1"]).status.code(), Some(1), "a canceled head is no dead letter");

    // Malformed values are reported per entry, never a panic; a task that cannot be found is not
    // retried.
    let msg = "baton: build failed\n\ndwp-origin-state: build\ndwp-attempt: three\ndwp-max-attempts: 1\ndwp-priority: urgent\ndwp-retry-after: soon\ndwp-dead-letter: flaky\ndwp-state: failed";
    let odd = git_in(r.home(), &r.path, &["commit-tree", "main^{tree}", "-p", "main", "-m", msg]);
    r.git(&["branch", "t3", odd.trim()]);
    let lines = json_lines(&r, &["dlq", "--json"]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let e = &lines[0];
    assert_eq!(
        (e["task_id"].as_str(), e["attempts"].as_u64(), e["max_attempts"].as_u64()),
        (Some("t3"), None, Some(1))
    );
    assert_eq!((e["priority"].as_str(), e["error_type"].as_str()), (Some("medium"), Some("flaky")));
    assert_eq!(
        (&e["retry_after"], &e["original_task"], &e["first_attempt"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let problems = e["problems"].to_string();
    for want in ["dwp-attempt", "urgent", "dwp-retry-after", "flaky", "was not found"] {
        assert!(problems.contains(want), "{want} not in {problems}");
    }
    let out = r.baton(&["dlq"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("t3: malformed dwp-attempt"), "{}", stderr(&out));
    let out = r.baton(&["dlq", "retry", "t3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not on the branch's first-parent history"), "{}", stderr(&out));
}

/// The sweep sends a transient dead letter back once its retry_after passed, never a logic one,
/// and none while their circuit breaker is open.
#[test]
fn sweep_retries_transient_dead_letters_when_due_and_their_breaker_is_closed() {
    let r = repo_with(&[
        (".dwp/command/fetch", "#!/bin/sh\necho 'rate limited'\nexit 75\n"),
        (".dwp/command/build", "#!/bin/sh\necho broken\nexit 1\n"),
        (".dwp/policy.toml", "[defaults]\nretry.transient = 0\nretry.logic = 0\ndlq.retry_after = \"4s\"\n"),
    ]);
    task(&r, "s1", "fetch");
    task(&r, "l1", "build");
    run_json(&r, &[]);
    assert_eq!((r.state_of("s1"), r.state_of("l1")), ("failed".to_owned(), "failed".to_owned()));
    assert_eq!(r.trailer_of("s1", "dwp-dead-letter").as_deref(), Some("transient"));
    assert_eq!(r.trailer_of("s1", "dwp-breaker").as_deref(), Some("fetch"));
    let retry_after: i64 = r.trailer_of("s1", "dwp-retry-after").unwrap().parse().unwrap();
    let listed = json_lines(&r, &["dlq", "--json", "--branch", "s1"]);
    assert_eq!(listed[0]["related_circuit_breaker"], "fetch");
    assert!(listed[0]["retry_after"].as_str().unwrap().ends_with('Z'));
    assert!(listed[0]["context_summary"].as_str().unwrap().starts_with("fetch failed once (transient)"));

    let by_branch = |lines: &[Value], b: &str| lines.iter().find(|l| l["branch"] == b).cloned().unwrap();
    // Too early: both skipped, each with its reason.
    let early = json_lines(&r, &["dlq", "sweep", "--json"]);
    assert_eq!(early.len(), 2, "{early:#?}");
    let s1 = by_branch(&early, "s1");
    assert_eq!(s1["action"], "skipped");
    assert!(s1["reason"].as_str().unwrap().contains("retry_after not passed"), "{s1}");
    let l1 = by_branch(&early, "l1");
    assert_eq!(l1["action"], "skipped");
    assert!(l1["reason"].as_str().unwrap().starts_with("logic errors are not swept"), "{l1}");
    let dead = r.head("s1");

    // Due: a dry run says so and writes nothing; the sweep retries s1 only.
    sleep_until(retry_after);
    let dry = json_lines(&r, &["dlq", "sweep", "--json", "--dry-run"]);
    assert_eq!(by_branch(&dry, "s1")["action"], "would-retry");
    assert_eq!(r.head("s1"), dead);
    let swept = json_lines(&r, &["dlq", "sweep", "--json"]);
    let s1 = by_branch(&swept, "s1");
    assert_eq!(s1["action"], "retried", "{s1}");
    assert_eq!(s1["commit"], r.head("s1").as_str());
    assert_eq!(by_branch(&swept, "l1")["action"], "skipped");
    assert_eq!(r.state_of("s1"), "fetch");
    assert_eq!(r.state_of("l1"), "failed");
    assert_eq!(body_of(&r, "s1"), "do the task\n\n## Note\n\nswept: retry_after passed");

    // Three more transient failures within the window open the breaker `fetch`: the sweep waits.
    task(&r, "s2", "fetch");
    task(&r, "s3", "fetch");
    run_json(&r, &[]);
    for b in ["s1", "s2", "s3"] {
        assert_eq!(r.state_of(b), "failed", "{b}");
    }
    let breaker = r.git(&["log", "-1", "--format=%B", "refs/baton/breakers/fetch"]);
    assert!(breaker.contains("dwp-breaker-open-until:"), "{breaker}");
    let due = ["s1", "s2", "s3"].map(|b| r.trailer_of(b, "dwp-retry-after").unwrap().parse::<i64>().unwrap());
    sleep_until(*due.iter().max().unwrap());
    let held = json_lines(&r, &["dlq", "sweep", "--json"]);
    for b in ["s1", "s2", "s3"] {
        let s = by_branch(&held, b);
        assert_eq!(s["action"], "skipped", "{s}");
        assert!(s["reason"].as_str().unwrap().starts_with("circuit breaker fetch is open for"), "{s}");
        assert_eq!(r.state_of(b), "failed");
    }
    let text = r.baton_ok(&["dlq", "sweep"]);
    assert!(text.lines().any(|l| l.starts_with("skipped s2: circuit breaker fetch is open")), "{text}");
}

#[test]
fn old_dead_letters_are_archived_and_shown_with_all() {
    let r = repo_with(&[
        (".dwp/command/build", "#!/bin/sh\nexit 1\n"),
        (".dwp/policy.toml", "[defaults]\nretry.logic = 0\ndlq.archive_after = \"3s\"\n"),
    ]);
    task(&r, "t1", "build");
    run_json(&r, &[]);
    let lines = json_lines(&r, &["dlq", "--json"]);
    assert_eq!((lines.len(), &lines[0]["archived"]), (1, &Value::Bool(false)));
    assert_eq!(lines[0]["context_summary"], "build failed once (logic): handler exited with status 1; no output");
    let written: i64 = r.git(&["log", "-1", "--format=%ct", "t1"]).trim().parse().unwrap();
    sleep_until(written + 4);
    assert!(r.baton_ok(&["dlq", "--json"]).is_empty(), "archived dead letters are hidden");
    let out = r.baton(&["dlq"]);
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("1 archived dead letter(s) hidden"), "{}", stderr(&out));
    let all = json_lines(&r, &["dlq", "--all", "--json"]);
    assert_eq!((all.len(), &all[0]["archived"], &all[0]["task_id"]), (1, &Value::Bool(true), &Value::from("t1")));
    assert!(r.baton_ok(&["dlq", "--all"]).contains("(archived)"));
}

/// `watch` sweeps when it starts (and every dlq.sweep after).
#[test]
fn watch_sweeps_due_dead_letters() {
    let r = repo_with(&[
        (".dwp/command/fetch", "#!/bin/sh\nexit 75\n"),
        (".dwp/policy.toml", "[defaults]\nretry.transient = 0\ndlq.retry_after = \"1s\"\n"),
    ]);
    task(&r, "s1", "fetch");
    run_json(&r, &[]);
    assert_eq!(r.state_of("s1"), "failed");
    let retry_after: i64 = r.trailer_of("s1", "dwp-retry-after").unwrap().parse().unwrap();
    sleep_until(retry_after);
    r.baton_ok(&["watch", "--max-ticks", "1", "--interval", "0.2"]);
    assert_eq!(r.state_of("s1"), "fetch");
    assert!(r.git(&["log", "-1", "--format=%b", "s1"]).contains("swept: retry_after passed"));
}
