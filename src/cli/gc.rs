//! `git baton gc`: remove the scratch nothing needs any more (run logs, worktree slots, refs
//! under `refs/baton/`); the rules are in [`crate::gc`].

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::output::usage;
use super::Out;
use crate::gc::collect::{run_gc, Removed};
use crate::gc::parse_age;
use crate::repo::Repo;
use crate::runner::clock;

/// Remove scratch data nothing needs any more, and say what went.
///
/// Removed: run logs and idle worktree slots last used before `--older-than`; slots kept with a
/// failed run's leftovers, once their branch is gone or has moved past that failure (uncommitted
/// leftovers are saved to `refs/baton/salvage/…` first); `refs/baton/salvage|rejected|conflicts/…`
/// older than the limit; `refs/baton/leases/<branch>` as soon as the branch is no longer that run's
/// `working` commit. Never touched: anything of a run that is running or whose failure is still the
/// head of a branch, a slot a runner holds, other refs under `refs/baton/`.
///
/// Prints one line per item: `removed <kind> <path or ref> (<size>): <reason>` (`would remove`
/// with `--dry-run`). `--json` prints one object per line (none when nothing is removed):
/// `{"kind": "log"|"slot"|"ref"|"handlers", "path_or_ref": "...", "bytes": n|null, "reason": "..."}`
/// (`bytes`: size on disk, null for refs; paths are absolute).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Age limit: a number and a unit (s, m, h, d), like 30s, 5m, 2h or 14d.
    #[arg(long, value_name = "AGE", default_value = "14d", allow_hyphen_values = true)]
    older_than: String,
    /// Only say what would be removed.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON Lines (one object per item) instead of text.
    #[arg(long)]
    json: bool,
}

/// `1.5 MiB`, `312 B`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

pub(crate) fn size_text(bytes: Option<u64>) -> String {
    bytes.map(human_bytes).unwrap_or_default()
}

pub fn cmd_gc(cwd: &Path, args: Args) -> Result<ExitCode> {
    let older_than = parse_age(&args.older_than).map_err(|e| usage(format!("--older-than: {e}")))?;
    let repo = Repo::discover(cwd)?;
    let removed = run_gc(&repo, older_than, args.dry_run, clock::now())?;
    let mut out = Out::new();
    if args.json {
        out.json_each(&removed)?;
    } else {
        let verb = if args.dry_run { "would remove" } else { "removed" };
        for Removed { kind, path_or_ref, bytes, reason } in &removed {
            let size = match bytes {
                Some(_) => format!(" ({})", size_text(*bytes)),
                None => String::new(),
            };
            out.line(&format!("{verb} {} {path_or_ref}{size}: {reason}", kind.as_str()))?;
        }
    }
    out.flush()?;
    let bytes: u64 = removed.iter().filter_map(|r| r.bytes).sum();
    let verb = if args.dry_run { "would free" } else { "freed" };
    tracing::info!("gc: {} item(s), {verb} {}", removed.len(), human_bytes(bytes));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(super::human_bytes(312), "312 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(10 * 1024 * 1024), "10.0 MiB");
    }
}
