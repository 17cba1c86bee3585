//! The orchestration pattern examples (`examples/patterns/*.sh`), run end to end with the binary
//! under test: each script builds its own throw-away repository, installs fake-agent handlers and
//! drives them with `git baton watch`. These tests check the final state of every branch, and that
//! every step ran exactly once — twice over: the handlers' ledger (a line per handler run, in a
//! file outside the repository) and the runs `git baton log --json` reads back from history.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{command_in, git_in, BATON};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/patterns");

/// One finished example: its temp dir (removed on drop), the repository it kept, its output.
struct Example {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
    ledger: String,
    stdout: String,
}

/// A run as `git baton log --json` reports it: (origin state, outcome, result).
type Run = (String, String, String);

impl Example {
    /// Run `examples/patterns/NAME.sh` with TMPDIR and HOME in a fresh temp dir.
    fn run(name: &str) -> Example {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("home");
        let scratch = tmp.path().join("tmp");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        let script = Path::new(EXAMPLES).join(format!("{name}.sh"));
        let out = command_in(&home, "bash", tmp.path(), &[script.to_str().unwrap()])
            .env("GIT_BATON", BATON)
            .env("TMPDIR", &scratch)
            .output()
            .expect("spawn bash");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{name}.sh exited with {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let repo = stdout
            .lines()
            .find_map(|l| l.strip_prefix("== repository: "))
            .and_then(|rest| rest.split(' ').next())
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("{name}.sh printed no repository path:\n{stdout}"));
        assert!(repo.starts_with(&scratch), "the repository {repo:?} is under TMPDIR");
        let ledger = std::fs::read_to_string(repo.parent().unwrap().join("ledger")).expect("ledger");
        Example { _tmp: tmp, home, repo, ledger, stdout }
    }

    fn git(&self, args: &[&str]) -> String {
        git_in(&self.home, &self.repo, args)
    }

    /// The `dwp-state` of BRANCH's head.
    fn state(&self, branch: &str) -> String {
        self.trailer(branch, "dwp-state").unwrap_or_default()
    }

    fn trailer(&self, branch: &str, key: &str) -> Option<String> {
        let fmt = format!("%(trailers:key={key},valueonly,unfold)");
        let out = self.git(&["log", "-1", &format!("--format={fmt}"), branch]);
        out.lines().filter(|l| !l.is_empty()).last().map(str::to_owned)
    }

    fn file(&self, branch: &str, path: &str) -> String {
        self.git(&["show", &format!("{branch}:{path}")])
    }

    /// The states the handlers ran for BRANCH, in order (from the ledger).
    fn steps(&self, branch: &str) -> Vec<String> {
        self.ledger
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, b)| *b == branch)
            .map(|(s, _)| s.to_owned())
            .collect()
    }

    /// Every run in history, per branch, oldest first.
    fn runs(&self) -> BTreeMap<String, Vec<Run>> {
        let out = command_in(&self.home, BATON, &self.repo, &["log", "--all", "--json"]).output().unwrap();
        assert!(out.status.success(), "log: {}", String::from_utf8_lossy(&out.stderr));
        let mut runs: BTreeMap<String, Vec<Run>> = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("log --json line");
            if v["kind"] == "run" {
                let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
                runs.entry(s("branch")).or_default().push((s("state"), s("outcome"), s("result")));
            }
        }
        runs
    }
}

fn run(state: &str, outcome: &str) -> Run {
    (state.to_owned(), outcome.to_owned(), "succeeded".to_owned())
}

#[test]
fn pipeline_runs_each_step_once_and_review_sends_back_once() {
    let ex = Example::run("pipeline");
    let b = "feature/greet";
    assert_eq!(ex.state(b), "done", "{}", ex.stdout);
    assert_eq!(ex.steps(b), ["spec", "implement", "test", "review", "implement", "test", "review"]);
    assert_eq!(
        ex.runs()[b],
        [
            run("spec", "implement"),
            run("implement", "test"),
            run("test", "review"),
            run("review", "implement"),
            run("implement", "test"),
            run("test", "review"),
            run("review", "done"),
        ]
    );
    // What review asked for reached the second implementation through the body.
    assert_eq!(ex.file(b, "greet.sh"), "#!/bin/sh\necho \"Hello, $1!\"\n");
    assert!(ex.file(b, "SPEC.md").contains("greets a person by name"));
    let reviewed = ex.git(&["log", "--format=%s", b]);
    assert!(reviewed.contains("review: changes requested"), "{reviewed}");
    assert!(reviewed.contains("review: approved revision 2"), "{reviewed}");
    // The board and the history are printed for people.
    assert!(ex.stdout.contains("== board") && ex.stdout.contains("review -> done"), "{}", ex.stdout);
}

#[test]
fn challenge_loop_stops_without_a_valid_challenge_or_at_the_round_cap() {
    let ex = Example::run("challenge-loop");
    let round = ["produce", "challenge", "judge"];

    // claim/abs: round 1's challenge is upheld, round 2 brings none: done after two rounds.
    assert_eq!(ex.state("claim/abs"), "done", "{}", ex.stdout);
    assert_eq!(ex.steps("claim/abs"), round.repeat(2));
    let abs = &ex.runs()["claim/abs"];
    assert_eq!(abs.last(), Some(&run("judge", "done")));
    assert_eq!(abs.len(), 6);
    assert!(abs.iter().all(|r| r.2 == "succeeded"), "{abs:?}");
    assert!(ex.file("claim/abs", "abs.sh").contains("${1#-}"));

    // claim/primes: every round brings a valid challenge; past loop.hard = 3 rounds of produce the
    // runner blocks it for a person instead of running produce a fourth time.
    assert_eq!(ex.state("claim/primes"), "blocked", "{}", ex.stdout);
    assert_eq!(ex.trailer("claim/primes", "dwp-escalation").as_deref(), Some("loop-cap"));
    assert_eq!(ex.trailer("claim/primes", "dwp-origin-state").as_deref(), Some("produce"));
    assert_eq!(ex.steps("claim/primes"), round.repeat(3));
    assert_eq!(ex.runs()["claim/primes"].len(), 9);
    assert_eq!(ex.file("claim/primes", "primes.txt"), "2\n3\n5\n");
    let body = ex.git(&["log", "-1", "--format=%b", "claim/primes"]);
    assert!(body.contains("## Decision required"), "{body}");
    // The third round was told which round it is (past loop.soft = 2).
    let subjects = ex.git(&["log", "--format=%s", "claim/primes"]);
    assert!(subjects.contains("produce: round 3, 5"), "{subjects}");
}

#[test]
fn an_example_keeps_its_repository_unless_told_to_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let scratch = tmp.path().join("tmp");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let script = Path::new(EXAMPLES).join("pipeline.sh");
    let out = command_in(&home, "bash", tmp.path(), &[script.to_str().unwrap(), "--clean"])
        .env("GIT_BATON", BATON)
        .env("TMPDIR", &scratch)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed on exit"));
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "--clean leaves nothing in TMPDIR");

    // A bad argument is a usage error, and nothing is made.
    let out = command_in(&home, "bash", tmp.path(), &[script.to_str().unwrap(), "--bogus"])
        .env("GIT_BATON", BATON)
        .env("TMPDIR", &scratch)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
}
