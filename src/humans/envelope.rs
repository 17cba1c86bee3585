//! Task envelopes: the body section that states a task for whoever takes it.
//!
//! ```text
//! ## Task: <id>
//!
//! Goal: <one sentence>
//!
//! Acceptance Criteria:
//! - <objective check>
//!
//! Inputs:
//! - <path> — <one-line summary>
//!
//! Budget: <free text, e.g. "3 runs, 30m, $2">
//!
//! Risk Level: low|medium|high
//!
//! Stop Conditions:
//! - <text>
//! ```
//!
//! The section runs from its heading to the next `#` heading (notes after the envelope go under
//! `## Notes`) or the end of the body. `Goal:` is required; the other fields are optional, each at
//! most once. Blank lines are ignored; any other line must be a field or, under a list field, a
//! `- ` item. `git baton send --goal …` writes one; the runner hands a parsed envelope to handlers
//! as `BATON_TASK_JSON`; `git baton task show` prints it. Pure: no git, no files.

use std::fmt;

use serde::Serialize;

/// The heading that starts an envelope (followed by the task's id).
pub const HEADING: &str = "## Task:";
/// The heading of the free notes written after an envelope.
pub const NOTES_HEADING: &str = "## Notes";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn parse(s: &str) -> Option<Risk> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Risk::Low),
            "medium" => Some(Risk::Medium),
            "high" => Some(Risk::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One input: a path, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Input {
    pub path: String,
    pub summary: Option<String>,
}

impl Input {
    /// `PATH[=SUMMARY]` (the command line's spelling).
    pub fn from_arg(arg: &str) -> Input {
        match arg.split_once('=') {
            Some((p, s)) if !s.trim().is_empty() => {
                Input { path: p.trim().to_owned(), summary: Some(s.trim().to_owned()) }
            }
            Some((p, _)) => Input { path: p.trim().to_owned(), summary: None },
            None => Input { path: arg.trim().to_owned(), summary: None },
        }
    }
}

/// A task envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    pub id: String,
    pub goal: String,
    #[serde(rename = "acceptance_criteria")]
    pub accept: Vec<String>,
    pub inputs: Vec<Input>,
    pub budget: Option<String>,
    pub risk: Option<Risk>,
    #[serde(rename = "stop_conditions")]
    pub stop_if: Vec<String>,
}

/// What is wrong with an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    MissingId,
    MissingGoal,
    Empty(&'static str),
    Duplicate(&'static str),
    BadRisk(String),
    /// A list field written with a value on its own line (`Inputs: a.rs`).
    ValueOnList(&'static str),
    /// A `- ` item under a field that is not a list (or before any field).
    StrayItem(String),
    /// A line that is neither a field nor an item.
    Unexpected(String),
    EmptyItem(&'static str),
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::MissingId => write!(f, "the task envelope has no id after `{HEADING}`"),
            EnvelopeError::MissingGoal => write!(f, "the task envelope has no `Goal:` line"),
            EnvelopeError::Empty(field) => write!(f, "the task envelope's `{field}:` is empty"),
            EnvelopeError::Duplicate(field) => write!(f, "the task envelope has `{field}:` twice"),
            EnvelopeError::BadRisk(v) => {
                write!(f, "the task envelope's `Risk Level:` is {v:?}, not low, medium or high")
            }
            EnvelopeError::ValueOnList(field) => {
                write!(f, "the task envelope's `{field}:` is a list: put each entry on its own `- ` line")
            }
            EnvelopeError::StrayItem(l) => {
                write!(f, "the task envelope has a list item {l:?} outside a list field")
            }
            EnvelopeError::Unexpected(l) => write!(f, "the task envelope has an unexpected line {l:?}"),
            EnvelopeError::EmptyItem(field) => write!(f, "the task envelope's `{field}:` has an empty item"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Goal,
    Accept,
    Inputs,
    Budget,
    Risk,
    Stop,
}

const FIELDS: [(Field, &str); 6] = [
    (Field::Goal, "Goal"),
    (Field::Accept, "Acceptance Criteria"),
    (Field::Inputs, "Inputs"),
    (Field::Budget, "Budget"),
    (Field::Risk, "Risk Level"),
    (Field::Stop, "Stop Conditions"),
];

impl Field {
    fn name(self) -> &'static str {
        FIELDS.iter().find(|(f, _)| *f == self).map_or("", |(_, n)| n)
    }
    fn is_list(self) -> bool {
        matches!(self, Field::Accept | Field::Inputs | Field::Stop)
    }
}

/// The envelope in the playbook's format (empty optional fields left out), ending with a newline.
pub fn render(e: &Envelope) -> String {
    let mut out = format!("{HEADING} {}\n\nGoal: {}\n", e.id.trim(), one_line(&e.goal));
    let list = |out: &mut String, name: &str, items: &mut dyn Iterator<Item = String>| {
        let items: Vec<String> = items.collect();
        if !items.is_empty() {
            out.push_str(&format!("\n{name}:\n"));
            for i in items {
                out.push_str(&format!("- {i}\n"));
            }
        }
    };
    list(&mut out, "Acceptance Criteria", &mut e.accept.iter().map(|s| one_line(s)));
    list(
        &mut out,
        "Inputs",
        &mut e.inputs.iter().map(|i| match &i.summary {
            Some(s) => format!("{} — {}", one_line(&i.path), one_line(s)),
            None => one_line(&i.path),
        }),
    );
    if let Some(b) = &e.budget {
        out.push_str(&format!("\nBudget: {}\n", one_line(b)));
    }
    if let Some(r) = e.risk {
        out.push_str(&format!("\nRisk Level: {r}\n"));
    }
    list(&mut out, "Stop Conditions", &mut e.stop_if.iter().map(|s| one_line(s)));
    out
}

/// The envelope followed by free notes (under `## Notes`, unless they start with a heading of
/// their own), if any.
pub fn render_with_notes(e: &Envelope, notes: Option<&str>) -> String {
    let mut out = render(e);
    match notes.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) if n.starts_with('#') => out.push_str(&format!("\n{n}\n")),
        Some(n) => out.push_str(&format!("\n{NOTES_HEADING}\n\n{n}\n")),
        None => {}
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The envelope in `body`: `None` without a `## Task:` section, else the envelope or what is
/// malformed about it.
pub fn parse(body: &str) -> Option<Result<Envelope, EnvelopeError>> {
    let mut lines = body.lines();
    let id = lines.by_ref().find_map(|l| l.trim_end().strip_prefix(HEADING).map(|r| r.trim().to_owned()))?;
    Some(parse_section(id, lines.take_while(|l| !l.starts_with('#'))))
}

fn parse_section<'a>(id: String, lines: impl Iterator<Item = &'a str>) -> Result<Envelope, EnvelopeError> {
    if id.is_empty() {
        return Err(EnvelopeError::MissingId);
    }
    let mut e = Envelope {
        id,
        goal: String::new(),
        accept: Vec::new(),
        inputs: Vec::new(),
        budget: None,
        risk: None,
        stop_if: Vec::new(),
    };
    let mut seen: Vec<Field> = Vec::new();
    let mut current: Option<Field> = None;
    for raw in lines {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(item) = line.strip_prefix("- ").or_else(|| (line == "-").then_some("")) {
            let item = item.trim();
            let field = current.filter(|f| f.is_list()).ok_or_else(|| EnvelopeError::StrayItem(line.to_owned()))?;
            if item.is_empty() {
                return Err(EnvelopeError::EmptyItem(field.name()));
            }
            match field {
                Field::Accept => e.accept.push(item.to_owned()),
                Field::Stop => e.stop_if.push(item.to_owned()),
                _ => e.inputs.push(parse_input(item)),
            }
            continue;
        }
        let Some((field, value)) = FIELDS
            .iter()
            .find_map(|(f, name)| line.strip_prefix(name).and_then(|r| r.strip_prefix(':')).map(|v| (*f, v.trim())))
        else {
            return Err(EnvelopeError::Unexpected(line.to_owned()));
        };
        if seen.contains(&field) {
            return Err(EnvelopeError::Duplicate(field.name()));
        }
        seen.push(field);
        current = Some(field);
        if field.is_list() {
            if !value.is_empty() {
                return Err(EnvelopeError::ValueOnList(field.name()));
            }
            continue;
        }
        if value.is_empty() {
            return Err(EnvelopeError::Empty(field.name()));
        }
        match field {
            Field::Goal => e.goal = value.to_owned(),
            Field::Budget => e.budget = Some(value.to_owned()),
            _ => e.risk = Some(Risk::parse(value).ok_or_else(|| EnvelopeError::BadRisk(value.to_owned()))?),
        }
    }
    if !seen.contains(&Field::Goal) {
        return Err(EnvelopeError::MissingGoal);
    }
    Ok(e)
}

/// `path — summary` (also `path -- summary`); the path alone without one.
fn parse_input(item: &str) -> Input {
    match item.split_once(" — ").or_else(|| item.split_once(" -- ")) {
        Some((p, s)) if !s.trim().is_empty() => Input { path: p.trim().to_owned(), summary: Some(s.trim().to_owned()) },
        Some((p, _)) => Input { path: p.trim().to_owned(), summary: None },
        None => Input { path: item.to_owned(), summary: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Envelope {
        Envelope {
            id: "feat/parser".into(),
            goal: "Parse the config file.".into(),
            accept: vec!["cargo test passes".into(), "no new warnings".into()],
            inputs: vec![
                Input { path: "src/a.rs".into(), summary: Some("parser".into()) },
                Input { path: "docs/spec.md".into(), summary: None },
            ],
            budget: Some("3 runs, 30m, $2".into()),
            risk: Some(Risk::High),
            stop_if: vec!["the spec contradicts itself".into()],
        }
    }

    fn minimal() -> Envelope {
        Envelope {
            id: "t1".into(),
            goal: "Do it.".into(),
            accept: vec![],
            inputs: vec![],
            budget: None,
            risk: None,
            stop_if: vec![],
        }
    }

    #[test]
    fn renders_the_playbook_format() {
        let want = "## Task: feat/parser\n\nGoal: Parse the config file.\n\nAcceptance Criteria:\n- cargo test passes\n- no new warnings\n\nInputs:\n- src/a.rs — parser\n- docs/spec.md\n\nBudget: 3 runs, 30m, $2\n\nRisk Level: high\n\nStop Conditions:\n- the spec contradicts itself\n";
        assert_eq!(render(&full()), want);
        assert_eq!(render(&minimal()), "## Task: t1\n\nGoal: Do it.\n");
    }

    #[test]
    fn round_trips() {
        for e in [full(), minimal()] {
            assert_eq!(parse(&render(&e)), Some(Ok(e.clone())));
            let body = format!("Some preamble.\n\n{}", render_with_notes(&e, Some("free notes\n# not a field")));
            assert_eq!(parse(&body), Some(Ok(e.clone())), "{body}");
            let card = format!("{}\n## Decision required\n\nContext: x\n", render(&e));
            assert_eq!(parse(&card), Some(Ok(e)));
        }
    }

    #[test]
    fn multi_line_values_are_folded_into_one_line() {
        let mut e = minimal();
        e.goal = "Do\nit.".into();
        assert_eq!(parse(&render(&e)).unwrap().unwrap().goal, "Do it.");
    }

    #[test]
    fn no_section_is_none() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("do the task\n\nGoal: not an envelope\n"), None);
        assert_eq!(parse("## Tasks\n"), None);
    }

    #[test]
    fn lenient_spellings() {
        let body = "## Task: t\nGoal:   g  \nRisk Level: MEDIUM\nInputs:\n- a.rs -- the a\n-   b.rs\n";
        let e = parse(body).unwrap().unwrap();
        assert_eq!(e.risk, Some(Risk::Medium));
        assert_eq!(e.goal, "g");
        assert_eq!(
            e.inputs,
            vec![
                Input { path: "a.rs".into(), summary: Some("the a".into()) },
                Input { path: "b.rs".into(), summary: None }
            ]
        );
    }

    #[test]
    fn malformed_envelopes_name_the_problem() {
        use EnvelopeError::*;
        let cases: &[(&str, EnvelopeError)] = &[
            ("## Task:\nGoal: g\n", MissingId),
            ("## Task: t\n\nAcceptance Criteria:\n- x\n", MissingGoal),
            ("## Task: t\nGoal:\n", Empty("Goal")),
            ("## Task: t\nGoal: g\nBudget:  \n", Empty("Budget")),
            ("## Task: t\nGoal: g\nGoal: h\n", Duplicate("Goal")),
            ("## Task: t\nGoal: g\nRisk Level: extreme\n", BadRisk("extreme".into())),
            ("## Task: t\nGoal: g\nInputs: a.rs\n", ValueOnList("Inputs")),
            ("## Task: t\nGoal: g\n- x\n", StrayItem("- x".into())),
            ("## Task: t\n- x\nGoal: g\n", StrayItem("- x".into())),
            ("## Task: t\nGoal: g\nRisk: high\n", Unexpected("Risk: high".into())),
            ("## Task: t\nGoal: g\nStop Conditions:\n-\n", EmptyItem("Stop Conditions")),
        ];
        for (body, want) in cases {
            assert_eq!(parse(body), Some(Err(want.clone())), "{body:?}");
            assert!(!want.to_string().is_empty());
        }
    }

    #[test]
    fn serialises_with_the_documented_names() {
        let v = serde_json::to_value(full()).unwrap();
        assert_eq!(v["id"], "feat/parser");
        assert_eq!(v["goal"], "Parse the config file.");
        assert_eq!(v["acceptance_criteria"][1], "no new warnings");
        assert_eq!(v["inputs"][0]["path"], "src/a.rs");
        assert_eq!(v["inputs"][0]["summary"], "parser");
        assert!(v["inputs"][1]["summary"].is_null());
        assert_eq!(v["budget"], "3 runs, 30m, $2");
        assert_eq!(v["risk"], "high");
        assert_eq!(v["stop_conditions"][0], "the spec contradicts itself");
        let m = serde_json::to_value(minimal()).unwrap();
        assert!(m["budget"].is_null() && m["risk"].is_null());
        assert_eq!(m["acceptance_criteria"], serde_json::json!([]));
    }

    #[test]
    fn input_args() {
        assert_eq!(
            Input::from_arg("src/a.rs=parser"),
            Input { path: "src/a.rs".into(), summary: Some("parser".into()) }
        );
        assert_eq!(Input::from_arg("src/a.rs"), Input { path: "src/a.rs".into(), summary: None });
        assert_eq!(Input::from_arg("src/a.rs="), Input { path: "src/a.rs".into(), summary: None });
    }
}
