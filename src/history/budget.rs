//! Budgets: what a task has spent — runs, handler wall time, reported cost and tokens — counted
//! from its own history, against the limits whoever sent it (or the policy) set. Pure: the runner
//! (before each claim), `git baton budget` and `git baton metrics` feed it the task's commits,
//! newest first, and `now`; nothing here reads git or the clock.
//!
//! - **Runs** are claims: a `working` commit whose run id is not the open run's (a heartbeat of
//!   the same run is no new run).
//! - **Seconds** are handler wall time: from a claim to the commit that ended its run (the next
//!   commit setting another state, or a claim of another run); a run still open counts up to
//!   `now`.
//! - **Cost** and **tokens** are what commits report (`dwp-cost: 0.42`, `dwp-tokens: 12345`),
//!   each commit once. Copies — a runner's retry commit (`dwp-retry-of`), a resume
//!   (`dwp-resumed-from`), an unpark — repeat an older commit's trailers and count nothing.
//! - Counting starts after the newest commit carrying `dwp-budget-reset: yes`.
//! - **Limits**, per key: the newest valid `dwp-budget-runs` / `-seconds` / `-cost` on the task's
//!   history (a reset does not forget them), else the policy's `budget.*` for the state about to
//!   run, else none.
//! - **Exhausted** when any limit is reached: runs spent ≥ the runs limit (the next run would be
//!   N+1 of N), seconds ≥ seconds, cost ≥ cost. A run that started under its limit finishes, so
//!   seconds and cost may end above it; the run after it does not start. **Warning** at 80 %:
//!   the run about to start is at least 80 % of the runs, or what was spent (the last run
//!   included) is at least 80 % of the seconds or the cost.
//!
//! A malformed value is a problem to report (naming the commit and the value) and is ignored.

use serde::Serialize;

use crate::policy::{HumansPolicy, Money};
use crate::protocol::Key;

/// One commit of a task's history, as far as budgets care (fed newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The commit id (notices name its first 12 characters).
    pub id: String,
    /// Committer time, seconds since the epoch.
    pub time: i64,
    /// A `working` commit: `Some(run id)` (`Some(None)` when it carries none).
    pub working: Option<Option<String>>,
    /// Sets a valid state other than `working` (ends an open run).
    pub sets_state: bool,
    /// Repeats an older commit's trailers (a retry, a resume, an unpark): it ends a run when it
    /// sets a state, and reports, resets, limits and claims nothing.
    pub copy: bool,
    /// The raw values of `dwp-budget-reset`, `dwp-cost`, `dwp-tokens`, `dwp-budget-runs`,
    /// `dwp-budget-seconds`, `dwp-budget-cost` (the last of each key).
    pub reset: Option<String>,
    pub cost: Option<String>,
    pub tokens: Option<String>,
    pub budget_runs: Option<String>,
    pub budget_seconds: Option<String>,
    pub budget_cost: Option<String>,
}

/// What a task spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Spent {
    pub runs: u32,
    pub seconds: u64,
    pub cost: Money,
    pub tokens: u64,
}

/// [`count`]'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    pub spent: Spent,
    /// The reset commit counting started after (None: the task's whole history).
    pub since: Option<String>,
    /// Malformed values, each naming its commit; the values were ignored.
    pub problems: Vec<String>,
}

/// `dwp-budget-runs`: a whole number.
pub fn parse_runs(v: &str) -> Result<u32, String> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid number of runs {v:?}: use a whole number such as 5"));
    }
    v.parse().map_err(|_| format!("invalid number of runs {v:?}: too large"))
}

/// `dwp-budget-seconds`: whole seconds, or a duration such as `90m` (`s`, `m`, `h`, `d`).
pub fn parse_seconds(v: &str) -> Result<u64, String> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().map_err(|_| format!("invalid number of seconds {v:?}: too large"));
    }
    crate::policy::duration::parse_seconds(v)
        .map_err(|e| format!("invalid number of seconds {v:?}: whole seconds, or a duration ({e})"))
}

/// `dwp-tokens`: a whole number.
pub fn parse_tokens(v: &str) -> Result<u64, String> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid token count {v:?}: use a whole number such as 12345"));
    }
    v.parse().map_err(|_| format!("invalid token count {v:?}: too large"))
}

/// `dwp-budget-reset`: `yes` (also `true`, `1`), any letter case.
pub fn parse_reset(v: &str) -> Result<(), String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Ok(()),
        _ => Err(format!("invalid dwp-budget-reset {:?}: write dwp-budget-reset: yes", v.trim())),
    }
}

/// Check the value of a budget or spend trailer (`None` for other keys): what `send` refuses.
pub fn check_trailer(key: Key, value: &str) -> Option<Result<(), String>> {
    Some(match key {
        Key::BudgetRuns => parse_runs(value).map(drop),
        Key::BudgetSeconds => parse_seconds(value).map(drop),
        Key::BudgetCost | Key::Cost => Money::parse(value).map(drop),
        Key::Tokens => parse_tokens(value).map(drop),
        Key::BudgetReset => parse_reset(value),
        _ => return None,
    })
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Add what `e` reports, or say why a value is ignored.
fn add_reported(spent: &mut Spent, e: &Entry, problems: &mut Vec<String>) {
    if let Some(v) = &e.cost {
        match Money::parse(v) {
            Ok(m) => spent.cost = Money(spent.cost.0.saturating_add(m.0)),
            Err(why) => problems.push(format!("{}: dwp-cost ignored: {why}", short(&e.id))),
        }
    }
    if let Some(v) = &e.tokens {
        match parse_tokens(v) {
            Ok(n) => spent.tokens = spent.tokens.saturating_add(n),
            Err(why) => problems.push(format!("{}: dwp-tokens ignored: {why}", short(&e.id))),
        }
    }
}

/// What the history (newest first) spent; after its newest reset when `honour_reset` (a budget),
/// all of it otherwise (metrics). `now` ends a run still open (None: it counts no seconds).
pub fn count(history: &[Entry], honour_reset: bool, now: Option<i64>) -> Counted {
    let mut problems = Vec::new();
    let mut since = None;
    let mut end = history.len();
    if honour_reset {
        for (i, e) in history.iter().enumerate().filter(|(_, e)| !e.copy) {
            let Some(v) = &e.reset else { continue };
            match parse_reset(v) {
                Ok(()) => {
                    since = Some(e.id.clone());
                    end = i;
                    break;
                }
                Err(why) => problems.push(format!("{}: {why}; not a reset", short(&e.id))),
            }
        }
    }
    let mut spent = Spent::default();
    // The open run: its id and claim time.
    let mut open: Option<(Option<&str>, i64)> = None;
    for e in history[..end].iter().rev() {
        if let Some(run_id) = e.working.as_ref().filter(|_| !e.copy) {
            let run_id = run_id.as_deref();
            if let Some((open_id, _)) = open {
                if open_id.is_none() || run_id.is_none() || open_id == run_id {
                    continue; // a heartbeat
                }
            }
            if let Some((_, started)) = open.take() {
                spent.seconds = spent.seconds.saturating_add((e.time - started).max(0) as u64);
            }
            spent.runs = spent.runs.saturating_add(1);
            open = Some((run_id, e.time));
            continue;
        }
        if e.sets_state {
            if let Some((_, started)) = open.take() {
                spent.seconds = spent.seconds.saturating_add((e.time - started).max(0) as u64);
            }
        }
        if !e.copy {
            add_reported(&mut spent, e, &mut problems);
        }
    }
    if let (Some((_, started)), Some(now)) = (open, now) {
        spent.seconds = spent.seconds.saturating_add((now - started).max(0) as u64);
    }
    Counted { spent, since, problems }
}

/// Where a limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitFrom {
    /// A `dwp-budget-*` trailer on the task's history.
    Task,
    /// The policy's `budget.*`.
    Policy,
    /// No limit.
    None,
}

/// One limit: `{"value":2,"from":"task","at":"<commit>"}`, `{"value":20,"from":"policy",
/// "at":".dwp/policy.toml:3 [defaults]"}` or `{"value":null,"from":"none","at":null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limit<T> {
    pub value: Option<T>,
    pub from: LimitFrom,
    /// The commit carrying the trailer, or the policy line.
    pub at: Option<String>,
}

impl<T> Limit<T> {
    fn none() -> Limit<T> {
        Limit { value: None, from: LimitFrom::None, at: None }
    }

    /// `2 (task trailer on 1a2b3c4d5e6f)`, `20 (policy .dwp/policy.toml:3 [defaults])`, `-`.
    pub fn describe(&self, show: impl Fn(&T) -> String) -> String {
        match (&self.value, self.from, &self.at) {
            (Some(v), LimitFrom::Task, Some(at)) => format!("{} (task trailer on {})", show(v), short(at)),
            (Some(v), LimitFrom::Policy, Some(at)) => format!("{} (policy {at})", show(v)),
            (Some(v), _, _) => show(v),
            (None, _, _) => "-".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub runs: Limit<u32>,
    pub seconds: Limit<u64>,
    pub cost: Limit<Money>,
}

/// The limits of a task: per key its newest valid trailer (copies skipped), else the policy's.
pub fn limits(history: &[Entry], policy: &HumansPolicy, problems: &mut Vec<String>) -> Limits {
    fn pick<T: Clone>(
        history: &[Entry],
        key: &str,
        raw: impl Fn(&Entry) -> Option<&String>,
        parse: impl Fn(&str) -> Result<T, String>,
        policy: &crate::policy::Resolved<Option<T>>,
        problems: &mut Vec<String>,
    ) -> Limit<T> {
        for e in history.iter().filter(|e| !e.copy) {
            let Some(v) = raw(e) else { continue };
            match parse(v) {
                Ok(value) => return Limit { value: Some(value), from: LimitFrom::Task, at: Some(e.id.clone()) },
                Err(why) => problems.push(format!("{}: {key} ignored: {why}", short(&e.id))),
            }
        }
        match &policy.value {
            Some(v) => Limit { value: Some(v.clone()), from: LimitFrom::Policy, at: Some(policy.from.to_string()) },
            None => Limit::none(),
        }
    }
    Limits {
        runs: pick(history, "dwp-budget-runs", |e| e.budget_runs.as_ref(), parse_runs, &policy.budget_runs, problems),
        seconds: pick(
            history,
            "dwp-budget-seconds",
            |e| e.budget_seconds.as_ref(),
            parse_seconds,
            &policy.budget_seconds,
            problems,
        ),
        cost: pick(history, "dwp-budget-cost", |e| e.budget_cost.as_ref(), Money::parse, &policy.budget_cost, problems),
    }
}

/// How a budget stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Exhausted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Exhausted => "exhausted",
        }
    }
}

/// What is left of each limited key (limit − spent, never below 0; null without a limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Left {
    pub runs: Option<u32>,
    pub seconds: Option<u64>,
    pub cost: Option<Money>,
}

/// A task's budget: limits, spend, what is left, and the verdict with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub status: Status,
    /// Why the status is not `ok`: `runs: 2 of 2 used`, `cost: 0.85 of 1 spent (85%)`.
    pub reasons: Vec<String>,
    pub limits: Limits,
    pub spent: Spent,
    pub left: Left,
    /// The `dwp-budget-reset` commit counting starts after (null: the task's whole history).
    pub since: Option<String>,
    /// Malformed values that were ignored, each naming its commit.
    pub problems: Vec<String>,
}

/// `part` is at least 80 % of `whole`.
fn at_80(part: u64, whole: u64) -> bool {
    u128::from(part) * 5 >= u128::from(whole) * 4
}

fn percent(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 100;
    }
    (u128::from(part) * 100 / u128::from(whole)) as u64
}

/// The verdict on `spent` under `limits`.
pub fn assess(limits: &Limits, spent: &Spent) -> (Status, Vec<String>) {
    let mut exhausted = Vec::new();
    let mut warnings = Vec::new();
    if let Some(n) = limits.runs.value {
        if spent.runs >= n {
            exhausted.push(format!("runs: {} of {n} used", spent.runs));
        } else if at_80(u64::from(spent.runs) + 1, u64::from(n)) {
            warnings.push(format!("runs: this is run {} of {n}", spent.runs + 1));
        }
    }
    if let Some(n) = limits.seconds.value {
        if spent.seconds >= n {
            exhausted.push(format!("seconds: {} of {n} used", spent.seconds));
        } else if at_80(spent.seconds, n) {
            warnings.push(format!("seconds: {} of {n} used ({}%)", spent.seconds, percent(spent.seconds, n)));
        }
    }
    if let Some(n) = limits.cost.value {
        if spent.cost >= n {
            exhausted.push(format!("cost: {} of {n} spent", spent.cost));
        } else if at_80(spent.cost.0, n.0) {
            warnings.push(format!("cost: {} of {n} spent ({}%)", spent.cost, percent(spent.cost.0, n.0)));
        }
    }
    if !exhausted.is_empty() {
        (Status::Exhausted, exhausted)
    } else if !warnings.is_empty() {
        (Status::Warning, warnings)
    } else {
        (Status::Ok, Vec::new())
    }
}

/// The budget of a task from its history (newest first) and the policy of the state about to
/// run.
pub fn budget(history: &[Entry], policy: &HumansPolicy, now: Option<i64>) -> Budget {
    let counted = count(history, true, now);
    let mut problems = counted.problems;
    let limits = limits(history, policy, &mut problems);
    let spent = counted.spent;
    let (status, reasons) = assess(&limits, &spent);
    let left = Left {
        runs: limits.runs.value.map(|n| n.saturating_sub(spent.runs)),
        seconds: limits.seconds.value.map(|n| n.saturating_sub(spent.seconds)),
        cost: limits.cost.value.map(|n| Money(n.0.saturating_sub(spent.cost.0))),
    };
    Budget { status, reasons, limits, spent, left, since: counted.since, problems }
}

/// What a handler about to run is told (its own run already counted in the runs left):
/// `BATON_BUDGET_RUNS_LEFT`, `BATON_BUDGET_SECONDS_LEFT`, `BATON_BUDGET_COST_LEFT` for each limited
/// key, and `BATON_BUDGET_WARNING` (the reasons) at 80 %.
pub fn handler_env(b: &Budget) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(n) = b.left.runs {
        env.push(("BATON_BUDGET_RUNS_LEFT".to_owned(), n.saturating_sub(1).to_string()));
    }
    if let Some(n) = b.left.seconds {
        env.push(("BATON_BUDGET_SECONDS_LEFT".to_owned(), n.to_string()));
    }
    if let Some(m) = b.left.cost {
        env.push(("BATON_BUDGET_COST_LEFT".to_owned(), m.to_string()));
    }
    if b.status == Status::Warning {
        env.push(("BATON_BUDGET_WARNING".to_owned(), b.reasons.join("; ")));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Resolved;

    /// Commits for the tables, written oldest first (reversed before use): a commit without a
    /// state (`at`), a `send`, a `claim` (a heartbeat is a claim with the open run's id), an
    /// `answer` reporting spend.
    fn at(id: &str, time: i64) -> Entry {
        Entry { id: id.into(), time, ..Entry::default() }
    }
    fn send(id: &str, time: i64) -> Entry {
        Entry { sets_state: true, ..at(id, time) }
    }
    fn claim(id: &str, run: &str, time: i64) -> Entry {
        Entry { working: Some(Some(run.into())), ..at(id, time) }
    }
    fn answer(id: &str, time: i64, cost: Option<&str>, tokens: Option<&str>) -> Entry {
        Entry { cost: cost.map(Into::into), tokens: tokens.map(Into::into), ..send(id, time) }
    }
    fn newest_first(mut oldest_first: Vec<Entry>) -> Vec<Entry> {
        oldest_first.reverse();
        oldest_first
    }

    #[test]
    fn spend_is_counted_from_the_history() {
        let reset = |id: &str, t| Entry { reset: Some("yes".into()), ..send(id, t) };
        let copy = |e: Entry| Entry { copy: true, ..e };
        // (oldest first, honour reset, now) → (runs, seconds, cost in millionths, tokens, since)
        type Case = (Vec<Entry>, bool, Option<i64>, (u32, u64, u64, u64, Option<&'static str>));
        let cases: Vec<Case> = vec![
            (vec![], true, None, (0, 0, 0, 0, None)),
            (vec![send("s", 0)], true, Some(99), (0, 0, 0, 0, None)),
            // Two runs: 10 s and 5 s, each answer reporting spend.
            (
                vec![
                    send("s", 0),
                    claim("c1", "r1", 10),
                    answer("a1", 20, Some("0.6"), Some("100")),
                    claim("c2", "r2", 30),
                    answer("a2", 35, Some("0.6"), None),
                ],
                true,
                Some(1000),
                (2, 15, 1_200_000, 100, None),
            ),
            // A heartbeat is not a run; work commits during the run report spend too.
            (
                vec![
                    claim("c1", "r1", 0),
                    Entry { cost: Some("0.1".into()), ..at("w", 5) },
                    claim("h", "r1", 6),
                    answer("a", 9, Some("0.2"), Some("7")),
                ],
                true,
                None,
                (1, 9, 300_000, 7, None),
            ),
            // A claim of another run ends the open one (no `stalled` record); the last run is
            // still open and counts up to now (or nothing without a clock).
            (vec![claim("c1", "r1", 0), claim("c2", "r2", 4)], true, Some(10), (2, 10, 0, 0, None)),
            (vec![claim("c1", "r1", 0), claim("c2", "r2", 4)], true, None, (2, 4, 0, 0, None)),
            // A reset: only what came after it counts; metrics (no reset) count everything.
            (
                vec![
                    claim("c1", "r1", 0),
                    answer("a1", 10, Some("1"), None),
                    reset("z", 11),
                    claim("c2", "r2", 12),
                    answer("a2", 13, Some("0.5"), None),
                ],
                true,
                None,
                (1, 1, 500_000, 0, Some("z")),
            ),
            (
                vec![
                    claim("c1", "r1", 0),
                    answer("a1", 10, Some("1"), None),
                    reset("z", 11),
                    claim("c2", "r2", 12),
                    answer("a2", 13, Some("0.5"), None),
                ],
                false,
                None,
                (2, 11, 1_500_000, 0, None),
            ),
            // Copies count nothing, and a copied reset is no reset; a runner's retry commit
            // still ends its run (the wait for the retry timer is no handler time), and an
            // unparked `working` commit is no claim.
            (
                vec![
                    claim("c1", "r1", 0),
                    answer("a1", 10, Some("1"), None),
                    copy(Entry { reset: Some("yes".into()), cost: Some("1".into()), ..send("resume", 11) }),
                    claim("c2", "r2", 20),
                    copy(send("retry", 25)),
                    claim("c3", "r3", 100),
                    answer("a3", 101, None, None),
                    copy(claim("unpark", "r3", 200)),
                ],
                true,
                Some(300),
                (3, 16, 1_000_000, 0, None),
            ),
            // A person's send may report spend too.
            (vec![answer("s", 0, Some("2.5"), Some("10"))], true, None, (0, 0, 2_500_000, 10, None)),
        ];
        for (i, (history, honour, now, want)) in cases.into_iter().enumerate() {
            let c = count(&newest_first(history), honour, now);
            let s = c.spent;
            assert_eq!((s.runs, s.seconds, s.cost.0, s.tokens, c.since.as_deref()), want, "case {i}");
            assert!(c.problems.is_empty(), "case {i}: {:?}", c.problems);
        }
    }

    #[test]
    fn malformed_values_are_named_and_ignored() {
        let history = newest_first(vec![
            Entry { budget_runs: Some("3".into()), ..send("1111111111111111", 0) },
            Entry { budget_runs: Some("lots".into()), budget_cost: Some("-1".into()), ..send("2222222222222222", 1) },
            answer("3333333333333333", 2, Some("abc"), Some("1e3")),
            Entry { reset: Some("please".into()), ..send("4444444444444444", 3) },
        ]);
        let b = budget(&history, &HumansPolicy::built_in(), None);
        assert_eq!(b.spent, Spent::default());
        assert_eq!(b.since, None, "a malformed reset is no reset");
        assert_eq!(b.limits.runs, Limit { value: Some(3), from: LimitFrom::Task, at: Some("1111111111111111".into()) });
        assert_eq!(b.limits.cost.from, LimitFrom::None);
        let problems = b.problems.join("\n");
        for want in [
            "444444444444: invalid dwp-budget-reset \"please\"",
            "333333333333: dwp-cost ignored: invalid amount \"abc\"",
            "333333333333: dwp-tokens ignored: invalid token count \"1e3\"",
            "222222222222: dwp-budget-runs ignored: invalid number of runs \"lots\"",
            "222222222222: dwp-budget-cost ignored: invalid amount \"-1\"",
        ] {
            assert!(problems.contains(want), "{want} missing from {problems}");
        }
    }

    fn policy(runs: Option<u32>, seconds: Option<u64>, cost: Option<&str>) -> HumansPolicy {
        let mut p = HumansPolicy::built_in();
        let from = crate::policy::Origin::Defaults { line: 2 };
        p.budget_runs = Resolved { value: runs, from: from.clone() };
        p.budget_seconds = Resolved { value: seconds, from: from.clone() };
        p.budget_cost = Resolved { value: cost.map(|c| Money::parse(c).unwrap()), from };
        p
    }

    #[test]
    fn task_trailers_override_the_policy() {
        let history = newest_first(vec![
            Entry { budget_runs: Some("2".into()), budget_seconds: Some("90m".into()), ..send("s1", 0) },
            claim("c1", "r1", 1),
            Entry { budget_runs: Some("5".into()), ..send("s2", 2) },
        ]);
        let mut problems = Vec::new();
        let l = limits(&history, &policy(Some(9), Some(60), Some("20")), &mut problems);
        assert!(problems.is_empty());
        assert_eq!((l.runs.value, l.runs.from, l.runs.at.as_deref()), (Some(5), LimitFrom::Task, Some("s2")));
        assert_eq!((l.seconds.value, l.seconds.from), (Some(5400), LimitFrom::Task));
        assert_eq!(l.cost.value, Some(Money(20_000_000)));
        assert_eq!((l.cost.from, l.cost.at.as_deref()), (LimitFrom::Policy, Some(".dwp/policy.toml:2 [defaults]")));
        assert_eq!(l.runs.describe(u32::to_string), "5 (task trailer on s2)");
        assert_eq!(l.cost.describe(Money::to_string), "20 (policy .dwp/policy.toml:2 [defaults])");
        let none = limits(&[], &HumansPolicy::built_in(), &mut problems);
        assert_eq!(none.runs, Limit::none());
        assert_eq!(none.runs.describe(u32::to_string), "-");
    }

    #[test]
    fn exhausted_at_the_limit_warning_at_80_percent() {
        let spent =
            |runs, seconds, cost: &str, tokens| Spent { runs, seconds, cost: Money::parse(cost).unwrap(), tokens };
        // (policy runs, seconds, cost) and spent → status and reasons
        type Case = ((Option<u32>, Option<u64>, Option<&'static str>), Spent, Status, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            ((None, None, None), spent(100, 100_000, "1000", 9), Status::Ok, vec![]),
            ((Some(2), None, None), spent(0, 0, "0", 0), Status::Ok, vec![]),
            ((Some(2), None, None), spent(1, 0, "0", 0), Status::Warning, vec!["runs: this is run 2 of 2"]),
            ((Some(2), None, None), spent(2, 0, "0", 0), Status::Exhausted, vec!["runs: 2 of 2 used"]),
            ((Some(5), None, None), spent(2, 0, "0", 0), Status::Ok, vec![]),
            ((Some(5), None, None), spent(3, 0, "0", 0), Status::Warning, vec!["runs: this is run 4 of 5"]),
            ((Some(0), None, None), spent(0, 0, "0", 0), Status::Exhausted, vec!["runs: 0 of 0 used"]),
            ((None, Some(100), None), spent(79, 79, "0", 0), Status::Ok, vec![]),
            ((None, Some(100), None), spent(1, 80, "0", 0), Status::Warning, vec!["seconds: 80 of 100 used (80%)"]),
            ((None, Some(100), None), spent(1, 130, "0", 0), Status::Exhausted, vec!["seconds: 130 of 100 used"]),
            ((None, None, Some("1")), spent(1, 0, "0.6", 0), Status::Ok, vec![]),
            ((None, None, Some("1")), spent(1, 0, "0.85", 0), Status::Warning, vec!["cost: 0.85 of 1 spent (85%)"]),
            ((None, None, Some("1")), spent(2, 0, "1.2", 0), Status::Exhausted, vec!["cost: 1.2 of 1 spent"]),
            ((None, None, Some("1")), spent(2, 0, "1", 0), Status::Exhausted, vec!["cost: 1 of 1 spent"]),
            // Any limit reached exhausts; the others' warnings are not repeated.
            ((Some(10), Some(100), Some("1")), spent(9, 20, "1.5", 0), Status::Exhausted, vec!["cost: 1.5 of 1 spent"]),
            (
                (Some(10), Some(100), Some("1")),
                spent(8, 90, "0.1", 0),
                Status::Warning,
                vec!["runs: this is run 9 of 10", "seconds: 90 of 100 used (90%)"],
            ),
        ];
        for (i, ((runs, seconds, cost), spent, status, reasons)) in cases.into_iter().enumerate() {
            let l = limits(&[], &policy(runs, seconds, cost), &mut Vec::new());
            assert_eq!(assess(&l, &spent), (status, reasons.iter().map(|r| r.to_string()).collect()), "case {i}");
        }
    }

    #[test]
    fn the_handler_is_told_what_is_left() {
        let history = newest_first(vec![
            Entry { budget_runs: Some("2".into()), ..send("s", 0) },
            claim("c1", "r1", 10),
            answer("a1", 40, Some("0.6"), None),
        ]);
        let b = budget(&history, &policy(None, Some(100), Some("1")), Some(50));
        assert_eq!(b.status, Status::Warning, "{b:?}");
        assert_eq!(b.left, Left { runs: Some(1), seconds: Some(70), cost: Some(Money(400_000)) });
        let env = handler_env(&b);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("BATON_BUDGET_RUNS_LEFT"), Some("0"), "this run is the last");
        assert_eq!(get("BATON_BUDGET_SECONDS_LEFT"), Some("70"));
        assert_eq!(get("BATON_BUDGET_COST_LEFT"), Some("0.4"));
        assert_eq!(get("BATON_BUDGET_WARNING"), Some("runs: this is run 2 of 2"));
        let unlimited = budget(&history[..2], &HumansPolicy::built_in(), None);
        assert!(handler_env(&unlimited).is_empty());
    }

    #[test]
    fn send_checks_budget_values() {
        for (key, good, bad) in [
            (Key::BudgetRuns, "5", "five"),
            (Key::BudgetSeconds, "7200", "2 hours"),
            (Key::BudgetSeconds, "2h", "-5"),
            (Key::BudgetCost, "12.5", "$12"),
            (Key::Cost, "0.42", "0,42"),
            (Key::Tokens, "12345", "12k"),
            (Key::BudgetReset, "yes", "maybe"),
        ] {
            assert_eq!(check_trailer(key, good), Some(Ok(())), "{key:?} {good}");
            assert!(matches!(check_trailer(key, bad), Some(Err(_))), "{key:?} {bad}");
        }
        assert_eq!(check_trailer(Key::Priority, "whatever"), None);
    }
}
