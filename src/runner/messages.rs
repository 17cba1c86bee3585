//! The commits the runner writes, composed purely: claims (`working`), takeovers (`stalled`) and
//! failure events. Every value is a single-line reserved trailer (no injection through a value);
//! multi-line text (handler output) goes in the body, indented so that no line of it can act as a
//! comment, a scissors line or a trailer.

use std::path::Path;

use anyhow::Result;

use crate::protocol::state::last_text;
use crate::protocol::{compose, Key, Lease, Reserved, State, Trailer, TrailerArg};

use super::clock;

/// Lines of handler output copied into a failure event's body.
pub const TAIL_LINES: usize = 40;

/// `dwp-source: git:<remote>` on everything the runner writes in remote mode.
fn source(remote: Option<&str>) -> Option<TrailerArg> {
    remote.map(|r| TrailerArg::reserved(Key::Source, format!("git:{r}")))
}

/// The `working` commit that claims a branch for one run.
pub fn claim(
    state: &State,
    run_id: &str,
    runner_id: &str,
    lease_seconds: u64,
    remote: Option<&str>,
) -> Result<Vec<u8>> {
    let mut trailers = vec![
        TrailerArg::reserved(Key::OriginState, state.as_str()),
        TrailerArg::reserved(Key::RunId, run_id),
        TrailerArg::reserved(Key::RunnerId, runner_id),
        TrailerArg::reserved(Key::LeaseSeconds, lease_seconds.to_string()),
    ];
    trailers.extend(source(remote));
    // A body paragraph: AYNIG reads the trailers of the body alone (`%b`), where the first
    // paragraph counts as a title; without it, an AYNIG runner in the same fleet would not see
    // the lease.
    let body = format!("Run {run_id} of runner {runner_id} takes control of the branch for state {state}.");
    Ok(compose(&format!("baton: {state} claimed"), Some(&body), &trailers, &State::reserved_state(Reserved::Working))?)
}

/// The `stalled` commit written over an expired lease.
pub fn stalled(lease: &Lease, runner_id: &str, now: i64, remote: Option<&str>) -> Result<Vec<u8>> {
    let run = lease.run_id.as_deref().unwrap_or("unknown");
    let mut trailers = Vec::new();
    if let Some(origin) = &lease.origin_state {
        trailers.push(TrailerArg::reserved(Key::OriginState, origin));
    }
    trailers.push(TrailerArg::reserved(Key::StalledRun, run));
    trailers.push(TrailerArg::reserved(Key::RunnerId, runner_id));
    trailers.extend(source(remote));
    let body = format!(
        "Run {run} (runner {}) held this branch for state {} with a lease of {} s from {}; it expired {} s ago without a renewal or an answer.",
        lease.runner_id.as_deref().unwrap_or("unknown"),
        lease.origin_state.as_deref().unwrap_or("unknown"),
        lease.lease_seconds,
        clock::iso_utc(lease.since),
        now - lease.expires_at()
    );
    Ok(compose(
        &format!("baton: lease of run {run} expired"),
        Some(&body),
        &trailers,
        &State::reserved_state(Reserved::Stalled),
    )?)
}

/// A lease renewal written by the runner while its handler runs. It is not a state commit (no
/// `dwp-state`): it lives off the branch, on `refs/baton/leases/<branch>`, with the lease head as
/// its parent, so `log` of a long run stays readable and the handler's detached work still
/// descends from the branch head.
pub fn renewal(run_id: &str, runner_id: &str, lease_seconds: u64, remote: Option<&str>) -> Result<Vec<u8>> {
    let mut trailers = vec![
        TrailerArg::reserved(Key::RunId, run_id),
        TrailerArg::reserved(Key::RunnerId, runner_id),
        TrailerArg::reserved(Key::LeaseSeconds, lease_seconds.to_string()),
    ];
    trailers.extend(source(remote));
    let mut msg = format!("baton: lease of run {run_id} renewed\n\n").into_bytes();
    for t in &trailers {
        msg.extend_from_slice(format!("{}: {}\n", t.key, t.value).as_bytes());
    }
    Ok(msg)
}

/// The state a failure moves the branch to: the triggering commit's `dwp-next-on-failure` when it
/// is a valid state other than `working`, else `failed`.
pub fn failure_state(trigger: &[Trailer]) -> State {
    last_text(trigger, Key::NextOnFailure)
        .and_then(|v| State::parse(&v).ok())
        .filter(|s| !s.is(Reserved::Working))
        .unwrap_or_else(|| State::reserved_state(Reserved::Failed))
}

/// What a failure event records.
pub struct Failure<'a> {
    pub state: &'a State,
    pub run_id: &'a str,
    pub runner_id: &'a str,
    pub exit_code: Option<i32>,
    pub reason: &'a str,
    pub output_tail: &'a str,
    pub log: &'a Path,
    pub worktree: &'a Path,
    pub next: &'a State,
    pub remote: Option<&'a str>,
    pub error_type: &'a str,
}

/// The trailers every failure event starts with: which run of which state failed, and how.
fn failure_trailers(f: &Failure<'_>) -> Vec<TrailerArg> {
    let mut trailers = vec![
        TrailerArg::reserved(Key::OriginState, f.state.as_str()),
        TrailerArg::reserved(Key::RunId, f.run_id),
        TrailerArg::reserved(Key::RunnerId, f.runner_id),
    ];
    if let Some(code) = f.exit_code {
        trailers.push(TrailerArg::reserved(Key::ExitCode, code.to_string()));
    }
    trailers.push(TrailerArg::reserved(Key::Error, f.reason));
    trailers.push(TrailerArg::reserved(Key::ErrorType, f.error_type));
    trailers
}

pub fn failure(f: &Failure<'_>) -> Result<Vec<u8>> {
    let mut trailers = failure_trailers(f);
    trailers.extend(source(f.remote));
    let body = failure_body(f.state.as_str(), f.reason, f.output_tail, f.log, f.worktree);
    Ok(compose(&format!("baton: {} failed", f.state), Some(&body), &trailers, f.next)?)
}

/// A dead letter's trailers on top of a failure event: the task used up its retries.
pub struct DeadLetter<'a> {
    pub attempts: u32,
    pub max_attempts: u32,
    /// When a sweep may try it again (transient, timeout and auth errors only).
    pub retry_after: Option<i64>,
    /// The task's `dwp-priority`, carried so `dlq` can show it.
    pub priority: Option<&'a str>,
    /// The breaker the error counted against, when its type counts.
    pub breaker: Option<&'a str>,
}

/// A failure event that is a dead letter.
pub fn dead_letter(f: &Failure<'_>, d: &DeadLetter<'_>) -> Result<Vec<u8>> {
    let mut trailers = failure_trailers(f);
    trailers.push(TrailerArg::reserved(Key::Attempt, d.attempts.to_string()));
    trailers.push(TrailerArg::reserved(Key::MaxAttempts, d.max_attempts.to_string()));
    trailers.push(TrailerArg::reserved(Key::DeadLetter, f.error_type));
    if let Some(t) = d.retry_after {
        trailers.push(TrailerArg::reserved(Key::RetryAfter, t.to_string()));
    }
    if let Some(p) = d.priority {
        trailers.push(TrailerArg::reserved(Key::Priority, p));
    }
    if let Some(b) = d.breaker {
        trailers.push(TrailerArg::reserved(Key::Breaker, b));
    }
    trailers.extend(source(f.remote));
    let mut body = failure_body(f.state.as_str(), f.reason, f.output_tail, f.log, f.worktree);
    body.push_str(&format!(
        "\nAttempt {} of {}: retries used up; this is a dead letter (git baton dlq).\n",
        d.attempts, d.max_attempts
    ));
    Ok(compose(&format!("baton: {} failed", f.state), Some(&body), &trailers, f.next)?)
}

/// A retry: the task goes back to its state for another attempt.
pub struct Retry<'a> {
    /// The attempt this commit asks for (2 after the first failure).
    pub attempt: u32,
    pub max_attempts: u32,
    pub not_before: i64,
    /// The task's body as its trigger had it (earlier attempt sections included).
    pub task_body: &'a str,
    /// The trigger's own trailers that the task keeps (see [`carried`]).
    pub carried: &'a [TrailerArg],
}

/// The trailers of a task's trigger that a retry carries over: everything but what the runner
/// writes itself (state, lease, run facts, timers) and the facts of that one commit (reported
/// spend, a budget reset), so the retry is the same task again.
pub fn carried(trigger: &[Trailer]) -> Vec<TrailerArg> {
    trigger
        .iter()
        .filter(|t| match Key::from_name_ignore_case(&t.key_lossy()) {
            Some(k) => {
                !(k.runner_only() || k.runner_fact() || k.once_only() || k == Key::NotBefore || k == Key::Source)
            }
            None => true,
        })
        .filter_map(|t| TrailerArg::new(t.key_lossy(), t.value_lossy()).ok())
        .collect()
}

/// The heading of the section a failed attempt adds to a task's body.
pub fn attempt_heading(n: u32) -> String {
    format!("## Attempt {n} failed")
}

/// The section describing failed attempt `n`: what happened and the last lines of output.
pub fn attempt_section(n: u32, f: &Failure<'_>) -> String {
    let mut s = format!("{}\n\n", attempt_heading(n));
    s.push_str(&format!("- error type: {}\n", f.error_type));
    s.push_str(&format!("- error: {}\n", f.reason.split_whitespace().collect::<Vec<_>>().join(" ")));
    match f.exit_code {
        Some(c) => s.push_str(&format!("- exit code: {c}\n")),
        None => s.push_str("- exit code: none\n"),
    }
    s.push_str(&format!("- run: {}\n", f.run_id));
    if f.output_tail.trim().is_empty() {
        s.push_str("\nIt printed nothing.\n");
    } else {
        s.push_str(&format!("\nLast {TAIL_LINES} lines of its output:\n\n"));
        for line in f.output_tail.lines() {
            let clean: String = line.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect();
            s.push_str("    ");
            s.push_str(clean.trim_end());
            s.push('\n');
        }
    }
    s
}

/// A task's body without the sections failed attempts added (what the person asked for).
pub use crate::recovery::deadletter::strip_attempt_sections;

/// The last failed attempt's section of a body, if it has one (for `BATON_PREVIOUS_LOG`).
pub fn last_attempt_section(body: &str) -> Option<&str> {
    let mut start = None;
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        if line.trim_end().starts_with("## Attempt ") && line.trim_end().ends_with(" failed") {
            start = Some(offset);
        }
        offset += line.len();
    }
    start.map(|s| body[s..].trim_end())
}

/// The retry commit: the task back in its state, the failure fed back in its body.
pub fn retry(f: &Failure<'_>, r: &Retry<'_>) -> Result<Vec<u8>> {
    let mut trailers: Vec<TrailerArg> = r.carried.to_vec();
    trailers.push(TrailerArg::reserved(Key::Attempt, r.attempt.to_string()));
    trailers.push(TrailerArg::reserved(Key::MaxAttempts, r.max_attempts.to_string()));
    trailers.push(TrailerArg::reserved(Key::NotBefore, r.not_before.to_string()));
    trailers.push(TrailerArg::reserved(Key::RetryOf, f.run_id));
    trailers.push(TrailerArg::reserved(Key::RunnerId, f.runner_id));
    if let Some(code) = f.exit_code {
        trailers.push(TrailerArg::reserved(Key::ExitCode, code.to_string()));
    }
    trailers.push(TrailerArg::reserved(Key::Error, f.reason));
    trailers.push(TrailerArg::reserved(Key::ErrorType, f.error_type));
    trailers.extend(source(f.remote));
    let section = attempt_section(r.attempt.saturating_sub(1), f);
    let body = match r.task_body.trim() {
        "" => section,
        task => format!("{task}\n\n{section}"),
    };
    Ok(compose(
        &format!("baton: retry {} (attempt {} of {})", f.state, r.attempt, r.max_attempts),
        Some(&body),
        &trailers,
        f.state,
    )?)
}

/// The `blocked` commit written instead of a run when a fix loop passed its hard cap, with a
/// decision card for the person who picks it up.
pub fn loop_cap(
    branch: &str,
    state: &State,
    round: u32,
    hard: u32,
    last_errors: &[String],
    runner_id: &str,
    remote: Option<&str>,
) -> Result<Vec<u8>> {
    let mut trailers = vec![
        TrailerArg::reserved(Key::OriginState, state.as_str()),
        TrailerArg::reserved(Key::Escalation, "loop-cap"),
        TrailerArg::reserved(Key::RunnerId, runner_id),
    ];
    trailers.extend(source(remote));
    let mut errors = String::new();
    for e in last_errors {
        errors.push_str(&format!("\n  - {}", e.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    if errors.is_empty() {
        errors.push_str(" none recorded");
    }
    let body = format!(
        "## Decision required\n\n\
         Context: this task entered {state} {round} times; the hard cap is {hard} rounds (policy loop.hard), so it was not run again. Last errors:{errors}\n\n\
         Options:\n\
         A. Resume: another {hard} rounds of {state}, with what to change — git baton send --branch {branch} {state} -m \"WHAT TO CHANGE\"\n\
         B. Cancel the task — git baton send --branch {branch} canceled -m \"WHY\"\n\n\
         Recommended: B, unless the last rounds show progress\n\
         Risk: every round is another handler run (time and money)\n\
         Default: none — the task waits for an answer\n"
    );
    Ok(compose(
        &format!("baton: {state} looped {round} times; blocked for a person"),
        Some(&body),
        &trailers,
        &State::reserved_state(Reserved::Blocked),
    )?)
}

/// The `blocked` commit written over a task whose dependency can never be met, with a card.
pub fn dependency_block(
    branch: &str,
    state: &State,
    reason: &str,
    runner_id: &str,
    remote: Option<&str>,
) -> Result<Vec<u8>> {
    let mut trailers = vec![
        TrailerArg::reserved(Key::OriginState, state.as_str()),
        TrailerArg::reserved(Key::Escalation, "dependency"),
        TrailerArg::reserved(Key::RunnerId, runner_id),
    ];
    trailers.extend(source(remote));
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    let body = format!(
        "## Decision required\n\n\
         Context: {state} was not run: {reason}.\n\n\
         Options:\n\
         A. Run it anyway, without the dependency — git baton send --branch {branch} {state} -m \"WHY\"\n\
         B. Cancel the task — git baton send --branch {branch} canceled -m \"WHY\"\n\n\
         Recommended: B, unless the task still makes sense on its own\n\
         Risk: A runs work whose precondition did not hold\n\
         Default: none — the task waits for an answer\n"
    );
    Ok(compose(
        &format!("baton: {state} blocked by a dependency"),
        Some(&body),
        &trailers,
        &State::reserved_state(Reserved::Blocked),
    )?)
}

/// The body of a failure event: what happened, the output's tail, and where the rest is.
pub fn failure_body(state: &str, reason: &str, tail: &str, log: &Path, wt: &Path) -> String {
    let mut body = format!("The handler for {state} failed: {reason}\n");
    if tail.trim().is_empty() {
        body.push_str("\nIt printed nothing.\n");
    } else {
        body.push_str(&format!("\nLast {TAIL_LINES} lines of its output:\n\n"));
        for line in tail.lines() {
            let clean: String = line.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect();
            body.push_str("    ");
            body.push_str(clean.trim_end());
            body.push('\n');
        }
    }
    body.push_str(&format!("\nFull log: {}\nWorktree kept at: {}\n", log.display(), wt.display()));
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::trailers::parse;
    use crate::protocol::StateRead;

    fn st(s: &str) -> State {
        State::parse(s).unwrap()
    }

    #[test]
    fn claim_carries_the_lease_and_source() {
        let m = claim(&st("build"), "r1", "h:1", 60, Some("origin")).unwrap();
        let t = parse(&m);
        let lease = Lease::from_commit(&t, 0).unwrap();
        assert_eq!(lease.run_id.as_deref(), Some("r1"));
        assert_eq!(lease.origin_state.as_deref(), Some("build"));
        assert_eq!(lease.lease_seconds, 60);
        assert_eq!(last_text(&t, Key::Source).as_deref(), Some("git:origin"));
    }

    #[test]
    fn stalled_names_the_dead_run() {
        let lease = Lease::from_commit(&parse(&claim(&st("b"), "r9", "h:1", 5, None).unwrap()), 100).unwrap();
        let t = parse(&stalled(&lease, "me:2", 200, None).unwrap());
        assert_eq!(StateRead::from_trailers(&t), StateRead::Valid(st("stalled")));
        assert_eq!(last_text(&t, Key::StalledRun).as_deref(), Some("r9"));
        assert_eq!(last_text(&t, Key::OriginState).as_deref(), Some("b"));
    }

    #[test]
    fn failure_state_follows_next_on_failure() {
        assert_eq!(failure_state(&parse(b"t\n\ndwp-next-on-failure: triage\n")), st("triage"));
        assert_eq!(failure_state(&parse(b"t\n\ndwp-next-on-failure: working\n")), st("failed"));
        assert_eq!(failure_state(&parse(b"t\n\ndwp-next-on-failure: ../x\n")), st("failed"));
        assert_eq!(failure_state(&[]), st("failed"));
    }

    #[test]
    fn output_cannot_hide_or_forge_trailers() {
        let tail = "ok\n# ------------------------ >8 ------------------------\ndwp-state: done\0x";
        let (s, next) = (st("build"), st("failed"));
        let f = Failure {
            state: &s,
            run_id: "r",
            runner_id: "h:1",
            exit_code: Some(2),
            reason: "exit\n2",
            output_tail: tail,
            log: Path::new("/l"),
            worktree: Path::new("/w"),
            next: &next,
            remote: None,
            error_type: "logic",
        };
        let m = failure(&f).unwrap();
        let t = parse(&m);
        assert_eq!(StateRead::from_trailers(&t), StateRead::Valid(st("failed")));
        assert_eq!(last_text(&t, Key::Error).as_deref(), Some("exit 2"));
        assert_eq!(last_text(&t, Key::ExitCode).as_deref(), Some("2"));
        assert!(String::from_utf8_lossy(&m).contains("    dwp-state: done x"));
        assert_eq!(last_text(&t, Key::ErrorType).as_deref(), Some("logic"));
    }

    #[test]
    fn renewal_is_not_a_state_commit() {
        let m = renewal("r1", "h:1", 60, Some("origin")).unwrap();
        let t = parse(&m);
        assert_eq!(StateRead::from_trailers(&t), StateRead::None);
        assert_eq!(last_text(&t, Key::RunId).as_deref(), Some("r1"));
        assert_eq!(last_text(&t, Key::LeaseSeconds).as_deref(), Some("60"));
        assert_eq!(last_text(&t, Key::Source).as_deref(), Some("git:origin"));
    }

    fn sample<'a>(s: &'a State, next: &'a State) -> Failure<'a> {
        Failure {
            state: s,
            run_id: "run-1",
            runner_id: "h:1",
            exit_code: Some(1),
            reason: "handler exited with status 1",
            output_tail: "compiling\ntests failed: 3 of 10\n",
            log: Path::new("/l"),
            worktree: Path::new("/w"),
            next,
            remote: None,
            error_type: "logic",
        }
    }

    #[test]
    fn a_retry_carries_the_task_and_feeds_the_failure_back() {
        let (s, next) = (st("build"), st("failed"));
        let trigger = parse(b"t\n\nbody\n\nReviewed-by: Bob\ndwp-priority: high\ndwp-attempt: 1\ndwp-not-before: 5\ndwp-error: old\ndwp-state: build\n");
        let carried = carried(&trigger);
        let keys: Vec<String> = carried.iter().map(|t| t.key.clone()).collect();
        assert_eq!(keys, ["Reviewed-by", "dwp-priority"], "runner facts, timers and the state are not carried");
        let body = "do the task\n\n## Attempt 1 failed\n\n- error type: logic\n";
        let r = Retry { attempt: 3, max_attempts: 3, not_before: 1234, task_body: body, carried: &carried };
        let m = retry(&sample(&s, &next), &r).unwrap();
        let t = parse(&m);
        assert_eq!(StateRead::from_trailers(&t), StateRead::Valid(st("build")));
        for (k, v) in [
            (Key::Attempt, "3"),
            (Key::MaxAttempts, "3"),
            (Key::NotBefore, "1234"),
            (Key::RetryOf, "run-1"),
            (Key::ErrorType, "logic"),
            (Key::Priority, "high"),
        ] {
            assert_eq!(last_text(&t, k).as_deref(), Some(v), "{k:?}");
        }
        let text = String::from_utf8_lossy(&m);
        assert!(
            text.starts_with("baton: retry build (attempt 3 of 3)\n\ndo the task\n\n## Attempt 1 failed"),
            "{text}"
        );
        assert!(text.contains("## Attempt 2 failed\n\n- error type: logic\n- error: handler exited with status 1\n- exit code: 1\n- run: run-1\n"), "{text}");
        assert!(text.contains("    tests failed: 3 of 10\n"), "{text}");
        let body = crate::protocol::message::body_of(&m);
        assert_eq!(strip_attempt_sections(&body), "do the task");
        assert!(last_attempt_section(&body).unwrap().starts_with("## Attempt 2 failed"));
        assert_eq!(last_attempt_section("no sections"), None);
        assert_eq!(
            strip_attempt_sections("keep ## Attempt x failed inline\n## Attempt one failed\nmore"),
            "keep ## Attempt x failed inline\n## Attempt one failed\nmore"
        );
    }

    #[test]
    fn a_dead_letter_says_what_a_sweep_needs() {
        let (s, next) = (st("build"), st("failed"));
        let d = DeadLetter {
            attempts: 4,
            max_attempts: 4,
            retry_after: Some(99),
            priority: Some("low"),
            breaker: Some("anthropic"),
        };
        let t = parse(&dead_letter(&sample(&s, &next), &d).unwrap());
        assert_eq!(StateRead::from_trailers(&t), StateRead::Valid(st("failed")));
        for (k, v) in [
            (Key::DeadLetter, "logic"),
            (Key::Attempt, "4"),
            (Key::RetryAfter, "99"),
            (Key::Priority, "low"),
            (Key::Breaker, "anthropic"),
            (Key::OriginState, "build"),
        ] {
            assert_eq!(last_text(&t, k).as_deref(), Some(v), "{k:?}");
        }
    }

    #[test]
    fn a_loop_cap_blocks_with_a_decision_card() {
        let m = loop_cap("t1", &st("review"), 11, 10, &["exit 1".into()], "h:1", Some("origin")).unwrap();
        let t = parse(&m);
        assert_eq!(StateRead::from_trailers(&t), StateRead::Valid(st("blocked")));
        assert_eq!(last_text(&t, Key::Escalation).as_deref(), Some("loop-cap"));
        let text = String::from_utf8_lossy(&m);
        assert!(text.contains("## Decision required") && text.contains("git baton send --branch t1 review"), "{text}");
    }
}
