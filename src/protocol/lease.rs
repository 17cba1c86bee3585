//! Leases: a `working` commit holds the branch for `dwp-lease-seconds` after its committer time.
//! The lease commit itself is the fencing token: a result counts only if it descends from it.

use super::state::{last_text, StateRead};
use super::{Key, Reserved, Trailer};

/// Default lease when a `working` commit carries no (valid) `dwp-lease-seconds`, as in AYNIG.
pub const DEFAULT_LEASE_SECONDS: u64 = 300;

/// The lease a `working` commit describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub origin_state: Option<String>,
    pub run_id: Option<String>,
    pub runner_id: Option<String>,
    pub lease_seconds: u64,
    /// Committer time of the `working` commit, seconds since the epoch.
    pub since: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    Active { seconds_left: i64 },
    Expired { seconds_ago: i64 },
}

impl Lease {
    /// The lease of a commit, if its state is `working`.
    pub fn from_commit(trailers: &[Trailer], committer_time: i64) -> Option<Lease> {
        match StateRead::from_trailers(trailers) {
            StateRead::Valid(s) if s.is(Reserved::Working) => {}
            _ => return None,
        }
        let lease_seconds =
            last_text(trailers, Key::LeaseSeconds).and_then(|v| v.parse::<u64>().ok()).unwrap_or(DEFAULT_LEASE_SECONDS);
        Some(Lease {
            origin_state: last_text(trailers, Key::OriginState),
            run_id: last_text(trailers, Key::RunId),
            runner_id: last_text(trailers, Key::RunnerId),
            lease_seconds,
            since: committer_time,
        })
    }

    /// The same lease, renewed by its runner at `at` for `seconds` (a record kept off the branch,
    /// on `refs/baton/leases/<branch>`). Only a renewal of the same run counts, and only forward.
    pub fn renewed(mut self, run_id: Option<&str>, at: i64, seconds: u64) -> Lease {
        if run_id.is_some() && run_id == self.run_id.as_deref() && at > self.since {
            self.since = at;
            self.lease_seconds = seconds;
        }
        self
    }

    /// The lease as a runner may believe it at `now`: never longer than `max_lease` seconds, and
    /// a start further in the future than `skew` is not believed at all — such a lease counts as
    /// expired (believing it, or counting it from "now" on every tick, would hold the branch
    /// forever). Returns why it was bounded, for a notice.
    pub fn bounded(mut self, now: i64, max_lease: u64, skew: u64) -> (Lease, Option<String>) {
        if self.since > now.saturating_add(skew.min(i64::MAX as u64) as i64) {
            let why = format!(
                "lease of run {} starts {} s in the future (beyond the {skew} s clock-skew allowance); treated as expired",
                self.run_id.as_deref().unwrap_or("unknown"),
                self.since - now
            );
            self.since = now.saturating_sub(self.lease_seconds.min(i64::MAX as u64) as i64).saturating_sub(1);
            return (self, Some(why));
        }
        if self.lease_seconds > max_lease {
            let why = format!(
                "lease of run {} asks for {} s; bounded to max_lease = {max_lease} s",
                self.run_id.as_deref().unwrap_or("unknown"),
                self.lease_seconds
            );
            self.lease_seconds = max_lease;
            return (self, Some(why));
        }
        (self, None)
    }

    pub fn expires_at(&self) -> i64 {
        self.since.saturating_add(self.lease_seconds.min(i64::MAX as u64) as i64)
    }

    /// Expired means `committer time + lease < now`.
    pub fn status(&self, now: i64) -> LeaseStatus {
        let end = self.expires_at();
        if end < now {
            LeaseStatus::Expired { seconds_ago: now - end }
        } else {
            LeaseStatus::Active { seconds_left: end - now }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::trailers::parse;

    #[test]
    fn lease_of_working_commit() {
        let t = parse(b"t\n\ndwp-origin-state: build\ndwp-run-id: r1\ndwp-lease-seconds: 60\ndwp-state: working\n");
        let l = Lease::from_commit(&t, 1000).unwrap();
        assert_eq!(l.origin_state.as_deref(), Some("build"));
        assert_eq!(l.run_id.as_deref(), Some("r1"));
        assert_eq!(l.status(1060), LeaseStatus::Active { seconds_left: 0 });
        assert_eq!(l.status(1061), LeaseStatus::Expired { seconds_ago: 1 });
    }

    #[test]
    fn renewals_of_the_same_run_extend_the_lease() {
        let t = parse(b"t\n\ndwp-run-id: r1\ndwp-lease-seconds: 60\ndwp-state: working\n");
        let l = Lease::from_commit(&t, 1000).unwrap();
        assert_eq!(l.clone().renewed(Some("r1"), 1050, 30).expires_at(), 1080);
        assert_eq!(l.clone().renewed(Some("r2"), 1050, 30).expires_at(), 1060, "another run's renewal");
        assert_eq!(l.clone().renewed(Some("r1"), 900, 300).expires_at(), 1060, "an older renewal");
        assert_eq!(l.renewed(None, 1050, 30).expires_at(), 1060);
    }

    #[test]
    fn leases_are_bounded() {
        let t = parse(b"t\n\ndwp-run-id: r1\ndwp-lease-seconds: 99999999999\ndwp-state: working\n");
        let l = Lease::from_commit(&t, 1000).unwrap();
        let (b, why) = l.clone().bounded(1000, 86_400, 300);
        assert_eq!(b.expires_at(), 1000 + 86_400);
        assert!(why.unwrap().contains("max_lease"));
        // A start far in the future: expired at once.
        let (b, why) = l.clone().bounded(1000 - 10_000, 86_400, 300);
        assert!(matches!(b.status(1000 - 10_000), LeaseStatus::Expired { .. }));
        assert!(why.unwrap().contains("future"));
        // Within the skew allowance and the bound: as written.
        let ok = Lease::from_commit(&parse(b"t\n\ndwp-lease-seconds: 60\ndwp-state: working\n"), 1100).unwrap();
        assert_eq!(ok.clone().bounded(1000, 86_400, 300), (ok, None));
    }

    #[test]
    fn missing_lease_seconds_defaults() {
        let t = parse(b"t\n\ndwp-state: working\n");
        assert_eq!(Lease::from_commit(&t, 0).unwrap().lease_seconds, DEFAULT_LEASE_SECONDS);
    }

    #[test]
    fn not_working_has_no_lease() {
        assert!(Lease::from_commit(&parse(b"t\n\ndwp-state: done\n"), 0).is_none());
    }
}
