//! `git baton conflicts`: results the runner kept on `refs/baton/rejected/…` (and the older
//! `refs/baton/conflicts/…`) are listed, shown, applied by compare-and-swap and dropped; git reads
//! the refs back.

mod common;

use std::path::Path;

use common::{command_in, git_in, TestRepo, BATON};
use serde_json::Value;

/// A handler that rewinds its lease: the runner records a failure and keeps its result.
const REWINDING: &str =
    "#!/bin/sh\nset -e\ngit reset -q --hard HEAD~2\ngit commit -q --allow-empty -m mine -m 'dwp-state: done'\n";

/// A repository where a real run of `build` on `t1` had its result kept. Returns the run id.
fn rejected_run(r: &TestRepo) -> String {
    r.handler(".dwp/command/build", REWINDING);
    r.commit_all("handlers");
    r.git(&["branch", "t1", "main"]);
    r.baton_ok(&["send", "--branch", "t1", "build", "-m", "go"]);
    r.baton_ok(&["-q", "run", "--json"]);
    let kept = r.git(&["for-each-ref", "--format=%(refname)", "refs/baton/rejected/t1/"]);
    let refname = kept.lines().next().expect("the runner kept the result").to_owned();
    refname.rsplit('/').next().unwrap().to_owned()
}

/// A commit on top of `base` (same tree) with a state, kept by hand on `refname`.
fn keep_by_hand(r: &TestRepo, base: &str, refname: &str) -> String {
    let tree = r.head(&format!("{base}^{{tree}}"));
    let parent = r.head(base);
    let id = r.git(&["commit-tree", &tree, "-p", &parent, "-m", "kept work", "-m", "dwp-state: review"]);
    let id = id.trim().to_owned();
    r.git(&["update-ref", refname, &id]);
    id
}

/// A one-line `--json` answer (show, apply): exactly one object.
fn json(out: &str) -> Value {
    let mut lines = common::json_lines(out);
    assert_eq!(lines.len(), 1, "one JSON line expected: {out}");
    lines.remove(0)
}

/// A list (`conflicts --json`, `drop --json`): one object per line.
fn list(out: &str) -> Vec<Value> {
    common::json_lines(out)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ref_exists(r: &TestRepo, refname: &str) -> bool {
    r.git_cmd(&["rev-parse", "-q", "--verify", refname]).output().unwrap().status.success()
}

#[test]
fn a_rejected_run_is_listed_with_its_state_and_what_the_branch_lacks() {
    let r = TestRepo::new();
    let run = rejected_run(&r);
    let refname = format!("refs/baton/rejected/t1/{run}");

    let table = r.baton_ok(&["conflicts"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("BRANCH"), "{table}");
    assert!(lines[1].starts_with("t1 ") && lines[1].contains(&run) && lines[1].contains("rejected"), "{table}");

    let rows = list(&r.baton_ok(&["conflicts", "--json"]));
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
    for key in ["ref", "branch", "run_id", "kind", "commit", "state", "commits", "branch_head", "age_seconds"] {
        assert!(keys.contains(&key), "{key} missing: {row}");
    }
    assert_eq!(row["ref"], refname.as_str());
    assert_eq!(row["branch"], "t1");
    assert_eq!(row["run_id"], run.as_str());
    assert_eq!(row["kind"], "rejected");
    assert_eq!(row["commit"], r.head(&refname).as_str());
    assert_eq!(row["state"], "done");
    assert_eq!(row["branch_head"], r.head("t1").as_str());
    assert!(row["age_seconds"].as_i64().is_some(), "{row}");
    let by_git = r.git(&["rev-list", "--count", &format!("t1..{refname}")]);
    assert_eq!(row["commits"].as_u64().unwrap().to_string(), by_git.trim());
    assert_eq!(by_git.trim(), "1");

    let shown = r.baton_ok(&["conflicts", "show", &run]);
    assert!(shown.contains(&refname) && shown.contains("mine") && shown.contains("diff against t1"), "{shown}");
    let shown = json(&r.baton_ok(&["conflicts", "show", "--json", &refname]));
    assert_eq!(shown["run_id"], run.as_str());
    assert_eq!(shown["log"][0]["subject"], "mine");
    assert_eq!(shown["log"][0]["state"], "done");
    assert_eq!(shown["log"][0]["commit"], r.head(&refname).as_str());
    assert!(shown["files"].as_array().unwrap().is_empty(), "{shown}");
}

#[test]
fn lists_both_kinds_filters_by_branch_and_notices_a_deleted_branch() {
    let r = TestRepo::new();
    r.commit_all("base");
    r.git(&["branch", "feature/x", "main"]);
    r.git(&["branch", "gone", "main"]);
    keep_by_hand(&r, "feature/x", "refs/baton/rejected/feature/x/r1");
    keep_by_hand(&r, "gone", "refs/baton/conflicts/gone/r2");
    r.git(&["branch", "-D", "gone"]);

    let rows = list(&r.baton_ok(&["conflicts", "--json"]));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0]["branch"].as_str(), rows[0]["run_id"].as_str()), (Some("feature/x"), Some("r1")));
    assert_eq!(rows[0]["kind"], "rejected");
    assert_eq!(rows[0]["state"], "review");
    assert_eq!(rows[0]["commits"], 1);
    assert_eq!((rows[1]["branch"].as_str(), rows[1]["kind"].as_str()), (Some("gone"), Some("conflict")));
    assert!(rows[1]["branch_head"].is_null());
    assert_eq!(rows[1]["commits"], 1, "counted against the other branches: {}", rows[1]);

    let only = list(&r.baton_ok(&["conflicts", "--json", "--branch", "feature/*"]));
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["branch"], "feature/x");
    assert!(r.baton_ok(&["conflicts", "--branch", "nothing"]).lines().count() == 1);
}

#[test]
fn apply_fast_forwards_by_compare_and_swap_and_drops_the_kept_ref() {
    let r = TestRepo::new();
    r.commit_all("base");
    r.git(&["branch", "x", "main"]);
    let old = r.head("x");
    let id = keep_by_hand(&r, "x", "refs/baton/rejected/x/y");

    let applied = json(&r.baton_ok(&["conflicts", "apply", "--json", "y"]));
    assert_eq!(r.head("x"), id);
    assert!(!ref_exists(&r, "refs/baton/rejected/x/y"));
    assert_eq!(applied["ref"], "refs/baton/rejected/x/y");
    assert_eq!(applied["branch"], "x");
    assert_eq!(applied["commit"], id.as_str());
    assert_eq!(applied["old_head"], old.as_str());
    assert_eq!(applied["fast_forward"], true);
    assert!(applied["old_head_kept_at"].is_null());
    assert_eq!(r.state_of("x"), "review");
    assert!(r.baton_ok(&["conflicts", "--json"]).is_empty(), "nothing kept: zero lines");
}

#[test]
fn apply_refuses_a_branch_that_moved_unless_forced_and_force_keeps_the_old_head() {
    let r = TestRepo::new();
    let run = rejected_run(&r);
    let refname = format!("refs/baton/rejected/t1/{run}");
    let old = r.head("t1");
    let result = r.head(&refname);

    let o = r.baton(&["conflicts", "apply", &run]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("moved since") && err.contains("--force") && err.contains("git merge"), "{err}");
    assert_eq!(r.head("t1"), old, "nothing changed");
    assert_eq!(r.head(&refname), result);

    let out = r.baton_ok(&["conflicts", "apply", "--force", &refname]);
    assert_eq!(r.head("t1"), result);
    assert!(!ref_exists(&r, &refname));
    let kept = r.git(&["for-each-ref", "--format=%(refname) %(objectname)", "refs/baton/rejected/t1/"]);
    let (kept_ref, kept_id) = kept.trim().split_once(' ').expect("the old head is kept");
    assert!(kept_ref.starts_with("refs/baton/rejected/t1/replaced-"), "{kept}");
    assert_eq!(kept_id, old);
    assert!(out.contains(kept_ref), "{out}");
    // The replaced head is itself a kept result: it can be applied back.
    let rows = list(&r.baton_ok(&["conflicts", "--json"]));
    assert_eq!(rows[0]["ref"], kept_ref);
    assert_eq!(rows[0]["state"], "failed");
}

#[test]
fn apply_refuses_a_branch_checked_out_in_a_worktree() {
    let r = TestRepo::new();
    r.commit_all("base");
    let id = keep_by_hand(&r, "main", "refs/baton/rejected/main/r1");
    let old = r.head("main");
    let o = r.baton(&["conflicts", "apply", "r1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("checked out") && stderr(&o).contains(&id), "{}", stderr(&o));
    assert_eq!(r.head("main"), old);
    assert!(ref_exists(&r, "refs/baton/rejected/main/r1"));
}

#[test]
fn drop_deletes_every_named_ref_or_none() {
    let r = TestRepo::new();
    r.commit_all("base");
    let a = keep_by_hand(&r, "main", "refs/baton/rejected/main/r1");
    keep_by_hand(&r, "main", "refs/baton/conflicts/main/r2");
    keep_by_hand(&r, "main", "refs/baton/rejected/main/r3");

    let o = r.baton(&["conflicts", "drop", "r1", "nope"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope") && stderr(&o).lines().count() == 1, "{}", stderr(&o));
    assert!(ref_exists(&r, "refs/baton/rejected/main/r1"), "nothing dropped on error");

    let out = r.baton_ok(&["conflicts", "drop", "r1", "refs/baton/conflicts/main/r2"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(out.lines().next().unwrap(), format!("dropped refs/baton/rejected/main/r1 {a}"));
    assert!(!ref_exists(&r, "refs/baton/rejected/main/r1"));
    assert!(!ref_exists(&r, "refs/baton/conflicts/main/r2"));
    let dropped = list(&r.baton_ok(&["conflicts", "drop", "--json", "r3"]));
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["ref"], "refs/baton/rejected/main/r3");
    assert!(r.git(&["for-each-ref", "refs/baton/"]).trim().is_empty());
}

#[test]
fn unknown_ambiguous_and_bad_input_change_nothing() {
    let r = TestRepo::new();
    r.commit_all("base");
    keep_by_hand(&r, "main", "refs/baton/rejected/main/r1");
    keep_by_hand(&r, "main", "refs/baton/conflicts/main/r1");
    let refs = r.git(&["for-each-ref"]);

    let o = r.baton(&["conflicts", "show", "r9"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("r9"), "{}", stderr(&o));

    let o = r.baton(&["conflicts", "drop", "r1"]);
    assert_eq!(o.status.code(), Some(2), "ambiguous: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("refs/baton/rejected/main/r1") && err.contains("refs/baton/conflicts/main/r1"), "{err}");

    for bad in ["--remote=-x", "--remote=a b", "--remote=a..b", "--remote=a\u{1}"] {
        let o = r.baton(&["conflicts", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    let o = r.baton(&["conflicts", "--remote", "nowhere"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = r.baton(&["conflicts", "--branch", "main", "drop", "refs/baton/conflicts/main/r1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(r.git(&["for-each-ref"]), refs);
}

/// A bare origin with `t1` and a result kept there (as an ephemeral runner leaves it), and a
/// fresh clone that has never seen the kept ref.
struct Remote {
    seed: TestRepo,
    origin: std::path::PathBuf,
    clone: std::path::PathBuf,
    kept: String,
}

impl Remote {
    fn new() -> Remote {
        let seed = TestRepo::new();
        seed.commit_all("base");
        seed.git(&["branch", "t1", "main"]);
        let kept = keep_by_hand(&seed, "t1", "refs/baton/rejected/t1/r1");
        let origin = seed.home().join("origin.git");
        seed.git(&["init", "-q", "--bare", "-b", "main", origin.to_str().unwrap()]);
        seed.git(&["remote", "add", "origin", origin.to_str().unwrap()]);
        seed.git(&["push", "-q", "origin", "main", "t1", "refs/baton/rejected/t1/r1"]);
        seed.git(&["update-ref", "-d", "refs/baton/rejected/t1/r1"]);
        let clone = seed.home().join("clone");
        git_in(seed.home(), seed.home(), &["clone", "-q", origin.to_str().unwrap(), "clone"]);
        Remote { seed, origin, clone, kept }
    }

    fn baton(&self, args: &[&str]) -> std::process::Output {
        command_in(self.seed.home(), BATON, &self.clone, args).output().unwrap()
    }

    fn baton_ok(&self, args: &[&str]) -> String {
        let o = self.baton(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn on(&self, dir: &Path, refname: &str) -> Option<String> {
        let out = git_in(self.seed.home(), dir, &["for-each-ref", "--format=%(objectname)", refname]);
        out.lines().next().map(str::to_owned)
    }
}

#[test]
fn remote_results_are_fetched_listed_and_dropped_there_too() {
    let m = Remote::new();
    assert!(m.baton_ok(&["conflicts", "--json"]).is_empty(), "not fetched yet");
    let rows = list(&m.baton_ok(&["conflicts", "--remote", "origin", "--json"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["ref"], "refs/baton/rejected/t1/r1");
    assert_eq!(rows[0]["commit"], m.kept.as_str());
    assert_eq!(rows[0]["branch_head"].as_str(), m.on(&m.origin, "refs/heads/t1").as_deref());
    assert_eq!(rows[0]["commits"], 1);

    let out = m.baton_ok(&["conflicts", "drop", "--remote", "origin", "r1"]);
    assert!(out.starts_with("dropped refs/baton/rejected/t1/r1"), "{out}");
    assert_eq!(m.on(&m.origin, "refs/baton/rejected/t1/r1"), None);
    assert_eq!(m.on(&m.clone, "refs/baton/rejected/t1/r1"), None);
}

#[test]
fn remote_apply_pushes_the_branch_with_a_lease_and_drops_the_remote_ref() {
    let m = Remote::new();
    let out = m.baton_ok(&["conflicts", "--remote", "origin", "apply", "r1"]);
    assert!(out.contains("fast-forward"), "{out}");
    assert_eq!(m.on(&m.origin, "refs/heads/t1").as_deref(), Some(m.kept.as_str()));
    assert_eq!(m.on(&m.origin, "refs/baton/rejected/t1/r1"), None);
    assert_eq!(m.on(&m.clone, "refs/baton/rejected/t1/r1"), None);
    assert_eq!(m.on(&m.clone, "refs/remotes/origin/t1").as_deref(), Some(m.kept.as_str()));
}
