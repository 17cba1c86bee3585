//! `git baton inbox`: everything that waits for a person, oldest first, each with the command that
//! answers it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::output::branch_selected;
use super::Out;
use crate::policy::Tier;
use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved};
use crate::repo::{BranchSource, Repo};
use crate::runner::board::{read_board, Board, BranchCard, PolicyRead};
use crate::runner::clock;
use crate::runner::plan::RunSettings;

/// List what waits for a person: gates waiting for an approval, `blocked` and `waiting` tasks
/// (loop caps and exhausted budgets are blocked tasks with a `dwp-escalation`), dead letters,
/// parked tasks, and open circuit breakers — oldest first, with the age, the decision card's
/// summary (its Context line, else the subject) and its options, and the exact command that
/// answers each.
///
/// Exits 0 when nothing waits and 3 when something does (for scripts: `git baton inbox -q ||
/// notify-me`). `--mine` drops the gates the configured identity (git's `user.email`, or
/// `GIT_COMMITTER_EMAIL`) may not approve (`gate.approvers`); everything else stays, since anyone
/// who can push may answer it.
///
/// `--json` prints one object per line: `{"kind":"gate"|"blocked"|"waiting"|"dead-letter"|
/// "parked"|"breaker","branch":NAME|null,"breaker":NAME|null,"state":STATE|null,"commit":SHA|null,
/// "since":EPOCH,"age_seconds":N,"summary":TEXT,"options":["A. …",…],"recommended":TEXT|null,
/// "escalation":"loop-cap"|"budget"|…|null,"command":TEXT}`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Only the gates you may approve (and everything that is not a gate).
    #[arg(long)]
    mine: bool,
    /// Only branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    branches: Vec<String>,
}

/// One thing that waits for a person.
#[derive(Debug, Serialize, PartialEq)]
pub struct Item {
    pub kind: &'static str,
    pub branch: Option<String>,
    pub breaker: Option<String>,
    pub state: Option<String>,
    pub commit: Option<String>,
    pub since: i64,
    pub age_seconds: i64,
    pub summary: String,
    pub options: Vec<String>,
    pub recommended: Option<String>,
    pub escalation: Option<String>,
    pub command: String,
}

/// What a decision card in a body says, as far as the inbox shows it: the card's parts when it
/// is complete; when it is not, what is wrong with it (the inbox still lists the task).
#[derive(Debug, Default, PartialEq)]
pub struct CardView {
    pub context: Option<String>,
    pub options: Vec<String>,
    pub recommended: Option<String>,
    pub problems: Option<String>,
}

pub fn card_view(body: &str) -> CardView {
    match crate::humans::card::parse(body) {
        None => CardView::default(),
        Some(Ok(card)) => CardView {
            context: Some(card.context),
            options: card.options.iter().map(|(c, text)| format!("{c}. {text}")).collect(),
            recommended: Some(card.recommended),
            problems: None,
        },
        Some(Err(e)) => CardView { problems: Some(e.problems.join("; ")), ..CardView::default() },
    }
}

/// What a head waits for (pure): None when no person is needed. `gated`: the head waits at the
/// gate of its state, as the runner decides it ([`crate::runner::gates::status`]).
pub fn waiting_item(card: &BranchCard, gated: bool, now: i64) -> Option<Item> {
    let branch = card.head.branch.clone();
    let c = &card.commit;
    let state = card.state.valid()?.clone();
    let t = &c.trailers;
    let body = crate::protocol::message::body_of(&c.message);
    let view = card_view(&body);
    let subject = String::from_utf8_lossy(&c.message).lines().next().unwrap_or("").trim().to_owned();
    let escalation = last_text(t, Key::Escalation);
    let b = &branch;
    let (kind, command) = if last_text(t, Key::DeadLetter).is_some() {
        ("dead-letter", format!("git baton dlq retry {b} -m \"WHAT TO CHANGE\"   # or: git baton dlq drop {b} -m WHY"))
    } else if state.is(Reserved::Parked) {
        ("parked", format!("git baton unpark {b}"))
    } else if state.is(Reserved::Blocked) {
        let origin = last_text(t, Key::OriginState).unwrap_or_else(|| "STATE".into());
        let command = match escalation.as_deref() {
            Some("budget") => format!("git baton send --branch {b} {origin} --trailer 'dwp-budget-reset: yes' -m \"WHY MORE\"   # or: send {b} done / canceled"),
            Some(_) => format!("git baton send --branch {b} {origin} -m \"WHAT TO CHANGE\"   # or: git baton send --branch {b} canceled -m WHY"),
            None => format!("git baton send --branch {b} NEXT-STATE -m \"YOUR ANSWER\""),
        };
        ("blocked", command)
    } else if state.is(Reserved::Waiting) && crate::runner::join::is_join_wait(t) {
        return None; // a join waits for its children, not for a person
    } else if state.is(Reserved::Waiting) {
        ("waiting", format!("git baton send --branch {b} NEXT-STATE -m \"YOUR ANSWER\""))
    } else if gated {
        let option = if view.options.is_empty() { String::new() } else { " --option A".to_owned() };
        ("gate", format!("git baton approve {b}{option}   # or: git baton reject {b} -m WHY / git baton request-changes {b} -m WHAT"))
    } else {
        return None;
    };
    let since = c.committer_time;
    Some(Item {
        kind,
        branch: Some(branch),
        breaker: None,
        state: Some(state.to_string()),
        commit: Some(c.id.to_string()),
        since,
        age_seconds: (now - since).max(0),
        summary: match (&view.context, &view.problems) {
            (Some(c), _) => c.clone(),
            (None, Some(p)) => format!("{subject} (incomplete decision card: {p})"),
            (None, None) => subject,
        },
        options: view.options,
        recommended: view.recommended,
        escalation,
        command,
    })
}

/// Does the head wait at its gate — no approval yet, or one that does not count (a stranger's, of
/// another head), or a timeout about to apply its default?
fn gated(card: &BranchCard, now: i64) -> (bool, Option<RunSettings>) {
    let Some(state) = card.state.valid() else { return (false, None) };
    let policy = match &card.policy {
        PolicyRead::Ok(p) => Some(p.as_ref()),
        _ => None,
    };
    let settings = RunSettings::for_state(policy, state.as_str(), &crate::policy::Base::default());
    use crate::humans::gate::GateStatus;
    let waits = settings.humans.tier.value == Tier::Gate
        && matches!(
            crate::runner::gates::status(card, &settings.humans, now),
            GateStatus::Waiting { .. } | GateStatus::Refused { .. } | GateStatus::TimedOut { .. }
        );
    (waits, Some(settings))
}

pub fn cmd_inbox(cwd: &Path, args: Args) -> Result<ExitCode> {
    let repo = Repo::discover(cwd)?;
    let handlers = crate::runner::source::configured(&repo, None, None)?;
    let opts = crate::runner::board::ReadOptions { role: None, handlers: &handlers };
    let board = read_board(&repo, &BranchSource::Local, |b| branch_selected(&args.branches, b), opts)?;
    let now = clock::now();
    let mine = args.mine.then(|| repo.identity_email());
    let items = items(&repo, &board, now, mine)?;
    let mut out = Out::new();
    if args.json {
        for i in &items {
            out.json(i)?;
        }
    } else if items.is_empty() {
        out.line("nothing waits for a person")?;
    } else {
        for i in &items {
            let what = i.branch.as_deref().or(i.breaker.as_deref()).unwrap_or("-");
            out.line(&format!("{:11}  {what}  ({} ago)  {}", i.kind, human_age(i.age_seconds), i.summary))?;
            for o in &i.options {
                out.line(&format!("             {o}"))?;
            }
            if let Some(r) = &i.recommended {
                out.line(&format!("             recommended: {r}"))?;
            }
            out.line(&format!("             → {}", i.command))?;
        }
    }
    out.flush()?;
    Ok(if items.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

/// Everything on `board` (and every open circuit breaker) that waits for a person, oldest first.
/// `mine`: `Some(me)` drops the gates `me` may not approve (`Some(None)`: no identity, every gate).
pub(super) fn items(repo: &Repo, board: &Board, now: i64, mine: Option<Option<String>>) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for card in &board.cards {
        let (is_gate, settings) = gated(card, now);
        let Some(item) = waiting_item(card, is_gate, now) else { continue };
        if let (Some(me), "gate") = (&mine, item.kind) {
            let may = match (me, &settings) {
                (Some(me), Some(s)) => s.humans.may_approve(me),
                _ => false,
            };
            if !may {
                continue;
            }
        }
        items.push(item);
    }
    for (name, b) in crate::runner::breakers::read_all(repo, &BranchSource::Local)? {
        if let crate::recovery::Admit::Open { until } = b.admit(now) {
            let since = until - b.cooldown as i64;
            items.push(Item {
                kind: "breaker",
                branch: None,
                breaker: Some(name.clone()),
                state: None,
                commit: None,
                since,
                age_seconds: (now - since).max(0),
                summary: format!(
                    "circuit breaker {name} open for {}s more: {}",
                    until - now,
                    b.reason.as_deref().unwrap_or("")
                ),
                options: Vec::new(),
                recommended: None,
                escalation: None,
                command: format!("git baton breakers reset {name}   # once the cause is fixed"),
            });
        }
    }
    items.sort_by(|a, b| (a.since, &a.branch, &a.breaker).cmp(&(b.since, &b.branch, &b.breaker)));
    Ok(items)
}

fn human_age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_are_shown_whole_or_with_what_is_missing() {
        let body = "intro\n\n## Decision required\n\nContext: deploy 1.2 to prod\nOptions:\nA. Deploy now\nB. Wait for Monday\nRecommended: B\nRisk: low\nDefault: none\n";
        let v = card_view(body);
        assert_eq!(v.context.as_deref(), Some("deploy 1.2 to prod"));
        assert_eq!(v.options, ["A. Deploy now", "B. Wait for Monday"]);
        assert_eq!(v.recommended.as_deref(), Some("B"));
        assert_eq!(card_view("no card"), CardView::default());
        let partial = card_view("## Decision required\n\nContext: x\n");
        assert!(partial.problems.is_some() && partial.context.is_none(), "{partial:?}");
    }
}
