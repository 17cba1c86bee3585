//! What to tell people about a branch head, decided purely: the head's state, trailers and subject,
//! the run it answers (if any) and the tier of the states involved → at most one notification.
//! The caller reads git; everything here is a function of its arguments (table-tested below).

use serde::Serialize;

use crate::policy::Tier;
use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved, State, StateRead, Trailer};
use crate::recovery::deadletter::subject_of;

/// The four kinds of news.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Completed,
    Failed,
    Blocked,
    Waiting,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::Blocked => "BLOCKED",
            Status::Waiting => "WAITING",
        }
    }
}

/// The JSON object a notifier reads on stdin (one line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub status: Status,
    /// The branch (null for a circuit breaker).
    pub task_id: Option<String>,
    /// The head's `dwp-state`.
    pub state: Option<String>,
    /// What happened: `done`, `failed`, `dead-letter`, `canceled`, `blocked`, `loop-cap`,
    /// `budget` (any `dwp-escalation`), `waiting`, `gate`, `answer`, `breaker-open`.
    pub outcome: String,
    /// The head commit's subject line.
    pub summary: String,
    pub error: Option<String>,
    pub error_type: Option<String>,
    pub attempt: Option<u32>,
    /// The head commit (the breaker commit that opened it, for a breaker).
    pub commit: String,
    pub run_id: Option<String>,
    /// The state whose run produced this head, when known.
    pub origin_state: Option<String>,
    /// The circuit breaker's name (breaker notifications only).
    pub breaker: Option<String>,
    /// The one-line text (also `BATON_NOTIFY_TEXT`).
    pub text: String,
}

/// The run a head answers: the state it ran for and its run id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub origin_state: String,
    pub run_id: Option<String>,
}

/// A branch head as far as notifications care.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub branch: &'a str,
    pub commit: &'a str,
    pub message: &'a [u8],
    pub trailers: &'a [Trailer],
    /// The run this head is the answer (or the runner's failure record) of, if it is one.
    pub answer: Option<&'a Answer>,
}

/// At most this many characters of a summary, an error or the text.
const MAX_TEXT: usize = 400;

/// One line without control characters, at most [`MAX_TEXT`] characters.
pub fn one_line(s: &str) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let joined = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &joined[..i]),
        None => joined,
    }
}

/// Would [`decide`] need to know which run `head` answers (a parent walk) before it can say
/// anything? Only when the answer can matter: a state that notifies on its own (for the run id
/// and the origin's notifiers), or any head when some state of its policy is `tier = "notify"`.
pub fn wants_answer(trailers: &[Trailer], any_notify_tier: bool) -> bool {
    let StateRead::Valid(s) = StateRead::from_trailers(trailers) else {
        return false;
    };
    if matches!(s.reserved(), Some(Reserved::Working | Reserved::Stalled | Reserved::Parked))
        || last_text(trailers, Key::RetryOf).is_some()
    {
        return false;
    }
    any_notify_tier
        || matches!(
            s.reserved(),
            Some(Reserved::Done | Reserved::Failed | Reserved::Canceled | Reserved::Blocked | Reserved::Waiting)
        )
        || last_text(trailers, Key::DeadLetter).is_some()
}

/// The notification a branch head calls for, if any. `tier_of` gives a state's tier under the
/// head's policy.
///
/// In order: no valid state, `working`, `stalled`, `parked` or a runner's retry commit → nothing;
/// a dead letter → FAILED `dead-letter`; `done` → COMPLETED; `failed` and `canceled` → FAILED;
/// `blocked` → BLOCKED (outcome: its `dwp-escalation`, else `blocked`); `waiting` → WAITING; a
/// state with `tier = "gate"` and no `dwp-approves` on the head → WAITING `gate`; the answer of a
/// run of a `tier = "notify"` state → COMPLETED `answer` (FAILED `failed` for the runner's failure
/// record); anything else → nothing.
pub fn decide(head: &Head<'_>, tier_of: impl Fn(&str) -> Tier) -> Option<Notification> {
    let t = head.trailers;
    let (state, status, outcome) = classify(t, head.answer, &tier_of)?;
    let text = |k: Key| last_text(t, k).map(|v| one_line(&v)).filter(|v| !v.is_empty());
    let error = text(Key::Error);
    let summary = one_line(&subject_of(head.message));
    let attempt = last_text(t, Key::Attempt).and_then(|v| v.trim().parse::<u32>().ok());
    let detail = match (status, outcome.as_str()) {
        (Status::Failed, "dead-letter") => {
            let why = error.clone().unwrap_or_else(|| summary.clone());
            match attempt {
                Some(1) => format!("{why} (dead letter after 1 attempt)"),
                Some(n) => format!("{why} (dead letter after {n} attempts)"),
                None => format!("{why} (dead letter)"),
            }
        }
        (Status::Failed, "canceled") => format!("canceled: {summary}"),
        (Status::Failed, _) => error.clone().unwrap_or_else(|| summary.clone()),
        (Status::Blocked, o) if o != "blocked" => format!("{o}: {summary}"),
        (Status::Waiting, "gate") => format!("approval needed for {state}: {summary}"),
        _ => summary.clone(),
    };
    Some(Notification {
        status,
        task_id: Some(head.branch.to_owned()),
        state: Some(state.as_str().to_owned()),
        outcome,
        summary,
        error,
        error_type: text(Key::ErrorType),
        attempt,
        commit: head.commit.to_owned(),
        run_id: text(Key::RunId).or_else(|| head.answer.and_then(|a| a.run_id.clone())),
        origin_state: text(Key::OriginState).or_else(|| head.answer.map(|a| a.origin_state.clone())),
        breaker: None,
        text: one_line(&format!("Task {} {}: {detail}", head.branch, status.as_str())),
    })
}

/// Does the head call for a notification? [`decide`] without building it: what a pass asks of
/// every head before it reads anything more.
pub fn is_news(trailers: &[Trailer], answer: Option<&Answer>, tier_of: impl Fn(&str) -> Tier) -> bool {
    classify(trailers, answer, &tier_of).is_some()
}

/// The state, status and outcome of a head that calls for a notification (see [`decide`]).
fn classify(
    t: &[Trailer],
    answer: Option<&Answer>,
    tier_of: &impl Fn(&str) -> Tier,
) -> Option<(State, Status, String)> {
    let StateRead::Valid(state) = StateRead::from_trailers(t) else {
        return None;
    };
    if matches!(state.reserved(), Some(Reserved::Working | Reserved::Stalled | Reserved::Parked))
        || last_text(t, Key::RetryOf).is_some()
    {
        return None;
    }
    let (status, outcome) = if last_text(t, Key::DeadLetter).is_some() {
        (Status::Failed, "dead-letter".to_owned())
    } else {
        match state.reserved() {
            Some(Reserved::Done) => (Status::Completed, "done".to_owned()),
            Some(Reserved::Failed) => (Status::Failed, "failed".to_owned()),
            Some(Reserved::Canceled) => (Status::Failed, "canceled".to_owned()),
            Some(Reserved::Blocked) => (
                Status::Blocked,
                last_text(t, Key::Escalation)
                    .map(|v| one_line(&v))
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "blocked".to_owned()),
            ),
            // A join waits for its children, not for a person.
            Some(Reserved::Waiting) if crate::runner::join::is_join_wait(t) => return None,
            Some(Reserved::Waiting) => (Status::Waiting, "waiting".to_owned()),
            _ if tier_of(state.as_str()) == Tier::Gate && last_text(t, Key::Approves).is_none() => {
                (Status::Waiting, "gate".to_owned())
            }
            _ => match answer {
                Some(a) if tier_of(&a.origin_state) == Tier::Notify => match last_text(t, Key::Error) {
                    Some(_) => (Status::Failed, "failed".to_owned()),
                    None => (Status::Completed, "answer".to_owned()),
                },
                _ => return None,
            },
        }
    };
    Some((state, status, outcome))
}

/// A circuit breaker that opened: BLOCKED `breaker-open`, keyed by the commit that opened it.
pub fn breaker_opened(name: &str, commit: &str, reason: Option<&str>, last_error: Option<&str>) -> Notification {
    let reason = reason.map(one_line).filter(|r| !r.is_empty()).unwrap_or_else(|| "opened".to_owned());
    Notification {
        status: Status::Blocked,
        task_id: None,
        state: None,
        outcome: "breaker-open".to_owned(),
        summary: one_line(&format!("circuit breaker {name} opened: {reason}")),
        error: last_error.map(one_line).filter(|e| !e.is_empty()),
        error_type: None,
        attempt: None,
        commit: commit.to_owned(),
        run_id: None,
        origin_state: None,
        breaker: Some(name.to_owned()),
        text: one_line(&format!("Breaker {name} BLOCKED: opened ({reason}); its states wait until it closes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::trailers::parse;

    fn tiers(s: &str) -> Tier {
        match s {
            "deploy" => Tier::Gate,
            "report" => Tier::Notify,
            _ => Tier::Autonomous,
        }
    }

    fn run(message: &str, answer: Option<&Answer>) -> Option<(Status, String, String)> {
        let t = parse(message.as_bytes());
        let head = Head { branch: "t1", commit: "c0ffee", message: message.as_bytes(), trailers: &t, answer };
        decide(&head, tiers).map(|n| (n.status, n.outcome, n.text))
    }

    #[test]
    fn heads_and_what_they_call_for() {
        let build = Answer { origin_state: "build".into(), run_id: Some("r1".into()) };
        let report = Answer { origin_state: "report".into(), run_id: Some("r2".into()) };
        use Status::*;
        type Case<'a> = (&'a str, Option<&'a Answer>, Option<(Status, &'a str, &'a str)>);
        let cases: &[Case<'_>] = &[
            ("built\n\ndwp-state: done\n", Some(&build), Some((Completed, "done", "Task t1 COMPLETED: built"))),
            ("built\n\ndwp-state: done\n", None, Some((Completed, "done", "Task t1 COMPLETED: built"))),
            (
                "baton: build failed\n\nbody\n\ndwp-origin-state: build\ndwp-run-id: r\ndwp-error: handler exited with status 1\ndwp-error-type: logic\ndwp-attempt: 3\ndwp-dead-letter: logic\ndwp-state: failed\n",
                None,
                Some((Failed, "dead-letter", "Task t1 FAILED: handler exited with status 1 (dead letter after 3 attempts)")),
            ),
            (
                "baton: build failed\n\ndwp-error: exit 1\ndwp-dead-letter: logic\ndwp-state: triage\n",
                None,
                Some((Failed, "dead-letter", "Task t1 FAILED: exit 1 (dead letter)")),
            ),
            (
                "baton: build failed\n\ndwp-error: exit 2\ndwp-state: failed\n",
                None,
                Some((Failed, "failed", "Task t1 FAILED: exit 2")),
            ),
            ("no\n\ndwp-state: canceled\n", None, Some((Failed, "canceled", "Task t1 FAILED: canceled: no"))),
            (
                "baton: review looped 11 times; blocked for a person\n\ndwp-escalation: loop-cap\ndwp-state: blocked\n",
                None,
                Some((Blocked, "loop-cap", "Task t1 BLOCKED: loop-cap: baton: review looped 11 times; blocked for a person")),
            ),
            ("over\n\ndwp-escalation: budget\ndwp-state: blocked\n", None, Some((Blocked, "budget", "Task t1 BLOCKED: budget: over"))),
            ("stuck\n\ndwp-state: blocked\n", None, Some((Blocked, "blocked", "Task t1 BLOCKED: stuck"))),
            ("ask\n\ndwp-state: waiting\n", None, Some((Waiting, "waiting", "Task t1 WAITING: ask"))),
            ("baton: join 2 children (all) -> merge\n\ndwp-join-then: merge\ndwp-join-child: a\ndwp-state: waiting\n", None, None),
            (
                "ship it\n\ndwp-state: deploy\n",
                Some(&build),
                Some((Waiting, "gate", "Task t1 WAITING: approval needed for deploy: ship it")),
            ),
            ("approved\n\ndwp-approves: abc\ndwp-state: deploy\n", None, None),
            ("wrote\n\ndwp-state: review\n", Some(&report), Some((Completed, "answer", "Task t1 COMPLETED: wrote"))),
            (
                "baton: report failed\n\ndwp-origin-state: report\ndwp-error: exit 3\ndwp-state: triage\n",
                Some(&report),
                Some((Failed, "failed", "Task t1 FAILED: exit 3")),
            ),
            ("wrote\n\ndwp-state: review\n", Some(&build), None),
            ("wrote\n\ndwp-state: review\n", None, None),
            // A runner's retry is on its way, not news; leases, takeovers and parked tasks neither.
            ("baton: retry report\n\ndwp-retry-of: r2\ndwp-state: report\n", Some(&report), None),
            ("baton: retry\n\ndwp-retry-of: r2\ndwp-state: done\n", None, None),
            ("claim\n\ndwp-origin-state: report\ndwp-state: working\n", Some(&report), None),
            ("x\n\ndwp-state: stalled\n", Some(&report), None),
            ("x\n\ndwp-state: parked\n", None, None),
            ("no state at all\n", None, None),
            ("bad\n\ndwp-state: ../x\n", None, None),
        ];
        for (message, answer, want) in cases {
            let got = run(message, *answer);
            let want = want.map(|(s, o, t)| (s, o.to_owned(), t.to_owned()));
            assert_eq!(got, want, "{message:?}");
        }
    }

    #[test]
    fn the_json_carries_the_run_facts() {
        let msg = "baton: build failed\n\nbody\n\ndwp-origin-state: build\ndwp-run-id: r-9\ndwp-exit-code: 1\ndwp-error: boom\ndwp-error-type: logic\ndwp-attempt: 3\ndwp-dead-letter: logic\ndwp-state: failed\n";
        let t = parse(msg.as_bytes());
        let head = Head { branch: "task/a", commit: "abc", message: msg.as_bytes(), trailers: &t, answer: None };
        let n = decide(&head, tiers).unwrap();
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["status"], "FAILED");
        assert_eq!(v["task_id"], "task/a");
        assert_eq!(v["state"], "failed");
        assert_eq!(v["outcome"], "dead-letter");
        assert_eq!(v["summary"], "baton: build failed");
        assert_eq!(v["error"], "boom");
        assert_eq!(v["error_type"], "logic");
        assert_eq!(v["attempt"], 3);
        assert_eq!(v["commit"], "abc");
        assert_eq!(v["run_id"], "r-9");
        assert_eq!(v["origin_state"], "build");
        // A handler's answer takes its run from the claim it answers.
        let msg = "built\n\ndwp-state: done\n";
        let t = parse(msg.as_bytes());
        let a = Answer { origin_state: "build".into(), run_id: Some("r-1".into()) };
        let head = Head { branch: "b", commit: "c", message: msg.as_bytes(), trailers: &t, answer: Some(&a) };
        let v = serde_json::to_value(decide(&head, tiers).unwrap()).unwrap();
        assert_eq!((v["run_id"].as_str(), v["origin_state"].as_str()), (Some("r-1"), Some("build")));
        assert!(v["error"].is_null() && v["attempt"].is_null());
    }

    #[test]
    fn text_is_one_bounded_line() {
        assert_eq!(one_line("a\n\tb\r\n  c\u{7}"), "a b c");
        let long = "x".repeat(1000);
        assert_eq!(one_line(&long).chars().count(), MAX_TEXT + 1);
        let n = breaker_opened("anthropic", "abc", Some("3 failures within 60s"), Some("transient:00ff"));
        assert_eq!(
            n.text,
            "Breaker anthropic BLOCKED: opened (3 failures within 60s); its states wait until it closes"
        );
        assert_eq!((n.status, n.outcome.as_str(), n.task_id.as_deref()), (Status::Blocked, "breaker-open", None));
    }

    #[test]
    fn the_answer_walk_is_only_asked_for_when_it_can_matter() {
        let w = |m: &str, any| wants_answer(&parse(m.as_bytes()), any);
        assert!(w("x\n\ndwp-state: done\n", false));
        assert!(w("x\n\ndwp-dead-letter: logic\ndwp-state: triage\n", false));
        assert!(!w("x\n\ndwp-state: review\n", false));
        assert!(w("x\n\ndwp-state: review\n", true));
        assert!(!w("x\n\ndwp-state: working\n", true));
        assert!(!w("x\n\ndwp-retry-of: r\ndwp-state: build\n", true));
        assert!(!w("x\n", true));
    }
}
