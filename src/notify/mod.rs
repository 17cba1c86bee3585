//! Completion notifications: every terminal or escalation outcome on a branch head (and every
//! circuit breaker that opens) reaches the notifiers its policy names, at least once, and — when
//! nothing fails — exactly once across every runner sharing the board.
//!
//! A pass decides from branch heads ([`decide`], pure), keyed by the head commit (or the breaker
//! commit that opened it); records deliveries on the board ([`store`]: one ref per notified
//! commit, written by compare-and-swap, pushed in remote mode); and runs the notifiers
//! ([`deliver`]). A sender first *claims* a notification (a record with an expiry), then delivers,
//! then marks it delivered; a notifier that fails leaves it released for the next pass, which
//! sends only to the notifiers that did not deliver yet.
//!
//! Cost: the delivered set is loaded once per pass from ref names and values (no object read);
//! a head already delivered, or committed before the watermark, costs a hash lookup or a
//! comparison. Commits are read only for heads that call for a notification and are not delivered
//! yet. Without any notifier configured, nothing is written.
//!
//! Old heads: only heads committed after notifications were enabled are notified. The first pass
//! that finds something to send writes the watermark `refs/baton/notified/since` (the start of the
//! `run`, or of the `watch` tick before, minus [`SLACK`]); until then, and in `--dry-run`, that
//! time applies without being written. Heads older than [`MAX_AGE`] are never notified, and
//! records of commits older than that are pruned ([`prune`]).

pub mod decide;
pub mod deliver;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::policy::{Base, Policy, Tier};
use crate::protocol::state::last_text;
use crate::protocol::{Key, Reserved, StateRead};
use crate::recovery::Breaker;
use crate::repo::{BranchSource, CommitInfo, HandlerLookup, ObjectId, Repo};
use crate::runner::backend::Swap;
use crate::runner::board::{read_card, BranchCard, Cache, PolicyRead, ReadOptions};
use crate::runner::source::Source;
use crate::runner::tick::TickSpec;
use decide::{Answer, Head, Notification};
use deliver::Notifier;
use store::{Claim, Store};

/// How long one notifier may run.
pub const NOTIFIER_TIMEOUT: Duration = Duration::from_secs(30);
/// Heads committed up to this long before the watermark still count (clocks of different
/// machines, a tick that started a little before the head was written).
pub const SLACK: i64 = 300;
/// Heads older than this are never notified; records of commits older than this are pruned.
pub const MAX_AGE: i64 = 30 * 86_400;
/// Commits walked back from a head to find the claim it answers.
const ANSWER_WALK: usize = 64;
/// Commits walked back along a breaker's history to find the one that opened it.
const BREAKER_WALK: usize = 64;

/// What shapes a pass.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// Remote mode: records are pushed to and fetched from this remote.
    pub remote: Option<String>,
    /// The runner's own settings (`--pass-env`), before the policy.
    pub base: Base,
    /// When notifications start if the board has no watermark yet (epoch seconds).
    pub since: i64,
    /// Say what would be sent; write and run nothing.
    pub dry_run: bool,
    pub runner_id: String,
}

/// What became of one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    Sent,
    WouldSend,
    /// Another runner is sending it (its claim has not expired).
    InFlight,
    /// Another runner claimed it first.
    LostRace,
    /// A notifier failed or is missing; the next pass tries again.
    Failed,
}

/// One notification of a pass.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The notified commit (the record's name).
    pub key: String,
    pub result: Delivery,
    pub notifiers: Vec<String>,
    pub error: Option<String>,
    pub notification: Notification,
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub items: Vec<Item>,
    /// One line per problem worth a person's attention (a missing notifier, once per pass).
    pub notices: Vec<String>,
}

impl Report {
    /// Log what happened: sent and failed at info/warn, notices as warnings.
    pub fn log(&self) {
        for n in &self.notices {
            tracing::warn!("notify: {n}");
        }
        for i in &self.items {
            let who = i.notification.task_id.clone().or_else(|| i.notification.breaker.clone()).unwrap_or_default();
            let what = format!("{} {}", i.notification.status.as_str(), i.notification.outcome);
            match i.result {
                Delivery::Sent => tracing::info!("{who}: notified {what} ({})", i.notifiers.join(", ")),
                Delivery::WouldSend => tracing::info!("{who}: would notify {what} ({})", i.notifiers.join(", ")),
                Delivery::Failed => tracing::warn!(
                    "{who}: notification {what} not delivered, retried next tick: {}",
                    i.error.as_deref().unwrap_or("")
                ),
                Delivery::InFlight | Delivery::LostRace => {
                    tracing::debug!("{who}: notification {what} sent by another runner")
                }
            }
        }
    }
}

/// Where a candidate's notifiers come from before they are written out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Spec {
    Command(String),
    /// `.dwp/notify` of this handler tree.
    Program(ObjectId),
}

impl Spec {
    fn id(&self) -> String {
        match self {
            Spec::Command(c) => c.split_whitespace().collect::<Vec<_>>().join(" "),
            Spec::Program(_) => deliver::PROGRAM.to_owned(),
        }
    }
}

/// A notification to send.
struct Candidate {
    key: ObjectId,
    record: Option<ObjectId>,
    notification: Notification,
    notifiers: Vec<Spec>,
    /// `env.pass` names of the states involved (and `--pass-env`).
    pass: Vec<String>,
}

/// Per-pass caches: policy facts by policy, `.dwp/notify` by tree.
struct Resolver<'a> {
    repo: &'a Repo,
    source: &'a Source,
    base: &'a Base,
    notify_tier: HashMap<*const Policy, bool>,
    /// Per policy: does a `notify` key list anything; does `[defaults]` set the key.
    keys: HashMap<*const Policy, (bool, bool)>,
    programs: HashMap<ObjectId, HandlerLookup>,
    notices: Vec<String>,
    said: HashSet<String>,
}

fn tier_of(policy: Option<&Policy>, state: &str) -> Tier {
    let Some(p) = policy else {
        return Tier::default();
    };
    p.state(state)
        .and_then(|s| s.tier.as_ref())
        .or(p.defaults().tier.as_ref())
        .map(|t| *t.get_ref())
        .unwrap_or_default()
}

/// The `notify` key for `state`: None when neither the state's table nor `[defaults]` sets it.
fn notify_key(policy: Option<&Policy>, state: &str) -> Option<Vec<String>> {
    let p = policy?;
    p.state(state).and_then(|s| s.notify.as_ref()).or(p.defaults().notify.as_ref()).map(|v| v.get_ref().clone())
}

impl Resolver<'_> {
    fn notice(&mut self, text: String) {
        if self.said.insert(text.clone()) {
            self.notices.push(text);
        }
    }

    fn any_notify_tier(&mut self, policy: Option<&Policy>) -> bool {
        let Some(p) = policy else {
            return false;
        };
        *self.notify_tier.entry(p as *const Policy).or_insert_with(|| {
            p.defaults().tier.as_ref().is_some_and(|t| *t.get_ref() == Tier::Notify)
                || p.states()
                    .any(|s| p.state(s).and_then(|t| t.tier.as_ref()).is_some_and(|t| *t.get_ref() == Tier::Notify))
        })
    }

    /// Could any notification under `policy` reach a notifier? A `notify` key with entries, or a
    /// state without the key whose handler source has a `.dwp/notify`.
    fn configured(&mut self, policy: Option<&Policy>, task_tree: ObjectId) -> bool {
        let (listed, all_set) = match policy {
            None => (false, false),
            Some(p) => *self.keys.entry(p as *const Policy).or_insert_with(|| {
                let d = p.defaults().notify.as_ref();
                let listed = d.is_some_and(|v| !v.get_ref().is_empty())
                    || p.states()
                        .any(|s| p.state(s).and_then(|t| t.notify.as_ref()).is_some_and(|v| !v.get_ref().is_empty()));
                (listed, d.is_some())
            }),
        };
        listed || (!all_set && self.program(task_tree) != HandlerLookup::Missing)
    }

    /// `.dwp/notify` in the handler source of `task_tree`, looked up once per tree.
    fn program(&mut self, task_tree: ObjectId) -> HandlerLookup {
        let tree = self.source.tree_for(task_tree);
        if let Some(f) = self.programs.get(&tree) {
            return f.clone();
        }
        let f = self.repo.lookup_handler(tree, ".dwp", "notify").unwrap_or(HandlerLookup::Missing);
        self.programs.insert(tree, f.clone());
        f
    }

    /// The notifiers of `states` under `policy` (handlers from `task_tree`'s source), each once,
    /// and whether one of them is there but cannot run (a notice was given).
    fn notifiers(&mut self, policy: Option<&Policy>, task_tree: ObjectId, states: &[&str]) -> (Vec<Spec>, bool) {
        let mut out: Vec<Spec> = Vec::new();
        let mut program = false;
        let mut broken = false;
        for s in states {
            match notify_key(policy, s) {
                Some(list) => {
                    for c in list {
                        let spec = Spec::Command(c);
                        if !out.contains(&spec) {
                            out.push(spec);
                        }
                    }
                }
                None => program = true,
            }
        }
        if program {
            match self.program(task_tree) {
                HandlerLookup::Found(_) => out.push(Spec::Program(self.source.tree_for(task_tree))),
                HandlerLookup::NotExecutable(p) => {
                    broken = true;
                    self.notice(format!("{p} is not executable: no notification sent through it"))
                }
                HandlerLookup::Missing => {}
            }
        }
        (out, broken)
    }

    fn pass_names(&self, policy: Option<&Policy>, states: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in states {
            for n in Policy::effective_or_base(policy, s, self.base).pass_names() {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        out
    }
}

/// The run a head answers: the runner's own record names it (a failure, a dead letter); else the
/// nearest commit with a `dwp-state` below the head must be a `working` commit (the claim or a
/// heartbeat of the run), reached through commits without a state (the handler's own work).
fn answer_of(repo: &Repo, head: &CommitInfo) -> Option<Answer> {
    let t = &head.trailers;
    if let Some(origin) = last_text(t, Key::OriginState) {
        return Some(Answer { origin_state: origin, run_id: last_text(t, Key::RunId) });
    }
    let mut next = head.parents.first().copied();
    for _ in 0..ANSWER_WALK {
        let c = repo.commit(next?).ok()?;
        match c.state() {
            StateRead::None => next = c.parents.first().copied(),
            StateRead::Valid(s) if s.is(Reserved::Working) => {
                return Some(Answer {
                    origin_state: last_text(&c.trailers, Key::OriginState)?,
                    run_id: last_text(&c.trailers, Key::RunId),
                });
            }
            _ => return None,
        }
    }
    None
}

/// The commit of a breaker's history that opened it for its current trip count (None: it never
/// opened).
fn breaker_opening(repo: &Repo, head: ObjectId) -> Option<(CommitInfo, Breaker)> {
    let c = repo.commit(head).ok()?;
    let b = Breaker::from_trailers(&c.trailers);
    if b.trips == 0 {
        return None;
    }
    let mut opening = c;
    for _ in 0..BREAKER_WALK {
        let Some(parent) = opening.parents.first().copied() else { break };
        let Ok(p) = repo.commit(parent) else { break };
        if Breaker::from_trailers(&p.trailers).trips < b.trips {
            break;
        }
        opening = p;
    }
    let b = Breaker::from_trailers(&opening.trailers);
    Some((opening, b))
}

/// The runner's environment as UTF-8 pairs (others are never passed on).
fn runner_env() -> Vec<(String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// A notifier's environment: a handler's base and what `pass` names (a protocol-looking name such
/// as `BATON_WEBHOOK_URL` passes when named exactly), plus the notification's own variables.
pub fn notifier_env(runner: &[(String, String)], pass: &[String], n: &Notification) -> Vec<(String, String)> {
    let mut ours: Vec<(String, String)> = vec![
        ("BATON_NOTIFY_TEXT".into(), n.text.clone()),
        ("BATON_NOTIFY_STATUS".into(), n.status.as_str().to_owned()),
        ("BATON_NOTIFY_OUTCOME".into(), n.outcome.clone()),
        ("BATON_COMMIT".into(), n.commit.clone()),
    ];
    if let Some(b) = &n.task_id {
        ours.push(("BATON_BRANCH".into(), b.clone()));
    }
    if let Some(s) = &n.state {
        ours.push(("BATON_STATE".into(), s.clone()));
    }
    let mut env = crate::policy::env::handler_env(runner, pass);
    env.extend(
        runner
            .iter()
            .filter(|(k, _)| {
                crate::policy::env::is_protocol_var(k)
                    && pass.iter().any(|p| p == k)
                    && !ours.iter().any(|(o, _)| o == k)
            })
            .cloned(),
    );
    env.extend(ours);
    env
}

/// Where notifier commands run: the main worktree, or the repository itself when it is bare.
fn top_dir(repo: &Repo) -> PathBuf {
    repo.workdir().unwrap_or_else(|| repo.common_dir()).to_path_buf()
}

/// One notification pass over `cards` (the board as read, with `source` the handler source).
pub fn pass(repo: &Repo, cards: &[BranchCard], source: &Source, opts: &PassOptions, now: i64) -> Result<Report> {
    let store = Store::new(opts.remote.as_deref());
    let records = store.load(repo)?;
    let delivered = store::delivered_id();
    let watermark = store.since(repo, &records);
    let eligible = watermark.unwrap_or(opts.since).saturating_sub(SLACK).max(now.saturating_sub(MAX_AGE));
    let mut r = Resolver {
        repo,
        source,
        base: &opts.base,
        notify_tier: HashMap::new(),
        keys: HashMap::new(),
        programs: HashMap::new(),
        notices: Vec::new(),
        said: HashSet::new(),
    };
    let mut candidates = Vec::new();
    // Heads that call for nothing although notifiers are configured: recorded as settled.
    let mut settle: Vec<ObjectId> = Vec::new();
    for card in cards {
        let record = records.by_key.get(&card.head.id).copied();
        if record == Some(delivered) || card.commit.committer_time < eligible {
            continue;
        }
        let policy = match &card.policy {
            PolicyRead::Ok(p) => Some(p.as_ref()),
            _ => None,
        };
        let any_notify = r.any_notify_tier(policy);
        // The state alone calls for news, or the head may answer a `tier = "notify"` state: only
        // then, and only when some notifier could hear it, is the run it answers looked up.
        let news = decide::is_news(&card.commit.trailers, None, |s| tier_of(policy, s));
        if !(news || any_notify && decide::wants_answer(&card.commit.trailers, true))
            || !r.configured(policy, card.commit.tree)
        {
            continue;
        }
        let answer = answer_of(repo, &card.commit);
        let commit = card.head.id.to_string();
        let head = Head {
            branch: &card.head.branch,
            commit: &commit,
            message: &card.commit.message,
            trailers: &card.commit.trailers,
            answer: answer.as_ref(),
        };
        let Some(n) = decide::decide(&head, |s| tier_of(policy, s)) else {
            // Looked up for nothing: settle it, so that the next pass does not walk again.
            if record.is_none() {
                settle.push(card.head.id);
            }
            continue;
        };
        let mut states: Vec<&str> = n.state.iter().map(String::as_str).collect();
        if let Some(o) = n.origin_state.as_deref().filter(|o| !states.contains(o)) {
            states.push(o);
        }
        let (notifiers, broken) = r.notifiers(policy, card.commit.tree, &states);
        if notifiers.is_empty() {
            // No notifier for these states (a broken one waits until it is fixed).
            if record.is_none() && !broken {
                settle.push(card.head.id);
            }
            continue;
        }
        let pass = r.pass_names(policy, &states);
        candidates.push(Candidate { key: card.head.id, record, notification: n, notifiers, pass });
    }
    breaker_candidates(&mut r, cards, &records, opts, eligible, &mut candidates)?;
    let mut report = Report::default();
    if !settle.is_empty() && !opts.dry_run {
        store::write_delivered(repo)?;
        if let Err(e) = store.settle(repo, &settle) {
            tracing::debug!("recording {} head(s) with nothing to send: {e:#}", settle.len());
        }
    }
    if !candidates.is_empty() {
        if watermark.is_none() && !opts.dry_run {
            store.set_since(repo, opts.since, now)?;
        }
        if !opts.dry_run {
            store::write_delivered(repo)?;
        }
        let env = runner_env();
        for c in candidates {
            report.items.push(send(repo, &store, &mut r, c, &env, opts));
        }
    }
    let wrote = !settle.is_empty() || !report.items.is_empty();
    if wrote && !opts.dry_run {
        store.pack_loose(repo);
    }
    report.notices = r.notices;
    Ok(report)
}

/// Breakers whose latest opening is not notified yet. Their notifiers: those of the states on the
/// board whose failures count against the breaker (or whose dead letter names it).
fn breaker_candidates(
    r: &mut Resolver<'_>,
    cards: &[BranchCard],
    records: &store::Records,
    opts: &PassOptions,
    eligible: i64,
    out: &mut Vec<Candidate>,
) -> Result<()> {
    let board = match &opts.remote {
        Some(remote) => BranchSource::Remote(remote.clone()),
        None => BranchSource::Local,
    };
    let delivered = store::delivered_id();
    for (name, head) in r.repo.refs_under(&crate::runner::breakers::read_prefix(&board))? {
        let Some((opening, b)) = breaker_opening(r.repo, head) else { continue };
        let record = records.by_key.get(&opening.id).copied();
        if record == Some(delivered) || opening.committer_time < eligible {
            continue;
        }
        let mut notifiers: Vec<Spec> = Vec::new();
        let mut pass: Vec<String> = Vec::new();
        let mut shares: HashMap<(*const Policy, String), bool> = HashMap::new();
        let mut seen: HashSet<(*const Policy, ObjectId, String)> = HashSet::new();
        for card in cards {
            let policy = match &card.policy {
                PolicyRead::Ok(p) => Some(p.as_ref()),
                _ => None,
            };
            let Some(state) = card.state.valid() else { continue };
            let state = match last_text(&card.commit.trailers, Key::Breaker) {
                // A dead letter whose error counted against this breaker: its origin's notifiers.
                Some(n) if n == name => match last_text(&card.commit.trailers, Key::OriginState) {
                    Some(o) => o,
                    None => continue,
                },
                _ if state.reserved().is_some() => continue,
                _ => state.as_str().to_owned(),
            };
            let ptr = policy.map_or(std::ptr::null(), |p| p as *const Policy);
            let shared = *shares.entry((ptr, state.clone())).or_insert_with(|| match policy {
                Some(p) => p.failure(&state).breaker.value == name,
                None => state == name,
            });
            if !shared || !seen.insert((ptr, card.commit.tree, state.clone())) {
                continue;
            }
            for s in r.notifiers(policy, card.commit.tree, &[&state]).0 {
                if !notifiers.contains(&s) {
                    notifiers.push(s);
                }
            }
            for p in r.pass_names(policy, &[&state]) {
                if !pass.contains(&p) {
                    pass.push(p);
                }
            }
        }
        if notifiers.is_empty() {
            continue;
        }
        let n = decide::breaker_opened(&name, &opening.id.to_string(), b.reason.as_deref(), b.last_error.as_deref());
        out.push(Candidate { key: opening.id, record, notification: n, notifiers, pass });
    }
    Ok(())
}

/// Claim, deliver, record one notification.
fn send(
    repo: &Repo,
    store: &Store,
    r: &mut Resolver<'_>,
    c: Candidate,
    runner: &[(String, String)],
    opts: &PassOptions,
) -> Item {
    let now = crate::runner::clock::now();
    let key = c.key.to_string();
    let ids: Vec<String> = c.notifiers.iter().map(Spec::id).collect();
    let mut item = Item {
        key: key.clone(),
        result: Delivery::Failed,
        notifiers: ids.clone(),
        error: None,
        notification: c.notification,
    };
    let top = top_dir(repo);
    let env = notifier_env(runner, &c.pass, &item.notification);
    let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
    // Where the record stands.
    let (expected, mut sent) = match c.record {
        None => (None, Vec::new()),
        Some(v) => {
            let claim = store.claim(repo, v);
            if claim.until > now {
                item.result = Delivery::InFlight;
                return item;
            }
            (Some(v), claim.sent)
        }
    };
    if opts.dry_run {
        item.result = Delivery::WouldSend;
        return item;
    }
    // Write out `.dwp/notify` programs and find missing notifiers before claiming anything.
    let mut runnable: Vec<(String, Notifier)> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for (spec, id) in c.notifiers.iter().zip(&ids) {
        if sent.contains(id) {
            continue;
        }
        let n = match spec {
            Spec::Command(cmd) => Notifier::Command(cmd.clone()),
            Spec::Program(tree) => {
                let root = crate::repo::worktree::Scratch::new(repo.common_dir()).root.join("handlers");
                match repo.materialize_handlers(&root, *tree) {
                    Ok(dir) => Notifier::Program { path: dir.join(deliver::PROGRAM) },
                    Err(e) => {
                        problems.push(format!("{id}: {e:#}"));
                        continue;
                    }
                }
            }
        };
        if let Some(why) = deliver::precheck(&n, &top, path) {
            r.notice(format!("notifier {why}; its notifications wait until it can run"));
            problems.push(why);
            continue;
        }
        runnable.push((id.clone(), n));
    }
    if runnable.is_empty() {
        if problems.is_empty() {
            // Every notifier had it already (a sender stopped before recording that).
            if let Some(v) = expected {
                if let Ok(Swap::Done) = store.put(repo, &key, Some(v), store::delivered_id()) {
                    item.result = Delivery::Sent;
                }
            }
        }
        item.error = (!problems.is_empty()).then(|| problems.join("; "));
        return item;
    }
    let input = match serde_json::to_string(&item.notification) {
        Ok(s) => s + "\n",
        Err(e) => {
            item.error = Some(format!("encoding it: {e}"));
            return item;
        }
    };
    // Claim it: nobody else sends it while the claim holds.
    let slots = i64::try_from(runnable.len()).unwrap_or(i64::MAX).saturating_add(1);
    let until = now.saturating_add(slots.saturating_mul(NOTIFIER_TIMEOUT.as_secs() as i64));
    let claim = Claim { runner_id: Some(opts.runner_id.clone()), until, sent: sent.clone() };
    let claim_id = match store.put_claim(repo, &key, expected, &claim, &item.notification.text, now) {
        Ok((id, Swap::Done)) => id,
        Ok((_, Swap::Lost(_))) => {
            item.result = Delivery::LostRace;
            return item;
        }
        Ok((_, Swap::Failed(why))) => {
            item.error = Some(format!("could not claim it: {why}"));
            return item;
        }
        Err(e) => {
            item.error = Some(format!("could not claim it: {e:#}"));
            return item;
        }
    };
    for (id, n) in &runnable {
        match deliver::run(n, &top, &env, input.as_bytes(), NOTIFIER_TIMEOUT) {
            Ok(()) => sent.push(id.clone()),
            Err(deliver::Failure::Missing(why)) => {
                r.notice(format!("notifier {id}: {why}; its notifications wait until it can run"));
                problems.push(format!("{id}: {why}"));
            }
            Err(deliver::Failure::Failed(why)) => problems.push(format!("{id}: {why}")),
        }
    }
    let now = crate::runner::clock::now();
    if problems.is_empty() {
        item.result = Delivery::Sent;
        match store.put(repo, &key, Some(claim_id), store::delivered_id()) {
            Ok(Swap::Done) => {}
            Ok(Swap::Lost(why)) => tracing::warn!("notification {key} delivered, but its claim was taken over ({why})"),
            Ok(Swap::Failed(why)) => {
                tracing::warn!("notification {key} delivered but not recorded ({why}): it may be sent again")
            }
            Err(e) => tracing::warn!("notification {key} delivered but not recorded ({e:#}): it may be sent again"),
        }
    } else {
        item.error = Some(problems.join("; "));
        // Release it for the next pass, remembering who already has it.
        let released = Claim { runner_id: Some(opts.runner_id.clone()), until: 0, sent };
        if let Err(e) = store.put_claim(repo, &key, Some(claim_id), &released, &item.notification.text, now) {
            tracing::debug!("releasing the claim of {key}: {e:#}");
        }
    }
    item
}

/// After a tick: a pass over the board as the tick read it (`cards`), or — when the tick's jobs
/// may have moved heads (`moved`) — over the board read again, reusing the cards of heads that
/// did not move. Never fails the tick: the caller logs the error.
pub fn after_tick(
    cwd: &Path,
    spec: &TickSpec,
    source: &Source,
    cards: Vec<BranchCard>,
    moved: bool,
    since: i64,
) -> Result<Report> {
    let repo = Repo::discover(cwd)?;
    let cards = if moved { reread(&repo, spec, source, cards)? } else { cards };
    let opts = PassOptions {
        remote: spec.remote.clone(),
        base: spec.base.clone(),
        since,
        dry_run: false,
        runner_id: crate::runner::executor::runner_id(),
    };
    pass(&repo, &cards, source, &opts, crate::runner::clock::now())
}

/// [`after_tick`] for `run` and `watch`: what it did is logged, an error is a warning.
pub fn after_tick_logged(
    cwd: &Path,
    spec: &TickSpec,
    source: &Source,
    cards: Vec<BranchCard>,
    moved: bool,
    since: i64,
) {
    match after_tick(cwd, spec, source, cards, moved, since) {
        Ok(report) => report.log(),
        Err(e) => tracing::warn!("notification pass failed (retried next tick): {e:#}"),
    }
}

/// Whether a tick's actions may have moved branch heads (anything but notices).
pub fn moves_heads(actions: &[crate::runner::plan::Action]) -> bool {
    actions.iter().any(|a| !matches!(a, crate::runner::plan::Action::Notice { .. }))
}

/// The selected branches as they are now (fetched again in remote mode), reusing `cards` for
/// heads that did not move.
fn reread(repo: &Repo, spec: &TickSpec, source: &Source, cards: Vec<BranchCard>) -> Result<Vec<BranchCard>> {
    let (board, prefix) = match &spec.remote {
        Some(r) => {
            crate::runner::remote::fetch(repo.common_dir(), r).map_err(|e| anyhow::anyhow!("fetching {r}: {e}"))?;
            (BranchSource::Remote(r.clone()), format!("{r}/"))
        }
        None => (BranchSource::Local, String::new()),
    };
    let mut known: HashMap<(String, ObjectId), BranchCard> =
        cards.into_iter().map(|c| ((c.head.branch.clone(), c.head.id), c)).collect();
    let opts = ReadOptions { role: spec.role.as_deref(), handlers: source };
    let mut cache = Cache::default();
    let mut out = Vec::new();
    for mut h in repo.branches(&board).context("listing branches")? {
        let short = h.branch.strip_prefix(&prefix).unwrap_or(&h.branch).to_owned();
        if !crate::runner::select::branch_selected(&spec.branches, &short) {
            continue;
        }
        if let Some(c) = known.remove(&(short.clone(), h.id)) {
            out.push(c);
            continue;
        }
        let read = read_card(repo, &mut cache, &board, h.clone(), opts);
        h.branch = short;
        match read {
            Ok(mut c) => {
                c.head.branch = h.branch;
                out.push(c);
            }
            Err(e) => tracing::debug!("{}: cannot be read: {e:#}", h.branch),
        }
    }
    Ok(out)
}

/// Delete records of commits older than [`MAX_AGE`] (or gone): such heads are never notified
/// again. Returns how many went.
pub fn prune(repo: &Repo, remote: Option<&str>, now: i64, dry_run: bool) -> Result<Vec<String>> {
    let store = Store::new(remote);
    let records = store.load(repo)?;
    let mut old: Vec<(String, ObjectId)> = Vec::new();
    for (key, value) in &records.by_key {
        let gone = repo.commit(*key).map(|c| c.committer_time < now.saturating_sub(MAX_AGE)).unwrap_or(true);
        if gone {
            old.push((key.to_string(), *value));
        }
    }
    old.sort();
    if !dry_run {
        store.delete(repo, &old)?;
    }
    Ok(old.into_iter().map(|(k, _)| Store::board_ref(&k)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifiers_get_a_handlers_environment_and_their_own_settings() {
        let runner: Vec<(String, String)> = [
            ("PATH", "/bin"),
            ("GITHUB_TOKEN", "x"),
            ("BATON_WEBHOOK_URL", "http://h"),
            ("BATON_TRUSTED_REF", "main"),
            ("BATON_NOTIFY_TEXT", "forged"),
            ("SLACK_CHANNEL", "#ops"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let t = crate::protocol::trailers::parse(b"built\n\ndwp-state: done\n");
        let head =
            Head { branch: "t1", commit: "abc", message: b"built\n\ndwp-state: done\n", trailers: &t, answer: None };
        let n = decide::decide(&head, |_| Tier::Autonomous).unwrap();
        let pass = vec![
            "BATON_WEBHOOK_URL".to_owned(),
            "BATON_NOTIFY_TEXT".to_owned(),
            "SLACK_*".to_owned(),
            "BATON_*".to_owned(),
        ];
        let env = notifier_env(&runner, &pass, &n);
        let get = |k: &str| env.iter().filter(|(n, _)| n == k).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        assert_eq!(get("PATH"), ["/bin"]);
        assert_eq!(get("GITHUB_TOKEN"), Vec::<&str>::new());
        assert_eq!(get("BATON_WEBHOOK_URL"), ["http://h"], "named exactly");
        assert_eq!(get("BATON_TRUSTED_REF"), Vec::<&str>::new(), "a glob does not pass protocol names");
        assert_eq!(get("SLACK_CHANNEL"), ["#ops"]);
        assert_eq!(get("BATON_NOTIFY_TEXT"), ["Task t1 COMPLETED: built"], "ours, never the runner's");
        assert_eq!(get("BATON_BRANCH"), ["t1"]);
        assert_eq!(get("BATON_STATE"), ["done"]);
    }
}
