//! Test helpers: real repositories in temp dirs, the real `git` as the oracle, the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BATON: &str = env!("CARGO_BIN_EXE_git-baton");
pub const FIXED_DATE: &str = "1700000000 +0000";

/// A scratch repository with fixed identity and config, removed on drop.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// The environment every git and git-baton process in tests gets: no user or system config,
/// fixed identity.
pub fn base_env(cmd: &mut Command, home: &Path) {
    cmd.env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("BATON_ROLE")
        .env_remove("AYNIG_ROLE")
        .env_remove("BATON_RUN_ID")
        .env_remove("BATON_BRANCH")
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join(".gitconfig"))
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env("LANG", "C")
        .env("LC_ALL", "C");
}

/// `program args…` in `dir` with the test environment rooted at `home`.
pub fn command_in(home: &Path, program: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    base_env(&mut cmd, home);
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    cmd
}

/// Run git in `dir` (test environment rooted at `home`), assert success, return stdout.
pub fn git_in(home: &Path, dir: &Path, args: &[&str]) -> String {
    let out = command_in(home, "git", dir, args).output().expect("spawn git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl TestRepo {
    /// `git init -b main` in a fresh temp dir.
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("repo");
        std::fs::create_dir(&path).unwrap();
        let r = TestRepo { dir, path };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    pub fn bare() -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("repo.git");
        std::fs::create_dir(&path).unwrap();
        let r = TestRepo { dir, path };
        r.git(&["init", "-q", "--bare", "-b", "main"]);
        r
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn git_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        base_env(&mut cmd, self.home());
        cmd.env("GIT_AUTHOR_DATE", FIXED_DATE).env("GIT_COMMITTER_DATE", FIXED_DATE);
        cmd.current_dir(&self.path).args(args);
        cmd
    }

    /// Run git, assert success, return stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.git_cmd(args).output().expect("spawn git");
        assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn git_bytes(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = self
            .git_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn git");
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || input.write_all(&data));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    pub fn baton_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BATON);
        base_env(&mut cmd, self.home());
        cmd.env_remove("GIT_COMMITTER_DATE").env_remove("GIT_AUTHOR_DATE");
        cmd.current_dir(&self.path).args(args).stdin(Stdio::null());
        cmd
    }

    pub fn baton(&self, args: &[&str]) -> Output {
        self.baton_cmd(args).output().expect("spawn git-baton")
    }

    /// Run git-baton, assert exit 0, return stdout.
    pub fn baton_ok(&self, args: &[&str]) -> String {
        let out = self.baton(args);
        assert!(
            out.status.success(),
            "git-baton {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn write(&self, rel: &str, contents: &str) {
        let p = self.path.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }

    /// Write an executable handler `.dwp/command/<state>` (or any path) with this script.
    pub fn handler(&self, rel: &str, script: &str) {
        self.write(rel, script);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.path.join(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// `git add -A && git commit -m MSG`.
    pub fn commit_all(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.head("HEAD")
    }

    pub fn head(&self, rev: &str) -> String {
        self.git(&["rev-parse", rev]).trim().to_owned()
    }

    /// The dwp-state of a branch head, read by git.
    pub fn state_of(&self, rev: &str) -> String {
        self.git(&["log", "-1", "--format=%(trailers:key=dwp-state,valueonly,separator=%x2C)", rev])
            .trim()
            .rsplit(',')
            .next()
            .unwrap_or("")
            .to_owned()
    }

    /// A trailer value of a commit, read by git (last one).
    pub fn trailer_of(&self, rev: &str, key: &str) -> Option<String> {
        let out = self.git(&["log", "-1", &format!("--format=%(trailers:key={key},valueonly,unfold)"), rev]);
        out.lines().rev().find(|l| !l.is_empty()).map(str::to_owned)
    }
}

/// A tiny deterministic PRNG (xorshift64*), so random tests are reproducible without a crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A repository whose `main` holds these handlers (`(path, script)`), committed.
pub fn repo_with(handlers: &[(&str, &str)]) -> TestRepo {
    let r = TestRepo::new();
    r.write("README", "project\n");
    for (path, script) in handlers {
        r.handler(path, script);
    }
    r.commit_all("handlers");
    r
}

/// A policy file that turns retries off: for tests of what one failed run records.
pub const NO_RETRIES: (&str, &str) =
    (".dwp/policy.toml", "[defaults]\nretry.transient = 0\nretry.timeout = 0\nretry.logic = 0\n");

/// A task branch `name` off `main` in `state` (`git baton send`); returns its head.
pub fn task(r: &TestRepo, name: &str, state: &str) -> String {
    r.git(&["branch", name, "main"]);
    r.baton_ok(&["send", "--branch", name, state, "-m", "do the task"]).trim().to_owned()
}

/// Parse a `--json` output as JSON Lines, the one style every command uses (docs/json.md): each
/// line one JSON object, no blank lines; an empty result is zero lines. Panics naming the line.
pub fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\nin:\n{out}"));
            assert!(v.is_object(), "a JSON line that is not an object: {l}");
            v
        })
        .collect()
}

/// `git baton run --json ARGS…` (must exit 0), one event per line.
pub fn run_json(r: &TestRepo, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["run", "--json"];
    all.extend(args);
    let out = r.baton_ok(&all);
    json_lines(&out)
}

/// The first event of `branch` with `action` (panics with the events otherwise).
pub fn event<'a>(events: &'a [serde_json::Value], branch: &str, action: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["branch"] == branch && e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} event for {branch} in {events:#?}"))
}

/// Is there an event of `branch` with `action`?
pub fn has(events: &[serde_json::Value], branch: &str, action: &str) -> bool {
    events.iter().any(|e| e["branch"] == branch && e["action"] == action)
}

/// Poll `f` every 50 ms until it holds, failing the test after `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `run --json` ticks until `done(state of branch)` or the limit, returning every event seen.
pub fn tick_until(
    r: &TestRepo,
    branch: &str,
    limit: std::time::Duration,
    done: impl Fn(&str) -> bool,
) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    wait_until(&format!("{branch} to settle"), limit, || {
        all.extend(run_json(r, &[]));
        done(&r.state_of(branch))
    });
    all
}

/// How many events of `branch` have this action.
pub fn count(events: &[serde_json::Value], branch: &str, action: &str) -> usize {
    events.iter().filter(|e| e["branch"] == branch && e["action"] == action).count()
}

/// A bare origin and clones of it, all in one temp dir.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub origin: PathBuf,
}

impl Cluster {
    /// An origin whose `main` holds these handlers.
    pub fn new(handlers: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let origin = dir.path().join("origin.git");
        let c = Cluster { dir, origin };
        c.git(c.dir.path(), &["init", "-q", "--bare", "-b", "main", c.origin.to_str().unwrap()]);
        let seed = c.clone_as("seed");
        for (path, script) in handlers {
            let p = seed.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, script).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        c.git(&seed, &["add", "-A"]);
        c.git(&seed, &["commit", "-q", "--allow-empty", "-m", "handlers"]);
        c.git(&seed, &["push", "-q", "origin", "main"]);
        c
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, program: &str, dir: &Path, args: &[&str]) -> Command {
        command_in(self.home(), program, dir, args)
    }

    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        git_in(self.home(), dir, args)
    }

    pub fn baton(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        self.cmd(BATON, dir, args).output().unwrap()
    }

    /// `git-baton ARGS` in `dir`; must succeed; its stdout.
    pub fn baton_ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.baton(dir, args);
        assert!(out.status.success(), "git-baton {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn clone_as(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        self.git(self.dir.path(), &["clone", "-q", self.origin.to_str().unwrap(), name]);
        path
    }

    /// Push a task branch `name` in `state` to origin (through the seed clone).
    pub fn task(&self, name: &str, state: &str) {
        let seed = self.dir.path().join("seed");
        self.git(&seed, &["branch", name, "main"]);
        let out = self.baton(&seed, &["send", "--branch", name, state, "-m", &format!("task {name}")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        self.git(&seed, &["push", "-q", "origin", name]);
    }

    /// The state of a branch on origin.
    pub fn state(&self, branch: &str) -> String {
        self.git(&self.origin, &["log", "-1", "--format=%(trailers:key=dwp-state,valueonly)", branch])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    }
}
