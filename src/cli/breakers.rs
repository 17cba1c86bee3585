//! `git baton breakers`: the circuit breakers on the board (`refs/baton/breakers/<name>`), and a
//! person's hand on them: `open NAME --for 1h` stops every state that uses it, `reset NAME`
//! closes it. Writes go through the same compare-and-swap the runners use
//! ([`crate::runner::breakers::update`]): locally, or pushed to a remote with `--remote`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use super::output::usage;
use super::Out;
use crate::policy::duration::{format_duration, parse_duration};
use crate::policy::failure::BreakerName;
use crate::policy::{Base, Policy};
use crate::recovery::{Admit, Breaker};
use crate::repo::{BranchSource, ObjectId, Repo};
use crate::runner::backend::{Backend, Local, Remote};
use crate::runner::breakers;
use crate::runner::clock;
use crate::runner::remote;
use crate::runner::source::{self, Source};

/// List the circuit breakers, or open or reset one by hand.
///
/// A breaker stops every state that uses it: while it is `open` no runner claims a branch in
/// such a state (one notice per breaker and tick); after its cooldown it is `half-open` and one
/// run probes it (success closes it, failure opens it again with the cooldown doubled). A state
/// uses the breaker its policy names (`breaker = "anthropic"`), by default its own name.
///
/// Without a subcommand, lists every breaker on the board: name, status (`closed`, `open`,
/// `half-open`), how long it stays open, its cooldown, how often it opened (trips), the recent
/// provider failures and the identical-error streak that count towards opening it, the run
/// probing it, why it last opened, and the states that use it — those of the policy's
/// `[states.*]` tables whose breaker it is, plus the state of its own name when that one uses it
/// (`*` when `[defaults]` names it: every state without a breaker of its own). The policy is
/// read as `git baton policy` reads it (trusted ref, else HEAD).
///
/// `--json` prints one object per line:
/// `{"name","status":"closed"|"open"|"half-open","open_until":EPOCH|null,"seconds_left":N|null,
/// "cooldown":SECS,"trips":N,"failures":[EPOCH…],"identical":N,"last_error":SIG|null,
/// "probe":{"run_id","until":EPOCH}|null,"reason":TEXT|null,"states":[NAME…],"default":bool,
/// "commit":SHA|null}` — `seconds_left` only while open, `failures` the provider failures within
/// the window (while closed), `identical` how many errors in a row had the signature
/// `last_error`, `default` true when `[defaults]` names this breaker, `commit` the breaker's ref.
///
/// `--remote NAME` works on the remote's breakers, the ones its runners share: the list fetches
/// them first (as `run --remote` does), `open` and `reset` push the change by compare-and-swap.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Print JSON: one object per breaker and line (`open`/`reset`: the breaker as written).
    #[arg(long, global = true)]
    json: bool,
    /// Work on the breakers of this remote (fetched first; changes pushed by compare-and-swap).
    #[arg(long, value_name = "NAME", global = true)]
    remote: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Close a breaker by hand: closed, failure counts and streak cleared, trips kept.
    ///
    /// Exits 1 when there is no such breaker (nothing is written). Prints `NAME: closed`;
    /// `--json` prints the breaker's list object as written.
    Reset {
        /// The breaker's name (a state-like name: `[A-Za-z0-9][A-Za-z0-9._-]*`).
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Open a breaker by hand: no state that uses it is claimed for `--for` (default 1h).
    ///
    /// The reason reads "opened by hand"; when the time is up the breaker is half-open and one
    /// run probes it. Creates the breaker if the board has none of that name.
    ///
    /// Prints `NAME: open until <UTC time> (<duration>)`; `--json` prints the breaker's list
    /// object as written.
    Open {
        /// The breaker's name (a state-like name: `[A-Za-z0-9][A-Za-z0-9._-]*`).
        #[arg(value_name = "NAME")]
        name: String,
        /// How long it stays open: a number and one unit, `30s`, `30m`, `2h`, `7d`.
        #[arg(long = "for", value_name = "DURATION", default_value = "1h")]
        duration: String,
    },
}

#[derive(Serialize)]
struct ProbeRow {
    run_id: String,
    until: i64,
}

#[derive(Serialize)]
struct Row {
    name: String,
    status: &'static str,
    open_until: Option<i64>,
    seconds_left: Option<i64>,
    cooldown: u64,
    trips: u32,
    failures: Vec<i64>,
    identical: u32,
    last_error: Option<String>,
    probe: Option<ProbeRow>,
    reason: Option<String>,
    states: Vec<String>,
    default: bool,
    commit: Option<String>,
}

/// Which states use which breaker, as far as the policy says.
struct Users {
    policy: Option<Policy>,
}

impl Users {
    fn load(repo: &Repo, remote: Option<&str>) -> Users {
        let policy = (|| -> Result<Option<Policy>> {
            let tree = match source::configured(repo, None, remote)? {
                Source::Trusted { tree, .. } => tree,
                Source::Task => match repo.head_id()? {
                    Some(id) => repo.commit(id)?.tree,
                    None => return Ok(None),
                },
            };
            crate::policy::load(repo, tree)
        })();
        match policy {
            Ok(p) => Users { policy: p },
            Err(e) => {
                tracing::warn!("cannot read the policy, states are guessed from breaker names: {e:#}");
                Users { policy: None }
            }
        }
    }

    fn breaker_of(&self, state: &str) -> String {
        Policy::effective_or_base(self.policy.as_ref(), state, &Base::default()).failure.breaker.value
    }

    /// The states that use breaker `name`, and whether `[defaults]` names it.
    fn of(&self, name: &str) -> (Vec<String>, bool) {
        let mut states: Vec<String> = self.policy.iter().flat_map(|p| p.states()).map(str::to_owned).collect();
        if !states.iter().any(|s| s == name) {
            states.push(name.to_owned());
        }
        let mut states: Vec<String> = states.into_iter().filter(|s| self.breaker_of(s) == name).collect();
        states.sort();
        // No state is named "" (names are validated): its breaker is the one `[defaults]` names.
        let default = self.policy.is_some() && self.breaker_of("") == name;
        (states, default)
    }
}

fn row(name: &str, b: &Breaker, commit: Option<ObjectId>, users: &Users, now: i64) -> Row {
    let (states, default) = users.of(name);
    Row {
        name: name.to_owned(),
        status: b.status(now),
        open_until: b.open_until,
        seconds_left: match b.admit(now) {
            Admit::Open { until } => Some(until - now),
            _ => None,
        },
        cooldown: b.cooldown,
        trips: b.trips,
        failures: b.failures.clone(),
        identical: b.identical,
        last_error: b.last_error.clone(),
        probe: b.probe.as_ref().map(|p| ProbeRow { run_id: p.run_id.clone(), until: p.until }),
        reason: b.reason.clone(),
        states,
        default,
        commit: commit.map(|c| c.to_string()),
    }
}

pub fn cmd_breakers(cwd: &Path, args: Args) -> Result<ExitCode> {
    if let Some(r) = &args.remote {
        remote::check_remote_name(r).map_err(|e| usage(format!("--remote: {e}")))?;
    }
    let name = match &args.action {
        Some(Action::Reset { name }) | Some(Action::Open { name, .. }) => {
            Some(BreakerName::parse(name).map_err(usage)?.0)
        }
        None => None,
    };
    let seconds = match &args.action {
        Some(Action::Open { duration, .. }) => {
            Some(parse_duration(duration).map_err(|e| usage(format!("--for: {e}")))?.0)
        }
        _ => None,
    };
    let repo = Repo::discover(cwd)?;
    if let Some(r) = &args.remote {
        if !remote::is_configured(&repo, r) {
            return Err(usage(format!("no remote named {r:?} in this repository")));
        }
        // The objects of breakers other runners wrote must be here before one is read or built on.
        remote::fetch(repo.common_dir(), r).map_err(|why| anyhow!("fetching {r}: {why}"))?;
    }
    let users = Users::load(&repo, args.remote.as_deref());
    let board: Box<dyn Backend> = match &args.remote {
        Some(r) => Box::new(Remote { name: r.clone() }),
        None => Box::new(Local),
    };
    let mut out = Out::new();
    match (&args.action, name, seconds) {
        (None, _, _) => list(&repo, &args, &users, &mut out)?,
        (Some(Action::Reset { .. }), Some(name), _) => {
            let (id, _) = breakers::read(board.as_ref(), &repo, &name)?;
            if id.is_none() {
                bail!("no breaker named {name:?} on the board (git baton breakers lists them); nothing was written");
            }
            breakers::update(board.as_ref(), &repo, &name, |b, _| Some(b.reset()))
                .with_context(|| format!("resetting breaker {name}"))?;
            written(&repo, board.as_ref(), &name, &users, args.json, &mut out)?;
        }
        (Some(Action::Open { .. }), Some(name), Some(secs)) => {
            breakers::update(board.as_ref(), &repo, &name, |b, now| Some(b.open_by_hand(now, secs)))
                .with_context(|| format!("opening breaker {name}"))?;
            written(&repo, board.as_ref(), &name, &users, args.json, &mut out)?;
        }
        _ => unreachable!("a subcommand always has its name"),
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Print a breaker as the board now has it.
fn written(repo: &Repo, board: &dyn Backend, name: &str, users: &Users, json: bool, out: &mut Out) -> Result<()> {
    let (id, b) = breakers::read(board, repo, name)?;
    let now = clock::now();
    if json {
        return out.json(&row(name, &b, id, users, now));
    }
    let line = match b.admit(now) {
        Admit::Open { until } => {
            format!("{name}: open until {} ({})", clock::iso_utc(until), format_duration((until - now).max(0) as u64))
        }
        Admit::Closed => format!("{name}: closed"),
        Admit::Probe | Admit::Probing { .. } => format!("{name}: half-open"),
    };
    out.line(&line)?;
    Ok(())
}

fn list(repo: &Repo, args: &Args, users: &Users, out: &mut Out) -> Result<()> {
    let source = match &args.remote {
        Some(r) => BranchSource::Remote(r.clone()),
        None => BranchSource::Local,
    };
    let ids: std::collections::BTreeMap<String, ObjectId> =
        repo.refs_under(&breakers::read_prefix(&source))?.into_iter().collect();
    let all = breakers::read_all(repo, &source)?;
    let now = clock::now();
    let rows: Vec<Row> = all.iter().map(|(name, b)| row(name, b, ids.get(name).copied(), users, now)).collect();
    if args.json {
        for r in &rows {
            out.json(r)?;
        }
        return Ok(());
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    out.line(&format!(
        "{:width$}  {:9}  {:>9}  {:>8}  {:>5}  {:>8}  {:>9}  {:16}  {:16}  REASON",
        "NAME", "STATUS", "OPEN FOR", "COOLDOWN", "TRIPS", "FAILURES", "IDENTICAL", "PROBE", "STATES"
    ))?;
    for r in &rows {
        let left = r.seconds_left.map_or("-".into(), clock::human_age);
        let cooldown = if r.cooldown > 0 { format_duration(r.cooldown) } else { "-".into() };
        let probe = match (&r.probe, r.status) {
            (Some(p), "half-open") if p.until > now => p.run_id.clone(),
            _ => "-".into(),
        };
        let mut states = r.states.join(",");
        if r.default {
            states.push_str(if states.is_empty() { "*" } else { ",*" });
        }
        out.line(&format!(
            "{:width$}  {:9}  {:>9}  {:>8}  {:>5}  {:>8}  {:>9}  {:16}  {:16}  {}",
            r.name,
            r.status,
            left,
            cooldown,
            r.trips,
            r.failures.len(),
            r.identical,
            probe,
            if states.is_empty() { "-".into() } else { states },
            r.reason.as_deref().unwrap_or("-"),
        ))?;
    }
    if rows.is_empty() {
        tracing::info!("no circuit breakers on the board (refs/baton/breakers/ is empty)");
    }
    Ok(())
}
