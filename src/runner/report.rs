//! What a tick did, one event per action: logged for people on stderr, JSON lines on stdout.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The runner wrote a `working` lease commit.
    Claimed,
    /// The handler answered with a new state.
    Succeeded,
    /// The handler renewed its own lease and left the branch parked.
    Parked,
    /// The handler failed; a failure event commit was written (retries used up: a dead letter).
    Failed,
    /// The handler failed and has attempts left: the task went back to its state with a timer.
    Retrying,
    /// The task was handed to a person instead of run (a fix loop reached its hard cap).
    Escalated,
    /// An expired lease was taken over with a `stalled` commit.
    TookOver,
    /// Nobody decided at a gate within `gate.timeout`: the runner applied `gate.default`.
    Decided,
    /// A waiting parent's join was complete: the runner wrote the join commit (`then` or `failed`).
    Joined,
    /// Another runner moved the branch first; nothing done.
    LostRace,
    /// Something a person should know about a branch that was not run.
    Notice,
    /// The runner could not do its own part (ref locked, worktree could not be made, …).
    Error,
}

/// One line of `git baton run --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub branch: String,
    pub action: Kind,
    /// The state the run was for (the origin state).
    pub state: Option<String>,
    pub next_state: Option<String>,
    pub run_id: Option<String>,
    /// The commit this event wrote or found (claim, failure event, handler's answer, …).
    pub commit: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub log: Option<String>,
    pub worktree: Option<String>,
    pub duration_ms: Option<u64>,
}

impl Event {
    pub fn new(branch: &str, action: Kind) -> Event {
        Event {
            branch: branch.to_owned(),
            action,
            state: None,
            next_state: None,
            run_id: None,
            commit: None,
            exit_code: None,
            error: None,
            log: None,
            worktree: None,
            duration_ms: None,
        }
    }

    /// One human line for stderr.
    pub fn log_line(&self) {
        let b = &self.branch;
        let st = self.state.as_deref().unwrap_or("-");
        let short = |c: &Option<String>| c.as_deref().map(|c| c.get(..12).unwrap_or(c).to_owned()).unwrap_or_default();
        match self.action {
            Kind::Claimed => tracing::info!("{b}: claimed for {st} (run {})", self.run_id.as_deref().unwrap_or("")),
            Kind::Succeeded => tracing::info!(
                "{b}: {st} -> {} in {} ms ({})",
                self.next_state.as_deref().unwrap_or("?"),
                self.duration_ms.unwrap_or(0),
                short(&self.commit)
            ),
            Kind::Parked => tracing::info!("{b}: {st} parked by its handler (lease renewed)"),
            Kind::Failed => tracing::warn!(
                "{b}: {st} FAILED: {} -> {}; log {}",
                self.error.as_deref().unwrap_or(""),
                self.next_state.as_deref().unwrap_or("?"),
                self.log.as_deref().unwrap_or("-")
            ),
            Kind::Retrying => tracing::warn!(
                "{b}: {st} failed, retrying: {}; log {}",
                self.error.as_deref().unwrap_or(""),
                self.log.as_deref().unwrap_or("-")
            ),
            Kind::Escalated => tracing::warn!(
                "{b}: {st} not run, -> {}: {}",
                self.next_state.as_deref().unwrap_or("?"),
                self.error.as_deref().unwrap_or("")
            ),
            Kind::TookOver => tracing::warn!("{b}: took over expired lease ({})", self.error.as_deref().unwrap_or("")),
            Kind::Decided => tracing::info!(
                "{b}: gate of {st} -> {}: {}",
                self.next_state.as_deref().unwrap_or("?"),
                self.error.as_deref().unwrap_or("")
            ),
            Kind::Joined => tracing::info!(
                "{b}: joined -> {} ({})",
                self.next_state.as_deref().unwrap_or("?"),
                self.error.as_deref().unwrap_or("")
            ),
            Kind::LostRace => tracing::debug!("{b}: another runner moved it first; skipped"),
            Kind::Notice => tracing::warn!("{b}: {}", self.error.as_deref().unwrap_or("")),
            Kind::Error => tracing::error!("{b}: {}", self.error.as_deref().unwrap_or("")),
        }
    }
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub claimed: usize,
    pub succeeded: usize,
    pub parked: usize,
    pub failed: usize,
    pub retrying: usize,
    pub escalated: usize,
    pub took_over: usize,
    pub decided: usize,
    pub joined: usize,
    pub lost_race: usize,
    pub notices: usize,
    pub errors: usize,
}

impl Summary {
    pub fn add(&mut self, e: &Event) {
        match e.action {
            Kind::Claimed => self.claimed += 1,
            Kind::Succeeded => self.succeeded += 1,
            Kind::Parked => self.parked += 1,
            Kind::Failed => self.failed += 1,
            Kind::Retrying => self.retrying += 1,
            Kind::Escalated => self.escalated += 1,
            Kind::TookOver => self.took_over += 1,
            Kind::Decided => self.decided += 1,
            Kind::Joined => self.joined += 1,
            Kind::LostRace => self.lost_race += 1,
            Kind::Notice => self.notices += 1,
            Kind::Error => self.errors += 1,
        }
    }

    pub fn line(&self) -> String {
        let decided = match self.decided {
            0 => String::new(),
            n => format!(", {n} gate default(s) applied"),
        };
        let decided = match self.joined {
            0 => decided,
            n => format!("{decided}, {n} joined"),
        };
        format!(
            "tick: {} claimed, {} succeeded, {} parked, {} failed, {} retrying, {} escalated, {} took over, {} lost race, {} notices, {} errors{}",
            self.claimed,
            self.succeeded,
            self.parked,
            self.failed,
            self.retrying,
            self.escalated,
            self.took_over,
            self.lost_race,
            self.notices,
            self.errors,
            decided
        )
    }
}
