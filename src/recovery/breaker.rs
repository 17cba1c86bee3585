//! Circuit breakers: closed → open after `threshold` provider failures (transient, timeout, auth)
//! within `window`, or `identical` identical errors in a row → open for `cooldown` → half-open:
//! exactly one probe run → its success closes the breaker, its failure re-opens it with the
//! cooldown doubled, up to `max_cooldown`.
//!
//! A breaker is shared by every runner on every machine, so its state is a commit on
//! `refs/baton/breakers/<name>` (written by compare-and-swap, pushed in remote mode); this module
//! is the pure part: the state, its transitions, and its message format.

use crate::policy::FailurePolicy;
use crate::protocol::trailers::{self, Trailer};

/// The numbers of one breaker (from the policy of the state whose run is judged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub threshold: u32,
    pub window: u64,
    pub identical: u32,
    pub cooldown: u64,
    pub max_cooldown: u64,
}

impl BreakerConfig {
    pub fn from_policy(p: &FailurePolicy) -> BreakerConfig {
        BreakerConfig {
            threshold: p.breaker_threshold.value,
            window: p.breaker_window.value,
            identical: p.breaker_identical.value,
            cooldown: p.breaker_cooldown.value,
            max_cooldown: p.breaker_max_cooldown.value.max(p.breaker_cooldown.value),
        }
    }
}

/// The one run allowed through a half-open breaker, until when it may hold that right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub run_id: String,
    pub until: i64,
}

/// A breaker's state. `Default` is a closed breaker with no history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Breaker {
    /// Open until this time (epoch seconds); past it, half-open. None: closed.
    pub open_until: Option<i64>,
    /// The cooldown of the current opening, in seconds (doubles on each failed probe).
    pub cooldown: u64,
    /// Times of recent provider failures while closed (within the window).
    pub failures: Vec<i64>,
    /// Signature of the last error, and how many errors in a row had it.
    pub last_error: Option<String>,
    pub identical: u32,
    pub probe: Option<Probe>,
    /// How often it opened, ever.
    pub trips: u32,
    /// Why it last opened.
    pub reason: Option<String>,
}

/// What a breaker lets through now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    Closed,
    /// Nothing runs until then.
    Open {
        until: i64,
    },
    /// Half-open and nobody probes: the first runner to take the probe runs one branch.
    Probe,
    /// Half-open and a run probes.
    Probing {
        run_id: String,
        until: i64,
    },
}

impl Breaker {
    pub fn admit(&self, now: i64) -> Admit {
        match self.open_until {
            None => Admit::Closed,
            Some(until) if now < until => Admit::Open { until },
            Some(_) => match &self.probe {
                Some(p) if p.until > now => Admit::Probing { run_id: p.run_id.clone(), until: p.until },
                _ => Admit::Probe,
            },
        }
    }

    /// A short word for tables: `closed`, `open`, `half-open`.
    pub fn status(&self, now: i64) -> &'static str {
        match self.admit(now) {
            Admit::Closed => "closed",
            Admit::Open { .. } => "open",
            Admit::Probe | Admit::Probing { .. } => "half-open",
        }
    }

    fn open(mut self, now: i64, cooldown: u64, reason: String) -> Breaker {
        self.cooldown = cooldown;
        self.open_until = Some(now.saturating_add(i64::try_from(cooldown).unwrap_or(i64::MAX)));
        self.failures.clear();
        self.probe = None;
        self.trips = self.trips.saturating_add(1);
        self.reason = Some(reason);
        self
    }

    fn close(mut self) -> Breaker {
        self.open_until = None;
        self.cooldown = 0;
        self.failures.clear();
        self.probe = None;
        self.identical = 0;
        self.last_error = None;
        self
    }

    /// A run failed. `signature` identifies the error (same text, same type: same signature);
    /// `trips` says whether its type counts against the breaker (see
    /// [`super::ErrorType::trips_breaker`]).
    pub fn on_failure(&self, now: i64, signature: &str, trips: bool, cfg: &BreakerConfig) -> Breaker {
        let mut b = self.clone();
        b.identical = if b.last_error.as_deref() == Some(signature) { b.identical.saturating_add(1) } else { 1 };
        b.last_error = Some(signature.to_owned());
        match self.admit(now) {
            Admit::Open { .. } => b, // a run that started before the breaker opened
            Admit::Probe | Admit::Probing { .. } => {
                if trips {
                    let cooldown = self.cooldown.max(cfg.cooldown).saturating_mul(2).min(cfg.max_cooldown);
                    b.open(now, cooldown, "the half-open probe failed".into())
                } else {
                    // The provider answered; the task's own failure is not the breaker's business.
                    b.close()
                }
            }
            Admit::Closed => {
                let window = i64::try_from(cfg.window).unwrap_or(i64::MAX);
                b.failures.retain(|&t| now.saturating_sub(t) < window && t <= now);
                if trips {
                    b.failures.push(now);
                }
                if trips && b.failures.len() as u64 >= u64::from(cfg.threshold) {
                    let why = format!("{} failures within {}s", b.failures.len(), cfg.window);
                    b.open(now, cfg.cooldown, why)
                } else if b.identical >= cfg.identical {
                    let why = format!("{} identical errors in a row", b.identical);
                    b.open(now, cfg.cooldown, why)
                } else {
                    b
                }
            }
        }
    }

    /// A run succeeded: a half-open breaker closes; a closed one forgets its identical streak.
    pub fn on_success(&self, now: i64) -> Breaker {
        match self.admit(now) {
            Admit::Closed => Breaker { identical: 0, last_error: None, ..self.clone() },
            Admit::Open { .. } => self.clone(),
            Admit::Probe | Admit::Probing { .. } => self.clone().close(),
        }
    }

    /// Take the half-open probe for `run_id` until `until`; None when there is none to take.
    pub fn take_probe(&self, run_id: &str, now: i64, until: i64) -> Option<Breaker> {
        (self.admit(now) == Admit::Probe)
            .then(|| Breaker { probe: Some(Probe { run_id: run_id.to_owned(), until }), ..self.clone() })
    }

    /// Opened by a person (`breakers open NAME --for 1h`).
    pub fn open_by_hand(&self, now: i64, seconds: u64) -> Breaker {
        self.clone().open(now, seconds, "opened by hand".into())
    }

    /// Closed by a person (`breakers reset NAME`): closed, counts cleared, trips kept.
    pub fn reset(&self) -> Breaker {
        Breaker { trips: self.trips, ..Breaker::default() }
    }

    /// The commit message that stores this state.
    pub fn to_message(&self, name: &str, now: i64) -> Vec<u8> {
        let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut m = format!("baton: breaker {name} {}\n\n", self.status(now));
        m.push_str(&format!("dwp-breaker: {name}\n"));
        if let Some(u) = self.open_until {
            m.push_str(&format!("dwp-breaker-open-until: {u}\n"));
        }
        if self.cooldown > 0 {
            m.push_str(&format!("dwp-breaker-cooldown: {}\n", self.cooldown));
        }
        if !self.failures.is_empty() {
            let times: Vec<String> = self.failures.iter().map(i64::to_string).collect();
            m.push_str(&format!("dwp-breaker-failures: {}\n", times.join(" ")));
        }
        if let Some(e) = &self.last_error {
            m.push_str(&format!("dwp-breaker-last-error: {}\n", one_line(e)));
            m.push_str(&format!("dwp-breaker-identical: {}\n", self.identical));
        }
        if let Some(p) = &self.probe {
            m.push_str(&format!("dwp-breaker-probe: {} {}\n", one_line(&p.run_id), p.until));
        }
        m.push_str(&format!("dwp-breaker-trips: {}\n", self.trips));
        if let Some(r) = &self.reason {
            m.push_str(&format!("dwp-breaker-reason: {}\n", one_line(r)));
        }
        m.into_bytes()
    }

    /// Read a state back. Whatever cannot be read is left at its default (a malformed breaker
    /// commit never stops a tick; at worst the breaker reads as closed).
    pub fn from_message(message: &[u8]) -> Breaker {
        Breaker::from_trailers(&trailers::parse(message))
    }

    pub fn from_trailers(t: &[Trailer]) -> Breaker {
        let get = |key: &str| {
            t.iter().rev().find(|x| x.key == key.as_bytes()).map(|x| String::from_utf8_lossy(&x.value).into_owned())
        };
        let num = |key: &str| get(key).and_then(|v| v.trim().parse::<i64>().ok());
        Breaker {
            open_until: num("dwp-breaker-open-until"),
            cooldown: num("dwp-breaker-cooldown").and_then(|v| u64::try_from(v).ok()).unwrap_or(0),
            failures: get("dwp-breaker-failures")
                .map(|v| v.split_whitespace().filter_map(|x| x.parse().ok()).collect())
                .unwrap_or_default(),
            last_error: get("dwp-breaker-last-error"),
            identical: num("dwp-breaker-identical").and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
            probe: get("dwp-breaker-probe").and_then(|v| {
                let (run, until) = v.rsplit_once(' ')?;
                Some(Probe { run_id: run.to_owned(), until: until.parse().ok()? })
            }),
            trips: num("dwp-breaker-trips").and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
            reason: get("dwp-breaker-reason"),
        }
    }
}

/// The signature of an error for the identical-errors rule: its type, the reason and the last
/// line of output, hashed to a short stable hex string.
pub fn signature(error_type: &str, reason: &str, last_line: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in error_type.bytes().chain([0]).chain(reason.bytes()).chain([0]).chain(last_line.trim().bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{error_type}:{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: BreakerConfig =
        BreakerConfig { threshold: 3, window: 60, identical: 5, cooldown: 300, max_cooldown: 1800 };

    fn fail(b: &Breaker, now: i64, sig: &str) -> Breaker {
        b.on_failure(now, sig, true, &CFG)
    }

    #[test]
    fn three_provider_failures_within_the_window_open_it() {
        let b = Breaker::default();
        let b = fail(&b, 100, "a");
        let b = fail(&b, 130, "b");
        assert_eq!(b.admit(130), Admit::Closed);
        let b = fail(&b, 159, "c");
        assert_eq!(b.admit(159), Admit::Open { until: 459 });
        assert_eq!(b.trips, 1);
        assert_eq!(b.reason.as_deref(), Some("3 failures within 60s"));
        // Spread beyond the window: never three at once.
        let mut b = Breaker::default();
        for t in [0, 40, 80, 120, 160] {
            b = fail(&b, t, &format!("e{t}"));
            assert_eq!(b.admit(t), Admit::Closed, "at {t}");
        }
        // Logic failures do not count.
        let mut b = Breaker::default();
        for t in 0..4 {
            b = b.on_failure(t, &format!("l{t}"), false, &CFG);
        }
        assert_eq!(b.admit(4), Admit::Closed);
    }

    #[test]
    fn identical_errors_in_a_row_open_it_and_a_success_breaks_the_row() {
        let mut b = Breaker::default();
        for t in 0..4 {
            b = b.on_failure(t * 100, "same", false, &CFG);
        }
        assert_eq!(b.admit(400), Admit::Closed);
        let broken = b.on_success(400).on_failure(500, "same", false, &CFG);
        assert_eq!(broken.identical, 1);
        let b = b.on_failure(500, "same", false, &CFG);
        assert_eq!(b.admit(500), Admit::Open { until: 800 });
        assert_eq!(b.reason.as_deref(), Some("5 identical errors in a row"));
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let b = fail(&fail(&fail(&Breaker::default(), 0, "a"), 1, "b"), 2, "c");
        assert_eq!(b.admit(301), Admit::Open { until: 302 });
        assert_eq!(b.admit(302), Admit::Probe);
        let probing = b.take_probe("run-1", 302, 900).unwrap();
        assert_eq!(probing.admit(303), Admit::Probing { run_id: "run-1".into(), until: 900 });
        assert_eq!(probing.take_probe("run-2", 303, 900), None, "a second probe");
        // A probe that never reported (its runner died) frees the probe after its hold.
        assert_eq!(probing.admit(900), Admit::Probe);
        // Success closes.
        let closed = probing.on_success(400);
        assert_eq!(closed.admit(400), Admit::Closed);
        assert_eq!((closed.cooldown, closed.trips), (0, 1));
    }

    #[test]
    fn failed_probes_double_the_cooldown_up_to_the_cap() {
        let mut b = fail(&fail(&fail(&Breaker::default(), 0, "a"), 1, "b"), 2, "c");
        for want in [600, 1200, 1800, 1800] {
            let now = b.open_until.unwrap();
            b = b.take_probe("p", now, now + 10).unwrap().on_failure(now + 1, "x", true, &CFG);
            assert_eq!(b.cooldown, want);
            assert_eq!(b.admit(now + 1), Admit::Open { until: now + 1 + want as i64 });
        }
        // A probe that fails with a logic error closes it: the provider answered.
        let now = b.open_until.unwrap();
        let closed = b.take_probe("p", now, now + 10).unwrap().on_failure(now + 1, "y", false, &CFG);
        assert_eq!(closed.admit(now + 1), Admit::Closed);
        assert_eq!(closed.trips, 5, "the first opening and four failed probes");
    }

    #[test]
    fn by_hand_and_reset() {
        let b = Breaker::default().open_by_hand(100, 3600);
        assert_eq!(b.admit(200), Admit::Open { until: 3700 });
        assert_eq!(b.reason.as_deref(), Some("opened by hand"));
        let r = b.reset();
        assert_eq!(r.admit(200), Admit::Closed);
        assert_eq!(r.trips, 1);
    }

    #[test]
    fn the_message_round_trips_and_bad_input_reads_as_closed() {
        let b = fail(&fail(&Breaker::default(), 10, "a"), 20, "b\nline");
        let open = fail(&b, 30, "c").take_probe("ignored-while-open", 31, 99);
        assert!(open.is_none());
        let probing = fail(&b, 30, "c").take_probe("run 1", 400, 900).unwrap();
        for state in [Breaker::default(), b.clone(), probing] {
            let msg = state.to_message("anthropic", 400);
            let back = Breaker::from_message(&msg);
            let want = Breaker {
                last_error: state.last_error.as_ref().map(|e| e.split_whitespace().collect::<Vec<_>>().join(" ")),
                ..state.clone()
            };
            assert_eq!(back, want, "{}", String::from_utf8_lossy(&msg));
        }
        let junk = b"x\n\ndwp-breaker-open-until: soon\ndwp-breaker-failures: 1 x 3\ndwp-breaker-probe: nothing\n";
        let b = Breaker::from_message(junk);
        assert_eq!(b.admit(0), Admit::Closed);
        assert_eq!(b.failures, [1, 3]);
        assert_eq!(b.probe, None);
    }

    #[test]
    fn signatures_separate_types_reasons_and_last_lines() {
        let s = signature("transient", "exit 75", "rate limited");
        assert_eq!(s, signature("transient", "exit 75", "  rate limited "));
        assert_ne!(s, signature("logic", "exit 75", "rate limited"));
        assert_ne!(s, signature("transient", "exit 75", "rate limited again"));
        assert!(s.starts_with("transient:"));
    }
}
