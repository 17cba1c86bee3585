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
        out.lines().rfind(|l| !l.is_empty()).map(str::to_owned)
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
    // The board printed at the end says so too.
    let board = ex.stdout.split("== log").next().unwrap();
    assert!(board.lines().any(|l| l.starts_with("claim/primes") && l.ends_with("blocked")), "{board}");
    assert!(board.lines().any(|l| l.starts_with("claim/abs") && l.ends_with("done")), "{board}");
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

impl Example {
    /// Every value of KEY on BRANCH's first-parent history, newest first.
    fn trailer_values(&self, branch: &str, key: &str) -> Vec<String> {
        let fmt = format!("--format=%(trailers:key={key},valueonly,unfold)");
        self.git(&["log", "--first-parent", &fmt, branch])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The runs of BRANCH as (origin state, outcome) pairs, all of which succeeded.
    fn succeeded_runs(&self, branch: &str) -> Vec<(String, String)> {
        let runs = self.runs().remove(branch).unwrap_or_default();
        assert!(runs.iter().all(|r| r.2 == "succeeded"), "{branch}: {runs:?}");
        runs.into_iter().map(|(s, o, _)| (s, o)).collect()
    }

    /// A child of PARENT: done, ran its one step once, carries the spawn trailers, and is drawn
    /// under its parent on the printed board (`git baton tree --all`). Returns its correlation id.
    fn assert_child(&self, parent: &str, child: &str, step: &str) -> String {
        assert_eq!(self.state(child), "done", "{child}\n{}", self.stdout);
        assert_eq!(self.steps(child), [step], "{child} ran exactly once");
        assert_eq!(self.succeeded_runs(child).len(), 1, "{child}");
        assert_eq!(self.trailer_values(child, "dwp-parent"), [parent], "{child}");
        let ids = self.trailer_values(child, "dwp-correlation-id");
        assert_eq!(ids.len(), 1, "{child}: {ids:?}");
        let board = self.stdout.split("== log").next().unwrap();
        let drawn = format!("── {child} ");
        assert!(board.lines().any(|l| l.contains(&drawn) && l.contains(" done")), "{child} under {parent}:\n{board}");
        ids[0].clone()
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn fan_out_documents_six_modules_with_three_workers_then_synthesises() {
    let ex = Example::run("fan-out");
    let modules = ["auth", "billing", "cache", "mailer", "search", "storage"];
    assert_eq!(ex.state("docs"), "done", "{}", ex.stdout);
    assert_eq!(ex.steps("docs"), ["plan", "synthesize"]);
    assert_eq!(ex.succeeded_runs("docs"), pairs(&[("plan", "waiting"), ("synthesize", "done")]));
    let ids: Vec<String> = modules.iter().map(|m| ex.assert_child("docs", &format!("docs-{m}"), "document")).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one correlation id for the fan-out: {ids:?}");
    let docs = ex.file("docs", "DOCS.md");
    for m in modules {
        assert!(docs.contains(&format!("## {m}\n{m}: the {m} module.")), "{m} in DOCS.md:\n{docs}");
    }
    // --jobs 3: never more than three workers at once.
    let jobs = std::fs::read_to_string(ex.repo.parent().unwrap().join("ledger.jobs")).unwrap();
    let (mut now, mut most) = (0i32, 0i32);
    for line in jobs.lines() {
        now += if line.starts_with("start ") { 1 } else { -1 };
        most = most.max(now);
    }
    assert_eq!(jobs.lines().count(), 12, "{jobs}");
    assert!((1..=3).contains(&most), "{most} workers at once:\n{jobs}");
}

#[test]
fn supervisor_hands_out_one_piece_at_a_time_and_decides_from_the_reports() {
    let ex = Example::run("supervisor");
    assert_eq!(ex.state("release"), "done", "{}", ex.stdout);
    // One worker at a time, each decided from what the previous one reported.
    let order: Vec<&str> = ex.ledger.lines().collect();
    assert_eq!(
        order,
        [
            "supervise release",
            "work release-survey",
            "supervise release",
            "work release-fix-1",
            "supervise release",
            "work release-fix-2",
            "supervise release",
        ]
    );
    let ids: std::collections::BTreeSet<String> = ["release-survey", "release-fix-1", "release-fix-2"]
        .iter()
        .map(|child| ex.assert_child("release", child, "work"))
        .collect();
    assert_eq!(ids.len(), 3, "each worker was spawned by its own run of the supervisor: {ids:?}");
    let runs = ex.succeeded_runs("release");
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert_eq!(runs.last().map(|r| r.1.as_str()), Some("done"));
    assert_eq!(
        ex.file("release", "NOTES.md"),
        "survey: needs CHANGES.md USAGE.md\nfixed: CHANGES.md\nfixed: USAGE.md\n"
    );
    // The workers' changes came back to the supervisor's branch.
    assert_eq!(ex.file("release", "USAGE.md"), "Usage: see the manual\n");
    assert_eq!(ex.file("release", "CHANGES.md"), "Changes: see the manual\n");
}

#[test]
fn expert_panel_runs_each_role_once_then_synthesises() {
    let ex = Example::run("expert-panel");
    assert_eq!(ex.state("panel"), "done", "{}", ex.stdout);
    assert_eq!(ex.steps("panel"), ["convene", "synthesize"]);
    for role in ["security", "performance", "architecture"] {
        let child = format!("panel-{role}");
        ex.assert_child("panel", &child, &format!("review/{role}"));
        assert_eq!(ex.trailer(&child, "Reviewer-Role").as_deref(), Some(role));
        assert_eq!(ex.trailer_values(&child, "dwp-role"), [role]);
    }
    let verdict = ex.file("panel", "VERDICT.md");
    assert!(verdict.contains("- [high] security: user input reaches eval (transfer.sh line 6)"), "{verdict}");
    assert!(verdict.contains("- [medium] performance: every transfer scans all accounts"), "{verdict}");
    assert!(verdict.contains("- [low] architecture: storage is wired into"), "{verdict}");
    assert!(verdict.ends_with("Verdict: changes required (a high-severity finding)\n"), "{verdict}");
}

#[test]
fn map_reduce_counts_the_words_of_every_partition_once_and_sums_them() {
    let ex = Example::run("map-reduce");
    assert_eq!(ex.state("wordcount"), "done", "{}", ex.stdout);
    assert_eq!(ex.steps("wordcount"), ["split", "reduce"]);
    for i in 1..=4 {
        let child = format!("wordcount-part-{i}");
        ex.assert_child("wordcount", &child, "count");
        // Partitioned evenly: 12 lines, 3 each.
        assert_eq!(ex.file(&child, &format!("parts/part-{i}.txt")).lines().count(), 3);
    }
    // The reduce's sum is the word count of the whole corpus, counted here independently.
    let corpus = ex.file("main", "corpus.txt");
    let mut want: BTreeMap<String, u32> = BTreeMap::new();
    for w in corpus.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()) {
        *want.entry(w.to_ascii_lowercase()).or_default() += 1;
    }
    let want: String = want.iter().map(|(w, n)| format!("{w} {n}\n")).collect();
    assert_eq!(ex.file("wordcount", "wordcount.txt"), want);
}
