//! Fan-out and fan-in, the effects: the children a handler spawned wait on
//! `refs/baton/spawn/<run-id>/<child>` until the runner publishes the parent's answer together
//! with them (see [`super::publish`]); the join commit a complete join gets; and the
//! `BATON_CHILDREN_JSON` file the `then` handler reads. Decisions are in [`super::join`].

use anyhow::Result;
use serde::Serialize;

use super::backend::Swap;
use super::clock;
use super::context::Ctx;
use super::join::{self, outcome, ChildHead, JoinSpec, Selector};
use super::report::{Event, Kind};
use crate::protocol::message::{body_of, MAX_MESSAGE_BYTES};
use crate::protocol::state::last_text;
use crate::protocol::{compose, Key, MessageError, Reserved, State, TrailerArg};
use crate::repo::{BranchSource, CommitInfo, ObjectId, Repo};

/// Where the children spawned by run `run_id` wait for the run's answer to be published.
pub fn spawn_prefix(run_id: &str) -> String {
    format!("refs/baton/spawn/{run_id}/")
}

/// How much of a child's answer body the join commit and `BATON_CHILDREN_JSON` carry.
pub const BODY_MAX: usize = 4096;

/// The children run `run_id` spawned: (branch, commit).
pub fn spawned(repo: &Repo, run_id: &str) -> Vec<(String, ObjectId)> {
    repo.refs_under(&spawn_prefix(run_id)).unwrap_or_default()
}

/// Forget the children run `run_id` spawned (published or not: either way they are done with).
pub fn clear_spawns(repo: &Repo, run_id: &str) {
    for (child, id) in spawned(repo, run_id) {
        let _ = repo.delete_ref(&format!("{}{child}", spawn_prefix(run_id)), id);
    }
}

/// Delete the spawn records of runs that no longer hold their parent branch (a runner killed
/// mid-run): their children were never published and never will be. A run still holding its
/// lease (`working` with its run id on the board) keeps them.
pub fn sweep_stale_spawns(repo: &Repo, source: &BranchSource) {
    let Ok(all) = repo.refs_under("refs/baton/spawn/") else { return };
    let mut runs: std::collections::BTreeMap<String, Vec<(String, ObjectId)>> = Default::default();
    for (rest, id) in all {
        if let Some((run, child)) = rest.split_once('/') {
            runs.entry(run.to_owned()).or_default().push((child.to_owned(), id));
        }
    }
    for (run, children) in runs {
        let parent = repo.commit(children[0].1).ok().and_then(|c| last_text(&c.trailers, Key::Parent));
        // The run may be another mode's than this tick's (a local tick in the clone of a runner in
        // remote mode, or the other way round): the parent's local head and its tracking refs count.
        let holding = parent.is_some_and(|p| {
            let p = p.trim();
            let mut refnames = vec![format!("refs/heads/{p}")];
            if let BranchSource::Remote(r) = source {
                refnames.push(format!("refs/remotes/{r}/{p}"));
            }
            let suffix = format!("/{p}");
            refnames.extend(
                repo.refs_under("refs/remotes/")
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(rest, _)| rest.ends_with(&suffix))
                    .map(|(rest, _)| format!("refs/remotes/{rest}")),
            );
            refnames.iter().any(|refname| {
                repo.ref_id(refname).ok().flatten().and_then(|h| repo.commit(h).ok()).is_some_and(|h| {
                    h.state().valid().is_some_and(|s| s.is(Reserved::Working))
                        && last_text(&h.trailers, Key::RunId).as_deref() == Some(run.as_str())
                })
            })
        });
        if !holding {
            tracing::debug!("removing the unpublished children of run {run}");
            for (child, id) in children {
                let _ = repo.delete_ref(&format!("{}{child}", spawn_prefix(&run)), id);
            }
        }
    }
}

/// The branches waiting on a join that names one of `moved` as a child: a hook that saw a child
/// move ticks its parent too, so the join does not wait for the next poll.
pub fn waiting_parents_of(repo: &Repo, moved: &[String]) -> Vec<String> {
    // Only a child that finished can complete a join: without one, no board read at all (a hook
    // fires on every state commit).
    let finished = moved.iter().any(|b| {
        let head = repo.ref_id(&format!("refs/heads/{b}")).ok().flatten().and_then(|id| repo.commit(id).ok());
        head.is_some_and(|c| {
            let h = ChildHead::Head {
                state: c.state().valid().map(|s| s.to_string()),
                dead_letter: last_text(&c.trailers, Key::DeadLetter).is_some(),
            };
            outcome(&h) != join::Outcome::Pending
        })
    });
    if !finished {
        return Vec::new();
    }
    let Ok(heads) = repo.branches(&BranchSource::Local) else { return Vec::new() };
    let mut parents = Vec::new();
    for h in heads {
        let Ok(c) = repo.commit(h.id) else { continue };
        if !c.state().valid().is_some_and(|s| s.is(Reserved::Waiting)) || moved.contains(&h.branch) {
            continue;
        }
        if let Some(Ok(spec)) = join::spec(&c.trailers) {
            if spec.children.iter().any(|child| moved.contains(child)) {
                parents.push(h.branch);
            }
        }
    }
    parents
}

/// The branch (under `prefix`: `refs/heads/` or a remote's tracking refs) that keeps `child` from
/// being created though `child` itself does not exist: git keeps refs as paths, so `a/b` cannot
/// sit next to `a`, nor `a` next to `a/b`.
pub fn clashing_branch(repo: &Repo, prefix: &str, child: &str) -> Option<String> {
    let mut parts = child.split('/').collect::<Vec<_>>();
    parts.pop();
    let mut dir = String::new();
    for p in parts {
        dir.push_str(p);
        if matches!(repo.ref_id(&format!("{prefix}{dir}")), Ok(Some(_))) {
            return Some(dir);
        }
        dir.push('/');
    }
    let below = repo.refs_under(&format!("{prefix}{child}/")).ok()?;
    below.into_iter().next().map(|(rest, _)| format!("{child}/{rest}"))
}

/// One child as a join sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ChildFacts {
    pub branch: String,
    /// Its head's `dwp-state` (None: missing branch, or no valid state).
    pub state: Option<String>,
    /// `done`, `failed`, `canceled`, `dead-letter`, `missing` or `pending`.
    pub outcome: &'static str,
    pub subject: String,
    /// The head's body, at most 4 KiB (cut on a character boundary).
    pub body: String,
    pub body_truncated: bool,
    /// The head's `dwp-cost`, as written.
    pub cost: Option<String>,
    /// The head commit (None: missing branch).
    pub head: Option<String>,
}

fn cut(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_owned(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

fn facts(branch: &str, commit: Option<&CommitInfo>) -> ChildFacts {
    let Some(c) = commit else {
        return ChildFacts {
            branch: branch.to_owned(),
            state: None,
            outcome: join::Outcome::Missing.as_str(),
            subject: String::new(),
            body: String::new(),
            body_truncated: false,
            cost: None,
            head: None,
        };
    };
    let state = c.state().valid().map(|s| s.to_string());
    let head = ChildHead::Head { state: state.clone(), dead_letter: last_text(&c.trailers, Key::DeadLetter).is_some() };
    let subject =
        String::from_utf8_lossy(c.message.split(|b| *b == b'\n').next().unwrap_or_default()).trim().to_owned();
    let (body, body_truncated) = cut(&body_of(&c.message), BODY_MAX);
    ChildFacts {
        branch: branch.to_owned(),
        state,
        outcome: outcome(&head).as_str(),
        subject,
        body,
        body_truncated,
        cost: last_text(&c.trailers, Key::Cost).map(|v| v.trim().to_owned()),
        head: Some(c.id.to_string()),
    }
}

/// The board's ref for a branch: local, or the tracking ref of this tick's fetch.
fn board_ref(remote: Option<&str>, branch: &str) -> String {
    match remote {
        Some(r) => format!("refs/remotes/{r}/{branch}"),
        None => format!("refs/heads/{branch}"),
    }
}

/// The join commit's message: a summary per child (bounded), the machine-readable trailers.
fn join_message(
    join: &JoinSpec,
    children: &[ChildFacts],
    state: &State,
    error: Option<&str>,
) -> Result<Vec<u8>, MessageError> {
    let mut trailers = vec![TrailerArg::new(join::JOINED, join.rule.to_string())?];
    match &join.selector {
        Some(Selector::Correlation(c)) => trailers.push(TrailerArg::new(join::CORRELATION, c)?),
        Some(Selector::Glob(g)) => trailers.push(TrailerArg::new(join::CHILDREN, g)?),
        None => {}
    }
    for c in children {
        let value =
            format!("{} {} {}", c.branch, c.head.as_deref().unwrap_or("-"), c.state.as_deref().unwrap_or(c.outcome));
        trailers.push(TrailerArg::new(join::JOINED_CHILD, value)?);
    }
    if let Some(e) = error {
        trailers.push(TrailerArg::reserved(Key::Error, e));
    }
    let room = MAX_MESSAGE_BYTES
        .saturating_sub(trailers.iter().map(|t| t.key.len() + t.value.len() + 3).sum::<usize>() + 8192);
    let done = children.iter().filter(|c| c.outcome == "done").count();
    let mut body = format!(
        "{} of {} children done (rule {}, on failure {}).\n",
        done,
        children.len(),
        join.rule,
        join.on_failure.as_str()
    );
    if let Some(e) = error {
        body.push_str(&format!("\nThe join failed: {e}\n"));
    }
    for (i, c) in children.iter().enumerate() {
        let mut section = format!("\n## {}: {}", c.branch, c.outcome);
        if let Some(s) = c.state.as_deref().filter(|s| *s != c.outcome) {
            section.push_str(&format!(" (state {s})"));
        }
        section.push('\n');
        if !c.subject.is_empty() {
            section.push_str(&format!("\n{}\n", c.subject));
        }
        if !c.body.is_empty() {
            section.push('\n');
            for line in c.body.lines() {
                section.push_str(if line.is_empty() { ">" } else { "> " });
                section.push_str(line);
                section.push('\n');
            }
            if c.body_truncated {
                section.push_str("> [cut at 4 KiB]\n");
            }
        }
        if let Some(cost) = &c.cost {
            section.push_str(&format!("\ncost: {cost}\n"));
        }
        if body.len() + section.len() > room {
            body.push_str(&format!(
                "\n… and {} more children (see the dwp-joined-child trailers)\n",
                children.len() - i
            ));
            break;
        }
        body.push_str(&section);
    }
    let subject = format!("baton: joined {} children ({}) -> {state}", children.len(), join.rule);
    compose(&subject, Some(&body), &trailers, state)
}

/// The join commit of a join too big for one commit (its `dwp-joined-child` trailers alone pass
/// the message limit): the parent goes to `failed` saying so, once, rather than the join failing
/// on every tick.
fn too_big_message(join: &JoinSpec, head: ObjectId) -> Result<(Vec<u8>, String), MessageError> {
    let why = format!(
        "the join of {} children does not fit in one commit (the 1 MiB message limit); the \
         dwp-join-child trailers of {head} name them",
        join.children.len()
    );
    let mut trailers = vec![TrailerArg::new(join::JOINED, join.rule.to_string())?];
    match &join.selector {
        Some(Selector::Correlation(c)) => trailers.push(TrailerArg::new(join::CORRELATION, c)?),
        Some(Selector::Glob(g)) => trailers.push(TrailerArg::new(join::CHILDREN, g)?),
        None => {}
    }
    trailers.push(TrailerArg::reserved(Key::Error, &why));
    let subject = format!("baton: joined {} children ({}) -> failed", join.children.len(), join.rule);
    let msg = compose(
        &subject,
        Some(&format!("The join failed: {why}.")),
        &trailers,
        &State::reserved_state(Reserved::Failed),
    )?;
    Ok((msg, why))
}

/// Write the join commit on a waiting parent by compare-and-swap from `head` (one runner wins; a
/// runner that loses does nothing).
pub(super) fn apply_join(
    ctx: &Ctx,
    branch: &str,
    head: ObjectId,
    join: &JoinSpec,
    failed: Option<&(Vec<String>, String)>,
) -> Result<()> {
    let repo = ctx.repo();
    let remote = ctx.board.remote();
    let children: Vec<ChildFacts> = join
        .children
        .iter()
        .map(|c| {
            let commit = repo.ref_id(&board_ref(remote, c)).ok().flatten().and_then(|id| repo.commit(id).ok());
            facts(c, commit.as_ref())
        })
        .collect();
    let mut state = match failed {
        Some(_) => State::reserved_state(Reserved::Failed),
        None => join.then.clone(),
    };
    let mut error = failed.map(|(_, why)| why.clone());
    let msg = match join_message(join, &children, &state, error.as_deref()) {
        Err(MessageError::TooLarge(_)) => {
            let (msg, why) = too_big_message(join, head)?;
            state = State::reserved_state(Reserved::Failed);
            error = Some(why);
            msg
        }
        other => other?,
    };
    let tree = repo.commit(head)?.tree;
    let id = repo.write_commit(tree, &[head], &msg, clock::now())?;
    let mut ev = Event::new(branch, Kind::LostRace);
    ev.state = Some(Reserved::Waiting.as_str().to_owned());
    match ctx.board.swap(&repo, branch, head, id, "baton: join")? {
        Swap::Done => {
            ev.action = Kind::Joined;
            ev.commit = Some(id.to_string());
            ev.next_state = Some(state.to_string());
            ev.error = Some(match error {
                Some(why) => why,
                None => format!("{} children, rule {}", children.len(), join.rule),
            });
        }
        Swap::Lost(_) => {}
        Swap::Failed(why) => {
            ev.action = Kind::Error;
            ev.error = Some(format!("could not write the join commit: {why}"));
        }
    }
    ctx.emit(ev);
    Ok(())
}

/// `BATON_CHILDREN_JSON`'s content (format version 1).
#[derive(Debug, Serialize)]
pub struct ChildrenJson {
    pub version: u32,
    pub parent: String,
    pub correlation_id: Option<String>,
    pub children_glob: Option<String>,
    pub rule: String,
    /// The state the join wrote (`then`, or `failed`).
    pub joined: String,
    pub children: Vec<ChildFacts>,
}

/// For a trigger that is a join commit: the children as they were when it was written (each
/// recorded head read once; no history walk).
pub fn children_json(repo: &Repo, branch: &str, trigger: &CommitInfo) -> Option<String> {
    let rule = trigger
        .trailers
        .iter()
        .rev()
        .find(|t| t.key == join::JOINED.as_bytes())
        .map(|t| t.value_lossy().trim().to_owned())?;
    let children = trigger
        .trailers
        .iter()
        .filter(|t| t.key == join::JOINED_CHILD.as_bytes())
        .filter_map(|t| {
            let v = t.value_lossy().into_owned();
            let mut parts = v.split_whitespace();
            let (name, head) = (parts.next()?.to_owned(), parts.next()?.to_owned());
            let commit = head.parse::<ObjectId>().ok().and_then(|id| repo.commit(id).ok());
            Some(facts(&name, commit.as_ref()))
        })
        .collect();
    let json = ChildrenJson {
        version: 1,
        parent: branch.to_owned(),
        correlation_id: trigger
            .trailers
            .iter()
            .rev()
            .find(|t| t.key == join::CORRELATION.as_bytes())
            .map(|t| t.value_lossy().trim().to_owned()),
        children_glob: trigger
            .trailers
            .iter()
            .rev()
            .find(|t| t.key == join::CHILDREN.as_bytes())
            .map(|t| t.value_lossy().trim().to_owned()),
        rule,
        joined: trigger.state().text().unwrap_or_default().to_owned(),
        children,
    };
    serde_json::to_string_pretty(&json).ok().map(|j| j + "\n")
}
