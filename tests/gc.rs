//! `git baton gc` and `git baton status --scratch` against real repositories and real runs.

mod common;

use std::path::{Path, PathBuf};

use common::{event, repo_with, run_json, task, TestRepo};
use serde_json::Value;

const FAIL: &str = "#!/bin/sh\necho wip > wip.txt\necho 'something broke' >&2\nexit 1\n";
const ADVANCE: &str =
    "#!/bin/sh\nset -e\necho done > out.txt\ngit add out.txt\ngit commit -q -m 'did it' -m 'dwp-state: review'\n";

/// `gc --json ARGS…`, parsed (one object per line).
fn gc(r: &TestRepo, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["gc", "--json"];
    all.extend(args);
    let out = r.baton_ok(&all);
    common::json_lines(&out)
}

fn listed(removed: &[Value], kind: &str) -> Vec<String> {
    let mut v: Vec<String> =
        removed.iter().filter(|x| x["kind"] == kind).map(|x| x["path_or_ref"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

/// The one item of `kind` in the list, as a canonical path.
fn only_path(removed: &[Value], kind: &str) -> PathBuf {
    let items = listed(removed, kind);
    assert_eq!(items.len(), 1, "one {kind} in {removed:#?}");
    canonical(&items[0])
}

fn refs(r: &TestRepo, prefix: &str) -> Vec<String> {
    r.git(&["for-each-ref", "--format=%(refname)", prefix]).lines().map(str::to_owned).collect()
}

fn canonical(p: &str) -> PathBuf {
    Path::new(p).canonicalize().unwrap_or_else(|_| PathBuf::from(p))
}

/// A failed run's log, kept slot and refs stay while its failure is the branch head, and go once
/// the branch moved on (the kept slot's uncommitted leftovers saved first). Scratch of a finished
/// run, an idle slot, a stale lease ref and another run's rejected ref go at once with `0s`.
#[test]
fn a_failure_keeps_its_scratch_until_the_branch_moves_on() {
    let r = repo_with(&[common::NO_RETRIES, (".dwp/command/build", FAIL), (".dwp/command/ship", ADVANCE)]);
    task(&r, "t1", "build");
    task(&r, "t2", "ship");
    let events = run_json(&r, &[]);
    let failed = event(&events, "t1", "failed");
    let run = failed["run_id"].as_str().unwrap().to_owned();
    let failed_log = canonical(failed["log"].as_str().unwrap());
    let kept_slot = canonical(failed["worktree"].as_str().unwrap());
    let shipped = event(&events, "t2", "succeeded");
    let done_log = canonical(shipped["log"].as_str().unwrap());
    assert!(failed_log.exists() && done_log.exists() && kept_slot.join("wip.txt").exists());

    let t1 = r.head("t1");
    r.git(&["update-ref", &format!("refs/baton/rejected/t1/{run}"), &t1]);
    r.git(&["update-ref", &format!("refs/baton/conflicts/t1/{run}"), &t1]);
    r.git(&["update-ref", "refs/baton/rejected/t1/an-older-run", &t1]);
    r.git(&["update-ref", "refs/baton/leases/x", "main"]);
    r.git(&["update-ref", "refs/baton/breakers/origin", "main"]);

    // --dry-run says what would go and removes nothing.
    let before = refs(&r, "refs/baton/");
    let would = gc(&r, &["--older-than", "0s", "--dry-run"]);
    assert_eq!(listed(&would, "ref"), ["refs/baton/leases/x", "refs/baton/rejected/t1/an-older-run"]);
    assert_eq!(only_path(&would, "log"), done_log);
    assert_eq!(listed(&would, "slot").len(), 1, "the idle slot of t2: {would:#?}");
    assert!(!listed(&would, "slot").iter().any(|p| canonical(p) == kept_slot));
    assert_eq!(refs(&r, "refs/baton/"), before);
    assert!(done_log.exists());
    for item in &would {
        assert!(!item["reason"].as_str().unwrap().is_empty());
        assert_eq!(item["bytes"].is_null(), item["kind"] == "ref", "{item}");
    }

    // For real: the same list, and the failure's scratch stays.
    let removed = gc(&r, &["--older-than", "0s"]);
    assert_eq!(removed, would);
    let idle_slot = canonical(listed(&removed, "slot")[0].as_str());
    assert!(!done_log.exists() && !idle_slot.exists());
    assert!(failed_log.exists() && kept_slot.join("wip.txt").exists());
    assert_eq!(
        refs(&r, "refs/baton/"),
        [
            // The failed run told its state's breaker (a streak of one identical error).
            "refs/baton/breakers/build".to_owned(),
            "refs/baton/breakers/origin".to_owned(),
            format!("refs/baton/conflicts/t1/{run}"),
            format!("refs/baton/rejected/t1/{run}"),
        ]
    );
    // git no longer lists the idle slot as a worktree; the kept one still is.
    let worktrees = r.git(&["worktree", "list", "--porcelain"]);
    assert!(!worktrees.contains(idle_slot.to_str().unwrap()), "{worktrees}");
    assert!(worktrees.contains(kept_slot.to_str().unwrap()), "{worktrees}");

    // The branch moves on: the failure's scratch can go, its leftovers saved first.
    r.baton_ok(&["send", "--branch", "t1", "build", "-m", "try again"]);
    let removed = gc(&r, &["--older-than", "0s"]);
    assert_eq!(only_path(&removed, "log"), failed_log);
    assert_eq!(only_path(&removed, "slot"), kept_slot);
    assert_eq!(
        listed(&removed, "ref"),
        [format!("refs/baton/conflicts/t1/{run}"), format!("refs/baton/rejected/t1/{run}")]
    );
    assert!(!failed_log.exists() && !kept_slot.exists());
    let salvage = refs(&r, "refs/baton/salvage/");
    assert_eq!(salvage.len(), 1, "{salvage:?}");
    assert_eq!(r.git(&["show", &format!("{}:wip.txt", salvage[0])]), "wip\n");
    let slot_reason = removed.iter().find(|x| x["kind"] == "slot").unwrap()["reason"].as_str().unwrap();
    assert!(slot_reason.contains(&salvage[0]), "{slot_reason}");
    assert_eq!(r.git(&["worktree", "list", "--porcelain"]).matches("worktree ").count(), 1);

    // The saved leftovers are scratch too, once old enough; other kinds of baton refs never are.
    let removed = gc(&r, &["--older-than", "0s"]);
    assert_eq!(listed(&removed, "ref"), salvage);
    assert_eq!(refs(&r, "refs/baton/"), ["refs/baton/breakers/build", "refs/baton/breakers/origin"]);

    // The next run of t1 works in a fresh slot.
    let events = run_json(&r, &[]);
    event(&events, "t1", "failed");
}

/// With the default limit (14 days) recent scratch stays and old scratch goes; a stale lease ref
/// goes whatever its age, a live one stays; deletion works on packed refs.
#[test]
fn the_age_limit_and_leases() {
    let r = repo_with(&[]);
    // A branch whose head is the working commit of run R9 (its lease renewal beside it).
    r.git(&["checkout", "-q", "-b", "w"]);
    r.git(&["commit", "-q", "--allow-empty", "-m", "claim", "-m", "dwp-state: working\ndwp-run-id: R9"]);
    r.git(&["checkout", "-q", "main"]);
    let renewal = r.git(&["commit-tree", "w^{tree}", "-p", "w", "-m", "renew\n\ndwp-run-id: R9"]);
    r.git(&["update-ref", "refs/baton/leases/w", renewal.trim()]);
    let other = r.git(&["commit-tree", "w^{tree}", "-p", "w", "-m", "renew\n\ndwp-run-id: R8"]);
    r.git(&["update-ref", "refs/baton/leases/main", other.trim()]);
    // Old (the fixed test date, 2023) and new (now) salvage refs.
    r.git(&["update-ref", "refs/baton/salvage/k-1/1", "main"]);
    let mut cmd = r.git_cmd(&["commit-tree", "main^{tree}", "-m", "fresh"]);
    cmd.env_remove("GIT_COMMITTER_DATE");
    let fresh = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
    r.git(&["update-ref", "refs/baton/salvage/k-1/2", fresh.trim()]);
    r.git(&["pack-refs", "--all"]);

    // Logs: old of a finished run, old of the running run, new of a finished run.
    let logs = r.path.join(".git/baton/logs").join(git_baton::repo::worktree::branch_key("w"));
    std::fs::create_dir_all(&logs).unwrap();
    for name in ["old.log", "R9.log", "new.log", "notes.txt"] {
        std::fs::write(logs.join(name), "output\n").unwrap();
    }
    for name in ["old.log", "R9.log", "notes.txt"] {
        let touched =
            std::process::Command::new("touch").args(["-d", "30 days ago"]).arg(logs.join(name)).status().unwrap();
        assert!(touched.success());
    }

    let removed = gc(&r, &[]);
    assert_eq!(listed(&removed, "ref"), ["refs/baton/leases/main", "refs/baton/salvage/k-1/1"]);
    assert_eq!(listed(&removed, "log"), [logs.join("old.log").to_str().unwrap()]);
    assert!(logs.join("R9.log").exists() && logs.join("new.log").exists() && logs.join("notes.txt").exists());
    assert_eq!(refs(&r, "refs/baton/"), ["refs/baton/leases/w", "refs/baton/salvage/k-1/2"]);
    let lease_reason = removed.iter().find(|x| x["path_or_ref"] == "refs/baton/leases/main").unwrap()["reason"].clone();
    assert!(lease_reason.as_str().unwrap().contains("R8"), "{lease_reason}");

    // The run ends (the head moves on): its lease ref goes at once, its log once old.
    r.git(&["update-ref", "refs/heads/w", "main"]);
    let removed = gc(&r, &["--older-than", "20d"]);
    assert_eq!(listed(&removed, "ref"), ["refs/baton/leases/w"]);
    assert_eq!(listed(&removed, "log"), [logs.join("R9.log").to_str().unwrap()]);
    assert!(gc(&r, &["--older-than", "20d"]).is_empty());
}

/// Lines for people name what went; a bad age is a usage error with one line.
#[test]
fn text_output_and_bad_ages() {
    let r = repo_with(&[]);
    r.git(&["update-ref", "refs/baton/leases/gone", "main"]);
    let out = r.baton_ok(&["gc", "--dry-run"]);
    assert!(out.starts_with("would remove ref refs/baton/leases/gone: "), "{out}");
    assert_eq!(out.lines().count(), 1);
    let out = r.baton_ok(&["gc"]);
    assert!(out.starts_with("removed ref refs/baton/leases/gone: "), "{out}");
    assert_eq!(r.baton_ok(&["gc"]), "");
    for bad in ["14", "2w", "-1d", "1.5h", "d"] {
        let out = r.baton(&["gc", "--older-than", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("--older-than"), "{err}");
    }
}

/// `status --scratch` sums the scratch space up: logs, slots, refs by kind.
#[test]
fn status_scratch_reports_sizes() {
    let r = repo_with(&[common::NO_RETRIES, (".dwp/command/build", FAIL), (".dwp/command/ship", ADVANCE)]);
    let empty: Value = serde_json::from_str(&r.baton_ok(&["status", "--scratch", "--json"])).unwrap();
    assert_eq!(empty["logs"], serde_json::json!({"count": 0, "bytes": 0}));
    assert_eq!(empty["slots"], serde_json::json!({"count": 0, "kept": 0, "locked": 0, "bytes": 0}));
    assert_eq!(empty["refs"], serde_json::json!({"conflicts": 0, "leases": 0, "rejected": 0, "salvage": 0}));

    task(&r, "t1", "build");
    task(&r, "t2", "ship");
    run_json(&r, &[]);
    r.git(&["update-ref", "refs/baton/leases/x", "main"]);
    r.git(&["update-ref", "refs/baton/breakers/origin", "main"]);
    let s: Value = serde_json::from_str(&r.baton_ok(&["status", "--scratch", "--json"])).unwrap();
    assert_eq!(s["logs"]["count"], 2);
    assert!(s["logs"]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(s["slots"]["count"], 2);
    assert_eq!(s["slots"]["kept"], 1);
    assert_eq!(s["slots"]["locked"], 0);
    assert!(s["slots"]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(s["refs"]["leases"], 1);
    assert_eq!(s["refs"]["breakers"], 2, "build's (from the failed run) and origin");
    assert!(canonical(s["root"].as_str().unwrap()).ends_with(".git/baton"));

    let text = r.baton_ok(&["status", "--scratch"]);
    assert!(text.contains("logs") && text.contains("slots") && text.contains("leases 1"), "{text}");

    // A slot whose lock a runner holds is in use: counted as such, never removed.
    let slots = r.path.join(".git/baton/worktrees");
    let idle = (0..2).map(|n| slots.join(format!("slot-{n}"))).find(|p| !p.with_extension("kept").exists()).unwrap();
    let lock = std::fs::File::open(idle.with_extension("lock")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this test owns.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    let s: Value = serde_json::from_str(&r.baton_ok(&["status", "--scratch", "--json"])).unwrap();
    assert_eq!(s["slots"]["locked"], 1);
    assert!(listed(&gc(&r, &["--older-than", "0s"]), "slot").is_empty());
    assert!(idle.exists());
    drop(lock);
    assert_eq!(listed(&gc(&r, &["--older-than", "0s"]), "slot").len(), 1);
    assert!(!idle.exists());
}

/// While a handler runs, `gc --older-than 0s` removes nothing of it: not its log, not its slot (the
/// runner holds the slot's lock), not its lease renewal record; the run then finishes normally.
#[test]
fn a_running_run_keeps_everything() {
    let r = repo_with(&[(
        ".dwp/command/build",
        "#!/bin/sh\nset -e\necho started\nsleep 3\ngit commit -q --allow-empty -m slow -m 'dwp-state: done'\n",
    )]);
    task(&r, "t1", "build");
    let runner = r
        .baton_cmd(&["run", "--json", "--lease-seconds", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while refs(&r, "refs/baton/leases/").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no renewal record");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let removed = gc(&r, &["--older-than", "0s"]);
    let run_id = r.trailer_of("t1", "dwp-run-id").unwrap();
    assert!(!removed.iter().any(|x| x["path_or_ref"].as_str().unwrap().contains(&run_id)), "{removed:#?}");
    assert!(listed(&removed, "slot").is_empty(), "{removed:#?}");
    assert_eq!(refs(&r, "refs/baton/leases/"), ["refs/baton/leases/t1"]);
    let out = runner.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"succeeded\""));
    assert_eq!(r.state_of("t1"), "done");
}
