//! The prompt `git baton agent` gives a coding agent: the task (its envelope — goal, acceptance
//! criteria, inputs, budget, risk, stop conditions — or the raw body when it has none), what went
//! wrong last time on a retry, what the child tasks did when a join woke the task, and the reply
//! contract. Pure: the caller reads the files and the environment.

use serde::Deserialize;

use crate::humans::envelope::{self, Envelope};
use crate::recovery::deadletter::strip_attempt_sections;

/// The first word of a reply, and what each means (also the reply contract's wording).
pub const CONTRACT: &str = "\
When you are finished, end with a reply whose FIRST non-empty line is exactly one of:

COMPLETED: <one line: what you did>
FAILED: <one line: why the task cannot be done as asked>
BLOCKED: <one line: the question a person must answer before you can go on>

Anything after that line is free text (details) and is kept with the result.
- COMPLETED: git-baton commits every change in this worktree with your line as the commit subject
  and hands the task on. Do not commit, push or switch branches yourself.
- FAILED: nothing is committed; the task is retried with your reason fed back, while attempts last.
- BLOCKED: your changes are committed and the task waits for a person to answer your question.";

/// `BATON_CHILDREN_JSON`: the children of a join, as the runner wrote them. Unknown fields are
/// ignored and every field but the children's branches may be missing (or `null`), so a newer
/// or older runner's file still reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Children {
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub children: Vec<Child>,
}

/// One child task: where it ended and what it said.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Child {
    pub branch: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    /// A number or a string, as the runner reported it.
    #[serde(default)]
    pub cost: Option<serde_json::Value>,
    #[serde(default)]
    pub head: Option<String>,
}

impl Children {
    /// Parse the file's text; the error is one line.
    pub fn parse(text: &str) -> Result<Children, String> {
        serde_json::from_str(text).map_err(|e| format!("not the children JSON the runner writes: {e}"))
    }
}

/// The previous attempt, on a retry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Previous {
    /// `BATON_ATTEMPT - 1`.
    pub attempt: u32,
    pub error: Option<String>,
    pub error_type: Option<String>,
    /// The failed attempt's section (`BATON_PREVIOUS_LOG`): its error and last lines of output.
    pub section: Option<String>,
}

/// What a prompt is built from.
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    pub branch: &'a str,
    pub state: &'a str,
    /// The whole body of the triggering commit (`BATON_BODY_FILE`).
    pub body: &'a str,
    pub attempt: u32,
    pub max_attempts: Option<u32>,
    pub previous: Option<Previous>,
    pub children: Option<&'a Children>,
    /// Why `BATON_CHILDREN_JSON` could not be read, if it could not.
    pub children_problem: Option<String>,
    /// `BATON_ROUND`: the fix-loop round past the soft cap (the runner adds a line about it to
    /// the end of the body).
    pub round: Option<u32>,
}

/// The prompt, ending with the reply contract.
pub fn build(input: &Input<'_>) -> String {
    let mut out = format!(
        "You are a coding agent working on the task of git branch `{}` (step `{}`), in a git \
         worktree checked out for you: the current directory.\n",
        input.branch, input.state
    );
    if input.attempt > 1 {
        match input.max_attempts {
            Some(max) => out.push_str(&format!("This is attempt {} of {max}.\n", input.attempt)),
            None => out.push_str(&format!("This is attempt {}.\n", input.attempt)),
        }
    }
    let (body, round_note) = split_round(input.body, input.round);
    let body = strip_attempt_sections(body);
    match envelope::parse(&body) {
        Some(Ok(e)) => {
            push_envelope(&mut out, &e);
            let notes = outside_envelope(&body);
            if !notes.is_empty() {
                out.push_str(&format!("\n## Notes\n\n{notes}\n"));
            }
        }
        // No envelope, or one that does not parse: the body as the person wrote it.
        _ if body.is_empty() => out.push_str("\n## Task\n\n(The task has no description.)\n"),
        _ => out.push_str(&format!("\n## Task\n\n{body}\n")),
    }
    if let Some(note) = round_note {
        out.push_str(&format!("\n## This step keeps coming back\n\n{note}\n"));
    }
    if let Some(p) = &input.previous {
        push_previous(&mut out, p);
    }
    if let Some(c) = input.children {
        push_children(&mut out, c);
    }
    if let Some(why) = &input.children_problem {
        out.push_str(&format!(
            "\n## Child tasks\n\n(The runner's summary of the child tasks could not be read: {why}.)\n"
        ));
    }
    out.push_str(&format!("\n## How to answer\n\n{CONTRACT}\n"));
    out
}

/// The body without the fix-loop note the runner appends past the soft cap (`Round N of …`, the
/// last paragraph), and that note.
fn split_round(body: &str, round: Option<u32>) -> (&str, Option<&str>) {
    let Some(n) = round else { return (body, None) };
    let trimmed = body.trim_end();
    let (before, last) = trimmed.rsplit_once("\n\n").unwrap_or(("", trimmed));
    if last.starts_with(&format!("Round {n} of ")) {
        (before, Some(last.trim()))
    } else {
        (body, None)
    }
}

fn push_envelope(out: &mut String, e: &Envelope) {
    out.push_str(&format!("\n## Goal (task {})\n\n{}\n", e.id, e.goal));
    let list = |out: &mut String, title: &str, items: Vec<String>| {
        if !items.is_empty() {
            out.push_str(&format!("\n## {title}\n\n"));
            for i in items {
                out.push_str(&format!("- {i}\n"));
            }
        }
    };
    list(out, "Acceptance criteria (all must hold)", e.accept.clone());
    let inputs = e
        .inputs
        .iter()
        .map(|i| match &i.summary {
            Some(s) => format!("{} — {s}", i.path),
            None => i.path.clone(),
        })
        .collect();
    list(out, "Inputs", inputs);
    if let Some(b) = &e.budget {
        out.push_str(&format!("\n## Budget\n\n{b}\n"));
    }
    if let Some(r) = e.risk {
        out.push_str(&format!("\n## Risk level\n\n{r}\n"));
    }
    list(out, "Stop conditions (stop and answer BLOCKED or FAILED if one holds)", e.stop_if.clone());
}

/// The body without its envelope section (the free notes before and after it, without their
/// `## Notes` heading: the prompt writes its own).
fn outside_envelope(body: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut inside = false;
    for line in body.lines() {
        if line.trim_end().starts_with(envelope::HEADING) {
            inside = true;
            continue;
        }
        if inside && line.starts_with('#') {
            inside = false;
        }
        let blank_again = line.trim().is_empty() && kept.last().is_none_or(|l| l.trim().is_empty());
        if !inside && line.trim_end() != envelope::NOTES_HEADING && !blank_again {
            kept.push(line);
        }
    }
    kept.join("\n").trim().to_owned()
}

fn push_previous(out: &mut String, p: &Previous) {
    out.push_str(&format!("\n## The previous attempt (attempt {}) failed\n\n", p.attempt));
    if let Some(e) = p.error.as_deref().filter(|e| !e.trim().is_empty()) {
        let kind = p.error_type.as_deref().filter(|t| !t.trim().is_empty());
        match kind {
            Some(t) => out.push_str(&format!("Error ({t}): {e}\n")),
            None => out.push_str(&format!("Error: {e}\n")),
        }
    }
    match p.section.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => out.push_str(&format!("\n{}\n", demote(s))),
        None => out.push_str("\n(No record of its output.)\n"),
    }
    out.push_str("\nLearn from it: do not repeat what failed.\n");
}

/// Headings of quoted text one level down, so they stay inside the section that quotes them.
fn demote(text: &str) -> String {
    text.lines().map(|l| if l.starts_with('#') { format!("#{l}") } else { l.to_owned() }).collect::<Vec<_>>().join("\n")
}

fn push_children(out: &mut String, c: &Children) {
    out.push_str("\n## Child tasks\n\n");
    let mut about = Vec::new();
    if let Some(r) = c.rule.as_deref() {
        about.push(format!("join rule `{r}`"));
    }
    if let Some(id) = c.correlation_id.as_deref() {
        about.push(format!("correlation id `{id}`"));
    }
    if !about.is_empty() {
        out.push_str(&format!("This task waited for its child tasks ({}). ", about.join(", ")));
    }
    if c.children.is_empty() {
        out.push_str("It has no child tasks.\n");
        return;
    }
    out.push_str(&format!("{} child task(s):\n", c.children.len()));
    for child in &c.children {
        let ended = match (child.state.as_deref(), child.outcome.as_deref()) {
            (Some(s), Some(o)) if s != o => format!("{s} ({o})"),
            (Some(s), _) => s.to_owned(),
            (None, Some(o)) => o.to_owned(),
            (None, None) => "unknown".to_owned(),
        };
        out.push_str(&format!("\n### `{}`: {ended}\n\n", child.branch));
        if let Some(s) = child.subject.as_deref().filter(|s| !s.trim().is_empty()) {
            out.push_str(&format!("Last commit: {}\n", s.trim()));
        }
        if let Some(h) = child.head.as_deref() {
            out.push_str(&format!("Head: {h}\n"));
        }
        match &child.cost {
            Some(serde_json::Value::Null) | None => {}
            Some(serde_json::Value::String(s)) => out.push_str(&format!("Cost: {s}\n")),
            Some(v) => out.push_str(&format!("Cost: {v}\n")),
        }
        if let Some(b) = child.body.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
            out.push_str(&format!("\n{}\n", demote(&demote(b))));
        }
    }
}

#[cfg(test)]
mod tests;
