//! Remote mode: the shared remote is the only coordination service and git's push is the
//! compare-and-swap. One fetch per tick; claims and runner events are pushed with an explicit
//! expected old value (`--force-with-lease=<ref>:<expected>`), handler results as plain
//! fast-forward pushes; a rejection means somebody else moved the branch. Never a forced push over
//! someone's work.
//!
//! Also the fault handling of remote mode, pure: exponential, capped, jittered backoff and a
//! circuit breaker that stops hammering a remote that keeps failing.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::repo::worktree::git;
use crate::repo::ObjectId;

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    Accepted,
    /// The remote refused (stale lease, not a fast-forward, a server hook): someone else won.
    Rejected(String),
    /// The remote could not be reached or the push failed for another reason.
    Failed(String),
}

/// Is `name` a remote name git-baton can pass to git and use in ref names? Like git's own rule for
/// `refs/remotes/<name>`: not empty, no leading `-` (it would read as an option), no `..`, no
/// whitespace, control characters or any of `~^:?*[\`, no trailing `/` or `.lock`.
pub fn check_remote_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid remote name {name:?}: {why}"));
    if name.is_empty() {
        return bad("empty");
    }
    if name.starts_with('-') {
        return bad("it starts with '-'");
    }
    if name.contains("..")
        || name.contains("//")
        || name.ends_with('/')
        || name.ends_with(".lock")
        || name.starts_with('/')
    {
        return bad("not a valid ref name component");
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c)) {
        return bad("it contains a character git does not allow in a ref name");
    }
    Ok(())
}

/// Is `name` configured as a remote (`remote.<name>.url`) in `repo`?
pub fn is_configured(repo: &crate::repo::Repo, name: &str) -> bool {
    repo.gix().config_snapshot().string(format!("remote.{name}.url").as_str()).is_some()
}

/// Where the lease renewals of `remote`'s runners are fetched to.
pub fn renewals_prefix(remote: &str) -> String {
    format!("refs/baton/remote-leases/{remote}/")
}

/// Where the circuit breakers of `remote` are fetched to.
pub fn breakers_prefix(remote: &str) -> String {
    format!("refs/baton/remote-breakers/{remote}/")
}

/// `git fetch` every branch of `remote` into `refs/remotes/<remote>/`, the runners' lease
/// renewals (`refs/baton/leases/*`) into `refs/baton/remote-leases/<remote>/` and the circuit
/// breakers (`refs/baton/breakers/*`) into `refs/baton/remote-breakers/<remote>/` and the
/// notification records (`refs/baton/notified/*`) into `refs/baton/remote-notified/<remote>/`,
/// pruning deleted ones.
pub fn fetch(dir: &Path, remote: &str) -> Result<(), String> {
    let spec = format!("+refs/heads/*:refs/remotes/{remote}/*");
    let leases = format!("+refs/baton/leases/*:{}*", renewals_prefix(remote));
    let breakers = format!("+refs/baton/breakers/*:{}*", breakers_prefix(remote));
    let notified = crate::notify::store::fetch_refspec(remote);
    let out = git(dir)
        .args([
            "fetch",
            "--quiet",
            "--prune",
            "--no-tags",
            "--no-write-fetch-head",
            "--",
            remote,
            &spec,
            &leases,
            &breakers,
            &notified,
        ])
        .output()
        .map_err(|e| format!("running git fetch: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(first_line(&out.stderr, "git fetch failed"))
    }
}

/// The value of one ref on `remote` (`None`: it does not exist there).
pub fn ls_remote(dir: &Path, remote: &str, refname: &str) -> Result<Option<ObjectId>, String> {
    let out = git(dir)
        .args(["ls-remote", "--refs", "--", remote, refname])
        .output()
        .map_err(|e| format!("running git ls-remote: {e}"))?;
    if !out.status.success() {
        return Err(first_line(&out.stderr, "git ls-remote failed"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        if let Some((id, name)) = line.split_once('\t') {
            if name == refname {
                return id.parse::<ObjectId>().map(Some).map_err(|e| format!("git ls-remote: {e}"));
            }
        }
    }
    Ok(None)
}

fn first_line(bytes: &[u8], fallback: &str) -> String {
    String::from_utf8_lossy(bytes).lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(fallback).to_owned()
}

/// Push `new` to `refs/heads/<branch>` on `remote`. With `expected`, the push is a
/// compare-and-swap on that exact old value; without, a plain fast-forward-only push.
pub fn push(dir: &Path, remote: &str, branch: &str, new: ObjectId, expected: Option<ObjectId>) -> Pushed {
    push_ref(dir, remote, &format!("refs/heads/{branch}"), Some(new), expected.map(Some))
}

/// Push `new` (`None`: delete) to `dst` on `remote`. `expected`: `Some(Some(id))` — a
/// compare-and-swap on that old value; `Some(None)` — the ref must not exist yet; `None` — a
/// plain fast-forward-only push.
pub fn push_ref(
    dir: &Path,
    remote: &str,
    dst: &str,
    new: Option<ObjectId>,
    expected: Option<Option<ObjectId>>,
) -> Pushed {
    let mut cmd = git(dir);
    cmd.args(["push", "--porcelain", "--quiet"]);
    match expected {
        Some(Some(old)) => {
            cmd.arg(format!("--force-with-lease={dst}:{old}"));
        }
        Some(None) => {
            cmd.arg(format!("--force-with-lease={dst}:"));
        }
        None => {}
    }
    let spec = match new {
        Some(id) => format!("{id}:{dst}"),
        None => format!(":{dst}"),
    };
    cmd.arg("--").arg(remote).arg(spec);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => return Pushed::Failed(format!("running git push: {e}")),
    };
    parse_push(out.status.success(), &out.stdout, &out.stderr)
}

/// Push several refs in one `git push --atomic`: each `(dst, new, expected)` with its own lease
/// (`Some(id)`: must hold `id`; `None`: must not exist). The remote takes all of them or none.
pub fn push_atomic(dir: &Path, remote: &str, updates: &[(String, ObjectId, Option<ObjectId>)]) -> Pushed {
    let mut cmd = git(dir);
    cmd.args(["push", "--atomic", "--porcelain", "--quiet"]);
    for (dst, _, expected) in updates {
        match expected {
            Some(old) => cmd.arg(format!("--force-with-lease={dst}:{old}")),
            None => cmd.arg(format!("--force-with-lease={dst}:")),
        };
    }
    cmd.arg("--").arg(remote);
    for (dst, new, _) in updates {
        cmd.arg(format!("{new}:{dst}"));
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => return Pushed::Failed(format!("running git push: {e}")),
    };
    parse_push(out.status.success(), &out.stdout, &out.stderr)
}

/// Read `git push --porcelain`: a ref line starting with `!` is a rejection; success without one
/// is acceptance; anything else is a failure to push at all.
pub fn parse_push(success: bool, stdout: &[u8], stderr: &[u8]) -> Pushed {
    let text = String::from_utf8_lossy(stdout);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('!') {
            let why = rest.split('\t').nth(2).unwrap_or(rest).trim().to_owned();
            return Pushed::Rejected(why);
        }
    }
    if success {
        Pushed::Accepted
    } else {
        Pushed::Failed(first_line(stderr, "git push failed"))
    }
}

/// Backoff and circuit breaker for one remote.
///
/// Each consecutive failure doubles the wait (from `base`, capped at `cap`, with up to ±20 %
/// jitter). After `trip_after` consecutive failures the circuit opens: no remote operation for
/// `cool_down`, then one trial; success closes it.
#[derive(Debug, Clone)]
pub struct Breaker {
    pub base: Duration,
    pub cap: Duration,
    pub trip_after: u32,
    pub cool_down: Duration,
    failures: u32,
    /// While `Some(t)`, the remote is left alone until `t` (seconds, caller's clock).
    open_until: Option<f64>,
}

/// What a caller should do after reporting an outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Advice {
    /// Carry on at the normal pace.
    Normal,
    /// Wait this long before the next attempt; `first` is true on the first failure of a streak
    /// (log it once, not per branch or per attempt).
    Backoff { wait: Duration, first: bool },
    /// The circuit just opened: stay away for the cool-down.
    Open { wait: Duration },
}

impl Breaker {
    pub fn new(base: Duration) -> Breaker {
        Breaker {
            base,
            cap: Duration::from_secs(300),
            trip_after: 5,
            cool_down: Duration::from_secs(600),
            failures: 0,
            open_until: None,
        }
    }

    /// May we talk to the remote at `now`?
    pub fn allows(&self, now: f64) -> bool {
        self.open_until.is_none_or(|t| now >= t)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Record a success; returns true if this ends a failure streak (log the recovery once).
    pub fn succeeded(&mut self) -> bool {
        let recovered = self.failures > 0;
        self.failures = 0;
        self.open_until = None;
        recovered
    }

    /// Record a failure at `now`; `jitter` in [0, 1) spreads runners apart.
    pub fn failed(&mut self, now: f64, jitter: f64) -> Advice {
        self.failures += 1;
        if self.failures >= self.trip_after {
            self.open_until = Some(now + self.cool_down.as_secs_f64());
            return Advice::Open { wait: self.cool_down };
        }
        let exp = self.base.as_secs_f64() * 2f64.powi(self.failures as i32 - 1);
        let capped = exp.min(self.cap.as_secs_f64());
        let wait = Duration::from_secs_f64(capped * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)));
        Advice::Backoff { wait, first: self.failures == 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_that_cannot_be_options() {
        for ok in ["origin", "up-stream", "team/a", "r.1"] {
            assert!(check_remote_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "--upload-pack=touch /tmp/x", "-x", "a..b", "a b", "a:b", "x/", "/x", "a.lock", "a\u{7}"] {
            assert!(check_remote_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn porcelain_rejection_and_acceptance() {
        let rejected = b"To ../origin\n!\tabc:refs/heads/t\t[rejected] (stale info)\nDone\n";
        assert_eq!(parse_push(false, rejected, b""), Pushed::Rejected("[rejected] (stale info)".into()));
        let ok = b"To ../origin\n \tabc:refs/heads/t\t1111..2222\nDone\n";
        assert_eq!(parse_push(true, ok, b""), Pushed::Accepted);
        assert_eq!(
            parse_push(false, b"", b"fatal: 'nowhere' does not appear to be a git repository\n"),
            Pushed::Failed("fatal: 'nowhere' does not appear to be a git repository".into())
        );
    }

    #[test]
    fn backoff_doubles_caps_and_trips() {
        let mut b = Breaker::new(Duration::from_secs(2));
        b.cap = Duration::from_secs(5);
        assert_eq!(b.failed(0.0, 0.5), Advice::Backoff { wait: Duration::from_secs(2), first: true });
        assert_eq!(b.failed(0.0, 0.5), Advice::Backoff { wait: Duration::from_secs(4), first: false });
        assert_eq!(b.failed(0.0, 0.5), Advice::Backoff { wait: Duration::from_secs(5), first: false });
        assert_eq!(b.failed(0.0, 0.5), Advice::Backoff { wait: Duration::from_secs(5), first: false });
        assert!(b.allows(0.0));
        assert!(matches!(b.failed(10.0, 0.5), Advice::Open { .. }));
        assert!(!b.allows(11.0));
        assert!(b.allows(10.0 + 600.0));
        assert!(b.succeeded());
        assert!(!b.succeeded());
        assert!(b.allows(11.0));
    }

    #[test]
    fn jitter_spreads_within_twenty_percent() {
        let mut lo = Breaker::new(Duration::from_secs(10));
        let mut hi = lo.clone();
        let Advice::Backoff { wait: a, .. } = lo.failed(0.0, 0.0) else { panic!() };
        let Advice::Backoff { wait: b, .. } = hi.failed(0.0, 0.999) else { panic!() };
        assert_eq!(a, Duration::from_secs(8));
        assert!(b > Duration::from_secs(11) && b < Duration::from_secs(12));
    }
}
