//! Decision cards: the body section that asks a person to choose.
//!
//! ```text
//! ## Decision required
//!
//! Context: what happened and what is at stake (may continue on the next lines)
//! Options:
//! A. the first way forward
//! B. another one
//! Recommended: B, because …
//! Risk: what goes wrong if the choice is wrong
//! Default: what happens without an answer
//! ```
//!
//! The section runs from its heading to the next `## ` heading or the end of the body. Keys are
//! matched at the start of a line (`Context:`, `Options:`, `Recommended:`, `Risk:`, `Default:`);
//! a line that starts with none of them continues the field before it. Options are lettered
//! `A.`, `B.`, `C.` … in order, at least two. `messages::loop_cap` writes such a card; `git baton
//! send --decision-card FILE` appends one after checking it; `git baton approve --option X`
//! checks X against the card of the head it approves. Pure: no git, no files.

use std::fmt;

/// The heading that starts a decision card.
pub const HEADING: &str = "## Decision required";

/// A complete decision card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionCard {
    pub context: String,
    /// `(letter, text)`, lettered A, B, C … in order.
    pub options: Vec<(char, String)>,
    pub recommended: String,
    pub risk: String,
    pub default: String,
}

impl DecisionCard {
    pub fn letters(&self) -> Vec<char> {
        self.options.iter().map(|(c, _)| *c).collect()
    }
}

/// What is wrong with a card: every missing or malformed part, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardError {
    pub problems: Vec<String>,
}

impl fmt::Display for CardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid decision card: {}", self.problems.join("; "))
    }
}

impl std::error::Error for CardError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Context,
    Options,
    Recommended,
    Risk,
    Default,
}

const FIELDS: [(Field, &str); 5] = [
    (Field::Context, "Context:"),
    (Field::Options, "Options:"),
    (Field::Recommended, "Recommended:"),
    (Field::Risk, "Risk:"),
    (Field::Default, "Default:"),
];

/// A card as read, complete or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Partial {
    context: Option<String>,
    options_seen: bool,
    options: Vec<(char, String)>,
    recommended: Option<String>,
    risk: Option<String>,
    default: Option<String>,
    twice: Vec<&'static str>,
}

fn is_heading(line: &str) -> bool {
    line.trim_end() == HEADING
}

/// The card's section of `body` (heading included), if the body has one.
pub fn section(body: &str) -> Option<&str> {
    let mut offset = 0;
    let mut start = None;
    for line in body.split_inclusive('\n') {
        match start {
            None if is_heading(line) => start = Some(offset),
            Some(_) if line.starts_with("## ") => return start.map(|s| body[s..offset].trim_end()),
            _ => {}
        }
        offset += line.len();
    }
    start.map(|s| body[s..].trim_end())
}

/// `A. text` → `('A', "text")`.
fn option_line(line: &str) -> Option<(char, String)> {
    let mut chars = line.chars();
    let letter = chars.next().filter(char::is_ascii_uppercase)?;
    let rest = chars.as_str().strip_prefix('.')?;
    if !rest.starts_with([' ', '\t']) || rest.trim().is_empty() {
        return None;
    }
    Some((letter, rest.trim().to_owned()))
}

fn append(slot: &mut String, more: &str) {
    if !slot.is_empty() {
        slot.push('\n');
    }
    slot.push_str(more);
}

fn read(section: &str) -> Partial {
    let mut p = Partial::default();
    let mut current: Option<Field> = None;
    for raw in section.lines().skip(1) {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let key = FIELDS.iter().find(|(_, k)| line.len() >= k.len() && line[..k.len()].eq_ignore_ascii_case(k));
        if let Some((field, k)) = key {
            let value = line[k.len()..].trim().to_owned();
            let slot = match field {
                Field::Context => &mut p.context,
                Field::Recommended => &mut p.recommended,
                Field::Risk => &mut p.risk,
                Field::Default => &mut p.default,
                Field::Options => {
                    if p.options_seen {
                        p.twice.push("Options:");
                    }
                    p.options_seen = true;
                    current = Some(Field::Options);
                    continue;
                }
            };
            if slot.is_some() {
                p.twice.push(k);
            }
            *slot = Some(value);
            current = Some(*field);
            continue;
        }
        let text = line.trim();
        match current {
            Some(Field::Options) => match option_line(text) {
                Some(opt) => p.options.push(opt),
                None => match p.options.last_mut() {
                    Some((_, t)) => append(t, text),
                    None => p.options.push(('?', text.to_owned())),
                },
            },
            Some(field) => {
                let slot = match field {
                    Field::Context => &mut p.context,
                    Field::Recommended => &mut p.recommended,
                    Field::Risk => &mut p.risk,
                    _ => &mut p.default,
                };
                append(slot.get_or_insert_with(String::new), text);
            }
            None => {
                // Text before the first key: the context, written without its key.
                p.context.get_or_insert_with(String::new);
                p.twice.push("text before Context:");
            }
        }
    }
    p
}

fn problems(p: &Partial) -> Vec<String> {
    let mut out = Vec::new();
    let empty = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    if empty(&p.context) {
        out.push("missing Context: (what the decision is about)".to_owned());
    }
    if !p.options_seen {
        out.push("missing Options: (followed by lines A. …, B. …)".to_owned());
    } else if p.options.len() < 2 {
        out.push("Options: needs at least two options (lines A. …, B. …)".to_owned());
    }
    if p.options.iter().any(|(c, _)| *c == '?') {
        out.push("Options: every line after it must start with a letter and a dot (A. …)".to_owned());
    } else if p.options.iter().enumerate().any(|(i, (c, _))| *c as usize != 'A' as usize + i) {
        let found: Vec<String> = p.options.iter().map(|(c, _)| format!("{c}.")).collect();
        out.push(format!("options must be lettered A., B., C., … in order (found {})", found.join(" ")));
    }
    if empty(&p.recommended) {
        out.push("missing Recommended: (the option you advise, and why)".to_owned());
    }
    if empty(&p.risk) {
        out.push("missing Risk: (what a wrong choice costs)".to_owned());
    }
    if empty(&p.default) {
        out.push("missing Default: (what happens without an answer)".to_owned());
    }
    for k in &p.twice {
        out.push(if k.starts_with("text") {
            "text before Context: (start the card with Context:)".to_owned()
        } else {
            format!("{k} given twice")
        });
    }
    out
}

/// The decision card of a body: `None` without one, else the card or everything wrong with it.
pub fn parse(body: &str) -> Option<Result<DecisionCard, CardError>> {
    let p = read(section(body)?);
    let problems = problems(&p);
    if !problems.is_empty() {
        return Some(Err(CardError { problems }));
    }
    Some(Ok(DecisionCard {
        context: p.context.unwrap_or_default(),
        options: p.options,
        recommended: p.recommended.unwrap_or_default(),
        risk: p.risk.unwrap_or_default(),
        default: p.default.unwrap_or_default(),
    }))
}

/// The option letters of a body's card, read even from an incomplete card (`None`: no card).
pub fn letters(body: &str) -> Option<Vec<char>> {
    let p = read(section(body)?);
    Some(p.options.iter().map(|(c, _)| *c).filter(char::is_ascii_uppercase).collect())
}

/// A card as given to `send --decision-card`: the text, with the heading added when it has none,
/// checked. Returns the section to append to a body.
pub fn prepare(text: &str) -> Result<String, CardError> {
    let text = text.trim();
    let card =
        if text.lines().next().is_some_and(is_heading) { text.to_owned() } else { format!("{HEADING}\n\n{text}") };
    if section(&card).map(str::len) != Some(card.len()) {
        return Err(CardError {
            problems: vec!["the card holds another `## ` heading; put only the card in the file".into()],
        });
    }
    match parse(&card) {
        Some(Ok(_)) => Ok(card),
        Some(Err(e)) => Err(e),
        None => unreachable!("the heading was added"),
    }
}

/// `body` with `card` (from [`prepare`]) appended; refused when the body already has a card.
pub fn append_to(body: Option<&str>, card: &str) -> Result<String, CardError> {
    match body.map(str::trim).filter(|b| !b.is_empty()) {
        None => Ok(card.to_owned()),
        Some(b) if section(b).is_some() => {
            Err(CardError { problems: vec!["the body already has a decision card (## Decision required)".into()] })
        }
        Some(b) => Ok(format!("{b}\n\n{card}")),
    }
}

/// `body` with the card read from `file` appended (`send --decision-card FILE`); the error is one
/// line naming what is wrong.
pub fn with_card_file(body: Option<&str>, file: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("--decision-card {}: {e}", file.display()))?;
    let card = prepare(&text).map_err(|e| format!("--decision-card {}: {e}", file.display()))?;
    append_to(body, &card).map_err(|e| format!("--decision-card {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "## Decision required\n\n\
        Context: the build broke twice.\n  - error one\n  - error two\n\n\
        Options:\n\
        A. Resume with a fix\n\
        B. Cancel the task\n   (it is stale anyway)\n\n\
        Recommended: B\n\
        Risk: a lost afternoon\n\
        Default: none — the task waits\n";

    #[test]
    fn a_complete_card_is_read() {
        let body = format!("Please decide.\n\n{GOOD}\n## Attempt 1 failed\n\nsomething\n");
        let card = parse(&body).unwrap().unwrap();
        assert_eq!(card.context, "the build broke twice.\n- error one\n- error two");
        assert_eq!(card.letters(), ['A', 'B']);
        assert_eq!(card.options[1].1, "Cancel the task\n(it is stale anyway)");
        assert_eq!(card.recommended, "B");
        assert_eq!(card.risk, "a lost afternoon");
        assert_eq!(card.default, "none — the task waits");
        assert_eq!(letters(&body), Some(vec!['A', 'B']));
        assert!(parse("no card here").is_none());
        assert!(letters("no card here").is_none());
    }

    #[test]
    fn the_runners_cards_are_valid() {
        let msg = crate::runner::messages::loop_cap(
            "t1",
            &crate::protocol::State::parse("build").unwrap(),
            11,
            10,
            &["boom".into()],
            "h:1",
            None,
        )
        .unwrap();
        let body = crate::protocol::message::body_of(&msg);
        let card = parse(&body).unwrap().unwrap();
        assert_eq!(card.letters(), ['A', 'B']);
        assert!(card.context.contains("boom"), "{card:?}");
        let msg = crate::runner::messages::dependency_block(
            "t1",
            &crate::protocol::State::parse("build").unwrap(),
            "api is failed",
            "h:1",
            None,
        )
        .unwrap();
        let card = parse(&crate::protocol::message::body_of(&msg)).unwrap().unwrap();
        assert_eq!(card.letters(), ['A', 'B']);
    }

    /// Each broken card names what is missing.
    #[test]
    fn missing_parts_are_named() {
        let without =
            |key: &str| GOOD.lines().filter(|l| !l.starts_with(key)).map(|l| format!("{l}\n")).collect::<String>();
        let one_option = GOOD.replace("B. Cancel the task\n   (it is stale anyway)\n", "");
        let unordered = GOOD.replace("B. Cancel", "C. Cancel");
        let cases: Vec<(String, &str)> = vec![
            (without("Context:").replace("  - error one\n  - error two\n", ""), "missing Context:"),
            (without("Recommended:"), "missing Recommended:"),
            (without("Risk:"), "missing Risk:"),
            (without("Default:"), "missing Default:"),
            (GOOD.replace("Options:\n", "").replace("A. Resume with a fix\n", ""), "missing Options:"),
            (one_option, "at least two options"),
            (unordered, "lettered A., B., C."),
            (GOOD.replace("Risk: a lost afternoon", "Risk:"), "missing Risk:"),
            (format!("{GOOD}Risk: again\n"), "Risk: given twice"),
            (GOOD.replace("A. Resume", "* Resume"), "start with a letter"),
        ];
        for (card, want) in cases {
            match parse(&card) {
                Some(Err(e)) => assert!(e.to_string().contains(want), "{want:?} not in {e} for\n{card}"),
                other => panic!("{want:?}: got {other:?} for\n{card}"),
            }
        }
        let e = parse("## Decision required\n").unwrap().unwrap_err();
        assert_eq!(e.problems.len(), 5, "{e}");
    }

    #[test]
    fn prepare_adds_the_heading_and_append_refuses_a_second_card() {
        let bare = GOOD.trim_start_matches("## Decision required\n\n");
        let card = prepare(bare).unwrap();
        assert!(card.starts_with(HEADING));
        assert_eq!(prepare(GOOD).unwrap(), GOOD.trim());
        assert!(prepare("Context: x\n").unwrap_err().to_string().contains("missing Options:"));
        assert!(prepare(&format!("{GOOD}\n## Other\n")).is_err());
        assert_eq!(append_to(None, &card).unwrap(), card);
        assert_eq!(append_to(Some("do it"), &card).unwrap(), format!("do it\n\n{card}"));
        assert!(append_to(Some(GOOD), &card).is_err());
    }
}
