//! Shared by the history commands (`log`, `metrics`, `graph`): which branches, `--since`, and
//! one branch's history streamed through the run fold.

use std::collections::{HashMap, HashSet};

use anyhow::Result;

use super::output::{branch_selected, usage};
use crate::history::{parse_date, Fold, Record, RunResult};
use crate::repo::walk::{HistoryWalk, KEEP_BYTES};
use crate::repo::{BranchHead, BranchSource, ObjectId, Repo};

/// A `--since` value in seconds since the epoch, relative dates counted back from now (a bad
/// value is a usage error).
pub fn parse_since(since: Option<&str>) -> Result<Option<i64>> {
    let now = crate::runner::clock::now();
    since.map(|s| parse_date(s, now).map_err(|e| usage(e.to_string()))).transpose()
}

/// The local branches passing the `--branch` globs, sorted by name.
pub fn local_branches(repo: &Repo, globs: &[String]) -> Result<Vec<BranchHead>> {
    Ok(repo.branches(&BranchSource::Local)?.into_iter().filter(|b| branch_selected(globs, &b.branch)).collect())
}

/// Fold the history of `tip` oldest first and hand every record to `emit` as soon as it is
/// complete (runs when they end, events at once, open runs at the end).
pub fn fold_history(
    repo: &Repo,
    tip: ObjectId,
    walk: &mut HistoryWalk<'_>,
    mut emit: impl FnMut(Record) -> Result<()>,
) -> Result<()> {
    let ids = repo.history_ids(tip, walk)?;
    let mut fold = Fold::new(walk.all_parents);
    let mut out = Vec::new();
    repo.for_each_oldest_first(ids, |commit, visible| {
        fold.push(commit, visible, &mut out);
        out.drain(..).try_for_each(&mut emit)
    })?;
    fold.finish(&mut out);
    out.into_iter().try_for_each(emit)
}

/// The records of several branches, each counted once: branches share history (a task branch
/// starts from main), so a branch's walk ends where an earlier branch's walk already went, and
/// a run seen from two branches counts once — finished if either saw it finish. Only records
/// that started at or after `since` are kept.
pub fn records_of_branches(repo: &Repo, branches: &[BranchHead], since: Option<i64>) -> Result<Vec<Record>> {
    let mut seen = HashSet::new();
    let mut records: HashMap<ObjectId, Record> = HashMap::new();
    for b in branches {
        let mut walk = HistoryWalk { all_parents: false, since, seen: Some(&mut seen), keep_bytes: KEEP_BYTES };
        let walked = fold_history(repo, b.id, &mut walk, |r| {
            if since.is_some_and(|s| r.started() < s) {
                return Ok(());
            }
            let finished = |r: &Record| !matches!(r, Record::Run(run) if run.result == RunResult::Running);
            match records.get(&r.key()) {
                Some(old) if finished(old) || !finished(&r) => {}
                _ => {
                    records.insert(r.key(), r);
                }
            }
            Ok(())
        });
        // One unreadable branch (a tag or tree as its head, a missing object) is a warning; the
        // other branches' history is still read.
        if let Err(e) = walked {
            tracing::warn!("{}: history cannot be read, skipped: {e:#}", b.branch);
        }
    }
    let mut out: Vec<Record> = records.into_values().collect();
    out.sort_by_key(|r| (r.started(), r.key()));
    Ok(out)
}
