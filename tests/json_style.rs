//! One JSON style for every `--json` (docs/json.md): JSON Lines — one object per line, a list one
//! line per item (an empty list zero lines, exit 0), a single answer one line. One helper
//! ([`common::json_lines`]) parses the output of every command, on a repository with data and on
//! an empty one; and every command that has `--json` must be in the tables below.

mod common;

use std::collections::BTreeSet;

use common::{json_lines, run_json, TestRepo, BATON};
use serde_json::Value;

const EMAIL: &str = "committer@example.com";

/// `plan` marks a checkpoint and answers `build`; `build` always fails (a dead letter: no retries).
const PLAN: &str = "#!/bin/sh\nset -e\necho plan > plan.txt\ngit add plan.txt\n\
                    git commit -q -m planned -m 'dwp-checkpoint: planned\ndwp-state: build'\n";
const BUILD: &str = "#!/bin/sh\necho 'error: it broke'\nexit 1\n";
const DONE: &str = "#!/bin/sh\nset -e\ngit commit -q --allow-empty -m shipped -m 'dwp-state: done'\n";

fn policy() -> String {
    format!(
        "[defaults]\nretry.transient = 0\nretry.timeout = 0\nretry.logic = 0\n\
         [states.deploy]\ntier = \"gate\"\ngate.approvers = [\"{EMAIL}\"]\ngate.on_changes = \"plan\"\n"
    )
}

/// How many lines a command must print.
#[derive(Debug, Clone, Copy)]
enum Lines {
    Exactly(usize),
    AtLeast(usize),
}

/// Run `git baton ARGS` (must exit 0, but see below), parse its stdout with the one helper, check the count.
fn check(r: &TestRepo, args: &[&str], want: Lines) -> Vec<Value> {
    let out = r.baton(args);
    let code = out.status.code();
    // `inbox` exits 3 when something waits for a person, `doctor` 1 when a check fails.
    let ok = code == Some(0) || (args[0] == "inbox" && code == Some(3)) || (args[0] == "doctor" && code == Some(1));
    assert!(ok, "{args:?} failed ({code:?}): {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("UTF-8 JSON");
    let lines = json_lines(&text);
    match want {
        Lines::Exactly(n) => assert_eq!(lines.len(), n, "{args:?}:\n{text}"),
        Lines::AtLeast(n) => assert!(lines.len() >= n, "{args:?}: fewer than {n} lines:\n{text}"),
    }
    lines
}

/// A board with data: a dead letter with a checkpoint (t1), a gated task with an envelope (t2), a
/// task without a handler (t3) and a kept result, a task ready to run (t4), an open breaker.
fn board() -> TestRepo {
    let r = TestRepo::new();
    r.write("README", "project\n");
    r.handler(".dwp/command/plan", PLAN);
    r.handler(".dwp/command/build", BUILD);
    r.handler(".dwp/command/deploy", DONE);
    r.handler(".dwp/command/ship", DONE);
    r.handler(".dwp/notify", "#!/bin/sh\ncat > /dev/null\n");
    r.write(".dwp/policy.toml", &policy());
    r.commit_all("handlers");
    for b in ["t1", "t2", "t3", "t4", "t5", "t6"] {
        r.git(&["branch", b, "main"]);
    }
    r.baton_ok(&["send", "--branch", "t1", "plan", "-m", "plan it"]);
    run_json(&r, &[]);
    run_json(&r, &[]);
    assert_eq!(r.trailer_of("t1", "dwp-dead-letter").as_deref(), Some("logic"));
    r.baton_ok(&["send", "--branch", "t2", "deploy", "--goal", "Ship it.", "--accept", "it runs"]);
    r.baton_ok(&["send", "--branch", "t3", "review"]);
    r.baton_ok(&["send", "--branch", "t5", "deploy"]);
    r.baton_ok(&["send", "--branch", "t6", "deploy"]);
    let t3 = r.head("t3");
    r.git(&["update-ref", "refs/baton/rejected/t3/r1", &t3]);
    r.git(&["update-ref", "refs/baton/rejected/t3/r2", &t3]);
    r.baton_ok(&["send", "--branch", "t4", "ship"]);
    r.baton_ok(&["breakers", "open", "nightly"]);
    r
}

/// Reads: the same command twice in a row answers the same way.
fn reads() -> Vec<(Vec<&'static str>, Lines)> {
    use Lines::*;
    vec![
        (vec!["trailers", "t1", "t3"], Exactly(2)),
        (vec!["status"], Exactly(7)),
        (vec!["status", "--scratch"], Exactly(1)),
        (vec!["events", "t1"], AtLeast(4)),
        (vec!["log", "t1"], AtLeast(2)),
        (vec!["checkpoints", "t1"], Exactly(1)),
        (vec!["metrics"], Exactly(1)),
        (vec!["gc", "--dry-run"], Exactly(0)),
        (vec!["conflicts"], Exactly(2)),
        (vec!["conflicts", "show", "r1"], Exactly(1)),
        (vec!["hooks", "status"], Exactly(4)),
        (vec!["policy", "--state", "deploy"], Exactly(1)),
        (vec!["inbox"], AtLeast(4)),
        (vec!["ready"], Exactly(1)),
        (vec!["breakers"], Exactly(2)), // build (closed, one failure) and nightly
        (vec!["budget", "t1"], Exactly(1)),
        (vec!["dlq"], Exactly(1)),
        (vec!["dlq", "list"], Exactly(1)),
        (vec!["notify", "--dry-run"], AtLeast(1)),
        (vec!["task", "show", "t2"], Exactly(1)),
        (vec!["migrate-aynig", "--dry-run"], Exactly(0)), // no AYNIG worktrees left behind
        (vec!["doctor"], AtLeast(5)),
    ]
}

/// Writes, in this order (each changes the board the next one sees).
fn writes() -> Vec<(Vec<&'static str>, Lines)> {
    use Lines::*;
    vec![
        (vec!["send", "--branch", "t3", "review", "-m", "again"], Exactly(1)),
        (vec!["set-state", "--branch", "t3", "--dwp-state", "review"], Exactly(1)),
        (vec!["park", "t3"], Exactly(1)),
        (vec!["unpark", "t3"], Exactly(1)),
        (vec!["approve", "t2"], Exactly(1)),
        (vec!["reject", "t5", "-m", "no"], Exactly(1)),
        (vec!["request-changes", "t6", "-m", "more"], Exactly(1)),
        (vec!["resume", "t1", "--checkpoint", "planned"], Exactly(1)),
        (vec!["breakers", "reset", "nightly"], Exactly(1)),
        (vec!["breakers", "open", "nightly"], Exactly(1)),
        (vec!["conflicts", "apply", "r1", "--force"], Exactly(1)),
        (vec!["conflicts", "drop", "r2"], Exactly(1)),
        (vec!["run", "--branch", "t4"], AtLeast(2)),
        (vec!["dlq", "sweep", "--dry-run"], Exactly(0)),
        (vec!["spawn", "kid", "review", "--from", "main"], Exactly(1)),
        (vec!["tree"], AtLeast(1)), // the spawned child and its parent
        (vec!["watch", "--interval", "0.1", "--max-ticks", "1"], AtLeast(0)),
    ]
}

fn with_json(args: &[&'static str]) -> Vec<&'static str> {
    let mut a = args.to_vec();
    a.push("--json");
    a
}

#[test]
fn every_command_prints_json_lines_on_a_board_with_data() {
    let r = board();
    for (args, want) in reads() {
        check(&r, &with_json(&args), want);
    }
    for (args, want) in writes() {
        check(&r, &with_json(&args), want);
    }
    // install: a workflow pack from another repository (one line: what was installed).
    let pack = TestRepo::new();
    pack.handler(".dwp/command/lint", DONE);
    pack.commit_all("pack");
    check(&r, &["install", pack.path.to_str().unwrap(), "--json"], Lines::Exactly(1));
    // man --install: one line per page written.
    let man = tempfile::tempdir().unwrap();
    check(&r, &["man", "--install", man.path().to_str().unwrap(), "--json"], Lines::AtLeast(2));
    // report -o FILE: one line saying what was written.
    let page = man.path().join("report.html");
    check(&r, &["report", "-o", page.to_str().unwrap(), "--json"], Lines::Exactly(1));
    // The dead letter's own commands, after the reads above listed it.
    r.baton_ok(&["send", "--branch", "t1", "build"]);
    run_json(&r, &[]);
    check(&r, &["dlq", "retry", "t1", "--json"], Lines::Exactly(1));
    run_json(&r, &[]);
    check(&r, &["dlq", "drop", "t1", "-m", "give up", "--json"], Lines::Exactly(1));
}

/// An empty result is zero lines and exit 0; a report (metrics, policy, scratch) is still one
/// line; the hooks are listed whether installed or not.
#[test]
fn an_empty_board_prints_zero_lines_for_every_list() {
    let r = TestRepo::new();
    r.write("README", "project\n");
    r.commit_all("first");
    use Lines::*;
    let table: Vec<(Vec<&str>, Lines)> = vec![
        (vec!["status"], Exactly(1)), // main itself: a branch without a state
        (vec!["status", "--branch", "task/*"], Exactly(0)),
        (vec!["status", "--scratch"], Exactly(1)),
        (vec!["trailers", "HEAD"], Exactly(1)),
        (vec!["events"], Exactly(0)),
        (vec!["log", "main"], Exactly(0)),
        (vec!["checkpoints", "main"], Exactly(0)),
        (vec!["metrics"], Exactly(1)),
        (vec!["gc", "--dry-run"], Exactly(0)),
        (vec!["conflicts"], Exactly(0)),
        (vec!["hooks", "status"], Exactly(4)),
        (vec!["policy"], Exactly(1)),
        (vec!["inbox"], Exactly(0)),
        (vec!["ready"], Exactly(0)),
        (vec!["breakers"], Exactly(0)),
        (vec!["dlq"], Exactly(0)),
        (vec!["dlq", "sweep"], Exactly(0)),
        (vec!["notify", "--dry-run"], Exactly(0)),
        (vec!["run"], Exactly(0)),
        (vec!["watch", "--interval", "0.1", "--max-ticks", "1"], Exactly(0)),
    ];
    for (args, want) in table {
        let mut a = args.clone();
        a.push("--json");
        let lines = check(&r, &a, want);
        if matches!(want, Exactly(0)) {
            assert!(lines.is_empty());
        }
    }
}

/// `git baton help`'s commands (and their subcommands) that take `--json`.
fn commands_with_json() -> BTreeSet<String> {
    let help = |args: &[&str]| -> String {
        let out = std::process::Command::new(BATON).args(args).arg("--help").output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let names = |text: &str| -> Vec<String> {
        text.split("Commands:")
            .nth(1)
            .map(|rest| rest.split("\n\n").next().unwrap_or(""))
            .unwrap_or("")
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| *n != "help")
            .map(str::to_owned)
            .collect()
    };
    let mut found = BTreeSet::new();
    for top in names(&help(&[])) {
        let text = help(&[&top]);
        if text.contains("--json") {
            found.insert(top.clone());
        }
        for sub in names(&text) {
            if help(&[&top, &sub]).contains("--json") {
                found.insert(format!("{top} {sub}"));
            }
        }
    }
    found
}

/// Commands with `--json` whose stdout is not theirs to print on.
const NOT_ON_STDOUT: &[(&str, &str)] = &[
    ("hooks trigger", "detaches; with --json its run events go to <git dir>/baton/hooks.log, as JSON Lines"),
    ("agent", "runs only inside a handler (stdout is the run's log); tests/agent.rs parses its one line"),
    ("join", "runs only inside a handler (stdout is the run's log); tests/fanout.rs reads its line"),
    ("heartbeat", "needs a live lease; tests/cli_foundation.rs heartbeat_renews_the_lease parses its one line"),
    ("init", "changes .dwp/ (later commands need it clean); tests/cli_foundation.rs init_json_names_each_thing_done parses it"),
];

/// The tables above cover every command that has `--json`: a new command fails here until it is
/// added (and so parsed as JSON Lines).
#[test]
fn the_tables_cover_every_command_with_json() {
    let covered: Vec<Vec<&str>> = reads()
        .into_iter()
        .chain(writes())
        .map(|(a, _)| a)
        .chain([vec!["dlq", "retry"], vec!["dlq", "drop"], vec!["install"], vec!["man"], vec!["report"]])
        .collect();
    let missing: Vec<String> = commands_with_json()
        .into_iter()
        .filter(|c| {
            let words: Vec<&str> = c.split(' ').collect();
            !covered.iter().any(|a| a.starts_with(&words)) && !NOT_ON_STDOUT.iter().any(|(n, _)| n == c)
        })
        .collect();
    assert!(missing.is_empty(), "commands with --json not parsed by tests/json_style.rs: {missing:?}");
}
