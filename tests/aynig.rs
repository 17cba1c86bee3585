//! AYNIG drop-in: the executable invoked as `aynig`, the shim on handlers' PATH, AYNIG's run
//! flags and trailers, `install`, and `migrate-aynig` — all against real repositories and git.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A folder holding `aynig`, a symlink to the built binary (as a user would install it).
fn aynig_bin(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("aynig");
    if !link.exists() {
        std::os::unix::fs::symlink(BATON, &link).unwrap();
    }
    link
}

fn aynig(r: &TestRepo, args: &[&str]) -> std::process::Output {
    let bin = aynig_bin(r.dir.path());
    let mut cmd = Command::new(&bin);
    base_env(&mut cmd, r.home());
    cmd.current_dir(&r.path).args(args).stdin(std::process::Stdio::null());
    cmd.output().unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// AYNIG's hello-world handler, changed only to answer with `aynig set-state` (as AYNIG's
/// COMMAND-AGENTS.md tells handlers to): it stages its work and names the next state.
const AYNIG_HANDLER: &str = r#"#!/usr/bin/env bash
set -euo pipefail

echo "Build requested: ${AYNIG_BODY}" > build.out
echo "${AYNIG_TRAILER_DWP_NOTE:-}" > note.out
echo "${AYNIG_LOG_LEVEL:-}" > level.out

git add build.out note.out level.out
aynig set-working 600 >/dev/null
aynig set-state --dwp-state done --prompt "Build completed."
"#;

#[test]
fn the_aynig_name_speaks_aynigs_command_line() {
    let r = repo_with(&[]);
    let v = aynig(&r, &["version"]);
    assert!(v.status.success(), "{}", stderr(&v));
    assert_eq!(stdout(&v).trim(), env!("CARGO_PKG_VERSION"));
    assert_eq!(stdout(&aynig(&r, &["-v"])).trim(), env!("CARGO_PKG_VERSION"));
    assert!(stdout(&aynig(&r, &["update"])).contains("git-baton"));
    let bad = aynig(&r, &["frobnicate"]);
    assert_eq!(bad.status.code(), Some(2), "unknown command is a usage error");
    let bad = aynig(&r, &["run", "--log-level", "loud"]);
    assert_eq!(bad.status.code(), Some(2), "a bad --log-level is a usage error");

    // set-state on the checked-out branch commits what is staged, as AYNIG's `git commit` does.
    r.write("work.txt", "staged work\n");
    r.git(&["add", "work.txt"]);
    let out = aynig(&r, &["set-state", "--dwp-state", "review", "--prompt", "please review"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(r.state_of("main"), "review");
    assert_eq!(r.git(&["show", "main:work.txt"]), "staged work\n");
    assert_eq!(r.git(&["log", "-1", "--format=%b", "main"]).trim(), "please review\n\ndwp-state: review");
    assert!(r.git(&["status", "--porcelain"]).trim().is_empty(), "index and tree match the new head");

    // --prompt-file and events -n/--limit with --history.
    r.write("../prompt.txt", "from a file\n");
    let file = r.dir.path().join("prompt.txt");
    let out = aynig(&r, &["set-state", "--dwp-state", "done", "--prompt-file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(r.git(&["log", "-1", "--format=%b", "main"]).trim(), "from a file\n\ndwp-state: done");
    let one = aynig(&r, &["events", "--json"]);
    assert_eq!(stdout(&one).lines().filter(|l| l.starts_with('{')).count(), 1, "{}", stdout(&one));
    let two = aynig(&r, &["events", "--history", "--limit", "2", "--json"]);
    assert_eq!(stdout(&two).lines().filter(|l| l.starts_with('{')).count(), 2, "{}", stdout(&two));
    // git baton's own set-state takes AYNIG's prompt flags too.
    r.baton_ok(&["set-state", "--dwp-state", "again", "--prompt", "p2"]);
    assert_eq!(r.state_of("main"), "again");
}

#[test]
fn an_unchanged_aynig_handler_runs_through_the_shim_and_keeps_its_staged_work() {
    let r = repo_with(&[(".dwp/command/build", AYNIG_HANDLER)]);
    r.git(&["branch", "t", "main"]);
    r.baton_ok(&[
        "send",
        "--branch",
        "t",
        "build",
        "-m",
        "do the task",
        "--trailer",
        "dwp-note: a",
        "--trailer",
        "dwp-note: b",
    ]);
    let events = run_json(&r, &[]);
    assert!(has(&events, "t", "succeeded"), "{events:#?}");
    assert_eq!(r.state_of("t"), "done");
    // The handler's staged files are in the answer commit.
    let built = r.git(&["show", "t:build.out"]);
    assert!(
        built.contains("Build requested: do the task\n\ndwp-note: a\ndwp-note: b\ndwp-state: build"),
        "AYNIG_BODY is the body with its trailer block: {built:?}"
    );
    assert_eq!(r.git(&["show", "t:note.out"]), "a,b\n", "AYNIG_TRAILER_* joins repeated values");
    assert_eq!(r.git(&["show", "t:level.out"]), "error\n", "AYNIG's default level");
    // `aynig set-working 600` renewed the lease with AYNIG's default body.
    let beat = r.git(&["log", "--format=%H", "--grep=baton: heartbeat", "-1", "t"]).trim().to_owned();
    assert!(!beat.is_empty(), "a heartbeat commit on t");
    assert_eq!(r.git(&["log", "-1", "--format=%b", &beat]).lines().next(), Some("Lease heartbeat"));
    assert_eq!(r.trailer_of(&beat, "dwp-lease-seconds").as_deref(), Some("600"));
    // The claim has a body paragraph, so AYNIG's parser (interpret-trailers on %b) sees the lease.
    let claim = r.git(&["log", "--format=%H", "--grep=claimed", "-1", "t"]).trim().to_owned();
    let body = r.git(&["log", "-1", "--format=%b", &claim]);
    let mut parse = r.git_cmd(&["interpret-trailers", "--parse", "--only-trailers"]);
    let parsed = {
        use std::io::Write;
        let mut child = parse.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(body.trim_end().as_bytes()).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    assert!(parsed.contains("dwp-state: working"), "AYNIG reads the claim: {parsed:?} from {body:?}");
}

#[test]
fn log_level_precedence_is_flag_then_trailer_then_environment() {
    let r = repo_with(&[(".dwp/command/build", AYNIG_HANDLER)]);
    let level_after = |branch: &str, trailer: Option<&str>, flag: Option<&str>, env: Option<&str>| -> String {
        r.git(&["branch", branch, "main"]);
        let mut send = vec!["send", "--branch", branch, "build", "-m", "t"];
        let t;
        if let Some(level) = trailer {
            t = format!("dwp-log-level: {level}");
            send.extend(["--trailer", t.as_str()]);
        }
        r.baton_ok(&send);
        let mut args = vec!["run", "--branch", branch];
        if let Some(f) = flag {
            args.extend(["--log-level", f]);
        }
        let mut cmd = r.baton_cmd(&args);
        if let Some(e) = env {
            cmd.env("AYNIG_LOG_LEVEL", e);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(r.state_of(branch), "done", "{}", stderr(&out));
        r.git(&["show", &format!("{branch}:level.out")]).trim().to_owned()
    };
    assert_eq!(level_after("a", Some("info"), Some("debug"), Some("warn")), "debug");
    assert_eq!(level_after("b", Some("info"), None, Some("warn")), "info");
    assert_eq!(level_after("c", None, None, Some("warn")), "warn");
    assert_eq!(level_after("d", Some("nonsense"), None, Some("WARNING")), "warn");
}

#[test]
fn dwp_remote_is_an_alias_of_remote() {
    let c = Cluster::new(&[(".dwp/command/build", "#!/bin/sh\naynig set-state --dwp-state done --prompt ok\n")]);
    let runner = c.clone_as("runner");
    c.task("t", "build");
    let out = c.baton(&runner, &["run", "--dwp-remote", "origin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(c.state("t"), "done", "{}", stderr(&out));
    // set-state --dwp-remote pushes after the commit and records the remote, as AYNIG's does.
    c.git(&runner, &["branch", "x", "main"]);
    c.baton_ok(
        &runner,
        &["set-state", "--branch", "x", "--dwp-state", "review", "--dwp-remote", "origin", "--prompt", "p"],
    );
    assert_eq!(c.state("x"), "review");
    let source = c.git(&c.origin, &["log", "-1", "--format=%(trailers:key=dwp-source,valueonly)", "x"]);
    assert_eq!(source.trim(), "git:origin");
    // A remote that does not exist: refused, nothing written.
    let before = c.git(&runner, &["rev-parse", "x"]);
    let out = c.baton(&runner, &["set-state", "--branch", "x", "--dwp-state", "done", "--dwp-remote", "nowhere"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(c.git(&runner, &["rev-parse", "x"]), before);
}

#[test]
fn dwp_source_on_head_selects_remote_mode() {
    let c = Cluster::new(&[(".dwp/command/build", "#!/bin/sh\naynig set-state --dwp-state done --prompt ok\n")]);
    let runner = c.clone_as("runner");
    c.task("t", "build");
    // Without the trailer, local mode: the task exists only on origin, nothing runs.
    let out = c.baton(&runner, &["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(c.state("t"), "build");
    // HEAD carries dwp-source: git:origin, as AYNIG's own commits in remote mode do.
    c.git(&runner, &["commit", "-q", "--allow-empty", "-m", "use origin", "-m", "dwp-source: git:origin"]);
    let out = c.baton(&runner, &["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("dwp-source: git:origin"), "the switch is said: {}", stderr(&out));
    assert_eq!(c.state("t"), "done", "{}", stderr(&out));
    // A dwp-source naming a remote that does not exist is an error, not a silent local tick.
    c.git(&runner, &["commit", "-q", "--allow-empty", "-m", "bad", "-m", "dwp-source: git:nowhere"]);
    let out = c.baton(&runner, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nowhere"), "{}", stderr(&out));
}

#[test]
fn a_state_whose_handler_differs_only_in_case_gets_a_notice() {
    let r = repo_with(&[(".dwp/command/build", "#!/bin/sh\nexit 0\n")]);
    task(&r, "t", "Build");
    let events = run_json(&r, &[]);
    let notice = event(&events, "t", "notice");
    let msg = notice["error"].as_str().or(notice["message"].as_str()).unwrap_or_default().to_owned();
    let all = notice.to_string();
    assert!(all.contains(".dwp/command/build") && all.contains("letter case"), "{msg} {all}");
    assert_eq!(r.state_of("t"), "Build", "not run");
}

/// A workflow pack: a repository with `.dwp/` (and a subfolder and a branch with more).
fn pack(dir: &Path, home: &Path) -> PathBuf {
    let p = dir.join("pack");
    std::fs::create_dir_all(p.join(".dwp/command")).unwrap();
    std::fs::create_dir_all(p.join("packs/ops/command")).unwrap();
    git_in(home, &p, &["init", "-q", "-b", "main"]);
    std::fs::write(p.join(".dwp/command/review"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(p.join(".dwp/command/review"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(p.join(".dwp/COMMANDS.md"), "review: reviews\n").unwrap();
    std::fs::write(p.join(".dwp/README.md"), "about the pack\n").unwrap();
    std::fs::write(p.join("packs/ops/command/stalled"), "#!/bin/sh\nexit 0\n").unwrap();
    git_in(home, &p, &["add", "-A"]);
    git_in(home, &p, &["commit", "-q", "-m", "pack"]);
    git_in(home, &p, &["checkout", "-q", "-b", "v2"]);
    std::fs::write(p.join(".dwp/command/deploy"), "#!/bin/sh\nexit 0\n").unwrap();
    git_in(home, &p, &["add", "-A"]);
    git_in(home, &p, &["commit", "-q", "-m", "v2"]);
    git_in(home, &p, &["checkout", "-q", "main"]);
    p
}

#[test]
fn install_copies_a_pack_from_a_local_repository_and_refuses_a_dirty_dwp() {
    let r = repo_with(&[(".dwp/command/build", "#!/bin/sh\nexit 0\n"), (".dwp/COMMANDS.md", "build: builds\n")]);
    let p = pack(r.dir.path(), r.home());
    let src = p.to_str().unwrap();

    // A dirty .dwp/: refused, nothing copied.
    r.write(".dwp/command/build", "#!/bin/sh\nexit 1\n");
    let out = r.baton(&["install", src]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("uncommitted"), "{}", stderr(&out));
    assert!(!r.path.join(".dwp/command/review").exists(), "nothing installed");
    r.git(&["checkout", "--", ".dwp"]);

    // `opencode` and `claude` on PATH (AYNIG would call one to merge COMMANDS.md): never run.
    let fake = r.dir.path().join("fakebin");
    std::fs::create_dir_all(&fake).unwrap();
    let marker = r.dir.path().join("merge-tool-ran");
    for tool in ["opencode", "claude"] {
        std::fs::write(fake.join(tool), format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
        std::fs::set_permissions(fake.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap_or_default());
    let out = r.baton_cmd(&["install", src, "--json"]).env("PATH", path).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!marker.exists(), "no merge tool is run");
    let out = stdout(&out);
    let v: serde_json::Value = one_line(&out);
    assert_eq!(v["installed"], serde_json::json!([".dwp/command/review"]), "{v}");
    assert_eq!(v["overwritten"], serde_json::json!([".dwp/COMMANDS.md"]), "{v}");
    assert!(!r.path.join(".dwp/README.md").exists(), "README.md files are not copied");
    let mode = std::fs::metadata(r.path.join(".dwp/command/review")).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "executable bit kept");
    assert_eq!(std::fs::read_to_string(r.path.join(".dwp/COMMANDS.md")).unwrap(), "review: reviews\n");
    r.commit_all("installed");

    // A ref, and the aynig spelling.
    let out = aynig(&r, &["install", src, "v2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("installed .dwp/command/deploy"), "{}", stdout(&out));
    r.commit_all("v2");

    // A subfolder.
    let out = r.baton_ok(&["install", src, "main", "packs/ops", "--json"]);
    let v: serde_json::Value = one_line(&out);
    assert_eq!(v["installed"], serde_json::json!([".dwp/command/stalled"]), "{v}");
    // A subfolder outside the clone is a usage error.
    assert_eq!(r.baton(&["install", src, "main", "../x"]).status.code(), Some(2));
    // A missing .dwp/ in the source.
    let empty = r.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    git_in(r.home(), &empty, &["init", "-q", "-b", "main"]);
    git_in(r.home(), &empty, &["commit", "-q", "--allow-empty", "-m", "e"]);
    r.commit_all("ops");
    let out = r.baton(&["install", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no .dwp/"), "{}", stderr(&out));
}

#[test]
fn migrate_aynig_removes_leftover_worktrees_and_salvages_uncommitted_work() {
    let r = repo_with(&[(".dwp/command/build", "#!/bin/sh\naynig set-state --dwp-state done --prompt ok\n")]);
    task(&r, "feat/x", "build");
    // What AYNIG leaves: .worktrees/worktree-<branch>-<hash> with the branch checked out.
    let wt = r.path.join(".worktrees/worktree-feat_x-0a1b2c3d");
    r.git(&["worktree", "add", "-q", wt.to_str().unwrap(), "feat/x"]);
    std::fs::write(wt.join("unsaved.txt"), "work in progress\n").unwrap();

    let found = git_baton::aynig::leftovers(&git_baton::repo::Repo::discover(&r.path).unwrap()).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].branch.as_deref(), Some("feat/x"));

    // git-baton leaves the branch alone while AYNIG's worktree holds it.
    let events = run_json(&r, &[]);
    assert!(!has(&events, "feat/x", "claimed"), "{events:#?}");
    assert!(event(&events, "feat/x", "notice").to_string().contains("git baton migrate-aynig"), "{events:#?}");

    let dry = r.baton_ok(&["migrate-aynig", "--dry-run", "--json"]);
    let v: serde_json::Value = one_line(&dry);
    assert_eq!(v["action"], "would-remove");
    assert_eq!(v["dirty"], true);
    assert!(wt.exists(), "a dry run changes nothing");

    let out = r.baton_ok(&["migrate-aynig", "--json"]);
    let v: serde_json::Value = one_line(&out);
    assert_eq!(v["action"], "removed", "{v}");
    let salvage = v["salvage_ref"].as_str().expect("a salvage ref").to_owned();
    assert!(salvage.starts_with("refs/baton/salvage/"), "{salvage}");
    assert_eq!(r.git(&["show", &format!("{salvage}:unsaved.txt")]), "work in progress\n");
    assert!(!wt.exists(), "the worktree is gone");
    assert!(!r.git(&["worktree", "list"]).contains("worktree-feat_x"));
    assert!(!r.path.join(".worktrees").exists(), "the empty .worktrees/ is removed");
    assert!(git_baton::aynig::leftovers(&git_baton::repo::Repo::discover(&r.path).unwrap()).unwrap().is_empty());

    // Now the runner takes the branch.
    let events = run_json(&r, &[]);
    assert!(has(&events, "feat/x", "succeeded"), "{events:#?}");
    assert_eq!(r.state_of("feat/x"), "done");
    // Nothing left: a second migration says so and succeeds.
    assert_eq!(r.baton_ok(&["migrate-aynig", "--json"]).trim(), "");
}

/// A single answer's `--json`: exactly one line.
fn one_line(out: &str) -> serde_json::Value {
    let mut lines = common::json_lines(out);
    assert_eq!(lines.len(), 1, "one JSON line expected: {out}");
    lines.remove(0)
}

/// The objects `--json` printed: one per line (docs/json.md).
fn json_objects(out: &str) -> Vec<serde_json::Value> {
    common::json_lines(out)
}

#[test]
fn status_honours_aynig_role() {
    let r = repo_with(&[(".dwp/roles/ci/command/build", "#!/bin/sh\nexit 0\n")]);
    task(&r, "t", "build");
    let handler = |role: Option<&str>| -> serde_json::Value {
        let mut cmd = r.baton_cmd(&["status", "--json"]);
        if let Some(role) = role {
            cmd.env("AYNIG_ROLE", role);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let objects = json_objects(&stdout(&out));
        objects.iter().find(|o| o["branch"] == "t").expect("branch t")["handler"].clone()
    };
    assert_eq!(handler(None), serde_json::json!(false));
    assert_eq!(handler(Some("ci")), serde_json::json!(true));
}
