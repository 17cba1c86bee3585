//! Fan-in, decided purely: a parent that wrote `git baton join` sits in `waiting` with the join
//! trailers (`dwp-join-then`, `dwp-join-rule`, `dwp-join-on-failure`, one `dwp-join-child` per
//! child branch, and `dwp-join-correlation` or `dwp-join-children` saying how they were chosen).
//! Given the heads of those children (their state, and whether they are a dead letter), the
//! planner asks [`decide`]: wait, join (the parent moves on to `then`), or fail (the parent goes to
//! `failed` with the failed children named).
//!
//! The children are named on the waiting commit because a child's head stops carrying
//! `dwp-parent`/`dwp-correlation-id` as soon as its handler answers: only the waiting head plus the
//! children's heads are read, never a child's history.

use std::collections::BTreeMap;

use crate::protocol::{Reserved, State, Trailer};

/// `dwp-join-then: <state>`: where the parent goes when the join is complete.
pub const THEN: &str = "dwp-join-then";
/// `dwp-join-rule: all|any|quorum:N`.
pub const RULE: &str = "dwp-join-rule";
/// `dwp-join-children: <glob>`: the children were chosen by branch name.
pub const CHILDREN: &str = "dwp-join-children";
/// `dwp-join-correlation: <id>`: the children were chosen by `dwp-correlation-id`.
pub const CORRELATION: &str = "dwp-join-correlation";
/// `dwp-join-on-failure: fail|continue`.
pub const ON_FAILURE: &str = "dwp-join-on-failure";
/// `dwp-join-child: <branch>` (repeated): the children the join waits for.
pub const CHILD: &str = "dwp-join-child";
/// On the runner's join commit: `dwp-joined: <rule>` (a join commit, not a wait).
pub const JOINED: &str = "dwp-joined";
/// On the runner's join commit, one per child: `dwp-joined-child: <branch> <head> <state>`.
pub const JOINED_CHILD: &str = "dwp-joined-child";
/// On a spawned child: the role that should handle it (informational; `run --role` selects).
pub const ROLE: &str = "dwp-role";

/// How many children must be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Every child terminal.
    All,
    /// One child done.
    Any,
    /// N children done.
    Quorum(u32),
}

impl Rule {
    pub fn parse(v: &str) -> Result<Rule, String> {
        match v.trim() {
            "all" => Ok(Rule::All),
            "any" => Ok(Rule::Any),
            q => match q.strip_prefix("quorum:").map(|n| n.trim().parse::<u32>()) {
                Some(Ok(n)) if n >= 1 => Ok(Rule::Quorum(n)),
                _ => Err(format!("invalid {RULE} {v:?} (all, any or quorum:N with N >= 1)")),
            },
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::All => f.write_str("all"),
            Rule::Any => f.write_str("any"),
            Rule::Quorum(n) => write!(f, "quorum:{n}"),
        }
    }
}

/// What a failed child does to the join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// One failed child (failed, canceled, dead letter, deleted) fails the parent.
    Fail,
    /// Failed children count as finished; only the rule decides.
    Continue,
}

impl OnFailure {
    pub fn parse(v: &str) -> Result<OnFailure, String> {
        match v.trim() {
            "fail" => Ok(OnFailure::Fail),
            "continue" => Ok(OnFailure::Continue),
            _ => Err(format!("invalid {ON_FAILURE} {v:?} (fail or continue)")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Fail => "fail",
            OnFailure::Continue => "continue",
        }
    }
}

/// How the children were chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Correlation(String),
    Glob(String),
}

/// A waiting head's join, as its trailers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinSpec {
    pub then: State,
    pub rule: Rule,
    pub on_failure: OnFailure,
    pub selector: Option<Selector>,
    pub children: Vec<String>,
}

fn values<'a>(trailers: &'a [Trailer], key: &'a str) -> impl Iterator<Item = String> + 'a {
    trailers.iter().filter(move |t| t.key == key.as_bytes()).map(|t| t.value_lossy().trim().to_owned())
}

fn last(trailers: &[Trailer], key: &str) -> Option<String> {
    values(trailers, key).last()
}

/// Does this head carry any `dwp-join-*` trailer (a join's wait, not a person's)?
pub fn is_join_wait(trailers: &[Trailer]) -> bool {
    trailers.iter().any(|t| t.key.starts_with(b"dwp-join-"))
}

/// The join a head describes: `None` without `dwp-join-then`, `Err` naming the malformed trailer.
pub fn spec(trailers: &[Trailer]) -> Option<Result<JoinSpec, String>> {
    let then = last(trailers, THEN)?;
    Some((|| {
        let then = State::parse(&then).map_err(|_| format!("invalid {THEN} {then:?}"))?;
        // A join commit carries no lease: it may not claim to hold one, nor wait again.
        if then.is(Reserved::Working) || then.is(Reserved::Waiting) {
            return Err(format!("{THEN} {then} is not a state a join can go to"));
        }
        let rule = match last(trailers, RULE) {
            Some(r) => Rule::parse(&r)?,
            None => Rule::All,
        };
        let on_failure = match last(trailers, ON_FAILURE) {
            Some(v) => OnFailure::parse(&v)?,
            None => OnFailure::Fail,
        };
        let selector = match (last(trailers, CORRELATION), last(trailers, CHILDREN)) {
            (Some(c), _) => Some(Selector::Correlation(c)),
            (None, Some(g)) => Some(Selector::Glob(g)),
            _ => None,
        };
        let mut children: Vec<String> = values(trailers, CHILD).filter(|c| !c.is_empty()).collect();
        children.sort();
        children.dedup();
        if children.is_empty() {
            return Err(format!("a join without any {CHILD}"));
        }
        Ok(JoinSpec { then, rule, on_failure, selector, children })
    })())
}

/// A child's branch head, as the board shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildHead {
    /// The branch does not exist (deleted): it counts as failed.
    Missing,
    Head {
        /// Its `dwp-state` (None: none or invalid).
        state: Option<String>,
        /// It carries `dwp-dead-letter`.
        dead_letter: bool,
    },
}

/// Where a child stands, for the join and for `BATON_CHILDREN_JSON`'s `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
    Canceled,
    DeadLetter,
    Missing,
    /// Not terminal yet.
    Pending,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Canceled => "canceled",
            Outcome::DeadLetter => "dead-letter",
            Outcome::Missing => "missing",
            Outcome::Pending => "pending",
        }
    }
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Canceled | Outcome::DeadLetter | Outcome::Missing)
    }
}

pub fn outcome(head: &ChildHead) -> Outcome {
    match head {
        ChildHead::Missing => Outcome::Missing,
        ChildHead::Head { dead_letter: true, .. } => Outcome::DeadLetter,
        ChildHead::Head { state: Some(s), .. } if s == Reserved::Done.as_str() => Outcome::Done,
        ChildHead::Head { state: Some(s), .. } if s == Reserved::Failed.as_str() => Outcome::Failed,
        ChildHead::Head { state: Some(s), .. } if s == Reserved::Canceled.as_str() => Outcome::Canceled,
        ChildHead::Head { .. } => Outcome::Pending,
    }
}

/// What the planner does with a waiting parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinVerdict {
    /// Not complete yet: nothing to do (and nothing to print).
    Wait,
    /// Complete: write the join commit with state `then`.
    Join,
    /// The parent goes to `failed`: these children failed, or the rule can no longer be met.
    Fail { failed: Vec<String>, reason: String },
}

/// How many failed children an error names; the rest are counted (the join commit's
/// `dwp-joined-child` trailers name every one).
pub const NAMED_MAX: usize = 10;

/// `a, b, c` — or the first [`NAMED_MAX`] and `and K more`.
fn names(failed: &[String]) -> String {
    let mut s = failed.iter().take(NAMED_MAX).cloned().collect::<Vec<_>>().join(", ");
    if failed.len() > NAMED_MAX {
        s.push_str(&format!(" and {} more", failed.len() - NAMED_MAX));
    }
    s
}

/// How long after the waiting commit a child that cannot be found counts as failed. A reader of
/// loose refs can see a parent's new head but not yet the children created in the same (atomic)
/// ref update — files are renamed into place one by one, and a sorted listing can pass `kid-*`
/// before they land and reach `parent` after it did (seen in a remote fan-out test: 10 of 12
/// children "missing", the parent failed). Within this window a missing child is still pending.
pub const MISSING_GRACE_SECONDS: i64 = 120;

/// [`decide`], as the planner asks it: `waited` seconds after the waiting commit. Before
/// [`MISSING_GRACE_SECONDS`] a child that is not found is pending, not failed.
pub fn decide_at(spec: &JoinSpec, heads: &BTreeMap<String, ChildHead>, waited: i64) -> JoinVerdict {
    if waited >= MISSING_GRACE_SECONDS {
        return decide(spec, heads);
    }
    let pending = ChildHead::Head { state: None, dead_letter: false };
    let seen: BTreeMap<String, ChildHead> = spec
        .children
        .iter()
        .map(|c| match heads.get(c) {
            Some(ChildHead::Missing) | None => (c.clone(), pending.clone()),
            Some(h) => (c.clone(), h.clone()),
        })
        .collect();
    decide(spec, &seen)
}

/// Decide a join from its children's heads (a child absent from `heads` counts as missing).
pub fn decide(spec: &JoinSpec, heads: &BTreeMap<String, ChildHead>) -> JoinVerdict {
    let outcomes: Vec<(&String, Outcome)> =
        spec.children.iter().map(|c| (c, outcome(heads.get(c).unwrap_or(&ChildHead::Missing)))).collect();
    let failed: Vec<String> = outcomes.iter().filter(|(_, o)| o.is_failure()).map(|(c, _)| (*c).clone()).collect();
    let done = outcomes.iter().filter(|(_, o)| *o == Outcome::Done).count();
    let pending = outcomes.iter().filter(|(_, o)| *o == Outcome::Pending).count();
    if spec.on_failure == OnFailure::Fail && !failed.is_empty() {
        let reason = format!("{} of {} children failed: {}", failed.len(), spec.children.len(), names(&failed));
        return JoinVerdict::Fail { failed, reason };
    }
    let needed = match spec.rule {
        Rule::All => return if pending == 0 { JoinVerdict::Join } else { JoinVerdict::Wait },
        Rule::Any => 1,
        Rule::Quorum(n) => n as usize,
    };
    if done >= needed {
        JoinVerdict::Join
    } else if done + pending < needed {
        let reason = format!(
            "{} needs {needed} children done, {done} are and {pending} still run: it can never be met",
            spec.rule
        );
        JoinVerdict::Fail { failed, reason }
    } else {
        JoinVerdict::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::trailers::parse;

    fn head(state: &str) -> ChildHead {
        ChildHead::Head { state: Some(state.to_owned()), dead_letter: false }
    }

    fn join(rule: Rule, on_failure: OnFailure, n: usize) -> JoinSpec {
        JoinSpec {
            then: State::parse("merge").unwrap(),
            rule,
            on_failure,
            selector: None,
            children: (0..n).map(|i| format!("c{i}")).collect(),
        }
    }

    fn heads(states: &[Option<&str>]) -> BTreeMap<String, ChildHead> {
        states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.map(|s| {
                    let h = match s {
                        "dlq" => ChildHead::Head { state: Some("failed".into()), dead_letter: true },
                        "none" => ChildHead::Head { state: None, dead_letter: false },
                        s => head(s),
                    };
                    (format!("c{i}"), h)
                })
            })
            .collect()
    }

    fn fail(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rules_table() {
        use JoinVerdict::*;
        use OnFailure::{Continue, Fail as F};
        use Rule::*;
        let cases: Vec<(Rule, OnFailure, Vec<Option<&str>>, &str)> = vec![
            (All, F, vec![Some("done"), Some("done")], "join"),
            (All, F, vec![Some("done"), Some("build")], "wait"),
            (All, F, vec![Some("done"), Some("working")], "wait"),
            (All, F, vec![Some("done"), Some("none")], "wait"),
            (All, F, vec![Some("done"), Some("failed")], "fail"),
            (All, F, vec![Some("build"), Some("canceled")], "fail"),
            (All, F, vec![Some("build"), Some("dlq")], "fail"),
            (All, F, vec![Some("done"), None], "fail"),
            (All, Continue, vec![Some("done"), Some("failed")], "join"),
            (All, Continue, vec![Some("build"), Some("failed")], "wait"),
            (All, Continue, vec![Some("failed"), Some("canceled")], "join"),
            (Any, F, vec![Some("build"), Some("done")], "join"),
            (Any, F, vec![Some("build"), Some("build")], "wait"),
            (Any, F, vec![Some("failed"), Some("done")], "fail"),
            (Any, Continue, vec![Some("failed"), Some("build")], "wait"),
            (Any, Continue, vec![Some("failed"), Some("done")], "join"),
            (Any, Continue, vec![Some("failed"), Some("canceled")], "fail"),
            (Quorum(2), F, vec![Some("done"), Some("build"), Some("done")], "join"),
            (Quorum(2), F, vec![Some("done"), Some("build"), Some("build")], "wait"),
            (Quorum(2), Continue, vec![Some("done"), Some("failed"), Some("build")], "wait"),
            (Quorum(2), Continue, vec![Some("done"), Some("failed"), Some("failed")], "fail"),
            (Quorum(3), Continue, vec![Some("done"), Some("done")], "fail"),
        ];
        for (rule, on, states, want) in cases {
            let spec = join(rule, on, states.len());
            let got = decide(&spec, &heads(&states));
            let name = match &got {
                Wait => "wait",
                Join => "join",
                Fail { .. } => "fail",
            };
            assert_eq!(name, want, "{rule} {on:?} {states:?}: {got:?}");
        }
    }

    #[test]
    fn a_missing_child_is_pending_for_a_while_then_failed() {
        use JoinVerdict::*;
        let spec = join(Rule::All, OnFailure::Fail, 3);
        let seen = heads(&[Some("done"), None, Some("done")]);
        let verdict = |waited| match decide_at(&spec, &seen, waited) {
            Wait => "wait",
            Join => "join",
            Fail { .. } => "fail",
        };
        assert_eq!(verdict(0), "wait");
        assert_eq!(verdict(MISSING_GRACE_SECONDS - 1), "wait");
        assert_eq!(verdict(MISSING_GRACE_SECONDS), "fail");
        // A clock behind the commit (negative wait) is still within the window.
        assert_eq!(verdict(-30), "wait");
        // Found children decide as before inside the window.
        let failed = heads(&[Some("done"), Some("failed"), Some("done")]);
        assert!(matches!(decide_at(&spec, &failed, 0), Fail { .. }));
        let all_done = heads(&[Some("done"), Some("done"), Some("done")]);
        assert_eq!(decide_at(&spec, &all_done, 0), Join);
    }

    #[test]
    fn a_failure_names_the_failed_children() {
        let spec = join(Rule::All, OnFailure::Fail, 4);
        let got = decide(&spec, &heads(&[Some("done"), Some("failed"), Some("dlq"), None]));
        let JoinVerdict::Fail { failed, reason } = got else { panic!("{got:?}") };
        assert_eq!(failed, fail(&["c1", "c2", "c3"]));
        assert!(reason.contains("3 of 4 children failed: c1, c2, c3"), "{reason}");
        // Many failed children: the first ten are named, the rest counted.
        let spec = join(Rule::All, OnFailure::Fail, 300);
        let got = decide(&spec, &BTreeMap::new());
        let JoinVerdict::Fail { failed, reason } = got else { panic!("{got:?}") };
        assert_eq!(failed.len(), 300);
        assert!(reason.starts_with("300 of 300 children failed: c0, c1, c2,"), "{reason}");
        assert!(reason.ends_with(" and 290 more") && reason.len() < 200, "{reason}");
    }

    #[test]
    fn spec_from_trailers() {
        let msg = b"j\n\nbody\n\ndwp-join-then: merge\ndwp-join-rule: quorum:2\ndwp-join-on-failure: continue\n\
dwp-join-correlation: run-1\ndwp-join-child: b\ndwp-join-child: a\ndwp-join-child: b\ndwp-state: waiting\n";
        let t = parse(msg);
        assert!(is_join_wait(&t));
        let s = spec(&t).unwrap().unwrap();
        assert_eq!(s.then.as_str(), "merge");
        assert_eq!(s.rule, Rule::Quorum(2));
        assert_eq!(s.on_failure, OnFailure::Continue);
        assert_eq!(s.selector, Some(Selector::Correlation("run-1".into())));
        assert_eq!(s.children, fail(&["a", "b"]));
        // Defaults: all, fail.
        let t = parse(b"j\n\ndwp-join-then: merge\ndwp-join-child: a\ndwp-state: waiting\n");
        let s = spec(&t).unwrap().unwrap();
        assert_eq!((s.rule, s.on_failure), (Rule::All, OnFailure::Fail));
        // Not a join; malformed joins name the problem.
        assert!(spec(&parse(b"j\n\ndwp-state: waiting\n")).is_none());
        assert!(!is_join_wait(&parse(b"j\n\ndwp-state: waiting\n")));
        for bad in [
            &b"j\n\ndwp-join-then: a b\ndwp-join-child: a\n"[..],
            b"j\n\ndwp-join-then: m\ndwp-join-rule: most\ndwp-join-child: a\n",
            b"j\n\ndwp-join-then: m\ndwp-join-rule: quorum:0\ndwp-join-child: a\n",
            b"j\n\ndwp-join-then: m\ndwp-join-on-failure: shrug\ndwp-join-child: a\n",
            b"j\n\ndwp-join-then: m\n",
            b"j\n\ndwp-join-then: working\ndwp-join-child: a\n",
            b"j\n\ndwp-join-then: waiting\ndwp-join-child: a\n",
        ] {
            assert!(spec(&parse(bad)).unwrap().is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rules_print_as_they_parse() {
        for r in ["all", "any", "quorum:3"] {
            assert_eq!(Rule::parse(r).unwrap().to_string(), r);
        }
    }
}
