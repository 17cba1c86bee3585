//! History commands against real repositories and the real runner: `log`, `checkpoints`,
//! `resume`, `metrics`, `graph`.

mod common;

use common::TestRepo;
use serde_json::Value;

const AGENT: &str = "Agent <agent@example.com>";
const HUMAN: &str = "Test Author <author@example.com>";

/// `plan` answers `build` and marks the checkpoint `planned`; `build` fails (exit 3) until the
/// marker file exists, then answers `done`; `review` answers `blocked`. Handlers commit as Agent.
fn workflow_repo(marker: &std::path::Path) -> TestRepo {
    let r = TestRepo::new();
    r.write("README", "project\n");
    let agent = "GIT_AUTHOR_NAME=Agent GIT_AUTHOR_EMAIL=agent@example.com";
    r.handler(
        ".dwp/command/plan",
        &format!(
            "#!/bin/sh\nset -e\necho plan > plan.txt\ngit add plan.txt\n{agent} git commit -q -m planned -m 'Plan is in plan.txt.' -m 'Planned-by: agent\ndwp-checkpoint: planned\ndwp-state: build'\n"
        ),
    );
    r.handler(
        ".dwp/command/build",
        &format!(
            "#!/bin/sh\nset -e\nif [ ! -e {m} ]; then\n  echo broken > build.txt\n  git add build.txt\n  {agent} git commit -q -m 'half a build'\n  echo 'compiler exploded' >&2\n  exit 3\nfi\n{agent} git commit -q --allow-empty -m built -m 'dwp-state: done'\n",
            m = marker.display()
        ),
    );
    r.handler(
        ".dwp/command/review",
        &format!("#!/bin/sh\n{agent} git commit -q --allow-empty -m 'needs a human' -m 'dwp-state: blocked'\n"),
    );
    // One failed run is what these tests count: no retries.
    r.write(common::NO_RETRIES.0, common::NO_RETRIES.1);
    r.commit_all("handlers");
    r
}

fn json_lines(text: &str) -> Vec<Value> {
    common::json_lines(text)
}

/// The whole story on branch t1: send plan → run plan (→ build, checkpoint) → run build fails →
/// resume from the checkpoint → run build succeeds. Plus t2: send review → run → blocked.
fn story() -> (TestRepo, tempfile::TempDir) {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("fixed");
    let r = workflow_repo(&marker);
    r.git(&["branch", "t1", "main"]);
    r.baton_ok(&["send", "--branch", "t1", "plan", "-m", "plan the work"]);
    r.baton_ok(&["run", "--branch", "t1"]);
    assert_eq!(r.state_of("t1"), "build");
    r.baton_ok(&["run", "--branch", "t1"]);
    assert_eq!(r.state_of("t1"), "failed");
    r.baton_ok(&["resume", "t1", "--checkpoint", "planned"]);
    assert_eq!(r.state_of("t1"), "build");
    std::fs::write(&marker, "").unwrap();
    r.baton_ok(&["run", "--branch", "t1"]);
    assert_eq!(r.state_of("t1"), "done");
    r.git(&["branch", "t2", "main"]);
    r.baton_ok(&["send", "--branch", "t2", "review", "-m", "look at it"]);
    r.baton_ok(&["run", "--branch", "t2"]);
    assert_eq!(r.state_of("t2"), "blocked");
    (r, marker_dir)
}

/// `git log --format=%H` of a branch, oldest first, first parent.
fn commits(r: &TestRepo, rev: &str) -> Vec<String> {
    r.git(&["rev-list", "--reverse", "--first-parent", rev]).lines().map(str::to_owned).collect()
}

#[test]
fn a_workflow_with_failure_checkpoint_and_resume_gives_exact_runs_and_metrics() {
    let (r, _marker) = story();
    let log = json_lines(&r.baton_ok(&["log", "t1", "--json"]));
    let summary: Vec<(String, String, String, String)> = log
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
            (s("kind"), s("state"), s("outcome"), if e["kind"] == "run" { s("result") } else { s("event") })
        })
        .collect();
    let t = |a: &str, b: &str, c: &str, d: &str| (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned());
    assert_eq!(
        summary,
        [
            t("event", "-", "plan", "send"),
            t("run", "plan", "build", "succeeded"),
            t("run", "build", "failed", "failed"),
            t("event", "failed", "build", "resume"),
            t("run", "build", "done", "succeeded"),
        ]
    );

    // Field by field against git's own reading of the history.
    let ids = commits(&r, "t1");
    let (plan, failed, resumed, built) = (&log[1], &log[2], &log[3], &log[4]);
    for run in [plan, failed, built] {
        let claim = run["commit"].as_str().unwrap();
        assert_eq!(r.state_of(claim), "working");
        assert_eq!(run["run_id"].as_str(), r.trailer_of(claim, "dwp-run-id").as_deref());
        assert_eq!(run["runner"].as_str(), r.trailer_of(claim, "dwp-runner-id").as_deref());
        assert_eq!(run["branch"], "t1");
        let started = run["started"].as_i64().unwrap();
        let finished = run["finished"].as_i64().unwrap();
        assert_eq!(started, r.git(&["log", "-1", "--format=%ct", claim]).trim().parse::<i64>().unwrap());
        assert!(finished >= started);
        assert_eq!(run["duration_ms"].as_i64().unwrap(), (finished - started) * 1000);
        let end = run["end"].as_str().unwrap();
        let pos = |id: &str| ids.iter().position(|c| c == id).unwrap();
        assert!(pos(end) > pos(claim));
    }
    assert_eq!(plan["author"], AGENT);
    assert_eq!(plan["requested_by"], HUMAN);
    assert_eq!(plan["commits"], 1);
    assert_eq!(plan["trigger"], log[0]["commit"]);
    assert_eq!(failed["exit_code"], 3);
    assert!(failed["error"].as_str().unwrap().contains("status 3"), "{failed}");
    assert_eq!(failed["author"], AGENT, "the handler's partial commit, not the runner's record");
    assert_eq!(failed["commits"], 1);
    assert_eq!(failed["requested_by"], AGENT, "plan's answer asked for build");
    assert_eq!(resumed["resumed_from"], plan["end"]);
    assert_eq!(resumed["author"], HUMAN);
    assert_eq!(built["exit_code"], Value::Null);
    assert_eq!(built["requested_by"], HUMAN, "the resume asked for build this time");
    assert_eq!(built["end"].as_str().unwrap(), r.head("t1"));

    let m: Value = serde_json::from_str(&r.baton_ok(&["metrics", "--json"])).unwrap();
    assert_eq!(m["runs"], 4);
    assert_eq!(m["finished"], 4);
    let st = |s: &str, k: &str| m["states"][s][k].clone();
    assert_eq!((st("plan", "runs"), st("plan", "succeeded"), st("plan", "failed")), (1.into(), 1.into(), 0.into()));
    assert_eq!((st("build", "runs"), st("build", "succeeded"), st("build", "failed")), (2.into(), 1.into(), 1.into()));
    assert_eq!((st("review", "runs"), st("review", "stalled")), (1.into(), 0.into()));
    for s in ["plan", "build", "review"] {
        let (p50, p95, max) = (st(s, "p50_ms"), st(s, "p95_ms"), st(s, "max_ms"));
        let (p50, p95, max) = (p50.as_u64().unwrap(), p95.as_u64().unwrap(), max.as_u64().unwrap());
        assert!(p50 <= p95 && p95 <= max && max < 60_000, "{s}: {p50} {p95} {max}");
        assert_eq!(p50 % 1000, 0, "committer times have whole seconds");
    }
    // Each `git baton run` process is its own runner (host:pid).
    let runners = m["runners"].as_object().unwrap();
    assert_eq!(runners.len(), 4, "{runners:?}");
    let failed_by = failed["runner"].as_str().unwrap();
    for (id, r) in runners {
        assert_eq!(r["runs"], 1);
        assert_eq!(r["failed"], u64::from(id == failed_by), "{id}");
    }
    assert_eq!(m["escalation_rate"], 0.25, "review ended blocked: 1 of 4");
    // The glob narrows it; main's own history (no states) adds nothing and shared history counts
    // once whatever the branch order.
    let m1: Value = serde_json::from_str(&r.baton_ok(&["metrics", "--json", "--branch", "t1"])).unwrap();
    assert_eq!((m1["runs"].clone(), m1["escalation_rate"].clone()), (3.into(), 0.0.into()));
    let text = r.baton_ok(&["metrics"]);
    assert!(text.contains("escalation rate 25.0%"), "{text}");
}

#[test]
fn log_table_since_and_usage_errors() {
    let (r, _marker) = story();
    let table = r.baton_ok(&["log", "t1"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    assert!(lines[0].starts_with("WHEN"));
    assert!(lines[3].contains("build -> failed") && lines[3].contains("failed(3)"), "{table}");
    assert!(lines[2].contains("Agent"), "executed by the agent: {table}");
    // Default branch: the checked-out one (main has no runs: no bare header; stderr says so).
    let none = r.baton(&["log"]);
    assert!(none.status.success() && none.stdout.is_empty());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no runs on main"));
    // --since in the future: nothing; in the past: everything; --all lists both task branches.
    assert_eq!(r.baton_ok(&["log", "t1", "--json", "--since", "2999-01-01"]), "");
    assert_eq!(json_lines(&r.baton_ok(&["log", "t1", "--json", "--since", "2001-09-09T01:46:40Z"])).len(), 5);
    let all = json_lines(&r.baton_ok(&["log", "--all", "--json"]));
    assert_eq!(all.iter().filter(|e| e["branch"] == "t1").count(), 5);
    assert_eq!(all.iter().filter(|e| e["branch"] == "t2").count(), 2);
    for bad in [&["log", "--since", "last tuesday"][..], &["log", "--all", "t1"]] {
        assert_eq!(r.baton(bad).status.code(), Some(2), "{bad:?}");
    }
    assert_eq!(r.baton(&["log", "no-such-branch"]).status.code(), Some(1));
}

/// A branch that shares history with another is listed once with `--all`, and `--since` cuts a
/// run that started before it while keeping the state context it needs.
#[test]
fn shared_history_is_listed_once_and_since_keeps_context() {
    let r = TestRepo::new();
    r.commit_all("root");
    let send = |b: &str, s: &str, date: &str| {
        let out = r.baton_cmd(&["send", "--branch", b, s]).env("GIT_COMMITTER_DATE", date).output().unwrap();
        assert!(out.status.success());
    };
    let claim = |b: &str, origin: &str, run: &str, date: &str| {
        let msg =
            format!("claim\n\ndwp-origin-state: {origin}\ndwp-run-id: {run}\ndwp-runner-id: x:1\ndwp-state: working");
        let tree = format!("{b}^{{tree}}");
        let id =
            r.git_cmd(&["commit-tree", &tree, "-p", b, "-m", &msg]).env("GIT_COMMITTER_DATE", date).output().unwrap();
        r.git(&["update-ref", &format!("refs/heads/{b}"), String::from_utf8(id.stdout).unwrap().trim()]);
    };
    send("main", "build", "1000000000 +0000");
    claim("main", "build", "r1", "1000000100 +0000");
    send("main", "review", "1000000200 +0000");
    r.git(&["branch", "side", "main"]);
    claim("side", "review", "r2", "1000000300 +0000");
    send("side", "done", "1000000400 +0000");
    let all = json_lines(&r.baton_ok(&["log", "--all", "--json"]));
    let keys: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|e| (e["branch"].as_str().unwrap(), e["kind"].as_str().unwrap(), e["state"].as_str().unwrap_or("-")))
        .collect();
    assert_eq!(keys, [("main", "event", "-"), ("main", "run", "build"), ("side", "run", "review")]);
    // r1 started before --since: not listed; r2 after it, with its origin and requester known.
    let since = json_lines(&r.baton_ok(&["log", "side", "--json", "--since", "1000000250"]));
    assert_eq!(since.len(), 1, "{since:?}");
    assert_eq!(since[0]["run_id"], "r2");
    assert_eq!(since[0]["outcome"], "done");
    assert_eq!(since[0]["requested_by"], HUMAN);
    let m: Value = serde_json::from_str(&r.baton_ok(&["metrics", "--json"])).unwrap();
    assert_eq!(m["runs"], 2, "r1 counted once although both branches hold it");
}

/// `--since` reads what git reads (gix's port of git's date parser): "2 weeks ago", `2.weeks.ago`,
/// an ISO date. A run claimed 20 days ago is cut, one claimed yesterday is kept — and git's own
/// `log --since` agrees on which claim commits are recent.
#[test]
fn since_takes_git_relative_dates() {
    let r = TestRepo::new();
    r.commit_all("root");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // Two minutes earlier than whole days, so `yesterday` (a day before the binary's own now,
    // a moment later) is never the very second of the claim.
    let at = |days_ago: i64| format!("{} +0000", now - days_ago * 86_400 - 120);
    let send = |s: &str, date: &str| {
        let out = r.baton_cmd(&["send", "--branch", "main", s]).env("GIT_COMMITTER_DATE", date).output().unwrap();
        assert!(out.status.success());
    };
    let claim = |run: &str, date: &str| {
        let msg =
            format!("claim\n\ndwp-origin-state: build\ndwp-run-id: {run}\ndwp-runner-id: x:1\ndwp-state: working");
        let id = r
            .git_cmd(&["commit-tree", "main^{tree}", "-p", "main", "-m", &msg])
            .env("GIT_COMMITTER_DATE", date)
            .output()
            .unwrap();
        r.git(&["update-ref", "refs/heads/main", String::from_utf8(id.stdout).unwrap().trim()]);
        r.head("main")
    };
    send("build", &at(21));
    let old = claim("old", &at(20));
    send("build", &at(2));
    let new = claim("new", &at(1));
    send("done", &at(1));
    let runs = |since: &str| -> Vec<String> {
        let out = r.baton_ok(&["log", "main", "--json", "--since", since]);
        json_lines(&out)
            .iter()
            .filter(|e| e["kind"] == "run")
            .map(|e| e["run_id"].as_str().unwrap().to_owned())
            .collect()
    };
    for since in ["2 weeks ago", "2.weeks.ago", "14 days ago", "two weeks ago"] {
        assert_eq!(runs(since), ["new"], "--since {since:?}");
    }
    assert_eq!(runs("4.weeks.ago"), ["old", "new"]);
    assert_eq!(runs("yesterday"), Vec::<String>::new(), "claimed a day and two minutes ago: before `yesterday`");
    // git agrees on which claims are newer than two weeks.
    let by_git = r.git(&["log", "--since=2 weeks ago", "--format=%H", "main"]);
    assert!(by_git.lines().any(|l| l == new) && !by_git.lines().any(|l| l == old), "{by_git}");
    // metrics reads the same dates.
    let m: Value = serde_json::from_str(&r.baton_ok(&["metrics", "--json", "--since", "2 weeks ago"])).unwrap();
    assert_eq!(m["runs"], 1, "{m}");
    // Not a date: a usage error naming the value, nothing printed.
    let out = r.baton(&["log", "main", "--json", "--since", "2 fortnights hence"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid date \"2 fortnights hence\""));
}

/// With `--all-parents`, runs on a merged branch appear too; first-parent history skips them.
#[test]
fn all_parents_follows_merges() {
    let r = TestRepo::new();
    r.commit_all("root");
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.git(&["commit", "-q", "--allow-empty", "-m", "ask", "-m", "dwp-state: build"]);
    r.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "claim",
        "-m",
        "dwp-origin-state: build\ndwp-run-id: rf\ndwp-state: working",
    ]);
    r.git(&["commit", "-q", "--allow-empty", "-m", "answer", "-m", "dwp-state: done"]);
    r.git(&["checkout", "-q", "main"]);
    r.git(&["commit", "-q", "--allow-empty", "-m", "main work"]);
    r.git(&["merge", "-q", "--no-ff", "-m", "merge", "feature"]);
    assert_eq!(r.baton_ok(&["log", "main", "--json"]), "");
    let all = json_lines(&r.baton_ok(&["log", "main", "--json", "--all-parents"]));
    assert_eq!(all.len(), 2);
    assert_eq!((&all[1]["run_id"], &all[1]["outcome"]), (&Value::from("rf"), &Value::from("done")));
}

#[test]
fn graph_is_valid_mermaid_and_dot() {
    let (r, _marker) = story();
    let mermaid = r.baton_ok(&["graph"]);
    let mut lines = mermaid.lines();
    assert_eq!(lines.next(), Some("stateDiagram-v2"));
    let edge = regex::Regex::new(r"^    ([A-Za-z0-9_]+) --> ([A-Za-z0-9_]+): ([0-9]+)$").unwrap();
    let alias = regex::Regex::new(r#"^    state "[A-Za-z0-9._-]+" as [A-Za-z0-9_]+$"#).unwrap();
    let mut edges = Vec::new();
    for l in lines {
        if let Some(c) = edge.captures(l) {
            edges.push(format!("{}>{}:{}", &c[1], &c[2], &c[3]));
        } else {
            assert!(alias.is_match(l), "not Mermaid: {l:?}");
        }
    }
    edges.sort();
    assert_eq!(edges, ["build>done:1", "build>failed:1", "failed>build:1", "plan>build:1", "review>blocked:1"]);

    let dot = r.baton_ok(&["graph", "--format", "dot", "--branch", "t1"]);
    assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    let body: Vec<&str> = dot.lines().collect();
    assert_eq!(body.first(), Some(&"digraph baton {"));
    assert_eq!(body.last(), Some(&"}"));
    let dot_edge =
        regex::Regex::new(r#"^    "([A-Za-z0-9._-]+)" -> "([A-Za-z0-9._-]+)" \[label="([0-9]+)"\];$"#).unwrap();
    let node = regex::Regex::new(r#"^    "[A-Za-z0-9._-]+";$"#).unwrap();
    let mut n_edges = 0;
    for l in &body[1..body.len() - 1] {
        if dot_edge.is_match(l) {
            n_edges += 1;
        } else {
            assert!(node.is_match(l) || *l == "    rankdir=LR;", "not dot: {l:?}");
        }
    }
    assert_eq!(n_edges, 4, "t1 only: review>blocked is t2's\n{dot}");
    if std::process::Command::new("dot").arg("-V").output().is_ok() {
        let mut child = std::process::Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), dot.as_bytes()).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "dot refused:\n{dot}");
    }
    assert_eq!(r.baton(&["graph", "--format", "png"]).status.code(), Some(2));
}

#[test]
fn checkpoints_json_lists_newest_first_and_marks_shadowed() {
    let (r, _marker) = story();
    let cps = json_lines(&r.baton_ok(&["checkpoints", "t1", "--json"]));
    assert_eq!(cps.len(), 1);
    let cp = &cps[0];
    assert_eq!(
        (&cp["branch"], &cp["name"], &cp["state"], &cp["current"]),
        (&"t1".into(), &"planned".into(), &"build".into(), &true.into())
    );
    assert_eq!(cp["commit"].as_str().unwrap(), r.git(&["log", "-1", "--format=%H", "--grep=^planned", "t1"]).trim());
    assert_eq!(
        cp["time"].as_i64().unwrap(),
        r.git(&["log", "-1", "--format=%ct", cp["commit"].as_str().unwrap()]).trim().parse::<i64>().unwrap()
    );
    // A newer commit with the same name shadows the older one; resume takes the newer.
    r.baton_ok(&["send", "--branch", "t1", "polish", "--trailer", "dwp-checkpoint: planned"]);
    let cps = json_lines(&r.baton_ok(&["checkpoints", "t1", "--json"]));
    assert_eq!(
        cps.iter().map(|c| (c["state"].as_str().unwrap(), c["current"].as_bool().unwrap())).collect::<Vec<_>>(),
        [("polish", true), ("build", false)]
    );
    let text = r.baton_ok(&["checkpoints", "t1"]);
    assert!(text.lines().nth(1).unwrap().ends_with("build (shadowed)"), "{text}");
    r.baton_ok(&["send", "--branch", "t1", "done"]);
    r.baton_ok(&["resume", "t1", "--checkpoint", "planned"]);
    assert_eq!(r.state_of("t1"), "polish");
}

#[test]
fn resume_writes_one_commit_keeping_or_restoring_the_tree() {
    let (r, _marker) = story();
    let checkpoint = r.git(&["log", "-1", "--format=%H", "--grep=^planned", "t1"]).trim().to_owned();
    for restore in [false, true] {
        let head = r.head("t1");
        let mut args = vec!["resume", "t1", "--checkpoint", "planned", "--json"];
        if restore {
            args.push("--restore-tree");
        }
        let out: Value = serde_json::from_str(&r.baton_ok(&args)).unwrap();
        let new = r.head("t1");
        assert_eq!(out["commit"], new.as_str());
        assert_eq!(out["parent"], head.as_str());
        assert_eq!(out["resumed_from"], checkpoint.as_str());
        assert_eq!(r.git(&["rev-list", "--count", &format!("{head}..t1")]).trim(), "1");
        assert_eq!(r.head("t1^"), head);
        let want_tree = if restore { format!("{checkpoint}^{{tree}}") } else { format!("{head}^{{tree}}") };
        assert_eq!(r.head("t1^{tree}"), r.head(&want_tree), "restore={restore}");
        let trailers = r.git(&["log", "-1", "--format=%(trailers:only,unfold)", "t1"]);
        assert_eq!(trailers.trim_end(), format!("Planned-by: agent\ndwp-resumed-from: {checkpoint}\ndwp-state: build"));
        assert_eq!(r.git(&["log", "-1", "--format=%s", "t1"]).trim(), "baton: resume build from checkpoint planned");
        assert_eq!(r.git(&["log", "-1", "--format=%b", "t1"]).lines().next(), Some("Plan is in plan.txt."));
    }
    // The restored tree lacks build.txt (written by the failed build after the checkpoint).
    assert!(r.git(&["ls-tree", "--name-only", "t1"]).lines().all(|f| f != "build.txt"));
    assert!(r.git(&["ls-tree", "--name-only", "t1^"]).lines().any(|f| f == "build.txt"));
}

#[test]
fn resume_refuses_bad_input_without_writing() {
    let (r, _marker) = story();
    let claim = json_lines(&r.baton_ok(&["log", "t1", "--json"]))[1]["commit"].as_str().unwrap().to_owned();
    r.git(&["branch", "other", "main"]);
    r.git(&["checkout", "-q", "other"]);
    r.git(&["commit", "-q", "--allow-empty", "-m", "elsewhere", "-m", "dwp-state: build"]);
    r.git(&["commit", "-q", "--allow-empty", "-m", "bad", "-m", "dwp-state: ../x"]);
    r.git(&["checkout", "-q", "main"]);
    let before = r.git(&["for-each-ref", "--format=%(refname) %(objectname)"]);
    let objects = r.git(&["count-objects"]);
    for (args, code) in [
        (vec!["resume", "t1", "--checkpoint", "nope"], 1),
        (vec!["resume", "t1", "--commit", &claim], 1),
        (vec!["resume", "other", "--commit", "other"], 1),
        (vec!["resume", "t1", "--commit", "other~1"], 1),
        (vec!["resume", "t1", "--commit", "main"], 1),
        (vec!["resume", "nobranch", "--checkpoint", "planned"], 1),
        (vec!["resume", "t1"], 2),
        (vec!["resume", "t1", "--checkpoint", "planned", "--commit", "t1"], 2),
    ] {
        let out = r.baton(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
    assert_eq!(r.git(&["for-each-ref", "--format=%(refname) %(objectname)"]), before);
    assert_eq!(r.git(&["count-objects"]), objects, "no commit object written either");
    let err = String::from_utf8_lossy(&r.baton(&["resume", "t1", "--checkpoint", "nope"]).stderr).into_owned();
    assert!(err.contains("nope"), "{err}");
}

/// A branch held by a live lease is not resumed under the runner's feet.
#[test]
fn resume_refuses_a_branch_with_a_live_lease() {
    let r = TestRepo::new();
    r.commit_all("root");
    r.baton_ok(&["send", "build", "--trailer", "dwp-checkpoint: start"]);
    let msg = "claim\n\ndwp-origin-state: build\ndwp-run-id: live\ndwp-lease-seconds: 100000\ndwp-state: working";
    let id = r
        .git_cmd(&["commit-tree", "main^{tree}", "-p", "main", "-m", msg])
        .env_remove("GIT_COMMITTER_DATE")
        .output()
        .unwrap();
    r.git(&["update-ref", "refs/heads/main", String::from_utf8(id.stdout).unwrap().trim()]);
    let head = r.head("main");
    let out = r.baton(&["resume", "main", "--checkpoint", "start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("live"));
    assert_eq!(r.head("main"), head);
}
