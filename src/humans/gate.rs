//! Gates: a state with `tier = "gate"` runs only once its task carries a valid approval of its
//! current head — decided here, purely, from what the head commit says, the state's policy and
//! the time.
//!
//! An approval is a commit written by `git baton approve` on top of the gated head: same tree,
//! same `dwp-state`, with `dwp-approved-by: <email>`, `dwp-approves: <sha of the gated head>` and,
//! when a decision card offered options, `dwp-decision: <letter>`. It counts when it is the branch
//! head, names its own first parent, and was committed by an identity in `gate.approvers`
//! (compared case-insensitively; `dwp-approved-by`, when present, must say the same). With
//! `gate.require_signed` it must also carry a good signature of that identity — checked by the
//! runner with `git verify-commit` before it claims (an effect, so not here). Anything else on
//! top of the gated head (a `send`, a retry) is a new head that waits for its own approval.
//!
//! Once the head waiting for approval is older than `gate.timeout`, the runner applies
//! `gate.default`: an approval by [`TIMEOUT_APPROVER`] with the default's letter, or a reject to
//! `gate.on_reject`; `none` waits for ever. A timeout approval counts only when the policy says
//! exactly that and the time really passed (its committer time against its parent's).

use crate::policy::{GateDefault, HumansPolicy, Tier};
use crate::protocol::message::body_of;
use crate::protocol::state::last_text;
use crate::protocol::{compose, Key, MessageError, State, Trailer, TrailerArg};
use crate::repo::ObjectId;

/// The `dwp-approved-by` of the approval the runner writes when a gate's timeout passes.
pub const TIMEOUT_APPROVER: &str = "git-baton (gate.timeout)";

/// What a gate needs to know about an approval head beyond its message: who committed it, and
/// when its first parent (the head it approves) was committed. Read only for heads that carry
/// `dwp-approves`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalFacts {
    /// The committer's email (None: it could not be read).
    pub committer_email: Option<String>,
    pub parent_time: Option<i64>,
}

/// The head commit of a branch in a state, as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub struct HeadFacts<'a> {
    pub trailers: &'a [Trailer],
    pub first_parent: Option<ObjectId>,
    pub committer_time: i64,
    /// For a head with `dwp-approves` (None otherwise, or when it could not be read).
    pub approval: Option<&'a ApprovalFacts>,
}

/// Where a gated head stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateStatus {
    /// The state is not gated: it runs as usual.
    NotGated,
    /// No approval of the head yet (since the head's committer time).
    Waiting { since: i64 },
    /// A valid approval: run, telling the handler who approved and what they chose.
    Approved { by: String, decision: Option<char> },
    /// A valid approval, if its signature is good: the runner checks it before claiming.
    NeedsSignatureCheck { by: String, decision: Option<char>, since: i64 },
    /// The head is an approval that does not count (a stranger's, of another head, malformed).
    Refused { why: String, since: i64 },
    /// Nobody decided within `gate.timeout`: the runner applies `gate.default`.
    TimedOut { default: GateDefault, since: i64 },
}

/// When a gate waiting since `since` applies its default (None: it waits for ever).
pub fn deadline(since: i64, policy: &HumansPolicy) -> Option<i64> {
    let t = policy.gate_timeout.value?;
    match policy.gate_default.value {
        GateDefault::None => None,
        _ => Some(since.saturating_add(i64::try_from(t).unwrap_or(i64::MAX))),
    }
}

/// The default a gate waiting since `since` applies at `now`, if its time has come.
pub fn timed_out(since: i64, policy: &HumansPolicy, now: i64) -> Option<GateDefault> {
    deadline(since, policy).filter(|&d| now >= d).map(|_| policy.gate_default.value.clone())
}

/// A `dwp-decision` option letter: one of A–Z.
pub fn parse_letter(v: &str) -> Option<char> {
    let mut chars = v.trim().chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_uppercase() => Some(c),
        _ => None,
    }
}

/// Where the head of a branch in a state stands at its gate.
pub fn status(head: &HeadFacts<'_>, policy: &HumansPolicy, now: i64) -> GateStatus {
    if policy.tier.value != Tier::Gate {
        return GateStatus::NotGated;
    }
    let since = head.committer_time;
    let waiting = |why: Option<String>| match (timed_out(since, policy, now), why) {
        (Some(default), _) => GateStatus::TimedOut { default, since },
        (None, Some(why)) => GateStatus::Refused { why, since },
        (None, None) => GateStatus::Waiting { since },
    };
    let Some(approves) = last_text(head.trailers, Key::Approves) else {
        return waiting(None);
    };
    match judge(head, approves.trim(), policy) {
        Ok((by, decision, signed)) if signed => GateStatus::NeedsSignatureCheck { by, decision, since },
        Ok((by, decision, _)) => GateStatus::Approved { by, decision },
        Err(why) => waiting(Some(why)),
    }
}

/// Does the approval on `head` count? `(by, decision, needs a signature check)` or why not.
fn judge(head: &HeadFacts<'_>, approves: &str, policy: &HumansPolicy) -> Result<(String, Option<char>, bool), String> {
    let parent = head.first_parent.map(|p| p.to_string());
    if parent.as_deref().is_none_or(|p| !p.eq_ignore_ascii_case(approves)) {
        let short = |s: &str| s.get(..12).unwrap_or(s).to_owned();
        return Err(match parent {
            Some(p) => format!("it approves {}, not the head it sits on ({})", short(approves), short(&p)),
            None => format!("it approves {} but has no parent", short(approves)),
        });
    }
    let decision = match last_text(head.trailers, Key::Decision) {
        None => None,
        Some(v) => Some(parse_letter(&v).ok_or_else(|| format!("malformed dwp-decision {v:?} (one letter A-Z)"))?),
    };
    let claimed = last_text(head.trailers, Key::ApprovedBy).map(|v| v.trim().to_owned());
    let facts = head.approval.ok_or("its committer could not be read")?;
    if claimed.as_deref() == Some(TIMEOUT_APPROVER) {
        let allowed = match (&policy.gate_default.value, policy.gate_timeout.value, facts.parent_time) {
            (GateDefault::Option(d), Some(t), Some(p)) => {
                decision == Some(*d) && head.committer_time >= p.saturating_add(i64::try_from(t).unwrap_or(i64::MAX))
            }
            _ => false,
        };
        if !allowed {
            return Err(format!(
                "a {TIMEOUT_APPROVER} approval the policy does not make (gate.default = {}, gate.timeout = {})",
                policy.gate_default.value,
                policy.gate_timeout.value.map_or("none".to_owned(), |t| format!("{t}s"))
            ));
        }
        return Ok((TIMEOUT_APPROVER.to_owned(), decision, false));
    }
    let email = facts.committer_email.as_deref().map(str::trim).filter(|e| !e.is_empty());
    let email = email.ok_or("its committer has no email")?;
    if let Some(c) = claimed.as_deref().filter(|c| !c.eq_ignore_ascii_case(email)) {
        return Err(format!("it says dwp-approved-by {c:?} but was committed by {email}"));
    }
    if !policy.may_approve(email) {
        return Err(format!("{email} is not in gate.approvers"));
    }
    Ok((email.to_owned(), decision, policy.gate_require_signed.value))
}

/// What `approve` writes on top of the gated head, and what the runner writes for a timeout.
pub struct Approval<'a> {
    /// The gated head's message (its body and task trailers are carried over).
    pub gated_message: &'a [u8],
    pub gated_trailers: &'a [Trailer],
    pub gated: ObjectId,
    pub state: &'a State,
    /// An email, or [`TIMEOUT_APPROVER`].
    pub by: &'a str,
    pub decision: Option<char>,
    pub note: Option<&'a str>,
    /// Runner-written: `dwp-runner-id` and `dwp-source`.
    pub runner: Vec<TrailerArg>,
}

/// The trailers of a task a decision carries over: its own (not runner-written, see
/// [`crate::runner::messages::carried`]), plus a retry's attempt count, so that a retry approved
/// at its gate is still counted as that attempt.
fn task_trailers(gated: &[Trailer]) -> Vec<TrailerArg> {
    let mut out = crate::runner::messages::carried(gated);
    if let Some(of) = last_text(gated, Key::RetryOf) {
        for key in [Key::Attempt, Key::MaxAttempts] {
            if let Some(v) = last_text(gated, key) {
                out.push(TrailerArg::reserved(key, v));
            }
        }
        out.push(TrailerArg::reserved(Key::RetryOf, of));
    }
    out
}

fn with_section(body: &str, section: &str) -> String {
    match body.trim() {
        "" => section.to_owned(),
        b => format!("{b}\n\n{section}"),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The approval commit's message: the gated head's body with an `## Approved` section, its task
/// trailers, `dwp-approved-by`, `dwp-approves`, `dwp-decision`, and its state.
pub fn approval_message(a: &Approval<'_>) -> Result<Vec<u8>, MessageError> {
    let mut line = format!("Approved by {}", a.by);
    if let Some(d) = a.decision {
        line.push_str(&format!(", option {d}"));
    }
    let section = match a.note.map(str::trim).filter(|n| !n.is_empty()) {
        Some(note) => format!("## Approved\n\n{line}:\n\n{note}"),
        None => format!("## Approved\n\n{line}."),
    };
    let mut trailers = task_trailers(a.gated_trailers);
    trailers.push(TrailerArg::reserved(Key::ApprovedBy, a.by));
    trailers.push(TrailerArg::reserved(Key::Approves, a.gated.to_string()));
    if let Some(d) = a.decision {
        trailers.push(TrailerArg::reserved(Key::Decision, d.to_string()));
    }
    trailers.extend(a.runner.iter().cloned());
    let subject = match a.by {
        TIMEOUT_APPROVER => format!("baton: {} approved by default (gate.timeout)", a.state),
        by => format!("baton: {} approved by {}", a.state, one_line(by)),
    };
    compose(&subject, Some(&with_section(&body_of(a.gated_message), &section)), &trailers, a.state)
}

/// A reject: the task goes to `to` (`gate.on_reject`) with the reason as its body.
pub struct Rejection<'a> {
    pub gated_trailers: &'a [Trailer],
    pub gated: ObjectId,
    pub state: &'a State,
    pub to: &'a State,
    pub by: &'a str,
    pub why: &'a str,
    pub runner: Vec<TrailerArg>,
}

pub fn rejection_message(r: &Rejection<'_>) -> Result<Vec<u8>, MessageError> {
    let gated = r.gated.to_string();
    let body = format!(
        "## Rejected\n\n{}\n\nRejected by {} at the gate of {} ({}).",
        r.why.trim(),
        r.by,
        r.state,
        &gated[..12.min(gated.len())]
    );
    let mut trailers = task_trailers(r.gated_trailers);
    trailers.retain(|t| t.key != Key::RetryOf.as_str() && t.key != Key::Attempt.as_str());
    trailers.retain(|t| t.key != Key::MaxAttempts.as_str());
    trailers.push(TrailerArg::reserved(Key::Decision, "reject"));
    trailers.extend(r.runner.iter().cloned());
    compose(&format!("baton: {} rejected", r.state), Some(&body), &trailers, r.to)
}

/// Request changes: the task goes back to `to` with the gated head's body and a `## Changes
/// requested` section.
pub struct Changes<'a> {
    pub gated_message: &'a [u8],
    pub gated_trailers: &'a [Trailer],
    pub gated: ObjectId,
    pub state: &'a State,
    pub to: &'a State,
    pub by: &'a str,
    pub what: &'a str,
}

pub fn changes_message(c: &Changes<'_>) -> Result<Vec<u8>, MessageError> {
    let gated = c.gated.to_string();
    let section = format!(
        "## Changes requested\n\n{}\n\nRequested by {} at the gate of {} ({}).",
        c.what.trim(),
        c.by,
        c.state,
        &gated[..12.min(gated.len())]
    );
    let mut trailers = crate::runner::messages::carried(c.gated_trailers);
    trailers.push(TrailerArg::reserved(Key::Decision, "changes"));
    compose(
        &format!("baton: changes requested at the gate of {}", c.state),
        Some(&with_section(&body_of(c.gated_message), &section)),
        &trailers,
        c.to,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Resolved, Tier};
    use crate::protocol::trailers::parse;
    use crate::protocol::StateRead;

    fn oid(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    fn policy(f: impl FnOnce(&mut HumansPolicy)) -> HumansPolicy {
        let mut p = HumansPolicy::built_in();
        p.tier = Resolved::built_in(Tier::Gate);
        f(&mut p);
        p
    }

    fn facts(email: &str, parent_time: i64) -> ApprovalFacts {
        ApprovalFacts { committer_email: Some(email.to_owned()), parent_time: Some(parent_time) }
    }

    struct Case {
        name: &'static str,
        msg: String,
        approval: Option<ApprovalFacts>,
        time: i64,
        policy: HumansPolicy,
        now: i64,
        want: GateStatus,
    }

    #[test]
    fn gate_decisions() {
        let parent = oid(1).to_string();
        let approval = |extra: &str| {
            format!("t\n\ndwp-approved-by: lead@example.com\ndwp-approves: {parent}\n{extra}dwp-state: deploy\n")
        };
        let plain = "t\n\ndwp-state: deploy\n".to_owned();
        let leads = |p: &mut HumansPolicy| p.gate_approvers.value = vec!["Lead@Example.com".into()];
        let timeout_b = |p: &mut HumansPolicy| {
            p.gate_timeout.value = Some(60);
            p.gate_default.value = GateDefault::Option('B');
        };
        let by_default = format!(
            "t\n\ndwp-approved-by: {TIMEOUT_APPROVER}\ndwp-approves: {parent}\ndwp-decision: B\ndwp-state: deploy\n"
        );
        let approved = |by: &str, d| GateStatus::Approved { by: by.into(), decision: d };
        let cases = vec![
            Case {
                name: "autonomous states are not gated",
                msg: plain.clone(),
                approval: None,
                time: 0,
                policy: HumansPolicy::built_in(),
                now: 10,
                want: GateStatus::NotGated,
            },
            Case {
                name: "no approval waits",
                msg: plain.clone(),
                approval: None,
                time: 100,
                policy: policy(|_| {}),
                now: 10_000,
                want: GateStatus::Waiting { since: 100 },
            },
            Case {
                name: "an approver's approval of the parent counts",
                msg: approval("dwp-decision: B\n"),
                approval: Some(facts("lead@example.com", 50)),
                time: 100,
                policy: policy(leads),
                now: 200,
                want: approved("lead@example.com", Some('B')),
            },
            Case {
                name: "anyone approves under the default approvers",
                msg: approval(""),
                approval: Some(facts("lead@example.com", 50)),
                time: 100,
                policy: policy(|_| {}),
                now: 200,
                want: approved("lead@example.com", None),
            },
            Case {
                name: "a signed gate asks for the signature check",
                msg: approval(""),
                approval: Some(facts("lead@example.com", 50)),
                time: 100,
                policy: policy(|p| p.gate_require_signed.value = true),
                now: 200,
                want: GateStatus::NeedsSignatureCheck { by: "lead@example.com".into(), decision: None, since: 100 },
            },
            Case {
                name: "a stranger is refused",
                msg: approval("").replace("lead@", "intern@"),
                approval: Some(facts("intern@example.com", 50)),
                time: 100,
                policy: policy(leads),
                now: 200,
                want: GateStatus::Refused { why: "intern@example.com is not in gate.approvers".into(), since: 100 },
            },
            Case {
                name: "dwp-approved-by must be the committer",
                msg: approval(""),
                approval: Some(facts("intern@example.com", 50)),
                time: 100,
                policy: policy(|_| {}),
                now: 200,
                want: GateStatus::Refused {
                    why: "it says dwp-approved-by \"lead@example.com\" but was committed by intern@example.com".into(),
                    since: 100,
                },
            },
            Case {
                name: "an approval of another head is stale",
                msg: approval("").replace(&parent, &oid(9).to_string()),
                approval: Some(facts("lead@example.com", 50)),
                time: 100,
                policy: policy(leads),
                now: 200,
                want: GateStatus::Refused {
                    why: format!(
                        "it approves {}, not the head it sits on ({})",
                        &oid(9).to_string()[..12],
                        &parent[..12]
                    ),
                    since: 100,
                },
            },
            Case {
                name: "a malformed decision is refused",
                msg: approval("dwp-decision: maybe\n"),
                approval: Some(facts("lead@example.com", 50)),
                time: 100,
                policy: policy(|_| {}),
                now: 200,
                want: GateStatus::Refused {
                    why: "malformed dwp-decision \"maybe\" (one letter A-Z)".into(),
                    since: 100,
                },
            },
            Case {
                name: "before the timeout it waits",
                msg: plain.clone(),
                approval: None,
                time: 100,
                policy: policy(timeout_b),
                now: 159,
                want: GateStatus::Waiting { since: 100 },
            },
            Case {
                name: "at the timeout the default applies",
                msg: plain.clone(),
                approval: None,
                time: 100,
                policy: policy(timeout_b),
                now: 160,
                want: GateStatus::TimedOut { default: GateDefault::Option('B'), since: 100 },
            },
            Case {
                name: "a refused approval times out too",
                msg: approval("").replace("lead@", "intern@"),
                approval: Some(facts("intern@example.com", 50)),
                time: 100,
                policy: policy(|p| {
                    leads(p);
                    p.gate_timeout.value = Some(60);
                    p.gate_default.value = GateDefault::Reject;
                }),
                now: 500,
                want: GateStatus::TimedOut { default: GateDefault::Reject, since: 100 },
            },
            Case {
                name: "default none waits for ever",
                msg: plain.clone(),
                approval: None,
                time: 100,
                policy: policy(|p| p.gate_timeout.value = Some(1)),
                now: 1_000_000,
                want: GateStatus::Waiting { since: 100 },
            },
            Case {
                name: "the runner's timeout approval counts when the policy makes it",
                msg: by_default.clone(),
                approval: Some(facts("runner@host", 40)),
                time: 100,
                policy: policy(|p| {
                    leads(p);
                    timeout_b(p);
                    p.gate_require_signed.value = true;
                }),
                now: 200,
                want: approved(TIMEOUT_APPROVER, Some('B')),
            },
            Case {
                name: "a forged timeout approval before the timeout is refused",
                msg: by_default.clone(),
                approval: Some(facts("runner@host", 90)),
                time: 100,
                policy: policy(timeout_b),
                now: 120,
                want: GateStatus::Refused {
                    why: format!(
                        "a {TIMEOUT_APPROVER} approval the policy does not make (gate.default = B, gate.timeout = 60s)"
                    ),
                    since: 100,
                },
            },
            Case {
                name: "a timeout approval with another letter is refused",
                msg: by_default.replace("dwp-decision: B", "dwp-decision: A"),
                approval: Some(facts("runner@host", 0)),
                time: 100,
                policy: policy(timeout_b),
                now: 120,
                want: GateStatus::Refused {
                    why: format!(
                        "a {TIMEOUT_APPROVER} approval the policy does not make (gate.default = B, gate.timeout = 60s)"
                    ),
                    since: 100,
                },
            },
            Case {
                name: "an approval whose committer cannot be read is refused",
                msg: approval(""),
                approval: None,
                time: 100,
                policy: policy(|_| {}),
                now: 120,
                want: GateStatus::Refused { why: "its committer could not be read".into(), since: 100 },
            },
        ];
        for c in cases {
            let trailers = parse(c.msg.as_bytes());
            let head = HeadFacts {
                trailers: &trailers,
                first_parent: Some(oid(1)),
                committer_time: c.time,
                approval: c.approval.as_ref(),
            };
            assert_eq!(status(&head, &c.policy, c.now), c.want, "{}", c.name);
        }
    }

    #[test]
    fn deadlines() {
        let p = policy(|p| {
            p.gate_timeout.value = Some(3600);
            p.gate_default.value = GateDefault::Reject;
        });
        assert_eq!(deadline(100, &p), Some(3700));
        assert_eq!(timed_out(100, &p, 3699), None);
        assert_eq!(timed_out(100, &p, 3700), Some(GateDefault::Reject));
        assert_eq!(deadline(100, &policy(|p| p.gate_timeout.value = Some(5))), None, "default none");
        assert_eq!(deadline(100, &policy(|p| p.gate_default.value = GateDefault::Reject)), None, "no timeout");
    }

    #[test]
    fn messages_carry_the_task_and_the_decision() {
        let gated_msg = b"built\n\nready to ship\n\ndwp-priority: high\ndwp-attempt: 2\ndwp-max-attempts: 3\ndwp-retry-of: r1\ndwp-error: boom\ndwp-not-before: 5\ndwp-state: deploy\n";
        let t = parse(gated_msg);
        let deploy = State::parse("deploy").unwrap();
        let m = approval_message(&Approval {
            gated_message: gated_msg,
            gated_trailers: &t,
            gated: oid(1),
            state: &deploy,
            by: "lead@example.com",
            decision: Some('B'),
            note: Some("go"),
            runner: vec![],
        })
        .unwrap();
        let mt = parse(&m);
        assert_eq!(StateRead::from_trailers(&mt), StateRead::Valid(deploy.clone()));
        assert_eq!(last_text(&mt, Key::Approves), Some(oid(1).to_string()));
        assert_eq!(last_text(&mt, Key::ApprovedBy).as_deref(), Some("lead@example.com"));
        assert_eq!(last_text(&mt, Key::Decision).as_deref(), Some("B"));
        assert_eq!(last_text(&mt, Key::Priority).as_deref(), Some("high"));
        assert_eq!(last_text(&mt, Key::Attempt).as_deref(), Some("2"), "a retry's attempt is kept");
        assert_eq!(last_text(&mt, Key::RetryOf).as_deref(), Some("r1"));
        assert_eq!(last_text(&mt, Key::Error), None);
        assert_eq!(last_text(&mt, Key::NotBefore), None);
        let body = body_of(&m);
        assert!(
            body.starts_with("ready to ship\n\n## Approved\n\nApproved by lead@example.com, option B:\n\ngo"),
            "{body}"
        );

        let canceled = State::parse("canceled").unwrap();
        let r = rejection_message(&Rejection {
            gated_trailers: &t,
            gated: oid(1),
            state: &deploy,
            to: &canceled,
            by: "lead@example.com",
            why: "not now",
            runner: vec![],
        })
        .unwrap();
        let rt = parse(&r);
        assert_eq!(StateRead::from_trailers(&rt), StateRead::Valid(canceled));
        assert_eq!(last_text(&rt, Key::Decision).as_deref(), Some("reject"));
        assert_eq!(last_text(&rt, Key::Attempt), None);
        assert!(body_of(&r).starts_with("## Rejected\n\nnot now\n\nRejected by lead@example.com"), "{}", body_of(&r));

        let build = State::parse("build").unwrap();
        let c = changes_message(&Changes {
            gated_message: gated_msg,
            gated_trailers: &t,
            gated: oid(1),
            state: &deploy,
            to: &build,
            by: "lead@example.com",
            what: "use the blue cluster",
        })
        .unwrap();
        let ct = parse(&c);
        assert_eq!(StateRead::from_trailers(&ct), StateRead::Valid(build));
        assert_eq!(last_text(&ct, Key::Decision).as_deref(), Some("changes"));
        assert!(
            body_of(&c).starts_with("ready to ship\n\n## Changes requested\n\nuse the blue cluster\n\nRequested by"),
            "{}",
            body_of(&c)
        );
    }
}
