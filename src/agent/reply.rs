//! Reading a coding agent's reply: the text (plain, or from the agent's JSON output mode —
//! claude's `--output-format json`/`stream-json` result object, gemini's `--output-format json`,
//! codex's `exec --json` event stream), what it cost (`dwp-cost`) and how many tokens it used
//! (`dwp-tokens`), and the verdict on its first non-empty line: `COMPLETED:`, `FAILED:` or
//! `BLOCKED:`. Pure.

use std::fmt;

use serde_json::Value;

use crate::policy::Money;

/// What the agent said it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The summary: the answer commit's subject.
    Completed(String),
    /// The reason.
    Failed(String),
    /// The question for a person.
    Blocked(String),
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Completed(_) => "completed",
            Verdict::Failed(_) => "failed",
            Verdict::Blocked(_) => "blocked",
        }
    }
    /// The summary, reason or question.
    pub fn line(&self) -> &str {
        match self {
            Verdict::Completed(s) | Verdict::Failed(s) | Verdict::Blocked(s) => s,
        }
    }
}

/// A reply that keeps the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub verdict: Verdict,
    /// The lines after the verdict, trimmed (may be empty).
    pub details: String,
    pub usage: Usage,
}

/// What the agent's JSON output reported (nothing for plain text).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub cost: Option<Money>,
    pub tokens: Option<u64>,
}

/// Why a reply does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The agent printed nothing (or JSON without any text).
    Empty,
    /// The first non-empty line is not one of the three verdicts.
    NoVerdict(String),
    /// A verdict with nothing after it where something is needed.
    EmptyVerdict(&'static str),
    /// The agent's JSON output says the run failed.
    AgentError(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Empty => {
                f.write_str("the agent replied nothing (the first line must be COMPLETED:, FAILED: or BLOCKED:)")
            }
            ReplyError::NoVerdict(line) => write!(
                f,
                "the agent's reply does not start with COMPLETED:, FAILED: or BLOCKED: (its first line: {:?})",
                cut(line, 200)
            ),
            ReplyError::EmptyVerdict(word) => write!(f, "the agent's {word} line says nothing after the colon"),
            ReplyError::AgentError(why) => write!(f, "the agent reported an error: {}", cut(why, 400)),
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

/// The agent's stdout → its reply (usage is returned with an error too: it was spent).
pub fn parse(stdout: &str) -> (Result<Reply, ReplyError>, Usage) {
    let extracted = extract(stdout);
    let usage = extracted.usage;
    let reply = match extracted.error {
        Some(why) => Err(ReplyError::AgentError(why)),
        None => parse_text(&extracted.text).map(|(verdict, details)| Reply { verdict, details, usage }),
    };
    (reply, usage)
}

/// The verdict and the details of a reply's text.
pub fn parse_text(text: &str) -> Result<(Verdict, String), ReplyError> {
    let mut lines = text.lines();
    let first = lines.by_ref().map(str::trim).find(|l| !l.is_empty()).ok_or(ReplyError::Empty)?;
    let details = lines.collect::<Vec<_>>().join("\n").trim().to_owned();
    let (word, rest) = VERDICT_WORDS
        .iter()
        .find_map(|w| first.strip_prefix(w).map(|r| (*w, r.trim())))
        .ok_or_else(|| ReplyError::NoVerdict(first.to_owned()))?;
    let line: String = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    match word {
        "COMPLETED:" if line.is_empty() => Err(ReplyError::EmptyVerdict("COMPLETED:")),
        "BLOCKED:" if line.is_empty() => Err(ReplyError::EmptyVerdict("BLOCKED:")),
        "COMPLETED:" => Ok((Verdict::Completed(line), details)),
        "BLOCKED:" => Ok((Verdict::Blocked(line), details)),
        _ if line.is_empty() => Ok((Verdict::Failed("(no reason given)".into()), details)),
        _ => Ok((Verdict::Failed(line), details)),
    }
}

/// The words a reply's first line starts with.
const VERDICT_WORDS: [&str; 3] = ["COMPLETED:", "FAILED:", "BLOCKED:"];

/// The reply's text and usage, out of whatever format the agent printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Extracted {
    text: String,
    usage: Usage,
    error: Option<String>,
}

fn extract(stdout: &str) -> Extracted {
    let trimmed = stdout.trim();
    if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(trimmed) {
        if let Some(e) = from_object(&Value::Object(o)) {
            return e;
        }
    }
    // A JSON event stream: every non-empty line an object.
    let events: Option<Vec<Value>> = trimmed
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).ok().filter(Value::is_object))
        .collect();
    if let Some(events) = events.filter(|e| !e.is_empty()) {
        if let Some(e) = from_events(&events) {
            return e;
        }
    }
    Extracted { text: stdout.to_owned(), ..Extracted::default() }
}

/// claude (`result`, `total_cost_usd`, `usage`, `is_error`) or gemini (`response`, `stats`,
/// `error`); None for any other object.
fn from_object(o: &Value) -> Option<Extracted> {
    if let Some(text) = o.get("result").and_then(Value::as_str) {
        let cost = o.get("total_cost_usd").or_else(|| o.get("cost_usd")).and_then(money);
        let tokens = sum_tokens(o.get("usage"), &["input_tokens", "output_tokens"]);
        let error = (o.get("is_error").and_then(Value::as_bool) == Some(true)).then(|| text.to_owned());
        return Some(Extracted { text: text.to_owned(), usage: Usage { cost, tokens }, error });
    }
    if o.get("response").is_some() || o.get("stats").is_some() {
        let text = o.get("response").and_then(Value::as_str).unwrap_or_default().to_owned();
        let tokens = o.get("stats").and_then(|s| s.get("models")).and_then(Value::as_object).and_then(|models| {
            models.values().map(|m| m.get("tokens").and_then(|t| t.get("total")).and_then(Value::as_u64)).sum()
        });
        let error = o.get("error").filter(|e| !e.is_null()).map(error_text);
        return Some(Extracted { text, usage: Usage { cost: None, tokens }, error });
    }
    None
}

/// claude's `stream-json` (its last `result` event) or codex's `exec --json` (the last agent
/// message, usage summed over `turn.completed`, `turn.failed`/`error` as errors).
fn from_events(events: &[Value]) -> Option<Extracted> {
    let kind = |e: &Value| e.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
    if let Some(result) = events.iter().rev().find(|e| kind(e) == "result" && e.get("result").is_some()) {
        return from_object(result);
    }
    let mut found = false;
    let mut text = None;
    let mut tokens: Option<u64> = None;
    let mut error = None;
    for e in events {
        match kind(e).as_str() {
            "item.completed" => {
                found = true;
                let item = e.get("item");
                let item_type = item.and_then(|i| i.get("type").or_else(|| i.get("item_type"))).and_then(Value::as_str);
                if matches!(item_type, Some("agent_message" | "assistant_message")) {
                    text = item.and_then(|i| i.get("text")).and_then(Value::as_str).map(str::to_owned);
                }
            }
            "turn.completed" => {
                found = true;
                if let Some(n) = sum_tokens(e.get("usage"), &["input_tokens", "output_tokens"]) {
                    tokens = Some(tokens.unwrap_or(0).saturating_add(n));
                }
            }
            "turn.failed" | "error" => {
                found = true;
                error = Some(
                    e.get("error")
                        .map(error_text)
                        .or_else(|| e.get("message").map(error_text))
                        .unwrap_or_else(|| e.to_string()),
                );
            }
            "thread.started" | "turn.started" | "item.started" | "item.updated" => found = true,
            _ => {}
        }
    }
    found.then(|| Extracted { text: text.unwrap_or_default(), usage: Usage { cost: None, tokens }, error })
}

fn error_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.get("message").and_then(Value::as_str).map_or_else(|| v.to_string(), str::to_owned),
        other => other.to_string(),
    }
}

fn sum_tokens(usage: Option<&Value>, keys: &[&str]) -> Option<u64> {
    let usage = usage?;
    let counts: Vec<u64> = keys.iter().filter_map(|k| usage.get(*k).and_then(Value::as_u64)).collect();
    (!counts.is_empty()).then(|| counts.iter().fold(0u64, |a, b| a.saturating_add(*b)))
}

/// A cost in dollars as `dwp-cost` reads it (rounded to millionths); None when not a sane number.
fn money(v: &Value) -> Option<Money> {
    let x = v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))?;
    if !x.is_finite() || !(0.0..=1e12).contains(&x) {
        return None;
    }
    Money::parse(&format!("{x:.6}")).ok()
}

#[cfg(test)]
mod tests;
