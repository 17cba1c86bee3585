//! Dead letters, read back — pure: what a dead-letter commit (a failure event carrying
//! `dwp-dead-letter`) says, which earlier commit was the task it gave up on, what a retry of it
//! looks like, and which dead letters a sweep may send back. The caller walks the branch's
//! first-parent history (newest first) and passes the commits in; `now` is an argument.
//!
//! The task a dead letter gave up on is the newest commit on its first-parent history whose
//! `dwp-state` is the dead letter's `dwp-origin-state` and that is not a runner's retry commit
//! (`dwp-retry-of`): the commit that asked for the state in this round — a person's `send`, a
//! handler's answer, or an earlier `dlq retry`.

use std::collections::BTreeMap;

use super::breaker::Admit;
use super::classify::ErrorType;
use super::retry::Priority;
use crate::protocol::message::body_of;
use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved, StateRead, Trailer};

/// One commit of a branch's first-parent history, as far as dead letters care.
#[derive(Debug, Clone, Copy)]
pub struct HistoryCommit<'a> {
    pub id: &'a str,
    pub message: &'a [u8],
    pub trailers: &'a [Trailer],
    /// Committer time, epoch seconds.
    pub time: i64,
}

/// The task a dead letter gave up on, as the person (or handler) asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalTask {
    pub commit: String,
    pub subject: String,
    /// Its body without the `## Attempt N failed` sections retries added.
    pub body: String,
    /// Its trailers (the caller keeps the ones a retry carries, see `runner::messages::carried`).
    pub trailers: Vec<Trailer>,
}

/// What a dead letter says, with every malformed value named in `problems` instead of failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub branch: String,
    /// The dead-letter commit (the branch head).
    pub commit: String,
    /// `dwp-origin-state`: the state whose attempts ran out (None: missing or invalid).
    pub origin_state: Option<String>,
    /// `dwp-error`.
    pub error: String,
    /// The error type as written (`dwp-dead-letter`, else `dwp-error-type`).
    pub error_type: String,
    /// The error type, when it is one git-baton knows.
    pub kind: Option<ErrorType>,
    pub attempts: Option<u32>,
    pub max_attempts: Option<u32>,
    /// When a sweep may try it again (epoch seconds; transient, timeout and auth only).
    pub retry_after: Option<i64>,
    pub priority: Priority,
    /// `dwp-breaker`: the circuit breaker the error counted against.
    pub breaker: Option<String>,
    /// The claim time of the round's first attempt (the first `working` commit after the task).
    pub first_attempt: Option<i64>,
    /// The dead letter's own commit time.
    pub last_attempt: i64,
    pub original: Option<OriginalTask>,
    /// The last non-empty line of the handler's output the dead letter quotes.
    pub last_output: Option<String>,
    pub problems: Vec<String>,
}

/// Does this head carry `dwp-dead-letter`?
pub fn is_dead_letter(trailers: &[Trailer]) -> bool {
    last_text(trailers, Key::DeadLetter).is_some()
}

/// Is this commit the task that asked for `origin` (its state, and not a runner's retry)?
pub fn is_original(trailers: &[Trailer], origin: &str) -> bool {
    StateRead::from_trailers(trailers).valid().is_some_and(|s| s.as_str() == origin)
        && last_text(trailers, Key::RetryOf).is_none()
}

/// The subject of a message: its first paragraph on one line (as git's `%s`), without control
/// characters.
pub fn subject_of(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let text = text.trim_start();
    let first = text.split("\n\n").next().unwrap_or("");
    first
        .lines()
        .map(|l| l.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A task's body without the sections failed attempts added (what was asked for): everything from
/// the first `## Attempt N failed` heading on goes.
pub fn strip_attempt_sections(body: &str) -> String {
    let mut out = Vec::new();
    for line in body.lines() {
        let t = line.trim_end();
        let is_heading = t
            .strip_prefix("## Attempt ")
            .and_then(|r| r.strip_suffix(" failed"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_heading {
            break;
        }
        out.push(line);
    }
    out.join("\n").trim().to_owned()
}

/// The last non-empty line of output a failure event's body quotes (the indented block after
/// `Last N lines of its output:`); None when it printed nothing or the body has no such block.
pub fn last_output_line(body: &str) -> Option<String> {
    let mut lines = body.lines();
    lines.by_ref().find(|l| l.starts_with("Last ") && l.trim_end().ends_with("lines of its output:"))?;
    let mut last = None;
    let mut started = false;
    for line in lines {
        match line.strip_prefix("    ") {
            Some(text) => {
                started = true;
                if !text.trim().is_empty() {
                    last = Some(text.trim().to_owned());
                }
            }
            None if !started && line.trim().is_empty() => {}
            None => break,
        }
    }
    last
}

/// Read the dead letter at the top of `history` (newest first; `history[0]` the head). The walk
/// may stop at the original task (see [`is_original`]) or earlier; None when the head is not a
/// dead letter.
pub fn read(branch: &str, history: &[HistoryCommit<'_>]) -> Option<DeadLetter> {
    let head = history.first()?;
    let t = head.trailers;
    let dead = last_text(t, Key::DeadLetter)?.trim().to_owned();
    let mut problems = Vec::new();

    let origin_state = match last_text(t, Key::OriginState).map(|v| v.trim().to_owned()) {
        None => {
            problems.push("no dwp-origin-state: the state that failed is unknown".to_owned());
            None
        }
        Some(v) => match crate::protocol::State::parse(&v) {
            Ok(s) if !s.is(Reserved::Working) => Some(v),
            _ => {
                problems.push(format!("invalid dwp-origin-state {v:?}"));
                None
            }
        },
    };
    let (error_type, kind) = {
        let written = if dead.is_empty() { last_text(t, Key::ErrorType).unwrap_or_default() } else { dead.clone() };
        let written = written.trim().to_owned();
        match written.parse::<ErrorType>() {
            Ok(k) => (written, Some(k)),
            Err(_) => {
                problems.push(format!("unknown error type {written:?} in dwp-dead-letter"));
                (written, None)
            }
        }
    };
    let mut number = |key: Key| -> Option<u32> {
        let v = last_text(t, key)?;
        match v.trim().parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push(format!("malformed {} {v:?} (a whole number)", key.as_str()));
                None
            }
        }
    };
    let attempts = number(Key::Attempt);
    let max_attempts = number(Key::MaxAttempts);
    let retry_after = match last_text(t, Key::RetryAfter) {
        None => None,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push(format!("malformed dwp-retry-after {v:?} (epoch seconds)"));
                None
            }
        },
    };
    let priority = match last_text(t, Key::Priority) {
        None => Priority::default(),
        Some(v) => v.trim().parse::<Priority>().unwrap_or_else(|e| {
            problems.push(format!("{e}; medium assumed"));
            Priority::default()
        }),
    };
    let breaker = last_text(t, Key::Breaker).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

    // The task this round began with, and the first claim after it.
    let mut original = None;
    let mut first_attempt = None;
    if let Some(origin) = &origin_state {
        let mut claims_after = None;
        for c in &history[1..] {
            if is_original(c.trailers, origin) {
                original = Some(OriginalTask {
                    commit: c.id.to_owned(),
                    subject: subject_of(c.message),
                    body: strip_attempt_sections(&body_of(c.message)),
                    trailers: c.trailers.to_vec(),
                });
                break;
            }
            let claim = StateRead::from_trailers(c.trailers).valid().is_some_and(|s| s.is(Reserved::Working))
                && last_text(c.trailers, Key::OriginState).is_some_and(|o| o.trim() == origin);
            if claim {
                claims_after = Some(c.time); // walking back: the last one seen is the first claim
            }
        }
        match &original {
            Some(_) => first_attempt = claims_after,
            None => problems
                .push(format!("the commit that asked for {origin} was not found on the branch's first-parent history")),
        }
        if original.is_some() && first_attempt.is_none() {
            problems.push(format!("no claim of {origin} between the task and its dead letter"));
        }
    }

    Some(DeadLetter {
        branch: branch.to_owned(),
        commit: head.id.to_owned(),
        origin_state,
        error: last_text(t, Key::Error).map(|v| v.trim().to_owned()).unwrap_or_default(),
        error_type,
        kind,
        attempts,
        max_attempts,
        retry_after,
        priority,
        breaker,
        first_attempt,
        last_attempt: head.time,
        original,
        last_output: last_output_line(&body_of(head.message)),
        problems,
    })
}

/// One line for people: `build failed 3 times (logic): handler exited with status 1; last output:
/// error: it broke`.
pub fn context_summary(d: &DeadLetter) -> String {
    let state = d.origin_state.as_deref().unwrap_or("the task");
    let times = match d.attempts {
        Some(1) => " once".to_owned(),
        Some(n) => format!(" {n} times"),
        None => String::new(),
    };
    let error = if d.error.is_empty() { "no error recorded".to_owned() } else { d.error.clone() };
    let output = match &d.last_output {
        Some(line) => format!("last output: {line}"),
        None => "no output".to_owned(),
    };
    let one_line = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line(format!("{state} failed{times} ({}): {error}; {output}", d.error_type))
}

/// Is the dead letter older than `archive_after` seconds (hidden from `dlq list`, never swept)?
pub fn is_archived(d: &DeadLetter, now: i64, archive_after: u64) -> bool {
    now.saturating_sub(d.last_attempt) > i64::try_from(archive_after).unwrap_or(i64::MAX)
}

/// The note a sweep's retry carries.
pub const SWEPT_NOTE: &str = "swept: retry_after passed";

/// The body of a retry: the task's body without attempt sections, then a `## Note` section when
/// there is a note — unless the body already ends with that very note (a task swept again does not
/// grow a note per sweep).
pub fn retry_body(task_body: &str, note: Option<&str>) -> String {
    let body = strip_attempt_sections(task_body);
    let Some(note) = note.map(str::trim).filter(|n| !n.is_empty()) else {
        return body;
    };
    let section = format!("## Note\n\n{note}");
    if body.ends_with(&section) {
        return body;
    }
    if body.is_empty() {
        section
    } else {
        format!("{body}\n\n{section}")
    }
}

/// What a sweep does with one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sweep {
    /// Send it back to its state; `probe`: the breaker is half-open and this task may be its probe.
    Retry { probe: bool },
    /// Leave it, and why.
    Skip(String),
}

/// One dead letter as a sweep sees it.
#[derive(Debug, Clone, Copy)]
pub struct SweepItem<'a> {
    pub letter: &'a DeadLetter,
    /// The breaker it answers to: its `dwp-breaker`, else its state's policy breaker.
    pub breaker: &'a str,
    /// `dlq.archive_after` of its state, seconds.
    pub archive_after: u64,
}

/// Decide a sweep: transient and timeout dead letters whose `dwp-retry-after` has passed and
/// whose breaker is closed go back to their state. Auth, logic and state errors need a person
/// (`dlq retry`), archived dead letters are left alone. A half-open breaker nobody probes gets
/// one task (the first by priority, then oldest), so that the breaker can close again; its other
/// tasks wait. `breakers` holds the breakers that exist (a missing one is closed). The answer is in
/// the order of `items`.
pub fn plan_sweep(items: &[SweepItem<'_>], now: i64, breakers: &BTreeMap<String, Admit>) -> Vec<Sweep> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].letter.priority, items[i].letter.last_attempt, i));
    let mut out = vec![Sweep::Skip(String::new()); items.len()];
    let mut probes: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for i in order {
        let SweepItem { letter: d, breaker, archive_after } = items[i];
        let skip = |why: String| Sweep::Skip(why);
        out[i] = if d.origin_state.is_none() {
            skip("its origin state is unknown".into())
        } else if is_archived(d, now, archive_after) {
            skip(format!("archived (older than dlq.archive_after = {archive_after}s)"))
        } else {
            match d.kind {
                None => skip(format!("unknown error type {:?}", d.error_type)),
                Some(k @ (ErrorType::Auth | ErrorType::Logic | ErrorType::State)) => {
                    skip(format!("{k} errors are not swept; a person decides (git baton dlq retry -m NOTE)"))
                }
                Some(ErrorType::Transient | ErrorType::Timeout) => match d.retry_after {
                    None => skip("no dwp-retry-after".into()),
                    Some(t) if now < t => skip(format!("retry_after not passed (in {}s)", t - now)),
                    Some(_) => match breakers.get(breaker).cloned().unwrap_or(Admit::Closed) {
                        Admit::Closed => Sweep::Retry { probe: false },
                        Admit::Open { until } => {
                            skip(format!("circuit breaker {breaker} is open for {}s more", until - now))
                        }
                        Admit::Probe if probes.insert(breaker) => Sweep::Retry { probe: true },
                        Admit::Probe => {
                            skip(format!("circuit breaker {breaker} is half-open; another task was sent to probe it"))
                        }
                        Admit::Probing { run_id, .. } => {
                            skip(format!("circuit breaker {breaker} is half-open; run {run_id} probes it"))
                        }
                    },
                },
            }
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::trailers::parse;

    struct C {
        id: String,
        message: Vec<u8>,
        trailers: Vec<Trailer>,
        time: i64,
    }

    fn c(id: &str, time: i64, message: &str) -> C {
        let message = message.as_bytes().to_vec();
        C { id: id.into(), trailers: parse(&message), message, time }
    }

    fn history(cs: &[C]) -> Vec<HistoryCommit<'_>> {
        cs.iter()
            .map(|c| HistoryCommit { id: &c.id, message: &c.message, trailers: &c.trailers, time: c.time })
            .collect()
    }

    const DEAD: &str = "baton: build failed\n\nThe handler for build failed: handler exited with status 1\n\nLast 40 lines of its output:\n\n    compiling\n    error: it broke\n    \n\nFull log: /l\nWorktree kept at: /w\n\nAttempt 3 of 3: retries used up; this is a dead letter (git baton dlq).\n\ndwp-origin-state: build\ndwp-run-id: r3\ndwp-runner-id: h:1\ndwp-exit-code: 1\ndwp-error: handler exited with status 1\ndwp-error-type: logic\ndwp-attempt: 3\ndwp-max-attempts: 3\ndwp-dead-letter: logic\ndwp-state: failed\n";

    fn claim(id: &str, time: i64) -> C {
        c(id, time, "baton: build claimed\n\ndwp-origin-state: build\ndwp-run-id: r\ndwp-runner-id: h:1\ndwp-lease-seconds: 60\ndwp-state: working\n")
    }

    fn retry(id: &str, time: i64, n: u32) -> C {
        let msg = format!("baton: retry build (attempt {n} of 3)\n\nBuild it\n\n## Attempt {} failed\n\n- error type: logic\n\ndwp-attempt: {n}\ndwp-retry-of: r\ndwp-state: build\n", n - 1);
        c(id, time, &msg)
    }

    /// A task, three attempts, a dead letter (newest first).
    fn full() -> Vec<C> {
        vec![
            c("d", 160, DEAD),
            claim("w3", 150),
            retry("r3", 140, 3),
            claim("w2", 130),
            retry("r2", 120, 2),
            claim("w1", 110),
            c("t", 100, "Build the thing\n\nBuild it\n\nTicket: T-7\ndwp-priority: high\ndwp-state: build\n"),
            c("older", 50, "baton: build\n\nan earlier round\n\ndwp-state: build\n"),
        ]
    }

    #[test]
    fn a_dead_letter_reads_back_in_full() {
        let cs = full();
        let d = read("task/a", &history(&cs)).unwrap();
        assert_eq!(d.problems, Vec::<String>::new());
        assert_eq!((d.branch.as_str(), d.commit.as_str()), ("task/a", "d"));
        assert_eq!(d.origin_state.as_deref(), Some("build"));
        assert_eq!((d.error_type.as_str(), d.kind), ("logic", Some(ErrorType::Logic)));
        assert_eq!((d.attempts, d.max_attempts, d.retry_after), (Some(3), Some(3), None));
        assert_eq!((d.first_attempt, d.last_attempt), (Some(110), 160));
        assert_eq!(d.priority, Priority::Medium, "the dead letter's own dwp-priority counts, not the task's");
        let o = d.original.as_ref().unwrap();
        assert_eq!((o.commit.as_str(), o.subject.as_str(), o.body.as_str()), ("t", "Build the thing", "Build it"));
        assert!(o.trailers.iter().any(|t| t.key == b"Ticket"));
        assert_eq!(d.last_output.as_deref(), Some("error: it broke"));
        assert_eq!(
            context_summary(&d),
            "build failed 3 times (logic): handler exited with status 1; last output: error: it broke"
        );
    }

    #[test]
    fn heads_that_are_not_dead_letters_and_partial_histories() {
        let cs = full();
        assert_eq!(read("b", &history(&cs[1..])), None, "a claim is not a dead letter");
        assert_eq!(read("b", &[]), None);
        // The walk stopped before the task: reported, never a panic.
        let d = read("b", &history(&cs[..3])).unwrap();
        assert_eq!(d.original, None);
        assert_eq!(d.first_attempt, None);
        assert!(d.problems[0].contains("was not found"), "{:?}", d.problems);
        // A single attempt (retry count 0): the claim right after the task is the first attempt.
        let one = vec![c("d", 20, DEAD), claim("w", 10), c("t", 5, "s\n\nb\n\ndwp-state: build\n")];
        let d = read("b", &history(&one)).unwrap();
        assert_eq!((d.first_attempt, d.original.unwrap().commit.as_str()), (Some(10), "t"));
    }

    #[test]
    fn malformed_values_are_reported_per_entry() {
        let msg = "x\n\ndwp-origin-state: ../etc\ndwp-attempt: three\ndwp-max-attempts: -1\ndwp-retry-after: soon\ndwp-priority: urgent\ndwp-dead-letter: flaky\ndwp-state: failed\n";
        let cs = vec![c("d", 1, msg)];
        let d = read("b", &history(&cs)).unwrap();
        assert_eq!((d.attempts, d.max_attempts, d.retry_after, d.kind), (None, None, None, None));
        assert_eq!(d.priority, Priority::Medium);
        assert_eq!(d.origin_state, None);
        assert_eq!(d.error_type, "flaky");
        let all = d.problems.join(" | ");
        for want in ["dwp-origin-state", "dwp-attempt", "dwp-max-attempts", "dwp-retry-after", "urgent", "flaky"] {
            assert!(all.contains(want), "{want} not in {all}");
        }
        assert_eq!(context_summary(&d), "the task failed (flaky): no error recorded; no output");
    }

    #[test]
    fn output_lines_and_subjects() {
        for (body, want) in [
            ("x\n\nLast 40 lines of its output:\n\n    a\n    b\n\nFull log: /l\n", Some("b")),
            (
                "x\n\nLast 40 lines of its output:\n\n    a\n        indented  \n    \n\nFull log: /l\n",
                Some("indented"),
            ),
            ("x\n\nIt printed nothing.\n\nFull log: /l\n", None),
            ("no block at all", None),
        ] {
            assert_eq!(last_output_line(body).as_deref(), want, "{body:?}");
        }
        assert_eq!(subject_of(b"\n\nline one\nline\ttwo\n\nbody"), "line one line two");
        assert_eq!(subject_of(b""), "");
    }

    #[test]
    fn retry_bodies_drop_attempts_and_add_one_note() {
        let task = "Build it\n\n## Attempt 1 failed\n\n- error: x\n";
        assert_eq!(retry_body(task, None), "Build it");
        assert_eq!(retry_body(task, Some("  ")), "Build it");
        assert_eq!(retry_body(task, Some("use the other API")), "Build it\n\n## Note\n\nuse the other API");
        let swept = retry_body(task, Some(SWEPT_NOTE));
        assert_eq!(retry_body(&format!("{swept}\n\n## Attempt 1 failed\n\nx"), Some(SWEPT_NOTE)), swept);
        assert_eq!(retry_body("", Some("n")), "## Note\n\nn");
        let noted = retry_body(task, Some("first"));
        assert_eq!(retry_body(&noted, Some("second")), "Build it\n\n## Note\n\nfirst\n\n## Note\n\nsecond");
    }

    fn letter(kind: ErrorType, retry_after: Option<i64>, last: i64, priority: Priority) -> DeadLetter {
        DeadLetter {
            branch: "b".into(),
            commit: "c".into(),
            origin_state: Some("fetch".into()),
            error: "e".into(),
            error_type: kind.as_str().into(),
            kind: Some(kind),
            attempts: Some(1),
            max_attempts: Some(1),
            retry_after,
            priority,
            breaker: Some("api".into()),
            first_attempt: Some(last),
            last_attempt: last,
            original: None,
            last_output: None,
            problems: vec![],
        }
    }

    #[test]
    fn sweeps_take_provider_failures_whose_time_came_and_whose_breaker_is_closed() {
        let now = 1_000;
        let m = Priority::Medium;
        let letters = [
            letter(ErrorType::Transient, Some(900), 800, m),
            letter(ErrorType::Timeout, Some(1_000), 800, m),
            letter(ErrorType::Transient, Some(1_001), 800, m),
            letter(ErrorType::Transient, None, 800, m),
            letter(ErrorType::Logic, None, 800, m),
            letter(ErrorType::Auth, Some(900), 800, m),
            letter(ErrorType::State, None, 800, m),
            letter(ErrorType::Transient, Some(900), 100, m),
        ];
        let items: Vec<SweepItem<'_>> =
            letters.iter().map(|l| SweepItem { letter: l, breaker: "api", archive_after: 600 }).collect();
        let got = plan_sweep(&items, now, &BTreeMap::new());
        let retried: Vec<bool> = got.iter().map(|s| matches!(s, Sweep::Retry { probe: false })).collect();
        assert_eq!(retried, [true, true, false, false, false, false, false, false], "{got:#?}");
        let why = |i: usize| match &got[i] {
            Sweep::Skip(w) => w.clone(),
            other => panic!("{other:?}"),
        };
        assert!(why(2).contains("in 1s"), "{}", why(2));
        assert!(why(3).contains("no dwp-retry-after"));
        assert!(why(4).starts_with("logic errors are not swept"));
        assert!(why(5).starts_with("auth errors"));
        assert!(why(6).starts_with("state errors"));
        assert!(why(7).starts_with("archived"));
    }

    #[test]
    fn open_breakers_hold_and_half_open_ones_get_one_probe() {
        let now = 1_000;
        let letters = [
            letter(ErrorType::Transient, Some(10), 500, Priority::Low),
            letter(ErrorType::Transient, Some(10), 600, Priority::High),
            letter(ErrorType::Transient, Some(10), 400, Priority::High),
        ];
        let items: Vec<SweepItem<'_>> =
            letters.iter().map(|l| SweepItem { letter: l, breaker: "api", archive_after: 86_400 }).collect();
        let open = BTreeMap::from([("api".to_owned(), Admit::Open { until: 1_060 })]);
        for s in plan_sweep(&items, now, &open) {
            assert_eq!(s, Sweep::Skip("circuit breaker api is open for 60s more".into()));
        }
        let half = BTreeMap::from([("api".to_owned(), Admit::Probe)]);
        let got = plan_sweep(&items, now, &half);
        assert_eq!(got[2], Sweep::Retry { probe: true }, "high priority, oldest first: {got:#?}");
        assert!(matches!(&got[0], Sweep::Skip(w) if w.contains("another task")));
        assert!(matches!(&got[1], Sweep::Skip(w) if w.contains("another task")));
        let probing = BTreeMap::from([("api".to_owned(), Admit::Probing { run_id: "r9".into(), until: 2_000 })]);
        assert!(plan_sweep(&items, now, &probing).iter().all(|s| matches!(s, Sweep::Skip(w) if w.contains("run r9"))));
        // Another breaker's state does not matter.
        let other = BTreeMap::from([("other".to_owned(), Admit::Open { until: 5_000 })]);
        assert!(plan_sweep(&items, now, &other).iter().all(|s| *s == Sweep::Retry { probe: false }));
    }

    #[test]
    fn archive_age_is_strictly_older_than() {
        let d = letter(ErrorType::Logic, None, 100, Priority::Medium);
        assert!(!is_archived(&d, 101, 1));
        assert!(is_archived(&d, 102, 1));
        assert!(!is_archived(&d, 50, 1), "a clock behind the commit does not archive");
    }
}
