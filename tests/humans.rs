//! Humans in the loop, the runner's side: acceptance checks decide what is done, concurrency
//! limits hold across runners, build caches survive between the steps of a branch.

mod common;

use std::time::Duration;

use common::{has, repo_with, run_json, task, wait_until};

/// A failing acceptance check turns a `done` answer into a retry whose body holds the check's
/// output; the next attempt passes the check and is published.
#[test]
fn a_failing_acceptance_check_sends_the_answer_back_with_its_output() {
    let build = "#!/bin/sh\nset -e\nif [ \"$BATON_ATTEMPT\" -ge 2 ]; then echo 'the report' > report.md; git add report.md; fi\ngit commit -q --allow-empty -m answer -m 'dwp-state: done'\n";
    let r = repo_with(&[
        (".dwp/command/build", build),
        (
            ".dwp/policy.toml",
            "[defaults]\nretry.backoff = \"1s\"\n\n[states.build]\naccept = [\"true\", \"test -s report.md || { echo 'report.md is missing or empty'; exit 1; }\"]\n",
        ),
    ]);
    task(&r, "t1", "build");
    let events = run_json(&r, &[]);
    assert!(has(&events, "t1", "retrying"), "{events:#?}");
    let retry = r.git(&["log", "-1", "--format=%B", "t1"]);
    assert!(retry.contains("acceptance check `test -s report.md"), "{retry}");
    assert!(retry.contains("    report.md is missing or empty"), "the check's output is fed back: {retry}");
    assert_eq!(r.trailer_of("t1", "dwp-error-type").as_deref(), Some("logic"));
    // The unaccepted answer stays in history, under the retry.
    assert_eq!(r.git(&["log", "-1", "--format=%s", "t1^"]).trim(), "answer");
    let mut all = Vec::new();
    wait_until("the second attempt", Duration::from_secs(15), || {
        all.extend(run_json(&r, &[]));
        r.state_of("t1") == "done"
    });
    assert_eq!(r.git(&["show", "t1:report.md"]), "the report\n");
}

/// `concurrency.max = 1`: with three runners ticking at once over four tasks of the group, no two
/// runs ever overlap, and every task runs once.
#[test]
fn a_concurrency_group_never_overlaps_across_three_runners() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let build = format!(
        "#!/bin/sh\nset -e\necho \"start $(date +%s%N) $BATON_BRANCH\" >> {l}\nsleep 0.4\necho \"end $(date +%s%N) $BATON_BRANCH\" >> {l}\ngit commit -q --allow-empty -m built -m 'dwp-state: done'\n",
        l = ledger.display()
    );
    let r = repo_with(&[
        (".dwp/command/build", &build),
        (".dwp/policy.toml", "[states.build]\nconcurrency = { group = \"heavy\", max = 1 }\n"),
    ]);
    let tasks = ["t1", "t2", "t3", "t4"];
    for t in tasks {
        task(&r, t, "build");
    }
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let started = std::time::Instant::now();
                while tasks.iter().any(|t| r.state_of(t) != "done") && started.elapsed() < Duration::from_secs(60) {
                    run_json(&r, &[]);
                }
            });
        }
    });
    for t in tasks {
        assert_eq!(r.state_of(t), "done", "{t}");
    }
    let text = std::fs::read_to_string(&ledger).unwrap();
    let mut intervals = Vec::new();
    let mut open: Option<u128> = None;
    let mut events: Vec<(u128, &str)> = text
        .lines()
        .map(|l| {
            let mut p = l.split(' ');
            let kind = p.next().unwrap();
            (p.next().unwrap().parse().unwrap(), kind)
        })
        .collect();
    events.sort();
    for (t, kind) in events {
        match kind {
            "start" => {
                assert!(open.is_none(), "two runs of the group overlapped: {text}");
                open = Some(t);
            }
            _ => intervals.push((open.take().unwrap(), t)),
        }
    }
    assert_eq!(intervals.len(), 4, "every task ran exactly once: {text}");
    assert!(r.git(&["for-each-ref", "refs/baton/concurrency/"]).is_empty(), "tokens are given back");
}

/// `dwp-exclusive: <name>` keeps two tasks that would edit the same files apart.
#[test]
fn exclusive_tasks_do_not_run_together() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\nsleep 1\ngit commit -q --allow-empty -m built -m 'dwp-state: done'\n",
    )]);
    for t in ["t1", "t2"] {
        r.git(&["branch", t, "main"]);
        r.baton_ok(&["send", "--branch", t, "build", "--trailer", "dwp-exclusive: parser"]);
    }
    let events = run_json(&r, &[]);
    let claimed = events.iter().filter(|e| e["action"] == "claimed").count();
    assert_eq!(claimed, 1, "{events:#?}");
    let events = run_json(&r, &[]);
    assert_eq!(events.iter().filter(|e| e["action"] == "claimed").count(), 1, "{events:#?}");
    assert_eq!((r.state_of("t1"), r.state_of("t2")), ("done".into(), "done".into()));
}

/// `worktree.keep`: ignored build caches survive from one step of a branch to the next (the slot
/// sticks to the branch), while everything else is cleaned as before.
#[test]
fn kept_caches_survive_between_the_steps_of_a_branch() {
    let step = |next: &str| {
        format!(
            "#!/bin/sh\nset -e\nls target/ > seen.txt 2>/dev/null || true\nmkdir -p target && echo cached > \"target/$BATON_STATE\"\necho junk > scratch.tmp\ngit add seen.txt\ngit commit -q -m step -m 'dwp-state: {next}'\n"
        )
    };
    let r = repo_with(&[
        (".dwp/command/one", &step("two")),
        (".dwp/command/two", &step("done")),
        (".gitignore", "target/\n*.tmp\n"),
        (".dwp/policy.toml", "[defaults]\nworktree.keep = [\"target/\"]\n"),
    ]);
    task(&r, "t1", "one");
    run_json(&r, &[]);
    run_json(&r, &[]);
    assert_eq!(r.state_of("t1"), "done");
    assert_eq!(r.git(&["show", "t1:seen.txt"]), "one\n", "the second step saw the first step's cache");
    assert!(r.git(&["for-each-ref", "refs/baton/salvage/"]).is_empty(), "kept caches are not salvaged");
}

/// `inbox` lists everything that waits for a person, oldest first, each with the command that
/// answers it; exit 3 while something waits, 0 when nothing does.
#[test]
fn the_inbox_lists_what_waits_with_the_commands_that_answer_it() {
    let r = repo_with(&[
        (".dwp/command/build", "#!/bin/sh\necho 'no compiler'\nexit 1\n"),
        (".dwp/command/deploy", "#!/bin/sh\ngit commit -q --allow-empty -m deployed -m 'dwp-state: done'\n"),
        (".dwp/policy.toml", "[defaults]\nretry.logic = 0\n\n[states.deploy]\ntier = \"gate\"\ngate.approvers = [\"lead@example.com\"]\n"),
    ]);
    let empty = r.baton(&["inbox"]);
    assert_eq!(empty.status.code(), Some(0), "{}", String::from_utf8_lossy(&empty.stderr));

    task(&r, "dead", "build");
    run_json(&r, &["--branch", "dead"]);
    let card = "We need a person.\n\n## Decision required\n\nContext: the migration drops a column\nOptions:\nA. Drop it now\nB. Keep it one more release\nRecommended: B\nRisk: data loss if A is wrong\nDefault: none\n";
    r.git(&["branch", "stuck", "main"]);
    r.baton_ok(&["send", "--branch", "stuck", "blocked", "-m", card]);
    r.git(&["branch", "asks", "main"]);
    r.baton_ok(&["send", "--branch", "asks", "waiting", "-m", "Which region?"]);
    task(&r, "ship", "deploy");
    task(&r, "aside", "build");
    r.baton_ok(&["park", "aside", "-m", "later"]);
    r.baton_ok(&["breakers", "open", "provider", "--for", "1h"]);

    let out = r.baton(&["inbox", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let items: Vec<serde_json::Value> = common::json_lines(&String::from_utf8_lossy(&out.stdout));
    let kinds: std::collections::BTreeMap<String, &serde_json::Value> =
        items.iter().map(|i| (i["kind"].as_str().unwrap().to_owned(), i)).collect();
    assert_eq!(
        kinds.keys().map(String::as_str).collect::<Vec<_>>(),
        ["blocked", "breaker", "dead-letter", "gate", "parked", "waiting"],
        "{items:#?}"
    );
    assert_eq!(items.len(), 6);
    let stuck = kinds["blocked"];
    assert_eq!(stuck["summary"], "the migration drops a column");
    assert_eq!(stuck["options"], serde_json::json!(["A. Drop it now", "B. Keep it one more release"]));
    assert_eq!(stuck["recommended"], "B");
    for (kind, command) in [
        ("dead-letter", "git baton dlq retry dead"),
        ("gate", "git baton approve ship"),
        ("parked", "git baton unpark aside"),
        ("breaker", "git baton breakers reset provider"),
        ("waiting", "git baton send --branch asks"),
    ] {
        assert!(kinds[kind]["command"].as_str().unwrap().starts_with(command), "{kind}: {:#?}", kinds[kind]);
    }
    let since: Vec<i64> = items.iter().map(|i| i["since"].as_i64().unwrap()).collect();
    assert!(since.windows(2).all(|w| w[0] <= w[1]), "oldest first: {since:?}");

    // --mine: a stranger does not see the gate they may not approve.
    let mine =
        r.baton_cmd(&["inbox", "--json", "--mine"]).env("GIT_COMMITTER_EMAIL", "intern@example.com").output().unwrap();
    let text = String::from_utf8_lossy(&mine.stdout);
    assert!(!text.contains("\"kind\":\"gate\""), "{text}");
    let lead =
        r.baton_cmd(&["inbox", "--json", "--mine"]).env("GIT_COMMITTER_EMAIL", "lead@example.com").output().unwrap();
    assert!(String::from_utf8_lossy(&lead.stdout).contains("\"kind\":\"gate\""));
    // The table says the same for people.
    let table = String::from_utf8_lossy(&r.baton(&["inbox"]).stdout).into_owned();
    assert!(table.contains("→ git baton unpark aside") && table.contains("recommended: B"), "{table}");
}
