//! `git baton hooks`: installed into real repositories, fired by the real git, starting the real
//! binary in the background. Nothing here measures time (see `bench/hooks.sh` for that); waits
//! poll for an outcome with a generous limit.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{base_env, TestRepo, BATON};

/// Hook-started triggers wait this long before their tick (the default is 300 ms).
const DEBOUNCE_MS: &str = "20";
const LIMIT: Duration = Duration::from_secs(20);

const TODO_TO_DONE: &str = "#!/bin/sh\nset -e\ngit commit -q --allow-empty -m 'did it' -m 'dwp-state: done'\n";

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// git with the test environment (dates left to the caller) in `dir`.
fn git_at(home: &Path, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("git");
    base_env(&mut cmd, home);
    cmd.env("BATON_HOOKS_DEBOUNCE_MS", DEBOUNCE_MS)
        .env_remove("BATON_HOOKS")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn git")
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run git in a test repository (hooks fire), assert success.
fn git(r: &TestRepo, args: &[&str]) -> String {
    ok(git_env(r, args, &[]), &format!("git {args:?}"))
}

fn git_env(r: &TestRepo, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut all = vec![("GIT_AUTHOR_DATE", common::FIXED_DATE), ("GIT_COMMITTER_DATE", common::FIXED_DATE)];
    all.extend_from_slice(envs);
    git_at(r.home(), &r.path, args, &all)
}

fn hooks_log(common_dir: &Path) -> String {
    std::fs::read_to_string(common_dir.join("baton/hooks.log")).unwrap_or_default()
}

/// Lines of hooks.log saying a trigger started.
fn trigger_lines(common_dir: &Path) -> Vec<String> {
    hooks_log(common_dir).lines().filter(|l| l.contains("hooks trigger (")).map(str::to_owned).collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// `hooks status --json`: one object per hook (JSON Lines).
fn status_json(r: &TestRepo) -> Vec<serde_json::Value> {
    common::json_lines(&r.baton_ok(&["hooks", "status", "--json"]))
}

fn hook_status<'a>(status: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    status.iter().find(|h| h["name"] == name).unwrap_or_else(|| panic!("no {name} in {status:?}"))
}

fn write_hook(path: &Path, script: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn repo_with_todo_handler() -> TestRepo {
    let r = TestRepo::new();
    r.handler(".dwp/command/todo", TODO_TO_DONE);
    r.commit_all("handlers");
    r
}

/// Hooks that were there keep running with their arguments, input and exit status (a user's
/// `reference-transaction` can still veto a ref update); an unmanaged `post-commit` is untouched;
/// uninstall puts back the originals byte for byte, with their modes.
#[test]
fn install_chains_existing_hooks_and_uninstall_restores_them() {
    let r = TestRepo::new();
    r.commit_all("init");
    let marks = r.home().join("marks");
    let hooks = r.path.join(".git/hooks");
    let post_commit = format!("#!/bin/sh\necho post-commit >> '{}'\n", marks.display());
    // No final newline, odd mode: restored exactly.
    let post_checkout = format!("#!/bin/sh\n# mine  \necho \"post-checkout $3\" >> '{}'", marks.display());
    let ref_tx = format!(
        "#!/bin/sh\nveto=\nwhile read -r old new ref; do\n  echo \"$1 $ref\" >> '{}'\n  [ \"$ref\" = refs/heads/forbidden ] && veto=1\ndone\nif [ \"$1\" = prepared ] && [ -n \"$veto\" ]; then echo 'no forbidden branches' >&2; exit 1; fi\nexit 0\n",
        marks.display()
    );
    write_hook(&hooks.join("post-commit"), &post_commit, 0o700);
    write_hook(&hooks.join("post-checkout"), &post_checkout, 0o750);
    write_hook(&hooks.join("reference-transaction"), &ref_tx, 0o755);

    let out = r.baton_ok(&["hooks", "install"]);
    assert!(out.contains("previous hook is kept"), "{out}");
    let status = status_json(&r);
    for name in ["reference-transaction", "post-checkout"] {
        let h = hook_status(&status, name);
        assert_eq!((h["installed"].as_bool(), h["chained"].as_bool()), (Some(true), Some(true)), "{h}");
    }
    assert_eq!(hook_status(&status, "pre-receive")["installed"], false);
    // Installing again updates git-baton's scripts and keeps the chained ones.
    let again = r.baton_ok(&["hooks", "install"]);
    assert!(again.contains("updated"), "{again}");
    assert_eq!(std::fs::read_to_string(hooks.join("post-checkout.baton-chained")).unwrap(), post_checkout);

    git(&r, &["commit", "-q", "--allow-empty", "-m", "two"]);
    git(&r, &["checkout", "-q", "-b", "side"]);
    let seen = std::fs::read_to_string(&marks).unwrap();
    for want in ["post-commit", "prepared refs/heads/main", "committed refs/heads/main", "post-checkout 1"] {
        assert!(seen.lines().any(|l| l == want), "missing {want:?} in\n{seen}");
    }
    // git-baton's part still happens after the chained hook consumed the input.
    wait_until("a trigger for main", || {
        trigger_lines(&r.path.join(".git")).iter().any(|l| l.ends_with("(reference-transaction): main"))
    });
    let vetoed = git_env(&r, &["branch", "forbidden"], &[]);
    assert!(!vetoed.status.success());
    assert!(String::from_utf8_lossy(&vetoed.stderr).contains("no forbidden branches"));
    assert!(!git(&r, &["branch", "--list", "forbidden"]).contains("forbidden"));

    r.baton_ok(&["hooks", "uninstall"]);
    assert_eq!(std::fs::read_to_string(hooks.join("post-checkout")).unwrap(), post_checkout);
    assert_eq!(mode(&hooks.join("post-checkout")), 0o750);
    assert_eq!(std::fs::read_to_string(hooks.join("reference-transaction")).unwrap(), ref_tx);
    assert_eq!(mode(&hooks.join("reference-transaction")), 0o755);
    assert_eq!(std::fs::read_to_string(hooks.join("post-commit")).unwrap(), post_commit);
    assert_eq!(mode(&hooks.join("post-commit")), 0o700);
    let leftovers: Vec<_> = std::fs::read_dir(&hooks)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("baton"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let status = status_json(&r);
    let h = hook_status(&status, "post-checkout");
    assert_eq!((h["installed"].as_bool(), h["foreign"].as_bool()), (Some(false), Some(true)), "{h}");
}

/// A state commit on the checked-out branch (`--current-branch include`, the default) and a
/// branch moved with `git update-ref` both get a tick in the background that runs the handler.
#[test]
fn a_state_commit_triggers_a_tick_that_advances_the_branch() {
    let r = repo_with_todo_handler();
    r.baton_ok(&["hooks", "install"]);
    let common = r.path.join(".git");

    git(&r, &["checkout", "-q", "-b", "task"]);
    let out = git_env(&r, &["commit", "-q", "--allow-empty", "-m", "x", "-m", "dwp-state: todo"], &[]);
    ok(out, "git commit");
    wait_until("task to be done", || r.state_of("task") == "done");
    // The user's checkout came along: HEAD is the branch, nothing is left modified.
    assert_eq!(r.head("HEAD"), r.head("task"));
    assert_eq!(git(&r, &["status", "--porcelain"]), "");
    assert!(trigger_lines(&common).iter().any(|l| l.ends_with("(reference-transaction): task")));

    // A branch that is not checked out, moved without a commit command.
    let tree = r.head("main^{tree}");
    let id = git(&r, &["commit-tree", &tree, "-p", "main", "-m", "y", "-m", "dwp-state: todo"]);
    git(&r, &["update-ref", "refs/heads/other", id.trim()]);
    wait_until("other to be done", || r.state_of("other") == "done");
    assert_eq!(r.git(&["log", "-1", "--format=%s", "other^"]).trim(), "baton: todo claimed");
}

/// A burst of branch updates (one trigger each, no debounce) is run by one hook-started tick at a
/// time, nothing is lost and every handler runs exactly once; a two-step workflow (todo → check →
/// done) advances within the same trigger although handlers' commits start no hooks.
#[test]
fn a_burst_of_updates_runs_every_branch_once_and_to_the_end() {
    let ledger_dir = tempfile::tempdir().unwrap();
    let ledger = ledger_dir.path().join("ledger");
    let step = |next: &str| {
        format!(
            "#!/bin/sh\nset -e\necho \"$BATON_BRANCH $BATON_STATE\" >> '{}'\ngit commit -q --allow-empty -m step -m 'dwp-state: {next}'\n",
            ledger.display()
        )
    };
    let r = TestRepo::new();
    r.handler(".dwp/command/todo", &step("check"));
    r.handler(".dwp/command/check", &step("done"));
    r.commit_all("handlers");
    r.baton_ok(&["hooks", "install"]);
    let tree = r.head("main^{tree}");
    let names: Vec<String> = (0..20).map(|i| format!("burst-{i:02}")).collect();
    for name in &names {
        let id = r.git(&["commit-tree", &tree, "-p", "main", "-m", name, "-m", "dwp-state: todo"]);
        let out =
            git_env(&r, &["update-ref", &format!("refs/heads/{name}"), id.trim()], &[("BATON_HOOKS_DEBOUNCE_MS", "0")]);
        ok(out, "git update-ref");
    }
    wait_until("every branch to be done", || names.iter().all(|n| r.state_of(n) == "done"));
    let mut ran: Vec<String> = std::fs::read_to_string(&ledger).unwrap().lines().map(str::to_owned).collect();
    ran.sort();
    let mut want: Vec<String> = names.iter().flat_map(|n| [format!("{n} check"), format!("{n} todo")]).collect();
    want.sort();
    assert_eq!(ran, want);
    assert_eq!(trigger_lines(&r.path.join(".git")).len(), names.len());
}

/// Installed with `--current-branch skip`, the checked-out branch waits until you switch away
/// from it; `post-checkout` then starts its tick.
#[test]
fn skip_runs_the_checked_out_branch_when_you_switch_away() {
    let r = repo_with_todo_handler();
    r.baton_ok(&["hooks", "install", "--current-branch", "skip"]);
    let common = r.path.join(".git");
    git(&r, &["checkout", "-q", "-b", "task"]);
    git(&r, &["commit", "-q", "--allow-empty", "-m", "x", "-m", "dwp-state: todo"]);
    wait_until("the trigger to skip the checked-out branch", || {
        hooks_log(&common).contains("task is checked out (hooks installed with --current-branch skip)")
    });
    assert_eq!(r.state_of("task"), "todo");
    git(&r, &["checkout", "-q", "main"]);
    wait_until("task to be done", || r.state_of("task") == "done");
    assert!(trigger_lines(&common).iter().any(|l| l.ends_with("(post-checkout): task")));
}

/// `core.hooksPath` (relative, as people set it) is where install writes, status looks and git
/// runs the hooks from; `.git/hooks` stays untouched.
#[test]
fn core_hooks_path_is_respected_and_status_reports_it() {
    let r = TestRepo::new();
    r.commit_all("init");
    r.git(&["config", "core.hooksPath", ".githooks"]);
    r.baton_ok(&["hooks", "install"]);
    let dir = r.path.join(".githooks");
    assert!(dir.join("reference-transaction").exists());
    assert!(dir.join("post-checkout").exists());
    assert!(!r.path.join(".git/hooks/reference-transaction").exists());

    let hooks = status_json(&r);
    for h in &hooks {
        assert_eq!(h["hooks_dir"], dir.display().to_string());
        assert_eq!(h["bare"], false);
    }
    let names: Vec<&str> = hooks.iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["reference-transaction", "post-checkout", "pre-receive", "post-receive"]);
    for h in hooks {
        let keys: Vec<&String> = h.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 8, "{h}");
        assert!(h["side"] == "client" || h["side"] == "server", "{h}");
        assert!(h["path"].as_str().unwrap().starts_with(&dir.display().to_string()));
        for flag in ["installed", "chained", "foreign"] {
            assert!(h[flag].is_boolean(), "{flag} in {h}");
        }
        assert_eq!(h["installed"], h["side"] == "client", "{h}");
    }
    let text = r.baton_ok(&["hooks", "status"]);
    assert!(text.starts_with(&format!("hooks dir: {}\n", dir.display())), "{text}");

    // git runs them from there.
    git(&r, &["branch", "moved"]);
    wait_until("a trigger from .githooks", || {
        trigger_lines(&r.path.join(".git")).iter().any(|l| l.ends_with("(reference-transaction): moved"))
    });
    r.baton_ok(&["hooks", "uninstall"]);
    assert!(!dir.join("reference-transaction").exists());
}

/// The `reference-transaction` shim starts nothing for tags (100 `git tag`, a fetch of 100 tags),
/// inside a handler (`BATON_RUN_ID`) or when disabled (`BATON_HOOKS=0`); a branch does start it.
#[test]
fn reference_transaction_hook_starts_nothing_for_tags_or_when_disabled() {
    let r = TestRepo::new();
    r.commit_all("init");
    let source = TestRepo::new();
    source.commit_all("init");
    for i in 0..100 {
        source.git(&["tag", &format!("s{i}")]);
    }
    r.baton_ok(&["hooks", "install"]);
    let common = r.path.join(".git");
    for i in 0..100 {
        git(&r, &["tag", &format!("t{i}")]);
    }
    let src = source.path.display().to_string();
    git(&r, &["fetch", "-q", &src, "refs/tags/*:refs/tags/*"]);
    assert_eq!(git(&r, &["tag", "--list", "s*"]).lines().count(), 100);
    ok(git_env(&r, &["branch", "quiet"], &[("BATON_HOOKS", "0")]), "git branch quiet");
    ok(git_env(&r, &["branch", "inside"], &[("BATON_RUN_ID", "r-1")]), "git branch inside");
    // A deleted branch has nothing to run either.
    git(&r, &["branch", "-D", "quiet"]);

    // The control: a branch update starts exactly one trigger, for that branch.
    git(&r, &["branch", "loud"]);
    wait_until("the trigger for loud", || !trigger_lines(&common).is_empty());
    let lines = trigger_lines(&common);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with("(reference-transaction): loud"), "{lines:?}");
}

/// A bare origin with `hooks install --server`: pushes of an invalid state or of a claim over
/// another run's live lease are refused with a readable message (a user's own `pre-receive`
/// still decides first); valid pushes pass, and a pushed state gets a tick on the server.
#[test]
fn server_hooks_refuse_corrupting_pushes_and_tick_on_push() {
    let origin = TestRepo::bare();
    write_hook(
        &origin.path.join("hooks/pre-receive"),
        "#!/bin/sh\nwhile read -r o n ref; do [ \"$ref\" = refs/heads/frozen ] && { echo 'frozen is frozen' >&2; exit 1; }; done\nexit 0\n",
        0o755,
    );
    let refused = origin.baton(&["hooks", "install"]);
    assert_eq!(refused.status.code(), Some(2), "client hooks in a bare repository");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--server"));
    origin.baton_ok(&["hooks", "install", "--server"]);
    let status = status_json(&origin);
    assert!(status.iter().all(|h| h["bare"] == true), "{status:?}");
    assert_eq!(hook_status(&status, "pre-receive")["chained"], true);
    assert_eq!(hook_status(&status, "post-receive")["installed"], true);

    let home = origin.home().to_path_buf();
    let clone: PathBuf = home.join("clone");
    ok(git_at(&home, &home, &["clone", "-q", origin.path.to_str().unwrap(), "clone"], &[]), "clone");
    let run = |args: &[&str], envs: &[(&str, &str)]| git_at(&home, &clone, args, envs);
    let now =
        format!("{} +0000", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    let live = [("GIT_COMMITTER_DATE", now.as_str()), ("BATON_HOOKS", "0")];
    std::fs::create_dir_all(clone.join(".dwp/command")).unwrap();
    write_hook(&clone.join(".dwp/command/todo"), TODO_TO_DONE, 0o755);
    ok(run(&["add", "-A"], &[]), "add");
    ok(run(&["commit", "-q", "-m", "handlers"], &[]), "commit");
    ok(run(&["push", "-q", "origin", "main"], &[]), "push main");

    // An invalid state: refused, with the reason, and nothing updated.
    ok(run(&["checkout", "-q", "-b", "bad"], &[]), "checkout");
    ok(run(&["commit", "-q", "--allow-empty", "-m", "x", "-m", "dwp-state: ../x"], &[]), "commit");
    let push = run(&["push", "origin", "bad"], &[]);
    assert!(!push.status.success());
    let err = String::from_utf8_lossy(&push.stderr);
    assert!(
        err.contains("git-baton: rejected refs/heads/bad: commit") && err.contains("invalid dwp-state \"../x\""),
        "{err}"
    );
    assert!(origin.git(&["branch", "--list", "bad"]).is_empty());

    // The chained pre-receive still refuses what it refused before.
    ok(run(&["checkout", "-q", "-b", "frozen", "main"], &[]), "checkout");
    let push = run(&["push", "origin", "frozen"], &[]);
    assert!(!push.status.success());
    assert!(String::from_utf8_lossy(&push.stderr).contains("frozen is frozen"));

    // A valid state passes and the server runs it.
    ok(run(&["checkout", "-q", "-b", "good", "main"], &[]), "checkout");
    ok(run(&["commit", "-q", "--allow-empty", "-m", "x", "-m", "dwp-state: todo"], &[]), "commit");
    ok(run(&["push", "-q", "origin", "good"], &[]), "push good");
    wait_until("good to be done on origin", || origin.state_of("good") == "done");

    // Finding 12 of the fault pass: a branch named like an option (`-Bmain`) is run as a branch,
    // and the server's `main` is never reset by it.
    let main_before = origin.head("main");
    ok(run(&["checkout", "-q", "-b", "dash", "main"], &[]), "checkout");
    ok(run(&["commit", "-q", "--allow-empty", "-m", "x", "-m", "dwp-state: todo"], &[]), "commit");
    ok(run(&["push", "-q", "origin", "dash:refs/heads/-Bmain"], &[]), "push -Bmain");
    wait_until("-Bmain to be done on origin", || origin.state_of("refs/heads/-Bmain") == "done");
    assert_eq!(origin.head("main"), main_before, "the server's main was reset by a branch named -Bmain");

    // Leases: a live one may be renewed by its own run only.
    let claim = |run_id: &str, envs: &[(&str, &str)]| {
        let msg = format!("dwp-origin-state: build\ndwp-run-id: {run_id}\ndwp-runner-id: host:1\ndwp-lease-seconds: 3600\ndwp-state: working");
        ok(run(&["commit", "-q", "--allow-empty", "-m", "claim", "-m", &msg], envs), "commit claim");
    };
    ok(run(&["checkout", "-q", "-b", "lease", "main"], &[]), "checkout");
    claim("run-a", &live);
    ok(run(&["push", "-q", "origin", "lease"], &live), "push the claim");
    claim("run-b", &live);
    let push = run(&["push", "origin", "lease"], &live);
    assert!(!push.status.success(), "a hijack of a live lease must be refused");
    let err = String::from_utf8_lossy(&push.stderr);
    assert!(
        err.contains("git-baton: rejected refs/heads/lease: commit")
            && err.contains("claims the branch for run run-b but run run-a holds a live lease"),
        "{err}"
    );
    ok(run(&["reset", "-q", "--hard", "HEAD^"], &live), "reset");
    claim("run-a", &live);
    ok(run(&["push", "-q", "origin", "lease"], &live), "push a heartbeat of the same run");

    // An expired lease may be taken over by another run.
    let old = [("GIT_COMMITTER_DATE", common::FIXED_DATE), ("BATON_HOOKS", "0")];
    ok(run(&["checkout", "-q", "-b", "expired", "main"], &[]), "checkout");
    claim("run-c", &old);
    ok(run(&["push", "-q", "origin", "expired"], &old), "push an old claim");
    claim("run-d", &live);
    ok(run(&["push", "-q", "origin", "expired"], &live), "push a takeover of an expired lease");

    origin.baton_ok(&["hooks", "uninstall"]);
    assert!(!origin.path.join("hooks/post-receive").exists());
    assert!(std::fs::read_to_string(origin.path.join("hooks/pre-receive")).unwrap().contains("frozen is frozen"));
}

/// The trigger is a plain command too: without branches it does nothing, and it logs.
#[test]
fn trigger_without_branches_only_logs() {
    let r = TestRepo::new();
    r.commit_all("init");
    let out = Command::new(BATON)
        .args(["hooks", "trigger", "--hook", "test"])
        .current_dir(&r.path)
        .env("HOME", r.home())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines = trigger_lines(&r.path.join(".git"));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].ends_with("hooks trigger (test): "), "{lines:?}");
}

/// A child answered by hand (a person's commit, not a runner's) completes its parent's join: the
/// hook ticks the waiting parent too, which joins and runs its `then` handler.
#[test]
fn a_child_moved_by_hand_completes_its_parents_join() {
    let r = TestRepo::new();
    r.handler(".dwp/command/merge", TODO_TO_DONE);
    r.commit_all("handlers");
    let tree = r.head("main^{tree}");
    let kid = git(&r, &["commit-tree", &tree, "-p", "main", "-m", "kid", "-m", "dwp-parent: sup\ndwp-state: hold"]);
    git(&r, &["update-ref", "refs/heads/kid", kid.trim()]);
    let sup = git(
        &r,
        &[
            "commit-tree",
            &tree,
            "-p",
            "main",
            "-m",
            "waiting for kid",
            "-m",
            "dwp-join-then: merge\ndwp-join-rule: all\ndwp-join-on-failure: fail\ndwp-join-child: kid\ndwp-state: waiting",
        ],
    );
    git(&r, &["update-ref", "refs/heads/sup", sup.trim()]);
    r.baton_ok(&["hooks", "install"]);
    let common = r.path.join(".git");
    let done = git(&r, &["commit-tree", &tree, "-p", "kid", "-m", "answered by hand", "-m", "dwp-state: done"]);
    git(&r, &["update-ref", "refs/heads/kid", done.trim()]);
    wait_until("sup to be merged", || r.state_of("sup") == "done");
    assert_eq!(r.git(&["log", "-1", "--format=%(trailers:key=dwp-joined,valueonly)", "sup~2"]).trim(), "all");
    assert!(hooks_log(&common).contains("with the waiting parent(s) sup"), "{}", hooks_log(&common));
}
