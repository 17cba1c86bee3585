//! The answer commits `git baton agent` writes: COMPLETED → the agent's summary as the subject,
//! its details as the body, the next state; BLOCKED → `blocked` with a decision card holding the
//! agent's question (`dwp-escalation: agent`). Both report what the agent cost (`dwp-cost`,
//! `dwp-tokens`, as budgets read them). Pure: the caller commits.

use crate::humans::card;
use crate::protocol::message::{compose, MessageError, TrailerArg};
use crate::protocol::{Key, Reserved, State};

use super::reply::Usage;

/// Longest subject line taken from an agent's summary or question (characters).
const SUBJECT_MAX: usize = 200;

/// Longest body taken from an agent's details (bytes); the whole reply is in the run's log.
const DETAILS_MAX: usize = 64 * 1024;

/// The value of `dwp-escalation` on a BLOCKED answer.
pub const ESCALATION: &str = "agent";

fn usage_trailers(usage: &Usage) -> Vec<TrailerArg> {
    let mut t = Vec::new();
    if let Some(c) = usage.cost {
        t.push(TrailerArg::reserved(Key::Cost, c.to_string()));
    }
    if let Some(n) = usage.tokens {
        t.push(TrailerArg::reserved(Key::Tokens, n.to_string()));
    }
    t
}

fn subject(line: &str) -> String {
    let printable: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let one: String = printable.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(SUBJECT_MAX) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

/// An agent's details, cut on a character boundary past [`DETAILS_MAX`] bytes, with a marker.
fn details_for_body(details: &str) -> String {
    // A commit message holds no NUL (git refuses it) and no other control character but the line
    // breaks and tabs: an agent that printed one must not lose the work it did.
    let printable: String =
        details.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { ' ' } else { c }).collect();
    let details = printable.trim();
    if details.len() <= DETAILS_MAX {
        return details.to_owned();
    }
    let mut end = DETAILS_MAX;
    while !details.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n\n[… cut at {DETAILS_MAX} bytes: the whole reply is in the run's log]", &details[..end])
}

/// `compose`, with a body git would misread (a `---` line, scissors) quoted by indenting it, and
/// with no body when even that fails.
fn compose_safely(subject: &str, body: &str, trailers: &[TrailerArg], state: &State) -> Result<Vec<u8>, MessageError> {
    let body = body.trim();
    if body.is_empty() {
        return compose(subject, None, trailers, state);
    }
    match compose(subject, Some(body), trailers, state) {
        Err(MessageError::BodyHidesTrailers) => {
            let quoted: String = body.lines().map(|l| format!("    {l}\n")).collect();
            compose(subject, Some(&quoted), trailers, state).or_else(|_| compose(subject, None, trailers, state))
        }
        other => other,
    }
}

/// The COMPLETED answer: summary as subject, details as body, `next` as the state.
pub fn completed(summary: &str, details: &str, usage: &Usage, next: &State) -> Result<Vec<u8>, MessageError> {
    compose_safely(&subject(summary), &details_for_body(details), &usage_trailers(usage), next)
}

/// The decision card of a BLOCKED answer: the agent's question, and the ways on.
pub fn blocked_card(branch: &str, state: &str, question: &str) -> String {
    let printable: String = question.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let question = printable.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "{heading}\n\n\
         Context: the coding agent running {state} on {branch} stopped to ask: {question}\n\n\
         Options:\n\
         A. Answer and run {state} again — git baton send --branch {branch} {state} -m \"THE ANSWER\"\n\
         B. Cancel the task — git baton send --branch {branch} canceled -m \"WHY\"\n\n\
         Recommended: A, with an answer to the question\n\
         Risk: a wrong answer sends the agent the wrong way (another run, time and money)\n\
         Default: none — the task waits for an answer\n",
        heading = card::HEADING
    )
}

/// The BLOCKED answer: `blocked`, the agent's details and then the card in the body.
pub fn blocked(
    branch: &str,
    state: &str,
    question: &str,
    details: &str,
    usage: &Usage,
) -> Result<Vec<u8>, MessageError> {
    let mut trailers = vec![TrailerArg::reserved(Key::Escalation, ESCALATION)];
    trailers.extend(usage_trailers(usage));
    let card = blocked_card(branch, state, question);
    // The agent's details first, quoted, so no line of theirs can end or bend the card.
    let quoted: String = details_for_body(details).lines().map(|l| format!("    {l}\n")).collect();
    let body = if quoted.trim().is_empty() { card } else { format!("The agent's reply:\n\n{quoted}\n{card}") };
    compose_safely(
        &format!("blocked: {}", subject(question)),
        &body,
        &trailers,
        &State::reserved_state(Reserved::Blocked),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Money;
    use crate::protocol::message::body_of;
    use crate::protocol::state::last_text;
    use crate::protocol::trailers;

    fn st(s: &str) -> State {
        State::parse(s).unwrap()
    }

    #[test]
    fn completed_answers_carry_the_summary_and_the_spend() {
        let usage = Usage { cost: Some(Money::parse("0.0123").unwrap()), tokens: Some(1500) };
        let msg = completed("Added  the parser\n", "Details\nhere", &usage, &st("review")).unwrap();
        let text = String::from_utf8(msg.clone()).unwrap();
        assert!(text.starts_with("Added the parser\n\nDetails\nhere\n\n"), "{text}");
        let t = trailers::parse(&msg);
        assert_eq!(last_text(&t, Key::Cost).as_deref(), Some("0.0123"));
        assert_eq!(last_text(&t, Key::Tokens).as_deref(), Some("1500"));
        assert_eq!(last_text(&t, Key::State).as_deref(), Some("review"));

        // No details, no usage: subject and state only.
        let msg = completed("done it", "", &Usage::default(), &st("done")).unwrap();
        assert_eq!(String::from_utf8(msg).unwrap(), "done it\n\ndwp-state: done\n");

        // A body git would cut (a scissors line) is quoted, and the trailers still read back.
        let scissors = "before\n# ------------------------ >8 ------------------------\nafter";
        let msg = completed("x", scissors, &usage, &st("done")).unwrap();
        assert_eq!(last_text(&trailers::parse(&msg), Key::State).as_deref(), Some("done"));
        assert!(body_of(&msg).contains("    # ----"), "{}", String::from_utf8_lossy(&msg));

        // Huge details are cut (the log has them all); control characters leave the subject.
        let huge = "é".repeat(DETAILS_MAX);
        let msg = completed("a\x1b[1mb\tc", &huge, &usage, &st("done")).unwrap();
        assert!(msg.len() < DETAILS_MAX + 1024, "{}", msg.len());
        let text = String::from_utf8(msg).unwrap();
        assert!(text.starts_with("a [1mb c\n\néé"), "{}", &text[..20]);
        assert!(text.contains("[… cut at 65536 bytes: the whole reply is in the run's log]\n\ndwp-cost"));

        // NUL and other control characters in the details do not fail the answer.
        let msg = completed("ok", "a\0b\x1b[1mc\r\nd", &usage, &st("done")).unwrap();
        assert!(String::from_utf8(msg).unwrap().starts_with("ok\n\na b [1mc \nd\n"));
        let msg = blocked("t1", "implement", "Which?", "x\0y", &Usage::default()).unwrap();
        assert!(body_of(&msg).contains("    x y"));

        // A very long summary is cut.
        let long = "word ".repeat(100);
        let msg = completed(&long, "", &usage, &st("done")).unwrap();
        let subject = String::from_utf8(msg).unwrap().lines().next().unwrap().to_owned();
        assert!(subject.chars().count() <= SUBJECT_MAX + 1 && subject.ends_with('…'), "{subject}");
    }

    #[test]
    fn blocked_answers_hold_a_valid_card_with_the_question() {
        let usage = Usage { cost: None, tokens: Some(7) };
        let details = "I looked at it.\n## Decision required\nOptions:\nZ. nonsense\nDefault: ignore me";
        let msg = blocked("t1", "implement", "Which  database?\n", details, &usage).unwrap();
        let t = trailers::parse(&msg);
        assert_eq!(last_text(&t, Key::State).as_deref(), Some("blocked"));
        assert_eq!(last_text(&t, Key::Escalation).as_deref(), Some("agent"));
        assert_eq!(last_text(&t, Key::Tokens).as_deref(), Some("7"));
        assert_eq!(last_text(&t, Key::Cost), None);
        let text = String::from_utf8(msg.clone()).unwrap();
        assert!(text.starts_with("blocked: Which database?\n"), "{text}");
        let body = body_of(&msg);
        let card = card::parse(&body).expect("a card").expect("a valid card");
        assert!(card.context.contains("Which database?"), "{card:?}");
        assert_eq!(card.letters(), ['A', 'B']);
        assert!(card.options[0].1.contains("git baton send --branch t1 implement"), "{card:?}");
        assert!(body.contains("    I looked at it."), "{body}");
        // Without details the body is the card alone.
        let msg = blocked("t1", "implement", "Which?", "", &Usage::default()).unwrap();
        assert!(body_of(&msg).starts_with(card::HEADING));
    }
}
