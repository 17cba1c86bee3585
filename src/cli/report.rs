//! `git baton report`: the board, the inbox, the runs, the graphs and the metrics as one static
//! HTML page. This file reads the facts out of git; `crate::report` renders them purely.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use super::output::{branch_selected, usage};
use super::scan::{fold_history, parse_since};
use super::Out;
use crate::history::budget;
use crate::history::{Metrics, Record, RunResult, Transitions};
use crate::policy::HumansPolicy;
use crate::protocol::state::last_text;
use crate::protocol::{Key, LeaseStatus, Reserved, StateRead};
use crate::repo::walk::{HistoryWalk, KEEP_BYTES};
use crate::repo::{BranchSource, ObjectId, Repo};
use crate::report::{BudgetUse, Facts, InboxEntry, Limits, RunBar, Task};
use crate::runner::before::{entries, WALK_LIMIT};
use crate::runner::board::{read_board, BranchCard, PolicyRead, ReadOptions};
use crate::runner::clock;

/// Write one self-contained HTML page (no network: inline CSS and SVG, a little JavaScript to
/// sort the tables and filter the board) with: the board (every task with its state, lease, age,
/// attempt, budget use, parent and dependencies, coloured by state); the inbox (what waits for a
/// person and the command that answers it, as `git baton inbox`); a runs timeline (one lane per
/// branch, one bar per run coloured by how it ended; hover for run id, runner, duration, error);
/// the state-transition graph and the task tree / dependency graph; and the metrics (p50/p95 per
/// state, failure and retry rates, the escalation rate against the healthy 10–15 % band, cost per
/// state). Past 2,000 tasks, 500 inbox items, 60 timeline lanes or 3,000 bars, or 150 graph nodes
/// the page shows the most relevant part and says so.
///
/// Open the page with `#filter=TEXT` (or `?q=TEXT`) to filter the board and the inbox on load.
///
/// Without `-o` the page goes to stdout. `--json` (with `-o`) prints one object:
/// `{"path","bytes","tasks","inbox","runs"}`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the page to FILE (atomically: a temporary file in the same folder, then a rename).
    #[arg(short = 'o', long = "output", value_name = "FILE.html")]
    output: Option<PathBuf>,
    /// Only runs and transitions at or after DATE (seconds since the epoch, YYYY-MM-DD or
    /// YYYY-MM-DDTHH:MM:SSZ, UTC); the board and the inbox are always the current ones.
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Only branches matching this glob (`*`, `?`, `[...]`); repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    branches: Vec<String>,
    /// Print a JSON summary of what was written (needs `-o`).
    #[arg(long, requires = "output")]
    json: bool,
}

#[derive(Serialize)]
struct Written<'a> {
    path: &'a Path,
    bytes: usize,
    tasks: usize,
    inbox: usize,
    runs: u64,
}

pub fn cmd_report(cwd: &Path, args: Args) -> Result<ExitCode> {
    let since = parse_since(args.since.as_deref())?;
    if let Some(p) = &args.output {
        if p.as_os_str().is_empty() || p.file_name().is_none() {
            return Err(usage(format!("-o {}: not a file name", p.display())));
        }
    }
    let repo = Repo::discover(cwd)?;
    let facts = gather(&repo, &args.branches, since, clock::now(), Limits::default())?;
    let page = crate::report::render(&facts, Limits::default());
    let mut out = Out::new();
    match &args.output {
        Some(path) => {
            write_atomically(path, page.as_bytes())?;
            if args.json {
                out.json(&Written {
                    path,
                    bytes: page.len(),
                    tasks: facts.tasks.len(),
                    inbox: facts.inbox.len(),
                    runs: facts.metrics.runs,
                })?;
            } else {
                tracing::info!("wrote {} ({} bytes)", path.display(), page.len());
            }
        }
        None => out.bytes(page.as_bytes())?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The page for the branches matching `globs`, written to `path` atomically (for `watch
/// --report`).
pub(super) fn write_report(cwd: &Path, path: &Path, globs: &[String]) -> Result<usize> {
    let repo = Repo::discover(cwd)?;
    let facts = gather(&repo, globs, None, clock::now(), Limits::default())?;
    let page = crate::report::render(&facts, Limits::default());
    write_atomically(path, page.as_bytes())?;
    Ok(page.len())
}

/// Write a temporary file next to `path` and rename it over `path`: a reader (a web server)
/// sees the old page or the new one, never half of one.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".baton-report.")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    // Readable by a web server (a temp file is created 0600): the old page's mode, else 0644.
    let mode = std::fs::metadata(path).map_or(0o644, |m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(mode))
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A fingerprint of every local branch head and every ref under `refs/baton/`: when it did not
/// change, neither did the page (but for ages and lease clocks).
pub(super) fn board_fingerprint(cwd: &Path) -> Result<u64> {
    use std::hash::{Hash, Hasher};
    let repo = Repo::discover(cwd)?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for b in repo.branches(&BranchSource::Local)? {
        b.branch.hash(&mut h);
        b.id.hash(&mut h);
    }
    for (name, id) in repo.refs_under("refs/baton/")? {
        name.hash(&mut h);
        id.hash(&mut h);
    }
    Ok(h.finish())
}

/// Read everything the page shows.
pub fn gather(repo: &Repo, globs: &[String], since: Option<i64>, now: i64, limits: Limits) -> Result<Facts> {
    let handlers = crate::runner::source::configured(repo, None, None)?;
    let board = read_board(
        repo,
        &BranchSource::Local,
        |b| branch_selected(globs, b),
        ReadOptions { role: None, handlers: &handlers },
    )?;
    let inbox = super::inbox::items(repo, &board, now, None)?
        .into_iter()
        .map(|i| InboxEntry {
            kind: i.kind.to_owned(),
            what: i.branch.or(i.breaker).unwrap_or_default(),
            state: i.state,
            age_seconds: i.age_seconds,
            summary: i.summary,
            options: i.options,
            command: i.command,
        })
        .collect();
    // Every task from its head; the ones the board will show (at most `limits.tasks`) also from
    // their own history (budget use, a `dwp-parent` below the head): that walk is the second
    // most expensive read, and a task not shown needs no budget.
    let mut tasks: Vec<Task> = board.cards.iter().map(|c| task(repo, c, now, None)).collect();
    let stated: Vec<usize> =
        (0..tasks.len()).filter(|&i| tasks[i].state.is_some() || tasks[i].invalid.is_some()).collect();
    let candidates: Vec<Task> = stated.iter().map(|&i| tasks[i].clone()).collect();
    let deep: Vec<usize> =
        crate::report::pick_tasks(&candidates, limits.tasks).into_iter().map(|j| stated[j]).collect();
    let cards: Vec<&BranchCard> = deep.iter().map(|&i| &board.cards[i]).collect();
    for (i, t) in deep.iter().zip(tasks_of(repo, &cards, now)?) {
        tasks[*i] = t;
    }
    for u in &board.unreadable {
        tasks.push(Task {
            branch: u.head.branch.clone(),
            state: None,
            invalid: None,
            lease: "n/a",
            lease_left: None,
            runner: None,
            age_seconds: 0,
            attempt: None,
            budget: None,
            parent: None,
            depends_on: Vec::new(),
            error: Some(u.why.clone()),
        });
    }
    // History: the default branch first, then parents before their children, so that a run is
    // drawn in the lane of the branch it happened on (a child spawned from its parent's head
    // shares the parent's history).
    let parents: HashMap<&str, &str> =
        tasks.iter().filter_map(|t| Some((t.branch.as_str(), t.parent.as_deref()?))).collect();
    let depth = |b: &str| {
        let (mut d, mut at) = (0usize, b);
        while let Some(p) = parents.get(at) {
            d += 1;
            at = p;
            if d > 64 {
                break;
            }
        }
        d
    };
    let default = repo.head_branch().ok().flatten();
    let mut heads: Vec<(usize, bool, String, ObjectId)> = board
        .cards
        .iter()
        .map(|c| (depth(&c.head.branch), Some(&c.head.branch) != default.as_ref(), c.head.branch.clone(), c.head.id))
        .collect();
    heads.sort_by(|a, b| (a.1, a.0, &a.2).cmp(&(b.1, b.0, &b.2)));
    let (runs, metrics, transitions) = history(repo, &heads, since)?;
    let with_runs: HashSet<&String> = runs.keys().collect();
    // The board lists tasks: branches with a state (or a bad one, or a parent, or runs).
    tasks.retain(|t| {
        t.state.is_some()
            || t.invalid.is_some()
            || t.error.is_some()
            || t.parent.is_some()
            || with_runs.contains(&t.branch)
    });
    let mut scope = Vec::new();
    if let Some(s) = since {
        scope.push(format!("runs since {}", clock::iso_utc(s)));
    }
    if !globs.is_empty() {
        scope.push(format!("branches {}", globs.join(" ")));
    }
    Ok(Facts { now, scope: scope.join("; "), tasks, inbox, runs, transitions, metrics })
}

/// The tasks of `cards`, in order, each read with its own history (budget, parent): on a big
/// board that is split over the cores, each thread with its own handle on the one repository.
fn tasks_of(repo: &Repo, cards: &[&BranchCard], now: i64) -> Result<Vec<Task>> {
    // Where tasks leave the default branch, read once (a merge base per task costs a walk each).
    let mainline = super::tree::mainline(repo);
    let mainline = Some(&mainline);
    let threads = crate::repo::cores().min(8);
    if cards.len() < 256 || threads < 2 {
        return Ok(cards.iter().map(|c| task(repo, c, now, mainline)).collect());
    }
    let shared = repo.gix().clone().into_sync();
    let chunk = cards.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = cards
            .chunks(chunk)
            .map(|part| {
                let shared = &shared;
                scope.spawn(move || {
                    let repo = Repo::from_sync(shared);
                    part.iter().map(|c| task(&repo, c, now, mainline)).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(cards.len());
        for w in workers {
            out.extend(w.join().map_err(|_| anyhow::anyhow!("a reader thread panicked"))?);
        }
        Ok(out)
    })
}

/// One task as the board shows it; `deep`: also read its own history (its budget use, and a
/// `dwp-parent` that is not on the head) down to where it left the default branch (`mainline`,
/// the default branch's first-parent history), else only its head.
fn task(repo: &Repo, card: &BranchCard, now: i64, deep: Option<&HashSet<ObjectId>>) -> Task {
    let policy = match &card.policy {
        PolicyRead::Ok(p) => Some(p.as_ref()),
        _ => None,
    };
    let bounded = card.lease.as_ref().map(|l| {
        let state = l.origin_state.as_deref().unwrap_or("working");
        crate::runner::plan::bounded_lease(l, policy, state, &crate::policy::Base::default(), now).0
    });
    let (lease, lease_left) = match bounded.as_ref().map(|l| l.status(now)) {
        Some(LeaseStatus::Active { seconds_left }) => ("active", Some(seconds_left)),
        Some(LeaseStatus::Expired { seconds_ago }) => ("expired", Some(-seconds_ago)),
        None => ("n/a", None),
    };
    let t = &card.commit.trailers;
    let valid = card.state.valid();
    // The task's own history: its budget, and the `dwp-parent` its first state commit carries.
    let history = match deep.filter(|_| valid.is_some() || matches!(card.state, StateRead::Invalid(_))) {
        Some(mainline) => match repo.first_parents_until(card.head.id, |id| mainline.contains(id), WALK_LIMIT) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("{}: history cannot be read: {e:#}", card.head.branch);
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let parent = last_text(t, Key::Parent)
        .or_else(|| history.iter().find_map(|c| last_text(&c.trailers, Key::Parent)))
        .map(|p| p.trim().to_owned());
    let budget_state = last_text(t, Key::OriginState)
        .map(|s| s.trim().to_owned())
        .or_else(|| valid.filter(|s| !s.is(Reserved::Working)).map(|s| s.to_string()));
    let budget = budget_state.filter(|_| !history.is_empty()).and_then(|state| {
        let humans = policy.map_or_else(HumansPolicy::built_in, |p| p.humans(&state));
        budget_use(&budget::budget(&entries(&history), &humans, Some(now)))
    });
    Task {
        branch: card.head.branch.clone(),
        state: valid.map(|s| s.to_string()),
        invalid: match &card.state {
            StateRead::Invalid(v) => Some(v.clone()),
            _ => None,
        },
        lease,
        lease_left,
        runner: card.lease.as_ref().and_then(|l| l.runner_id.clone()),
        age_seconds: now - card.commit.committer_time,
        attempt: last_text(t, Key::Attempt).and_then(|v| v.trim().parse().ok()),
        budget,
        parent,
        depends_on: crate::runner::deps::dependencies(t).0,
        error: None,
    }
}

/// A budget as one cell: what was spent, against the limits; nothing when nothing was spent and
/// nothing is limited.
fn budget_use(b: &budget::Budget) -> Option<BudgetUse> {
    let (l, s) = (&b.limits, &b.spent);
    let limited = l.runs.value.is_some() || l.seconds.value.is_some() || l.cost.value.is_some();
    if !limited && s.runs == 0 && s.cost.0 == 0 && s.tokens == 0 {
        return None;
    }
    let part = |spent: u64, limit: Option<u64>, unit: &str| match limit {
        Some(n) => format!("{spent}/{n}{unit}"),
        None => format!("{spent}{unit}"),
    };
    let mut text =
        vec![part(u64::from(s.runs), l.runs.value.map(u64::from), " runs"), part(s.seconds, l.seconds.value, "s")];
    match l.cost.value {
        Some(c) => text.push(format!("cost {}/{c}", s.cost)),
        None if s.cost.0 > 0 => text.push(format!("cost {}", s.cost)),
        None => {}
    }
    if s.tokens > 0 {
        text.push(format!("{} tokens", s.tokens));
    }
    let share = |spent: u64, limit: Option<u64>| {
        limit.map(|n| if n == 0 { 100 } else { (u128::from(spent) * 100 / u128::from(n)) as u64 })
    };
    let percent = [
        share(u64::from(s.runs), l.runs.value.map(u64::from)),
        share(s.seconds, l.seconds.value),
        share(s.cost.0, l.cost.value.map(|c| c.0)),
    ]
    .into_iter()
    .flatten()
    .max();
    Some(BudgetUse { status: b.status.as_str(), text: text.join(", "), percent })
}

type History = (BTreeMap<String, Vec<RunBar>>, Metrics, Transitions);
type Records = HashMap<ObjectId, (Record, usize)>;

fn finished(r: &Record) -> bool {
    !matches!(r, Record::Run(run) if run.result == RunResult::Running)
}

/// Keep one record per key: a finished one over a running one (a run seen from two branches is
/// finished if either saw it finish), and the lane of the first branch (in `heads` order) that
/// reached it.
fn keep(records: &mut Records, r: Record, bi: usize) {
    match records.get_mut(&r.key()) {
        None => {
            records.insert(r.key(), (r, bi));
        }
        Some((old, first)) => {
            if !finished(old) && finished(&r) {
                *old = r;
            }
            *first = (*first).min(bi);
        }
    }
}

/// Walk the heads at `idx` (ascending) with one shared set of seen commits.
fn walk_group(repo: &Repo, heads: &[(usize, bool, String, ObjectId)], idx: &[usize], since: Option<i64>) -> Records {
    let mut seen = HashSet::new();
    let mut records = Records::new();
    for &bi in idx {
        let (_, _, branch, id) = &heads[bi];
        let mut walk = HistoryWalk { all_parents: false, since, seen: Some(&mut seen), keep_bytes: KEEP_BYTES };
        let walked = fold_history(repo, *id, &mut walk, |r| {
            if since.is_none_or(|s| r.started() >= s) {
                keep(&mut records, r, bi);
            }
            Ok(())
        });
        if let Err(e) = walked {
            tracing::warn!("{branch}: history cannot be read, skipped: {e:#}");
        }
    }
    records
}

/// Fold the history of `heads` (in order; each commit once, in the lane of the first branch that
/// reaches it) into runs per branch, metrics and transitions. Records that started before `since`
/// are left out. A branch whose history cannot be read is a warning.
///
/// On a big board the branches are dealt round-robin to one thread per core, each walking the
/// default branch first and then its share with its own set of seen commits; history two groups
/// share is read twice and its records kept once ([`keep`]), so the result is the one a single
/// walk in `heads` order gives.
fn history(repo: &Repo, heads: &[(usize, bool, String, ObjectId)], since: Option<i64>) -> Result<History> {
    let threads = crate::repo::cores().min(4);
    let default_first = heads.first().is_some_and(|h| !h.1);
    let records = if heads.len() < 256 || threads < 2 {
        walk_group(repo, heads, &(0..heads.len()).collect::<Vec<_>>(), since)
    } else {
        let shared = repo.gix().clone().into_sync();
        let groups: Vec<Vec<usize>> = (0..threads)
            .map(|g| {
                let start = usize::from(default_first);
                let mut idx: Vec<usize> = (start..heads.len()).filter(|i| i % threads == g).collect();
                if default_first {
                    idx.insert(0, 0);
                }
                idx
            })
            .collect();
        let parts: Result<Vec<Records>> = std::thread::scope(|scope| {
            let workers: Vec<_> = groups
                .iter()
                .map(|idx| {
                    let shared = &shared;
                    scope.spawn(move || walk_group(&Repo::from_sync(shared), heads, idx, since))
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().map_err(|_| anyhow::anyhow!("a history reader thread panicked")))
                .collect()
        });
        let mut records = Records::new();
        for part in parts? {
            for (_, (r, bi)) in part {
                keep(&mut records, r, bi);
            }
        }
        records
    };
    let mut all: Vec<(Record, usize)> = records.into_values().collect();
    all.sort_by_key(|(r, _)| (r.started(), r.key()));
    let (mut runs, mut metrics, mut transitions) =
        (BTreeMap::<String, Vec<RunBar>>::new(), Metrics::default(), Transitions::default());
    for (r, bi) in &all {
        transitions.add(r);
        match r {
            Record::Run(run) => {
                metrics.add(run);
                runs.entry(heads[*bi].2.clone()).or_default().push(RunBar {
                    run_id: run.run_id.clone(),
                    runner: run.runner.clone(),
                    origin: run.origin.clone(),
                    outcome: run.outcome.clone(),
                    result: run.result,
                    started: run.started,
                    finished: run.finished,
                    error: run.error.clone(),
                });
            }
            Record::Event(e) => metrics.add_event(e),
        }
    }
    Ok((runs, metrics.finish(), transitions))
}
