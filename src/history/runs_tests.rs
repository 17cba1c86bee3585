//! The fold on hand-made histories: messages parsed with the real trailer parser, no git.

use super::*;
use crate::protocol::trailers::parse;

/// A linear history: each `(seconds, author, message)` is the child of the previous one.
fn chain(commits: &[(i64, &str, &str)]) -> Vec<CommitInfo> {
    let mut out: Vec<CommitInfo> = Vec::new();
    for (i, (time, author, msg)) in commits.iter().enumerate() {
        let id = ObjectId::from_hex(format!("{:040x}", i + 1).as_bytes()).unwrap();
        out.push(CommitInfo {
            id,
            tree: ObjectId::empty_tree(gix::hash::Kind::Sha1),
            parents: out.last().map(|p| vec![p.id]).unwrap_or_default(),
            message: msg.as_bytes().to_vec(),
            trailers: parse(msg.as_bytes()),
            committer_time: *time,
            author: author.to_string(),
        });
    }
    out
}

fn fold(commits: &[CommitInfo]) -> Vec<Record> {
    let mut f = Fold::new(false);
    let mut out = Vec::new();
    for c in commits {
        f.push(c, true, &mut out);
    }
    f.finish(&mut out);
    out
}

fn runs(records: &[Record]) -> Vec<&Run> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Run(r) => Some(r),
            _ => None,
        })
        .collect()
}

const HUMAN: &str = "Ann <ann@example.com>";
const BOT: &str = "Bot <bot@example.com>";
const RUNNER: &str = "git-baton <git-baton@localhost>";

fn claim(state: &str, run: &str) -> String {
    format!("baton: {state} claimed\n\ndwp-origin-state: {state}\ndwp-run-id: {run}\ndwp-runner-id: host:1\ndwp-lease-seconds: 300\ndwp-state: working\n")
}

#[test]
fn send_claim_work_answer() {
    let c = chain(&[
        (100, HUMAN, "baton: build\n\ndo it\n\ndwp-attempt: 2\ndwp-retry-of: r0\ndwp-state: build\n"),
        (110, RUNNER, &claim("build", "r1")),
        (115, BOT, "wip\n"),
        (130, BOT, "done\n\ndwp-state: review\n"),
    ]);
    let records = fold(&c);
    assert_eq!(records.len(), 2);
    let Record::Event(send) = &records[0] else { panic!() };
    assert_eq!(send.kind, EventKind::Send);
    assert_eq!(send.previous, None);
    assert_eq!(send.state.as_deref(), Some("build"));
    let Record::Run(run) = &records[1] else { panic!() };
    assert_eq!(run.run_id.as_deref(), Some("r1"));
    assert_eq!(run.origin.as_deref(), Some("build"));
    assert_eq!(run.runner.as_deref(), Some("host:1"));
    assert_eq!((run.started, run.finished), (110, Some(130)));
    assert_eq!(run.duration_ms(), Some(20_000));
    assert_eq!(run.result, RunResult::Succeeded);
    assert_eq!(run.outcome.as_deref(), Some("review"));
    assert_eq!(run.requested_by.as_deref(), Some(HUMAN));
    assert_eq!(run.trigger, Some(c[0].id));
    assert_eq!(run.author.as_deref(), Some(BOT));
    assert_eq!(run.commits, 2);
    assert_eq!(run.attempt, Some(2));
    assert_eq!((run.claim, run.end), (c[1].id, Some(c[3].id)));
}

#[test]
fn failure_record_ends_run_with_exit_code_and_error() {
    let c = chain(&[
        (100, HUMAN, "baton: build\n\ndwp-next-on-failure: triage\ndwp-state: build\n"),
        (110, RUNNER, &claim("build", "r1")),
        (111, BOT, "partial work\n"),
        (120, RUNNER, "baton: build failed\n\nThe handler failed.\n\ndwp-origin-state: build\ndwp-run-id: r1\ndwp-runner-id: host:1\ndwp-exit-code: 3\ndwp-error: handler exited with status 3\ndwp-state: triage\n"),
    ]);
    let records = fold(&c);
    let run = runs(&records)[0];
    assert_eq!(run.result, RunResult::Failed);
    assert_eq!(run.outcome.as_deref(), Some("triage"));
    assert_eq!(run.exit_code, Some(3));
    assert_eq!(run.error.as_deref(), Some("handler exited with status 3"));
    assert_eq!(run.author.as_deref(), Some(BOT), "the handler, not the runner");
    assert_eq!(run.commits, 1);
}

#[test]
fn answer_naming_failed_is_a_failure() {
    let c = chain(&[
        (100, HUMAN, "t\n\ndwp-state: build\n"),
        (110, RUNNER, &claim("build", "r1")),
        (120, BOT, "gave up\n\ndwp-state: failed\n"),
    ]);
    assert_eq!(runs(&fold(&c))[0].result, RunResult::Failed);
}

#[test]
fn heartbeats_keep_the_run_open_and_stalled_ends_it() {
    let c = chain(&[
        (100, HUMAN, "t\n\ndwp-state: build\n"),
        (110, RUNNER, &claim("build", "r1")),
        (200, BOT, "baton: heartbeat\n\ndwp-origin-state: build\ndwp-run-id: r1\ndwp-lease-seconds: 60\ndwp-state: working\n"),
        (900, RUNNER, "baton: lease of run r1 expired\n\nexpired\n\ndwp-origin-state: build\ndwp-stalled-run: r1\ndwp-runner-id: h:2\ndwp-state: stalled\n"),
        (901, RUNNER, &claim("stalled", "r2")),
        (950, BOT, "recovered\n\ndwp-state: done\n"),
    ]);
    let records = fold(&c);
    let r = runs(&records);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].result, RunResult::Stalled);
    assert_eq!(r[0].outcome.as_deref(), Some("stalled"));
    assert_eq!(r[0].heartbeats, 1);
    assert_eq!(r[0].finished, Some(900));
    assert_eq!(r[1].origin.as_deref(), Some("stalled"));
    assert_eq!(r[1].result, RunResult::Succeeded);
    assert_eq!(r[1].requested_by.as_deref(), Some(RUNNER));
    assert_eq!(records.len(), 3, "the send, two runs; the stalled record is part of run 1");
}

#[test]
fn claim_with_another_run_id_supersedes_the_open_run() {
    let c = chain(&[
        (100, HUMAN, "t\n\ndwp-state: build\n"),
        (110, RUNNER, &claim("build", "r1")),
        (120, RUNNER, &claim("build", "r2")),
        (130, BOT, "ok\n\ndwp-state: done\n"),
    ]);
    let records = fold(&c);
    let r = runs(&records);
    assert_eq!(r[0].result, RunResult::Stalled);
    assert_eq!(r[0].superseded_by.as_deref(), Some("r2"));
    assert_eq!(r[0].finished, Some(120));
    assert_eq!(r[1].run_id.as_deref(), Some("r2"));
    assert_eq!(r[1].origin.as_deref(), Some("build"));
    assert_eq!(r[1].result, RunResult::Succeeded);
}

#[test]
fn open_run_at_the_end_is_running() {
    let c =
        chain(&[(100, HUMAN, "t\n\ndwp-state: build\n"), (110, RUNNER, &claim("build", "r1")), (111, BOT, "wip\n")]);
    let records = fold(&c);
    let run = runs(&records)[0];
    assert_eq!(run.result, RunResult::Running);
    assert_eq!((run.outcome.as_deref(), run.finished, run.duration_ms()), (None, None, None));
    assert_eq!(run.commits, 1);
}

#[test]
fn events_outside_runs_are_classified() {
    let c = chain(&[
        (100, HUMAN, "plain commit\n"),
        (101, HUMAN, "t\n\ndwp-state: build\n"),
        (102, HUMAN, "t\n\ndwp-state: ../x\n"),
        (103, HUMAN, "t\n\ndwp-resumed-from: abc\ndwp-state: build\n"),
        (104, RUNNER, "t\n\ndwp-stalled-run: old\ndwp-state: stalled\n"),
        (105, RUNNER, "t\n\ndwp-run-id: gone\ndwp-error: boom\ndwp-state: failed\n"),
    ]);
    let records = fold(&c);
    let kinds: Vec<EventKind> = records
        .iter()
        .map(|r| match r {
            Record::Event(e) => e.kind,
            Record::Run(_) => panic!("no runs here"),
        })
        .collect();
    use EventKind::*;
    assert_eq!(kinds, [Send, Invalid, Resume, Takeover, Failure]);
    let Record::Event(resume) = &records[2] else { panic!() };
    assert_eq!(resume.previous, None, "after an invalid state there is none");
    assert_eq!(resume.resumed_from.as_deref(), Some("abc"));
    let Record::Event(takeover) = &records[3] else { panic!() };
    assert_eq!(takeover.previous.as_deref(), Some("build"));
    assert_eq!(takeover.run_id.as_deref(), Some("old"));
}

#[test]
fn invalid_state_during_a_run_is_work_not_an_end() {
    let c = chain(&[
        (100, HUMAN, "t\n\ndwp-state: build\n"),
        (110, RUNNER, &claim("build", "r1")),
        (111, BOT, "oops\n\ndwp-state: a/b\n"),
        (112, RUNNER, "failed\n\ndwp-run-id: r1\ndwp-exit-code: 0\ndwp-error: invalid state\ndwp-state: failed\n"),
    ]);
    let records = fold(&c);
    assert_eq!(records.len(), 2);
    let run = runs(&records)[0];
    assert_eq!((run.result, run.commits, run.exit_code), (RunResult::Failed, 1, Some(0)));
}

/// All-parents: two lineages interleaved by time, merged at the end; each run continues on its
/// own lineage.
#[test]
fn lineages_keep_interleaved_runs_apart() {
    let id = |n: u64| ObjectId::from_hex(format!("{n:040x}").as_bytes()).unwrap();
    let mk = |n, parents: Vec<u64>, t, msg: &str| CommitInfo {
        id: id(n),
        tree: ObjectId::empty_tree(gix::hash::Kind::Sha1),
        parents: parents.into_iter().map(id).collect(),
        message: msg.as_bytes().to_vec(),
        trailers: parse(msg.as_bytes()),
        committer_time: t,
        author: HUMAN.into(),
    };
    let stream = [
        mk(1, vec![], 100, "t\n\ndwp-state: a\n"),
        mk(2, vec![1], 101, "t\n\ndwp-state: b\n"),
        mk(3, vec![1], 102, &claim("a", "ra")),
        mk(4, vec![2], 103, &claim("b", "rb")),
        mk(5, vec![3], 104, "x\n\ndwp-state: a-done\n"),
        mk(6, vec![4], 105, "x\n\ndwp-state: b-done\n"),
        mk(7, vec![5, 6], 106, "merge\n"),
    ];
    let mut f = Fold::new(true);
    let mut out = Vec::new();
    for c in &stream {
        f.push(c, true, &mut out);
    }
    f.finish(&mut out);
    let r = runs(&out);
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].run_id.as_deref(), r[0].outcome.as_deref()), (Some("ra"), Some("a-done")));
    assert_eq!((r[1].run_id.as_deref(), r[1].outcome.as_deref()), (Some("rb"), Some("b-done")));
    assert!(r.iter().all(|r| r.result == RunResult::Succeeded));
}

#[test]
fn first_parent_fold_forgets_consumed_commits() {
    let mut msgs = vec![(0, HUMAN, "t\n\ndwp-state: build\n".to_owned())];
    for i in 0..100 {
        msgs.push((i, RUNNER, claim("build", &format!("r{i}"))));
        msgs.push((i, BOT, "x\n\ndwp-state: build\n".to_owned()));
    }
    let refs: Vec<(i64, &str, &str)> = msgs.iter().map(|(t, a, m)| (*t, *a, m.as_str())).collect();
    let c = chain(&refs);
    let mut f = Fold::new(false);
    let mut out = Vec::new();
    for c in &c {
        f.push(c, true, &mut out);
        assert!(f.lineages.len() <= 1 && f.open.len() <= 1);
    }
    assert_eq!(out.len(), 101);
}

fn retry(state: &str, of: &str, attempt: u32, error_type: &str) -> String {
    format!(
        "baton: retry {state} (attempt {attempt} of 3)\n\ndo it\n\n## Attempt {} failed\n\ndwp-attempt: {attempt}\ndwp-max-attempts: 3\ndwp-not-before: 1700000000\ndwp-retry-of: {of}\ndwp-runner-id: host:1\ndwp-exit-code: 75\ndwp-error: handler exited with status 75\ndwp-error-type: {error_type}\ndwp-state: {state}\n",
        attempt - 1
    )
}

fn dead_letter(state: &str, run: &str, attempt: u32, error_type: &str) -> String {
    format!(
        "baton: {state} failed\n\nretries used up\n\ndwp-origin-state: {state}\ndwp-run-id: {run}\ndwp-runner-id: host:1\ndwp-exit-code: 1\ndwp-error: handler exited with status 1\ndwp-error-type: {error_type}\ndwp-attempt: {attempt}\ndwp-max-attempts: {attempt}\ndwp-dead-letter: {error_type}\ndwp-state: failed\n"
    )
}

#[test]
fn retries_name_their_run_and_records_say_what_became_of_the_task() {
    let c = chain(&[
        (100, HUMAN, "baton: build\n\ndo it\n\ndwp-state: build\n"),
        (110, RUNNER, &claim("build", "r1")),
        (111, RUNNER, &retry("build", "r1", 2, "transient")),
        (120, RUNNER, &claim("build", "r2")),
        (121, RUNNER, &retry("build", "r2", 3, "transient")),
        (130, RUNNER, &claim("build", "r3")),
        (131, BOT, "built\n\ndwp-state: check\n"),
        (140, RUNNER, &claim("check", "r4")),
        (141, RUNNER, &retry("check", "r4", 2, "logic")),
        (150, RUNNER, &claim("check", "r5")),
        (151, RUNNER, &dead_letter("check", "r5", 2, "logic")),
    ]);
    let records = fold(&c);
    let r = runs(&records);
    let retried = Some(FailureRecord { error_type: Some("transient".into()), retry: true, dead_letter: None });
    let got: Vec<_> = r
        .iter()
        .map(|r| (r.run_id.as_deref().unwrap(), r.result, r.attempt, r.retry_of.as_deref(), r.failure.clone()))
        .collect();
    use RunResult::*;
    assert_eq!(
        got,
        [
            ("r1", Failed, None, None, retried.clone()),
            ("r2", Failed, Some(2), Some("r1"), retried),
            ("r3", Succeeded, Some(3), Some("r2"), None),
            (
                "r4",
                Failed,
                None,
                None,
                Some(FailureRecord { error_type: Some("logic".into()), retry: true, dead_letter: None })
            ),
            (
                "r5",
                Failed,
                Some(2),
                Some("r4"),
                Some(FailureRecord {
                    error_type: Some("logic".into()),
                    retry: false,
                    dead_letter: Some("logic".into())
                })
            ),
        ]
    );
    assert_eq!(r[0].outcome.as_deref(), Some("build"), "a retry puts the task back in its state");
    assert_eq!(r[0].exit_code, Some(75));
    assert_eq!(r[3].trigger, Some(c[6].id), "the handler's answer asked for check");
}

#[test]
fn a_failure_event_says_what_its_record_says() {
    let c = chain(&[
        (100, HUMAN, "t\n\ndwp-state: build\n"),
        (105, RUNNER, &dead_letter("build", "gone", 4, "transient")),
        (106, HUMAN, "t\n\ndwp-state: build\n"),
    ]);
    let records = fold(&c);
    let Record::Event(dl) = &records[1] else { panic!("{records:?}") };
    assert_eq!(dl.kind, EventKind::Failure);
    let want =
        FailureRecord { error_type: Some("transient".into()), retry: false, dead_letter: Some("transient".into()) };
    assert_eq!(dl.failure, Some(want));
    let Record::Event(send) = &records[2] else { panic!() };
    assert_eq!(send.failure, None);
}

#[test]
fn a_run_carries_the_spend_its_handler_reported_and_escalations_are_read() {
    let c = chain(&[
        (100, HUMAN, "baton: build\n\ndwp-cost: 9\ndwp-state: build\n"),
        (110, RUNNER, &claim("build", "r1")),
        (115, BOT, "wip\n\ndwp-cost: 0.25\ndwp-tokens: 100\n"),
        (120, BOT, "odd\n\ndwp-cost: lots\ndwp-tokens: 1k\n"),
        (130, BOT, "done\n\ndwp-cost: 0.5\ndwp-escalation: unsure\ndwp-state: review\n"),
        (
            140,
            RUNNER,
            "baton: budget used up\n\ndwp-origin-state: review\ndwp-escalation: budget\ndwp-state: blocked\n",
        ),
    ]);
    let records = fold(&c);
    let Record::Event(send) = &records[0] else { panic!() };
    assert!(!send.escalated);
    let Record::Run(run) = &records[1] else { panic!() };
    let want = Reported { cost: Some(Money(750_000)), tokens: Some(100) };
    assert_eq!(run.reported.as_deref(), Some(&want), "the person's cost is not the run's");
    assert!(run.escalated);
    let Record::Event(blocked) = &records[2] else { panic!() };
    assert_eq!((blocked.kind, blocked.escalated), (EventKind::Escalation, true));
    let quiet = fold(&chain(&[(0, RUNNER, &claim("b", "r")), (1, BOT, "ok\n\ndwp-state: done\n")]));
    let Record::Run(run) = &quiet[0] else { panic!() };
    assert_eq!((run.reported.as_deref(), run.escalated), (None, false));
}

#[test]
fn a_join_commit_is_the_runners_join_not_a_send() {
    let c = chain(&[
        (100, HUMAN, "baton: plan\n\ndwp-state: plan\n"),
        (110, RUNNER, &claim("plan", "r1")),
        (120, BOT, "wait\n\ndwp-join-then: merge\ndwp-join-child: kid\ndwp-state: waiting\n"),
        (
            130,
            RUNNER,
            "baton: joined\n\nthe children\n\ndwp-joined: all\ndwp-joined-child: kid abc done\ndwp-state: merge\n",
        ),
    ]);
    let records = fold(&c);
    let Record::Event(join) = &records[2] else { panic!("{records:?}") };
    assert_eq!(
        (join.kind, join.previous.as_deref(), join.state.as_deref()),
        (EventKind::Join, Some("waiting"), Some("merge"))
    );
    let mut t = crate::history::Transitions::default();
    records.iter().for_each(|r| t.add(r));
    assert!(t.edges().any(|(from, to, _)| from == "waiting" && to == "merge"));
}
