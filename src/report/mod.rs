//! `git baton report`: one self-contained static HTML page — the board, the inbox, a runs
//! timeline, the state and task graphs, and the metrics — rendered purely from facts the shell
//! read out of git (history is the database; the page is a view of it, never a store).
//!
//! Everything here is pure: [`Facts`] in, a `String` of HTML out, no git, no clock (`now` is a
//! field). Text from the repository (branch names, bodies, errors, runner ids) is hostile input:
//! it reaches the page only through [`html::esc`]. The page stays within a few MB at any size:
//! past the limits in [`Limits`] it shows the most relevant part and says so.

pub mod html;
pub mod layout;
pub mod svg;

use std::collections::BTreeMap;

use crate::history::runs::RunResult;
use crate::history::{Metrics, Transitions};
use crate::runner::deps::Dependency;

/// One task (branch) on the board.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub branch: String,
    /// Its head's state (None: no or an invalid state).
    pub state: Option<String>,
    /// A `dwp-state` value that is not a valid state.
    pub invalid: Option<String>,
    /// `active`, `expired` or `n/a`, with the seconds left (negative: ago) and the holder.
    pub lease: &'static str,
    pub lease_left: Option<i64>,
    pub runner: Option<String>,
    pub age_seconds: i64,
    pub attempt: Option<u32>,
    pub budget: Option<BudgetUse>,
    /// `dwp-parent` of the task (the newest on its own history).
    pub parent: Option<String>,
    pub depends_on: Vec<Dependency>,
    /// Why the branch could not be read (its other fields are empty).
    pub error: Option<String>,
}

/// What a task spent against its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetUse {
    /// `ok`, `warning`, `exhausted`.
    pub status: &'static str,
    /// `3 runs, 120s, cost 1.2` and, per limit, `of 5 runs`.
    pub text: String,
    /// The largest share of a limit used, 0–100 (None without limits).
    pub percent: Option<u64>,
}

/// One thing that waits for a person (see `git baton inbox`).
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEntry {
    pub kind: String,
    /// The branch, or the breaker's name.
    pub what: String,
    pub state: Option<String>,
    pub age_seconds: i64,
    pub summary: String,
    pub options: Vec<String>,
    pub command: String,
}

/// One run as the timeline draws it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunBar {
    pub run_id: Option<String>,
    pub runner: Option<String>,
    pub origin: Option<String>,
    pub outcome: Option<String>,
    pub result: RunResult,
    pub started: i64,
    pub finished: Option<i64>,
    pub error: Option<String>,
}

/// Everything the page shows, as the shell read it.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub now: i64,
    /// What was selected: `--since`, `--branch` (shown on the page).
    pub scope: String,
    pub tasks: Vec<Task>,
    pub inbox: Vec<InboxEntry>,
    /// Runs by branch.
    pub runs: BTreeMap<String, Vec<RunBar>>,
    pub transitions: Transitions,
    pub metrics: Metrics,
}

/// How much the page shows before it aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub tasks: usize,
    pub inbox: usize,
    pub lanes: usize,
    pub bars: usize,
    pub graph_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { tasks: 2000, inbox: 500, lanes: 60, bars: 3000, graph_nodes: 150 }
    }
}

/// States a task does not leave by itself: shown after the others when the board is cut.
pub fn settled(state: Option<&str>) -> bool {
    matches!(state, Some("done" | "canceled" | "noop"))
}

/// The tasks the board shows when there are more than `limit`: unsettled ones first, then the
/// most recently moved; shown sorted by branch. Returns the indices into `tasks`.
pub fn pick_tasks(tasks: &[Task], limit: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..tasks.len()).collect();
    if tasks.len() > limit {
        idx.sort_by_key(|&i| (settled(tasks[i].state.as_deref()), tasks[i].age_seconds, i));
        idx.truncate(limit);
    }
    idx.sort_by(|&a, &b| tasks[a].branch.cmp(&tasks[b].branch));
    idx
}

/// The timeline's lanes: the `lanes` branches with the newest runs, newest first, and in them
/// the newest runs, at most `bars` in all (each lane keeps its newest). Returns (branch, bars).
pub fn pick_lanes(runs: &BTreeMap<String, Vec<RunBar>>, lanes: usize, bars: usize) -> Vec<(&str, Vec<&RunBar>)> {
    let last = |v: &Vec<RunBar>| v.iter().map(|r| r.finished.unwrap_or(r.started).max(r.started)).max();
    let mut names: Vec<(&str, Option<i64>)> =
        runs.iter().filter(|(_, v)| !v.is_empty()).map(|(b, v)| (b.as_str(), last(v))).collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    names.truncate(lanes);
    // The newest `bars` runs among the chosen lanes.
    let mut all: Vec<(&str, &RunBar)> = names.iter().flat_map(|(b, _)| runs[*b].iter().map(move |r| (*b, r))).collect();
    all.sort_by(|a, b| b.1.started.cmp(&a.1.started).then(a.0.cmp(b.0)));
    all.truncate(bars);
    let mut out: Vec<(&str, Vec<&RunBar>)> = names.iter().map(|(b, _)| (*b, Vec::new())).collect();
    let pos: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, (b, _))| (*b, i)).collect();
    for (b, r) in all {
        out[pos[b]].1.push(r);
    }
    for (_, v) in &mut out {
        v.sort_by_key(|r| r.started);
    }
    out.retain(|(_, v)| !v.is_empty());
    out
}

/// Render the page.
pub fn render(facts: &Facts, limits: Limits) -> String {
    html::page(facts, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(branch: &str, state: &str, age: i64) -> Task {
        Task {
            branch: branch.into(),
            state: Some(state.into()),
            invalid: None,
            lease: "n/a",
            lease_left: None,
            runner: None,
            age_seconds: age,
            attempt: None,
            budget: None,
            parent: None,
            depends_on: Vec::new(),
            error: None,
        }
    }

    fn bar(started: i64) -> RunBar {
        RunBar {
            run_id: None,
            runner: None,
            origin: None,
            outcome: None,
            result: RunResult::Succeeded,
            started,
            finished: Some(started + 1),
            error: None,
        }
    }

    #[test]
    fn the_board_keeps_unsettled_and_recent_tasks_when_cut() {
        let tasks = vec![task("a", "done", 1), task("b", "build", 500), task("c", "review", 10), task("d", "done", 2)];
        let names = |idx: Vec<usize>| idx.into_iter().map(|i| tasks[i].branch.clone()).collect::<Vec<_>>();
        assert_eq!(names(pick_tasks(&tasks, 10)), ["a", "b", "c", "d"]);
        assert_eq!(names(pick_tasks(&tasks, 3)), ["a", "b", "c"]);
        assert_eq!(names(pick_tasks(&tasks, 1)), ["c"]);
    }

    #[test]
    fn lanes_keep_the_newest_branches_and_runs() {
        let mut runs = BTreeMap::new();
        runs.insert("old".to_owned(), vec![bar(1), bar(2)]);
        runs.insert("new".to_owned(), vec![bar(10), bar(30), bar(20)]);
        runs.insert("mid".to_owned(), vec![bar(15)]);
        let shape = |l: Vec<(&str, Vec<&RunBar>)>| {
            l.into_iter()
                .map(|(b, v)| (b.to_owned(), v.iter().map(|r| r.started).collect::<Vec<_>>()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shape(pick_lanes(&runs, 10, 100)),
            [("new".into(), vec![10, 20, 30]), ("mid".into(), vec![15]), ("old".into(), vec![1, 2])]
        );
        assert_eq!(shape(pick_lanes(&runs, 2, 100)), [("new".into(), vec![10, 20, 30]), ("mid".into(), vec![15])]);
        assert_eq!(shape(pick_lanes(&runs, 3, 3)), [("new".into(), vec![20, 30]), ("mid".into(), vec![15])]);
    }
}
