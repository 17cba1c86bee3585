//! `git baton notify`: one notification pass by hand — what `run` and `watch` do after every tick.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::output::usage;
use super::Out;
use crate::notify::{Delivery, PassOptions};
use crate::policy::env::validate_pass_name;
use crate::policy::Base;
use crate::repo::Repo;
use crate::runner::clock;
use crate::runner::tick::{self, TickSpec};

/// Send the notifications the board calls for now, as `run` and `watch` do after every tick.
///
/// A head in `done`, `failed` (dead letters included), `canceled`, `blocked` (loop-cap and budget
/// escalations included) or `waiting`, a head waiting at a gate (`tier = "gate"`, not approved),
/// the answer of a `tier = "notify"` state, and a circuit breaker that opened each call the
/// notifiers of their state (`notify = [...]` in the policy, else an executable `.dwp/notify`)
/// once, with one JSON object on stdin. Delivery is recorded on `refs/baton/notified/<commit>`,
/// so every runner sends each notification once.
///
/// One line per notification on stdout: `sent|would-send|failed|in-flight|lost-race STATUS WHO
/// COMMIT: TEXT` (and why, when it failed). `--json` prints one object per line (none when there
/// is nothing to notify): `{"key","result","notifiers":[…],"error","notification":{…}}`. `--prune`
/// deletes instead the records of commits older than 30 days (one ref per line; `--json`:
/// `{"ref","removed"}` per line, `removed` false under `--dry-run`). Exits 1 when a notification could
/// not be delivered (it is retried by the next pass).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Say what would be sent; send and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON Lines (one object per notification) instead of text.
    #[arg(long)]
    json: bool,
    /// Only branches matching this glob; repeatable.
    #[arg(long = "branch", value_name = "GLOB")]
    branches: Vec<String>,
    /// Remote mode: the board is this remote's branches, records are pushed there.
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    /// Read the policy and `.dwp/notify` from this ref's tree (as `run --trusted-ref`).
    #[arg(long, value_name = "REF")]
    trusted_ref: Option<String>,
    /// Pass this environment variable (name or glob) to notifiers, besides the policy's `env.pass`.
    #[arg(long = "pass-env", value_name = "NAME")]
    pass_env: Vec<String>,
    /// Delete the records of notified commits older than 30 days instead of sending.
    #[arg(long)]
    prune: bool,
}

pub fn cmd_notify(cwd: &Path, args: Args) -> Result<ExitCode> {
    if let Some(r) = &args.remote {
        crate::runner::remote::check_remote_name(r).map_err(|e| usage(format!("--remote: {e}")))?;
    }
    for name in &args.pass_env {
        validate_pass_name(name).map_err(|e| usage(format!("--pass-env {name:?}: {e}")))?;
    }
    let now = clock::now();
    let mut out = Out::new();
    if args.prune {
        let repo = Repo::discover(cwd)?;
        if let Some(r) = &args.remote {
            crate::runner::remote::fetch(repo.common_dir(), r).map_err(|e| anyhow::anyhow!("fetching {r}: {e}"))?;
        }
        let pruned = crate::notify::prune(&repo, args.remote.as_deref(), now, args.dry_run)?;
        if args.json {
            #[derive(serde::Serialize)]
            struct Pruned<'a> {
                r#ref: &'a str,
                removed: bool,
            }
            out.json_each(pruned.iter().map(|r| Pruned { r#ref: r, removed: !args.dry_run }))?;
        } else {
            let verb = if args.dry_run { "would remove" } else { "removed" };
            for r in &pruned {
                out.line(&format!("{verb} {r}"))?;
            }
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let base = Base { env_pass: args.pass_env.clone(), ..Base::default() };
    let spec = TickSpec {
        branches: args.branches.clone(),
        remote: args.remote.clone(),
        trusted_ref: args.trusted_ref.clone(),
        base: base.clone(),
        ..TickSpec::default()
    };
    let prepared = tick::prepare(cwd, &spec, now).map_err(anyhow::Error::from)?;
    let opts = PassOptions {
        remote: args.remote.clone(),
        base,
        since: now,
        dry_run: args.dry_run,
        runner_id: crate::runner::executor::runner_id(),
    };
    let report = crate::notify::pass(&prepared.repo, &prepared.cards, &prepared.source, &opts, now)?;
    for n in &report.notices {
        tracing::warn!("notify: {n}");
    }
    if args.json {
        out.json_each(&report.items)?;
    } else {
        for i in &report.items {
            let n = &i.notification;
            let who =
                n.task_id.clone().or_else(|| n.breaker.as_ref().map(|b| format!("breaker {b}"))).unwrap_or_default();
            let result = serde_json::to_value(i.result)?.as_str().unwrap_or_default().to_owned();
            let mut line =
                format!("{result} {} {who} {}: {}", n.status.as_str(), &i.key[..12.min(i.key.len())], n.text);
            if let Some(e) = &i.error {
                line.push_str(&format!(" [{e}]"));
            }
            out.line(&line)?;
        }
    }
    out.flush()?;
    let failed = report.items.iter().any(|i| i.result == Delivery::Failed);
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
