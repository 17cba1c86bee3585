//! End-to-end tests of the foundation commands (`send`, `set-state`, `status`, `events`,
//! `heartbeat`, `init`, `trailers`): the real binary against real repositories, with the real `git`
//! as the oracle for what was written (commit messages, trees, refs, worktree state).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{base_env, TestRepo};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Run a prepared command with `input` on its standard input; return its output (not checked).
fn run_with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    // A process may refuse early and close its stdin: a failed write is not the test's concern.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Assert a git-baton run succeeded and return its stdout.
fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed ({:?}): {}", out.status.code(), text(&out.stderr));
    text(&out.stdout)
}

/// Assert a git-baton run failed the documented way: exit `code`, nothing on stdout, exactly one
/// line `git-baton: error: …` on stderr, no panic.
fn assert_fails(out: &Output, code: i32, what: &str) {
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{what}: panicked: {stderr}");
    assert_eq!(out.status.code(), Some(code), "{what}: exit code (stderr: {stderr})");
    assert!(out.stdout.is_empty(), "{what}: stdout should be empty, got {:?}", text(&out.stdout));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: want one stderr line, got {stderr:?}");
    assert!(lines[0].starts_with("git-baton: error: "), "{what}: stderr {stderr:?}");
}

/// Everything a failed command must not have changed: refs, HEAD, loose objects, worktree status.
fn snapshot(repo: &TestRepo) -> String {
    let git = |args: &[&str]| text(&repo.git_cmd(args).output().unwrap().stdout);
    let mut s = git(&["for-each-ref", "--format=%(refname) %(objectname)"]);
    s += &git(&["symbolic-ref", "-q", "HEAD"]);
    s += &git(&["rev-parse", "-q", "--verify", "HEAD"]);
    s += &git(&["count-objects"]);
    if git(&["rev-parse", "--is-bare-repository"]) == "false\n" {
        s += &git(&["status", "--porcelain"]);
    }
    s
}

/// `git` run in another directory (a linked worktree, a clone) with the test environment.
fn git_at(repo: &TestRepo, dir: &Path, args: &[&str]) -> String {
    let out = repo.git_cmd(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?} in {}: {}", dir.display(), text(&out.stderr));
    text(&out.stdout)
}

/// git-baton run in another directory with the test environment.
fn baton_at(repo: &TestRepo, dir: &Path, args: &[&str]) -> Output {
    repo.baton_cmd(args).current_dir(dir).output().unwrap()
}

/// A temp dir that is not inside any git repository.
fn plain_dir() -> TestRepo {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain");
    std::fs::create_dir(&path).unwrap();
    TestRepo { dir, path }
}

/// `git clone [--bare] src` into a fresh temp dir.
fn clone_of(src: &TestRepo, bare: bool) -> TestRepo {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(if bare { "clone.git" } else { "clone" });
    let mut cmd = Command::new("git");
    base_env(&mut cmd, dir.path());
    cmd.current_dir(dir.path()).args(["clone", "-q"]);
    if bare {
        cmd.arg("--bare");
    }
    let out = cmd.arg(&src.path).arg(&path).output().unwrap();
    assert!(out.status.success(), "clone: {}", text(&out.stderr));
    TestRepo { dir, path }
}

/// The raw message of a commit, as git stores it.
fn raw_message(repo: &TestRepo, rev: &str) -> String {
    let obj = repo.git(&["cat-file", "commit", rev]);
    obj.split_once("\n\n").unwrap().1.to_owned()
}

fn tree_of(repo: &TestRepo, rev: &str) -> String {
    repo.head(&format!("{rev}^{{tree}}"))
}

/// Append a commit with `msg` on `branch` (checked out or not) with `git commit-tree`, keeping the
/// tree, committed at `date` (git's `<seconds> <offset>` form). Returns the new id.
fn git_state_commit(repo: &TestRepo, branch: &str, msg: &str, date: &str) -> String {
    let refname = format!("refs/heads/{branch}");
    let parent = repo.head(&refname);
    let tree = tree_of(repo, &parent);
    let mut cmd = repo.git_cmd(&["commit-tree", &tree, "-p", &parent]);
    cmd.env("GIT_COMMITTER_DATE", date).env("GIT_AUTHOR_DATE", date);
    let out = run_with_stdin(cmd, msg.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    repo.git(&["update-ref", &refname, &id, &parent]);
    id
}

/// A repository with one commit on `main` holding `a.txt` and `b.txt`.
fn repo_with_files() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("a.txt", "alpha\n");
    repo.write("b.txt", "beta\n");
    repo.commit_all("initial");
    repo
}

fn read(repo: &TestRepo, rel: &str) -> String {
    std::fs::read_to_string(repo.path.join(rel)).unwrap()
}

fn json_lines(s: &str) -> Vec<Value> {
    common::json_lines(s)
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort();
    v.into_iter().map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------------------------
// send
// ---------------------------------------------------------------------------------------------

/// `send` on the checked-out branch appends one commit with the parent's tree and exactly the
/// composed message, prints its id, and leaves unstaged, staged and untracked changes alone.
#[test]
fn send_on_checked_out_branch_keeps_tree_index_and_files() {
    let repo = repo_with_files();
    let old = repo.head("main");
    repo.write("a.txt", "alpha modified, not staged\n");
    repo.write("b.txt", "beta staged\n");
    repo.git(&["add", "b.txt"]);
    repo.write("c.txt", "untracked\n");
    let status_before = repo.git(&["status", "--porcelain"]);
    assert_eq!(status_before, " M a.txt\nM  b.txt\n?? c.txt\n");
    let staged_before = repo.git(&["diff", "--cached"]);
    let unstaged_before = repo.git(&["diff"]);

    let out = repo.baton_ok(&["send", "review", "-m", "please review", "--trailer", "K: V"]);

    let new = repo.head("main");
    assert_ne!(new, old);
    assert_eq!(out, format!("{new}\n"), "stdout is the new commit id");
    assert_eq!(repo.head("HEAD"), new, "HEAD follows the branch");
    assert_eq!(repo.head("main^"), old, "parent is the old head");
    assert_eq!(repo.git(&["rev-list", "--count", &format!("{old}..{new}")]), "1\n");
    assert_eq!(tree_of(&repo, &new), tree_of(&repo, &old), "same tree");
    assert_eq!(raw_message(&repo, &new), "baton: review\n\nplease review\n\nK: V\ndwp-state: review\n");
    assert_eq!(repo.state_of("main"), "review");
    assert_eq!(repo.trailer_of("main", "K").as_deref(), Some("V"));
    // Identity from the GIT_* variables, like git.
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>", "main"]),
        "Test Author <author@example.com>|Test Committer <committer@example.com>\n"
    );

    assert_eq!(repo.git(&["status", "--porcelain"]), status_before);
    assert_eq!(repo.git(&["diff", "--cached"]), staged_before);
    assert_eq!(repo.git(&["diff"]), unstaged_before);
    assert_eq!(read(&repo, "a.txt"), "alpha modified, not staged\n");
    assert_eq!(read(&repo, "b.txt"), "beta staged\n");
    assert_eq!(read(&repo, "c.txt"), "untracked\n");
}

/// `send --branch` to a branch that is not checked out moves only that branch.
#[test]
fn send_to_other_branch_moves_only_that_branch() {
    let repo = repo_with_files();
    repo.git(&["branch", "other"]);
    repo.write("a.txt", "dirty\n");
    let main_before = repo.head("main");
    let other_before = repo.head("other");
    let status_before = repo.git(&["status", "--porcelain"]);

    let out = repo.baton_ok(&["send", "--branch", "other", "build", "-m", "go"]);

    let other = repo.head("other");
    assert_eq!(out, format!("{other}\n"));
    assert_eq!(repo.head("other^"), other_before);
    assert_eq!(tree_of(&repo, &other), tree_of(&repo, &other_before));
    assert_eq!(repo.state_of("other"), "build");
    assert_eq!(repo.head("main"), main_before, "main untouched");
    assert_eq!(repo.head("HEAD"), main_before, "HEAD untouched");
    assert_eq!(repo.git(&["symbolic-ref", "HEAD"]), "refs/heads/main\n");
    assert_eq!(repo.git(&["status", "--porcelain"]), status_before);

    // `refs/heads/` spelled out names the same branch.
    repo.baton_ok(&["send", "--branch", "refs/heads/other", "next"]);
    assert_eq!(repo.head("other^"), other);
    assert_eq!(repo.state_of("other"), "next");
}

/// `send --branch B` where B is checked out in a linked worktree: the worktree's files, index and
/// `git status` stay exactly as they were; running `send` inside the worktree targets its branch.
#[test]
fn send_to_branch_checked_out_in_linked_worktree() {
    let repo = repo_with_files();
    repo.git(&["branch", "feature"]);
    let wt: PathBuf = repo.dir.path().join("wt");
    repo.git(&["worktree", "add", "-q", wt.to_str().unwrap(), "feature"]);
    std::fs::write(wt.join("a.txt"), "worktree edit\n").unwrap();
    std::fs::write(wt.join("b.txt"), "worktree staged\n").unwrap();
    git_at(&repo, &wt, &["add", "b.txt"]);
    std::fs::write(wt.join("new.txt"), "untracked\n").unwrap();
    let status_before = git_at(&repo, &wt, &["status", "--porcelain"]);
    assert_eq!(status_before, " M a.txt\nM  b.txt\n?? new.txt\n");
    let cached_before = git_at(&repo, &wt, &["diff", "--cached"]);
    let feature_before = repo.head("feature");
    let main_before = repo.head("main");

    repo.baton_ok(&["send", "--branch", "feature", "review", "-m", "look"]);

    let feature = repo.head("feature");
    assert_eq!(repo.head("feature^"), feature_before);
    assert_eq!(tree_of(&repo, &feature), tree_of(&repo, &feature_before));
    assert_eq!(git_at(&repo, &wt, &["rev-parse", "HEAD"]).trim(), feature);
    assert_eq!(git_at(&repo, &wt, &["status", "--porcelain"]), status_before);
    assert_eq!(git_at(&repo, &wt, &["diff", "--cached"]), cached_before);
    assert_eq!(std::fs::read_to_string(wt.join("a.txt")).unwrap(), "worktree edit\n");
    assert_eq!(std::fs::read_to_string(wt.join("b.txt")).unwrap(), "worktree staged\n");
    assert_eq!(repo.head("main"), main_before);

    // Inside the linked worktree, the default branch is the worktree's.
    let out = ok(baton_at(&repo, &wt, &["send", "done"]), "send in worktree");
    assert_eq!(out.trim(), repo.head("feature"));
    assert_eq!(repo.head("feature^"), feature);
    assert_eq!(repo.state_of("feature"), "done");
    assert_eq!(repo.head("main"), main_before);
    assert_eq!(git_at(&repo, &wt, &["status", "--porcelain"]), status_before);
}

/// `send --json` prints exactly `{"branch","commit","parent","state"}` with full ids.
#[test]
fn send_json_shape() {
    let repo = repo_with_files();
    let parent = repo.head("main");
    let out = repo.baton_ok(&["send", "--json", "plan", "-m", "x"]);
    assert_eq!(out.lines().count(), 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(keys(&v), ["branch", "commit", "parent", "state"]);
    assert_eq!(v["branch"], "main");
    assert_eq!(v["commit"], repo.head("main"));
    assert_eq!(v["parent"], parent);
    assert_eq!(v["state"], "plan");
}

/// `set-state --dwp-state S` is an alias of `send S`: same message, same options.
#[test]
fn set_state_alias_works_like_send() {
    let repo = repo_with_files();
    let parent = repo.head("main");
    let out = repo.baton_ok(&["set-state", "--dwp-state", "review", "-m", "body", "--trailer", "K=V"]);
    let id = repo.head("main");
    assert_eq!(out, format!("{id}\n"));
    assert_eq!(repo.head("main^"), parent);
    assert_eq!(tree_of(&repo, &id), tree_of(&repo, &parent));
    assert_eq!(raw_message(&repo, &id), "baton: review\n\nbody\n\nK: V\ndwp-state: review\n");

    repo.git(&["branch", "side"]);
    let side = repo.head("side");
    let out = repo.baton_ok(&["set-state", "--dwp-state", "done", "--branch", "side", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["branch"], "side");
    assert_eq!(v["parent"], side);
    assert_eq!(v["state"], "done");
    assert_eq!(raw_message(&repo, "side"), "baton: done\n\ndwp-state: done\n");

    let bad = repo.baton(&["set-state", "--dwp-state", "working"]);
    assert_fails(&bad, 2, "set-state working");
    assert_eq!(repo.head("main"), id);
}

/// The body from `-F FILE`, `-F -`, `--stdin`, and a custom `--subject`.
#[test]
fn send_body_sources_and_subject() {
    let repo = repo_with_files();
    let file = repo.dir.path().join("body.txt");
    std::fs::write(&file, "from a file\nsecond line\n\n\n").unwrap();
    repo.baton_ok(&["send", "a", "-F", file.to_str().unwrap()]);
    assert_eq!(raw_message(&repo, "main"), "baton: a\n\nfrom a file\nsecond line\n\ndwp-state: a\n");

    let out = run_with_stdin(repo.baton_cmd(&["send", "b", "--stdin"]), b"from stdin\n");
    let id = ok(out, "send --stdin");
    assert_eq!(id.trim(), repo.head("main"));
    assert_eq!(raw_message(&repo, "main"), "baton: b\n\nfrom stdin\n\ndwp-state: b\n");

    let out = run_with_stdin(repo.baton_cmd(&["send", "c", "-F", "-"]), b"dash file\n");
    ok(out, "send -F -");
    assert_eq!(raw_message(&repo, "main"), "baton: c\n\ndash file\n\ndwp-state: c\n");

    repo.baton_ok(&["send", "d", "--subject", "Please look at the parser", "-m", "details"]);
    assert_eq!(raw_message(&repo, "main"), "Please look at the parser\n\ndetails\n\ndwp-state: d\n");
    assert_eq!(repo.git(&["log", "-1", "--format=%s", "main"]), "Please look at the parser\n");

    // Several trailers keep their order, dwp-state last.
    repo.baton_ok(&["send", "e", "--trailer", "Reviewed-by: R <r@example.com>", "--trailer", "Ticket: 42"]);
    assert_eq!(
        repo.git(&["log", "-1", "--format=%(trailers:only,unfold)", "main"]),
        "Reviewed-by: R <r@example.com>\nTicket: 42\ndwp-state: e\n\n"
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

/// Bad arguments and bodies: exit 2 (1 for an unreadable file), one error line, nothing written.
#[test]
fn send_rejects_bad_input_without_writing() {
    let repo = repo_with_files();
    let dir = repo.dir.path();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    std::fs::write(dir.join("nul.txt"), b"before\0after\n").unwrap();
    std::fs::write(dir.join("latin1.txt"), b"caf\xe9 \xff\xfe\n").unwrap();
    std::fs::write(dir.join("empty.txt"), b"").unwrap();
    std::fs::write(dir.join("blank.txt"), b"  \n\n\t\n").unwrap();
    std::fs::write(dir.join("huge.txt"), vec![b'a'; (1 << 20) + 1]).unwrap();
    std::fs::write(
        dir.join("scissors.txt"),
        "keep this\n# ------------------------ >8 ------------------------\nhidden\n",
    )
    .unwrap();
    let scissors_inline = "x\n# ------------------------ >8 ------------------------\ny";

    let cases: Vec<(Vec<String>, i32)> = vec![
        (vec!["send".into(), "working".into(), "-m".into(), "x".into()], 2),
        (vec!["send".into(), "../x".into()], 2),
        (vec!["send".into(), "/bin/sh".into()], 2),
        (vec!["send".into(), "a/../../b".into()], 2),
        (vec!["send".into(), "a b".into()], 2),
        (vec!["send".into(), "".into()], 2),
        (vec!["send".into(), "a..b".into()], 2),
        (vec!["send".into(), "x".repeat(129)], 2),
        (vec!["send".into(), "review".into(), "--trailer".into(), "bad".into()], 2),
        (vec!["send".into(), "review".into(), "--trailer".into(), "a b: c".into()], 2),
        (vec!["send".into(), "review".into(), "--trailer".into(), "K:".into()], 2),
        (vec!["send".into(), "review".into(), "--trailer".into(), "dwp-state: done".into()], 2),
        (vec!["send".into(), "review".into(), "-F".into(), path("nul.txt")], 2),
        (vec!["send".into(), "review".into(), "-F".into(), path("latin1.txt")], 2),
        (vec!["send".into(), "review".into(), "-F".into(), path("empty.txt")], 2),
        (vec!["send".into(), "review".into(), "-F".into(), path("blank.txt")], 2),
        (vec!["send".into(), "review".into(), "-F".into(), path("huge.txt")], 2),
        (vec!["send".into(), "review".into(), "-F".into(), path("scissors.txt")], 2),
        (vec!["send".into(), "review".into(), "-m".into(), scissors_inline.into()], 2),
        (vec!["send".into(), "review".into(), "-m".into(), "".into()], 2),
        (vec!["send".into(), "review".into(), "--subject".into(), "two\nlines".into()], 2),
        (vec!["send".into(), "review".into(), "--subject".into(), " ".into()], 2),
        // stdin is /dev/null here: an empty body.
        (vec!["send".into(), "review".into(), "--stdin".into()], 2),
        (vec!["send".into(), "review".into(), "-F".into(), path("does-not-exist")], 1),
    ];
    for (args, code) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let what = format!("{:?}", args.iter().map(|a| &a[..a.len().min(60)]).collect::<Vec<_>>());
        let before = snapshot(&repo);
        let out = repo.baton(&args);
        assert_fails(&out, code, &what);
        assert_eq!(snapshot(&repo), before, "{what}: something was written");
    }
}

/// An enormous body on standard input is refused too (read is bounded, nothing written).
#[test]
fn send_rejects_enormous_stdin_body() {
    let repo = repo_with_files();
    let before = snapshot(&repo);
    let out = run_with_stdin(repo.baton_cmd(&["send", "review", "--stdin"]), &vec![b'a'; 3 << 20]);
    assert_fails(&out, 2, "send --stdin with 3 MiB");
    assert_eq!(snapshot(&repo), before);
}

/// Outside any repository: exit 1.
#[test]
fn send_outside_a_repository_fails() {
    let plain = plain_dir();
    let out = plain.baton(&["send", "review", "-m", "x"]);
    assert_fails(&out, 1, "send in a plain dir");
    assert_eq!(std::fs::read_dir(&plain.path).unwrap().count(), 0);
    assert_fails(&plain.baton(&["status"]), 1, "status in a plain dir");
}

/// A fresh `git init` (unborn branch): exit 1, no ref created.
#[test]
fn send_on_unborn_branch_fails() {
    let repo = TestRepo::new();
    let before = snapshot(&repo);
    assert_fails(&repo.baton(&["send", "review"]), 1, "send on unborn main");
    assert_eq!(snapshot(&repo), before);
    assert!(repo.git_cmd(&["rev-parse", "-q", "--verify", "refs/heads/main"]).output().unwrap().stdout.is_empty());
}

/// `--branch nope` for a branch that does not exist: exit 1, nothing created.
#[test]
fn send_to_missing_branch_fails() {
    let repo = repo_with_files();
    let before = snapshot(&repo);
    assert_fails(&repo.baton(&["send", "--branch", "nope", "review"]), 1, "send --branch nope");
    assert_eq!(snapshot(&repo), before);
}

/// Detached HEAD without `--branch`: usage error (exit 2), nothing written.
#[test]
fn send_on_detached_head_is_a_usage_error() {
    let repo = repo_with_files();
    repo.git(&["checkout", "-q", "--detach"]);
    let before = snapshot(&repo);
    assert_fails(&repo.baton(&["send", "review"]), 2, "send on detached HEAD");
    assert_eq!(snapshot(&repo), before);
    // With --branch it works and HEAD stays detached where it was.
    let head = repo.head("HEAD");
    repo.baton_ok(&["send", "--branch", "main", "review"]);
    assert_eq!(repo.head("HEAD"), head);
    assert_eq!(repo.head("main^"), head);
}

/// A bare repository without `--branch`: usage error (exit 2); with `--branch` it works.
#[test]
fn send_in_bare_repository_needs_branch() {
    let src = repo_with_files();
    let bare = clone_of(&src, true);
    let before = snapshot(&bare);
    assert_fails(&bare.baton(&["send", "review"]), 2, "send in bare repo");
    assert_eq!(snapshot(&bare), before);

    let old = bare.head("main");
    let out = bare.baton_ok(&["send", "--branch", "main", "review"]);
    assert_eq!(out.trim(), bare.head("main"));
    assert_eq!(bare.head("main^"), old);
    assert_eq!(bare.state_of("main"), "review");
}

/// Runner-only trailers (`dwp-run-id`, `dwp-lease-seconds`, …) cannot be forged with `send`
/// (protocol/mod.rs: "Keys only a runner writes: a user's `send` may not forge a lease").
#[test]
fn send_refuses_runner_only_trailers() {
    let repo = repo_with_files();
    for t in [
        "dwp-origin-state: build",
        "dwp-run-id: forged",
        "dwp-runner-id: host:1",
        "dwp-lease-seconds: 99999",
        "dwp-stalled-run: r0",
    ] {
        let before = snapshot(&repo);
        let out = repo.baton(&["send", "review", "--trailer", t]);
        assert_fails(&out, 2, &format!("send --trailer {t:?}"));
        assert_eq!(snapshot(&repo), before, "{t}: something was written");
    }
}

/// `trailers` with an unknown revision: exit 1, nothing on stdout, even after a good revision.
#[test]
fn trailers_unknown_revision_fails_cleanly() {
    let repo = repo_with_files();
    assert_fails(&repo.baton(&["trailers", "no-such-rev"]), 1, "trailers no-such-rev");
    assert_fails(&repo.baton(&["trailers", "main", "no-such-rev"]), 1, "trailers main no-such-rev");
    assert_fails(&repo.baton(&["trailers", "--json", "main", "deadbeef"]), 1, "trailers --json main deadbeef");
}

// ---------------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------------

/// A board with one branch per interesting case (see the branch names), made with git directly.
fn board_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("README", "board\n");
    repo.handler(".dwp/command/review", "#!/bin/sh\nexit 0\n");
    repo.write(".dwp/command/plain", "#!/bin/sh\nexit 0\n"); // not executable
    repo.commit_all("initial");
    let old = "1000000000 +0000";
    for b in ["has-handler", "no-handler", "no-state", "invalid", "not-exec", "task/expired", "task/active"] {
        repo.git(&["branch", b]);
    }
    git_state_commit(&repo, "has-handler", "go\n\ndwp-state: review\n", old);
    git_state_commit(&repo, "no-handler", "go\n\ndwp-state: deploy\n", old);
    git_state_commit(&repo, "no-state", "just a commit\n\nSigned-off-by: X <x@y>\n", old);
    git_state_commit(&repo, "invalid", "bad\n\ndwp-state: ../etc\n", old);
    git_state_commit(&repo, "not-exec", "go\n\ndwp-state: plain\n", old);
    git_state_commit(
        &repo,
        "task/expired",
        "baton: working\n\ndwp-origin-state: build\ndwp-run-id: r1\ndwp-runner-id: host:1\n\
         dwp-lease-seconds: 60\ndwp-state: working\n",
        old,
    );
    git_state_commit(
        &repo,
        "task/active",
        "baton: working\n\ndwp-origin-state: review\ndwp-run-id: r2\ndwp-runner-id: host:2\n\
         dwp-lease-seconds: 50000\ndwp-state: working\n",
        &format!("{} +0000", now()),
    );
    repo
}

fn status_rows(out: &str) -> Vec<Value> {
    common::json_lines(out)
}

fn row<'a>(rows: &'a [Value], branch: &str) -> &'a Value {
    rows.iter().find(|r| r["branch"] == branch).unwrap_or_else(|| panic!("no row for {branch}"))
}

/// `status --json`: every local branch with state, invalid state, lease and handler fields.
#[test]
fn status_json_reports_states_leases_and_handlers() {
    let repo = board_repo();
    let t0 = now();
    let rows = status_rows(&repo.baton_ok(&["status", "--json"]));
    let t1 = now();

    let names: Vec<&str> = rows.iter().map(|r| r["branch"].as_str().unwrap()).collect();
    let git_names = repo.git(&["for-each-ref", "--format=%(refname:short)", "refs/heads"]);
    assert_eq!(sorted(names.clone()), sorted(git_names.lines().collect()), "every local branch, once");
    for r in &rows {
        assert_eq!(
            keys(r),
            [
                "age_seconds",
                "attempt",
                "branch",
                "breaker",
                "breaker_status",
                "commit",
                "error",
                "handler",
                "handler_status",
                "invalid_state",
                "lease",
                "lease_seconds_left",
                "not_before",
                "origin_state",
                "parked_from",
                "run_id",
                "runner_id",
                "state"
            ]
        );
        let b = r["branch"].as_str().unwrap();
        assert_eq!(r["commit"], repo.head(&format!("refs/heads/{b}")), "{b}");
    }

    let r = row(&rows, "has-handler");
    assert_eq!(r["state"], "review");
    assert_eq!(r["handler"], true);
    assert_eq!(r["lease"], "n/a");
    assert_eq!(r["lease_seconds_left"], Value::Null);
    assert_eq!(r["invalid_state"], Value::Null);
    let age = r["age_seconds"].as_i64().unwrap();
    assert!((t0 - 1_000_000_000..=t1 - 1_000_000_000).contains(&age), "age {age}");

    let r = row(&rows, "no-handler");
    assert_eq!(r["state"], "deploy");
    assert_eq!(r["handler"], false);

    let r = row(&rows, "not-exec");
    assert_eq!(r["state"], "plain");
    assert_eq!(r["handler"], false, "a non-executable file is no handler");

    let r = row(&rows, "no-state");
    assert_eq!(r["state"], Value::Null);
    assert_eq!(r["invalid_state"], Value::Null);
    assert_eq!(r["handler"], Value::Null);
    assert_eq!(r["lease"], "n/a");

    let r = row(&rows, "invalid");
    assert_eq!(r["state"], Value::Null);
    assert_eq!(r["invalid_state"], "../etc");
    assert_eq!(r["handler"], Value::Null);

    let r = row(&rows, "task/expired");
    assert_eq!(r["state"], "working");
    assert_eq!(r["lease"], "expired");
    assert_eq!(r["origin_state"], "build");
    assert_eq!(r["run_id"], "r1");
    assert_eq!(r["runner_id"], "host:1");
    assert_eq!(r["handler"], Value::Null);
    let left = r["lease_seconds_left"].as_i64().unwrap();
    assert!((-(t1 - 1_000_000_060)..=-(t0 - 1_000_000_060)).contains(&left), "expired lease: {left}");

    let r = row(&rows, "task/active");
    assert_eq!(r["state"], "working");
    assert_eq!(r["lease"], "active");
    assert_eq!(r["origin_state"], "review");
    assert_eq!(r["run_id"], "r2");
    assert_eq!(r["runner_id"], "host:2");
    let left = r["lease_seconds_left"].as_i64().unwrap();
    assert!(left > 0 && left <= 50_000, "active lease: {left}");
    assert!(left >= 50_000 - 120, "active lease: {left}");

    let r = row(&rows, "main");
    assert_eq!(r["state"], Value::Null);

    // The table shows the same branches, one line each after the header.
    let table = repo.baton_ok(&["status"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("BRANCH"), "{table}");
    assert_eq!(lines.len(), rows.len() + 1);
    let line = |b: &str| {
        *lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(b))
            .unwrap_or_else(|| panic!("no line for {b}:\n{table}"))
    };
    assert!(line("invalid").contains("INVALID(../etc)"));
    assert!(line("task/expired").contains("expired"));
    assert!(line("task/active").contains("active"));
    assert!(line("has-handler").contains(" yes "));
    assert!(line("no-handler").contains(" no "));
    let short = &repo.head("has-handler")[..12];
    assert!(line("has-handler").ends_with(short));
}

/// `status --branch GLOB` (repeatable) keeps only matching branches.
#[test]
fn status_branch_glob_filters() {
    let repo = board_repo();
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["status", "--json"];
        a.extend_from_slice(args);
        let mut n: Vec<String> =
            status_rows(&repo.baton_ok(&a)).iter().map(|r| r["branch"].as_str().unwrap().to_owned()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&["--branch", "task/*"]), ["task/active", "task/expired"]);
    assert_eq!(names(&["--branch", "task/*", "--branch", "main"]), ["main", "task/active", "task/expired"]);
    assert_eq!(names(&["--branch", "no-*"]), ["no-handler", "no-state"]);
    assert_eq!(names(&["--branch", "nothing-matches"]), Vec::<String>::new());
    // Text output filters too.
    let table = repo.baton_ok(&["status", "--branch", "task/*"]);
    assert_eq!(table.lines().count(), 3, "{table}");
}

/// `status` in a bare clone lists its branches with their states.
#[test]
fn status_in_bare_repository() {
    let src = board_repo();
    let bare = clone_of(&src, true);
    let rows = status_rows(&bare.baton_ok(&["status", "--json"]));
    let git_names = bare.git(&["for-each-ref", "--format=%(refname:short)", "refs/heads"]);
    let names: Vec<&str> = rows.iter().map(|r| r["branch"].as_str().unwrap()).collect();
    assert_eq!(sorted(names), sorted(git_names.lines().collect()));
    assert_eq!(row(&rows, "has-handler")["state"], "review");
    assert_eq!(row(&rows, "has-handler")["handler"], true);
    assert_eq!(row(&rows, "task/expired")["lease"], "expired");
    assert_eq!(row(&rows, "main")["commit"], bare.head("main"));
    let table = bare.baton_ok(&["status"]);
    assert_eq!(table.lines().count(), rows.len() + 1);
}

/// `status --remote origin` lists `origin/<branch>` for each remote-tracking branch (not the
/// `origin/HEAD` pointer), with the states read from the remote-tracking commits.
#[test]
fn status_remote_lists_remote_tracking_branches() {
    let src = board_repo();
    let clone = clone_of(&src, false);
    let rows = status_rows(&clone.baton_ok(&["status", "--remote", "origin", "--json"]));
    let git_refs = clone.git(&["for-each-ref", "--format=%(refname) %(symref)", "refs/remotes/origin"]);
    let expected: Vec<String> = git_refs
        .lines()
        .filter(|l| l.ends_with(' ')) // not a symbolic ref
        .map(|l| {
            let name = l.trim_end().strip_prefix("refs/remotes/").unwrap();
            name.to_owned()
        })
        .collect();
    assert!(expected.contains(&"origin/main".to_owned()));
    let mut names: Vec<String> = rows.iter().map(|r| r["branch"].as_str().unwrap().to_owned()).collect();
    names.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(names, expected_sorted);
    assert_eq!(row(&rows, "origin/has-handler")["state"], "review");
    assert_eq!(row(&rows, "origin/invalid")["invalid_state"], "../etc");
    assert_eq!(row(&rows, "origin/task/expired")["commit"], clone.head("refs/remotes/origin/task/expired"));
    // Local branches are not listed, and globs apply to the branch names (as `run --remote` does)
    // or to the `origin/…` names shown.
    for glob in ["task/*", "origin/task/*"] {
        let rows = status_rows(&clone.baton_ok(&["status", "--remote", "origin", "--json", "--branch", glob]));
        let mut names: Vec<&str> = rows.iter().map(|r| r["branch"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["origin/task/active", "origin/task/expired"], "{glob}");
    }
    // A remote that does not exist, or a name that could be an option: a usage error.
    for bad in ["nosuch", "", "--upload-pack=touch x"] {
        let out = clone.baton(&["status", "--remote", bad, "--json"]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(out.stdout.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// events
// ---------------------------------------------------------------------------------------------

/// The state commits of `rev`'s first-parent history, newest first, according to git.
fn git_state_commits(repo: &TestRepo, rev: &str) -> Vec<(String, String)> {
    repo.git(&["log", "--first-parent", "--format=%H %(trailers:key=dwp-state,valueonly,separator=%x2C)", rev])
        .lines()
        .filter_map(|l| {
            let (id, st) = l.split_once(' ')?;
            (!st.is_empty()).then(|| (id.to_owned(), st.rsplit(',').next().unwrap().to_owned()))
        })
        .collect()
}

/// A repo with 12 state commits on main, plain commits in between.
fn events_repo() -> TestRepo {
    let repo = repo_with_files();
    for i in 0..12 {
        if i % 3 == 0 {
            repo.write("a.txt", &format!("plain {i}\n"));
            repo.commit_all(&format!("plain commit {i}"));
        }
        repo.baton_ok(&["send", &format!("s{i}"), "-m", &format!("body {i}")]);
    }
    repo.write("a.txt", "last\n");
    repo.commit_all("plain tip");
    repo
}

/// `events`: only state commits, newest first, full ids, the last 10 by default; `--history` shows
/// all; `-n N` limits.
#[test]
fn events_text_lists_state_commits_newest_first() {
    let repo = events_repo();
    let expected = git_state_commits(&repo, "HEAD");
    assert_eq!(expected.len(), 12);
    assert_eq!(expected[0].1, "s11");

    let parse = |out: &str| -> Vec<(String, String)> {
        out.lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_owned(), f[2].to_owned())
            })
            .collect()
    };
    let out = repo.baton_ok(&["events"]);
    assert_eq!(parse(&out), expected[..10].to_vec(), "{out}");
    // Each line: sha, ISO time, state, subject.
    let first = out.lines().next().unwrap();
    assert!(first.ends_with(" baton: s11"), "{first}");
    assert!(first.split_whitespace().nth(1).unwrap().ends_with('Z'));

    assert_eq!(parse(&repo.baton_ok(&["events", "--history"])), expected);
    assert_eq!(parse(&repo.baton_ok(&["events", "-n", "3"])), expected[..3].to_vec());
    assert_eq!(parse(&repo.baton_ok(&["events", "--max-count", "20"])), expected);
    // A starting revision.
    let from = &expected[4].0;
    assert_eq!(parse(&repo.baton_ok(&["events", "--history", from])), expected[4..].to_vec());
}

/// `events --json`: one object per line with the documented keys and values git agrees with.
#[test]
fn events_json_shape_and_values() {
    let repo = events_repo();
    let expected = git_state_commits(&repo, "HEAD");
    let events = json_lines(&repo.baton_ok(&["events", "--json"]));
    assert_eq!(events.len(), 10);
    for (e, (id, state)) in events.iter().zip(&expected) {
        assert_eq!(keys(e), ["author", "commit", "invalid_state", "state", "subject", "time", "trailers"]);
        assert_eq!(&e["commit"], id);
        assert_eq!(&e["state"], state);
        assert_eq!(e["invalid_state"], Value::Null);
        assert_eq!(e["subject"], format!("baton: {state}"));
        assert_eq!(e["author"], "Test Author <author@example.com>");
        let ct: i64 = repo.git(&["log", "-1", "--format=%ct", id]).trim().parse().unwrap();
        assert_eq!(e["time"], ct);
        assert_eq!(e["trailers"], serde_json::json!([{"key": "dwp-state", "value": state}]));
    }
    assert_eq!(json_lines(&repo.baton_ok(&["events", "--json", "--history"])).len(), 12);
    assert_eq!(json_lines(&repo.baton_ok(&["events", "--json", "-n", "2"])).len(), 2);
}

/// `events` reports invalid states as such and skips commits without a state.
#[test]
fn events_reports_invalid_states() {
    let repo = repo_with_files();
    git_state_commit(&repo, "main", "bad\n\ndwp-state: ../etc\n", "1700000100 +0000");
    git_state_commit(&repo, "main", "no state here\n", "1700000200 +0000");
    let events = json_lines(&repo.baton_ok(&["events", "--json"]));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["commit"], repo.head("main^"));
    assert_eq!(events[0]["state"], Value::Null);
    assert_eq!(events[0]["invalid_state"], "../etc");
    let out = repo.baton_ok(&["events"]);
    assert!(out.contains("INVALID(../etc)"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// heartbeat
// ---------------------------------------------------------------------------------------------

/// `main` holding a fresh `working` lease for run r1 (origin `build`, 60 s).
fn leased_repo() -> TestRepo {
    let repo = repo_with_files();
    git_state_commit(
        &repo,
        "main",
        "baton: working\n\ndwp-origin-state: build\ndwp-run-id: r1\ndwp-lease-seconds: 60\n\
         dwp-state: working\n",
        &format!("{} +0000", now()),
    );
    repo
}

/// `heartbeat --lease-seconds 120` appends a `working` commit for the same run and origin state
/// with the new lease, same tree, files untouched.
#[test]
fn heartbeat_renews_the_lease() {
    let repo = leased_repo();
    repo.write("a.txt", "handler is editing\n");
    let status_before = repo.git(&["status", "--porcelain"]);
    let old = repo.head("main");
    let t0 = now();

    let out = repo.baton_ok(&["heartbeat", "--lease-seconds", "120"]);

    let new = repo.head("main");
    assert_eq!(out, format!("{new}\n"));
    assert_eq!(repo.head("main^"), old);
    assert_eq!(tree_of(&repo, &new), tree_of(&repo, &old));
    assert_eq!(repo.state_of("main"), "working");
    assert_eq!(repo.trailer_of("main", "dwp-run-id").as_deref(), Some("r1"));
    assert_eq!(repo.trailer_of("main", "dwp-origin-state").as_deref(), Some("build"));
    assert_eq!(repo.trailer_of("main", "dwp-lease-seconds").as_deref(), Some("120"));
    assert_eq!(
        raw_message(&repo, &new),
        "baton: heartbeat\n\ndwp-origin-state: build\ndwp-run-id: r1\n\
         dwp-lease-seconds: 120\ndwp-state: working\n"
    );
    let ct: i64 = repo.git(&["log", "-1", "--format=%ct", "main"]).trim().parse().unwrap();
    assert!(ct >= t0 && ct <= now(), "renewal is stamped now: {ct}");
    assert_eq!(repo.git(&["status", "--porcelain"]), status_before);
    assert_eq!(read(&repo, "a.txt"), "handler is editing\n");

    // Without --lease-seconds the current lease length is kept; BATON_RUN_ID of the holder is fine.
    let out = repo.baton_cmd(&["heartbeat"]).env("BATON_RUN_ID", "r1").output().unwrap();
    let id = ok(out, "heartbeat as r1");
    assert_eq!(id.trim(), repo.head("main"));
    assert_eq!(repo.head("main^"), new);
    assert_eq!(repo.trailer_of("main", "dwp-lease-seconds").as_deref(), Some("120"));
    // status agrees: an active lease of about 120 s.
    let rows = status_rows(&repo.baton_ok(&["status", "--json"]));
    let r = row(&rows, "main");
    assert_eq!(r["lease"], "active");
    assert_eq!(r["run_id"], "r1");
    let left = r["lease_seconds_left"].as_i64().unwrap();
    assert!((100..=120).contains(&left), "{left}");

    // --json: one object naming what was written.
    let out = repo.baton_ok(&["heartbeat", "--json", "--lease-seconds", "90"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["commit"].as_str(), Some(repo.head("main").as_str()));
    assert_eq!(
        (v["branch"].as_str(), v["run_id"].as_str(), v["lease_seconds"].as_u64()),
        (Some("main"), Some("r1"), Some(90))
    );
}

/// `heartbeat` with another run's `BATON_RUN_ID`: exit 1, nothing written.
#[test]
fn heartbeat_refuses_another_run() {
    let repo = leased_repo();
    let before = snapshot(&repo);
    let out = repo.baton_cmd(&["heartbeat", "--lease-seconds", "120"]).env("BATON_RUN_ID", "other").output().unwrap();
    assert_fails(&out, 1, "heartbeat as another run");
    assert_eq!(snapshot(&repo), before);
}

/// `heartbeat` on a branch whose state is not `working` (or that has no state): exit 1, nothing
/// written.
#[test]
fn heartbeat_refuses_without_a_lease() {
    let repo = repo_with_files();
    let before = snapshot(&repo);
    assert_fails(&repo.baton(&["heartbeat"]), 1, "heartbeat without any state");
    assert_eq!(snapshot(&repo), before);

    repo.baton_ok(&["send", "review", "-m", "x"]);
    let before = snapshot(&repo);
    assert_fails(&repo.baton(&["heartbeat", "--lease-seconds", "120"]), 1, "heartbeat on review");
    assert_eq!(snapshot(&repo), before);

    // --branch to a non-working branch from elsewhere fails the same way.
    repo.git(&["branch", "side"]);
    let before = snapshot(&repo);
    assert_fails(&repo.baton(&["heartbeat", "--branch", "side"]), 1, "heartbeat --branch side");
    assert_eq!(snapshot(&repo), before);
}

/// After the handler committed plain work on top of the `working` commit, `heartbeat` still finds
/// the lease (walking back) and renews it on top of the handler's commit, keeping its tree.
#[test]
fn heartbeat_after_plain_handler_commit() {
    let repo = repo_with_files();
    git_state_commit(
        &repo,
        "main",
        "baton: working\n\ndwp-origin-state: build\ndwp-run-id: r1\ndwp-runner-id: host:1\n\
         dwp-lease-seconds: 60\ndwp-state: working\n",
        &format!("{} +0000", now()),
    );
    repo.write("work.txt", "progress\n");
    let plain = repo.commit_all("handler: some progress");
    let out = repo.baton_cmd(&["heartbeat"]).env("BATON_RUN_ID", "r1").output().unwrap();
    let id = ok(out, "heartbeat after plain commit");
    let new = repo.head("main");
    assert_eq!(id.trim(), new);
    assert_eq!(repo.head("main^"), plain);
    assert_eq!(tree_of(&repo, &new), tree_of(&repo, &plain));
    assert_eq!(repo.state_of("main"), "working");
    assert_eq!(repo.trailer_of("main", "dwp-run-id").as_deref(), Some("r1"));
    assert_eq!(repo.trailer_of("main", "dwp-runner-id").as_deref(), Some("host:1"));
    assert_eq!(repo.trailer_of("main", "dwp-origin-state").as_deref(), Some("build"));
    assert_eq!(repo.trailer_of("main", "dwp-lease-seconds").as_deref(), Some("60"));
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

// ---------------------------------------------------------------------------------------------
// init
// ---------------------------------------------------------------------------------------------

/// `init --json`: one object per thing done, the files and the trusted ref by name.
#[test]
fn init_json_names_each_thing_done() {
    let repo = repo_with_files();
    let out = repo.baton_ok(&["init", "--json", "--with", "agent"]);
    let done: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let top = repo.path.canonicalize().unwrap().display().to_string();
    let created: Vec<String> = done
        .iter()
        .filter(|d| d["action"] == "created")
        .map(|d| d["path"].as_str().unwrap().trim_start_matches(&top).to_owned())
        .collect();
    assert_eq!(created, ["/.dwp/command/", "/.dwp/command/hello", "/.dwp/command/agent", "/.dwp/COMMANDS.md"], "{out}");
    let set = done.iter().find(|d| d["action"] == "set").unwrap_or_else(|| panic!("{out}"));
    assert_eq!((set["key"].as_str(), set["value"].as_str()), (Some("baton.trustedRef"), Some("refs/heads/main")));
}

/// `init` creates the handler folder with an executable `hello` and `COMMANDS.md`, and leaves
/// `.gitignore` alone (git-baton writes nothing in the working tree); a second run changes nothing
/// and keeps a user-edited `COMMANDS.md`.
#[test]
fn init_creates_files_once() {
    use std::os::unix::fs::PermissionsExt;
    let repo = repo_with_files();
    repo.write(".gitignore", "target"); // no trailing newline
    std::fs::create_dir(repo.path.join("sub")).unwrap();

    // Run from a subdirectory: files go to the top of the working tree.
    let out = ok(baton_at(&repo, &repo.path.join("sub"), &["init"]), "init");
    assert!(out.contains("created"), "{out}");
    assert!(out.contains("hello"), "{out}");
    assert!(out.contains("COMMANDS.md"), "{out}");
    assert!(!out.contains(".gitignore"), "{out}");
    assert!(!repo.path.join("sub/.dwp").exists());

    let hello = repo.path.join(".dwp/command/hello");
    let mode = std::fs::metadata(&hello).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "hello is executable: {mode:o}");
    assert!(read(&repo, ".dwp/command/hello").starts_with("#!/bin/sh"));
    assert!(read(&repo, ".dwp/COMMANDS.md").starts_with("# Handlers"));
    assert_eq!(read(&repo, ".gitignore"), "target", "init leaves .gitignore as it was");
    assert!(!repo.git_cmd(&["check-ignore", "-q", ".dwp/command/hello"]).status().unwrap().success());
    // Committed, the handler is executable in the tree: status sees it.
    repo.commit_all("init");
    assert_eq!(repo.git(&["ls-files", "-s", ".dwp/command/hello"]).split_whitespace().next(), Some("100755"));

    let files = [".dwp/command/hello", ".dwp/COMMANDS.md", ".gitignore"];
    let snap = |repo: &TestRepo| -> Vec<(String, std::time::SystemTime)> {
        files
            .iter()
            .map(|f| {
                let p = repo.path.join(f);
                (std::fs::read_to_string(&p).unwrap(), std::fs::metadata(&p).unwrap().modified().unwrap())
            })
            .collect()
    };
    let before = snap(&repo);
    let out = repo.baton_ok(&["init"]);
    assert_eq!(out, "", "second init creates nothing");
    assert_eq!(repo.baton_ok(&["init", "--json"]), "", "nothing done: no lines");
    assert_eq!(snap(&repo), before);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");

    repo.write(".dwp/COMMANDS.md", "my own notes\n");
    let out = repo.baton_ok(&["init"]);
    assert_eq!(out, "");
    assert_eq!(read(&repo, ".dwp/COMMANDS.md"), "my own notes\n");
}

/// Why `init` adds nothing to `.gitignore`: a whole run (claim, worktree slot, log, answer)
/// leaves nothing in the working tree, not even an ignored file.
#[test]
fn a_run_after_init_leaves_nothing_to_ignore() {
    let repo = repo_with_files();
    repo.baton_ok(&["init"]);
    repo.commit_all("handlers");
    repo.git(&["branch", "task/greet"]);
    repo.baton_ok(&["send", "--branch", "task/greet", "hello", "-m", "hi"]);
    repo.baton_ok(&["run"]);
    assert_eq!(repo.state_of("task/greet"), "done");
    let common = repo.git(&["rev-parse", "--git-common-dir"]);
    assert!(repo.path.join(common.trim()).join("baton/logs").is_dir(), "the run wrote its log under .git/baton");
    assert_eq!(repo.git(&["status", "--porcelain", "--ignored", "--untracked-files=all"]), "");
}

/// `init` in a bare repository is a usage error.
#[test]
fn init_in_bare_repository_is_a_usage_error() {
    let bare = clone_of(&repo_with_files(), true);
    let before = snapshot(&bare);
    assert_fails(&bare.baton(&["init"]), 2, "init in bare repo");
    assert_eq!(snapshot(&bare), before);
    assert!(!bare.path.join(".dwp").exists());
}

// ---------------------------------------------------------------------------------------------
// trailers
// ---------------------------------------------------------------------------------------------

/// `trailers --json A B` prints one object per commit with full ids; the text output is byte for
/// byte `git log --no-walk=unsorted --format=%(trailers:only,unfold) A B`.
#[test]
fn trailers_json_and_text_match_git() {
    let repo = repo_with_files();
    git_state_commit(
        &repo,
        "main",
        "subject\n\nbody\n\nKey: v\nFolded: a\n  b\nSigned-off-by: S <s@example.com>\ndwp-state: review\n",
        "1700000100 +0000",
    );
    let a = repo.head("main");
    git_state_commit(&repo, "main", "no trailers here\n", "1700000200 +0000");
    let b = repo.head("main");

    let lines = json_lines(&repo.baton_ok(&["trailers", "--json", "main~1", "main"]));
    assert_eq!(lines.len(), 2);
    assert_eq!(keys(&lines[0]), ["commit", "trailers"]);
    assert_eq!(lines[0]["commit"], a);
    assert_eq!(
        lines[0]["trailers"],
        serde_json::json!([
            {"key": "Key", "value": "v"},
            {"key": "Folded", "value": "a b"},
            {"key": "Signed-off-by", "value": "S <s@example.com>"},
            {"key": "dwp-state", "value": "review"},
        ])
    );
    assert_eq!(lines[1]["commit"], b);
    assert_eq!(lines[1]["trailers"], serde_json::json!([]));

    for revs in [vec!["main~1", "main"], vec!["main", "main~1"], vec!["main~1"], vec!["main~2", &a, "main"]] {
        assert_trailers_like_git(&repo, &revs);
    }
}

/// `git baton trailers REV…` prints exactly what `git log --no-walk=unsorted
/// --format=%(trailers:only,unfold) REV…` prints.
fn assert_trailers_like_git(repo: &TestRepo, revs: &[&str]) {
    let mut git_args = vec!["log", "--no-walk=unsorted", "--format=%(trailers:only,unfold)"];
    git_args.extend(revs);
    let want = repo.git_cmd(&git_args).output().unwrap().stdout;
    let mut args = vec!["trailers"];
    args.extend(revs);
    let got = repo.baton(&args);
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert_eq!(text(&got.stdout), text(&want), "{revs:?}");
    assert!(got.stdout == want, "{revs:?}: bytes differ");
}

/// A commit named twice (same name, or a sha and a branch) is printed once, as `git log
/// --no-walk` does (the documented byte-for-byte equivalence).
#[test]
fn trailers_repeated_revision_like_git() {
    let repo = repo_with_files();
    git_state_commit(&repo, "main", "subject\n\nKey: v\ndwp-state: review\n", "1700000100 +0000");
    let sha = repo.head("main");
    assert_trailers_like_git(&repo, &["main", "main"]);
    assert_trailers_like_git(&repo, &[&sha, "main~1", "main"]);
}

// ---------------------------------------------------------------------------------------------
// closed pipes
// ---------------------------------------------------------------------------------------------

/// A repo with `n` branches `task/bNNNN`, all pointing to a state commit.
fn many_branches(n: usize) -> TestRepo {
    let repo = repo_with_files();
    repo.baton_ok(&["send", "review", "-m", "x"]);
    let id = repo.head("main");
    let mut stdin = String::new();
    for i in 0..n {
        stdin += &format!("create refs/heads/task/b{i:05} {id}\n");
    }
    repo.git_bytes(&["update-ref", "--stdin"], stdin.as_bytes());
    assert_eq!(repo.git(&["for-each-ref", "refs/heads/task"]).lines().count(), n);
    repo
}

/// Run git-baton with stdout to a pipe whose reader reads `lines` lines then goes away.
fn run_into_closed_pipe(repo: &TestRepo, args: &[&str], lines: usize) -> Output {
    let mut child = repo.baton_cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    if lines > 0 {
        let mut reader = BufReader::new(stdout);
        for _ in 0..lines {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(!line.is_empty());
        }
        drop(reader);
    } else {
        drop(stdout);
    }
    child.wait_with_output().unwrap()
}

fn assert_quiet_success(out: &Output, what: &str) {
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
    assert_eq!(stderr, "", "{what}: no message on a closed pipe");
}

/// `git baton status | head -1`: the closed pipe ends the command quietly with exit 0.
#[test]
fn status_into_closed_pipe_is_quiet() {
    let repo = many_branches(1500);
    assert_quiet_success(&run_into_closed_pipe(&repo, &["status"], 1), "status | head -1");
    assert_quiet_success(&run_into_closed_pipe(&repo, &["status"], 0), "status | (closed)");
    assert_quiet_success(
        &run_into_closed_pipe(&repo, &["status", "--branch", "task/*"], 0),
        "status --branch | (closed)",
    );
}

/// The same with `--json`, whose output (here > 64 KiB) is written through serde_json.
#[test]
fn status_json_into_closed_pipe_is_quiet() {
    let repo = many_branches(1500);
    assert_quiet_success(&run_into_closed_pipe(&repo, &["status", "--json"], 0), "status --json | (closed)");
}

/// `events --json --history | head -1` over a long history ends quietly too.
#[test]
fn events_json_into_closed_pipe_is_quiet() {
    let repo = repo_with_files();
    // 600 state commits written in one go with fast-import.
    let mut stream = Vec::new();
    let parent = repo.head("main");
    for i in 0..600 {
        let msg = format!("baton: s{i}\n\nsome body text for event {i}\n\ndwp-state: s{i}\n");
        stream.extend_from_slice(b"commit refs/heads/main\n");
        stream.extend_from_slice(b"committer T <t@example.com> 1700000000 +0000\n");
        stream.extend_from_slice(format!("data {}\n{msg}\n", msg.len()).as_bytes());
        if i == 0 {
            stream.extend_from_slice(format!("from {parent}\n").as_bytes());
        }
        stream.extend_from_slice(b"M 644 inline a.txt\ndata 6\nalpha\n\n");
    }
    repo.git_bytes(&["fast-import", "--quiet", "--force"], &stream);
    assert_eq!(git_state_commits(&repo, "main").len(), 600);
    assert_quiet_success(&run_into_closed_pipe(&repo, &["events", "--history"], 1), "events --history | head -1");
    assert_quiet_success(
        &run_into_closed_pipe(&repo, &["events", "--json", "--history"], 0),
        "events --json --history | (closed)",
    );
}
