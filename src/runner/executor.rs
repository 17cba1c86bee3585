//! The executor: actions become tasks, at most `jobs` handlers run at once and one job per
//! branch; a poller submits every tick while earlier handlers are still running.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

pub use super::context::{runner_id, Ctx, TickOptions};
use super::exec::run_action;
use super::plan::Action;
use super::report::{Event, Kind};

/// Runs actions as tasks, at most `jobs` handlers at once and one job per branch; a poller
/// submits every tick while earlier handlers are still running.
pub struct Executor {
    ctx: Arc<Ctx>,
    permits: Arc<Semaphore>,
    set: tokio::task::JoinSet<()>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// Submitted actions in plan order: whichever task gets a permit starts the next one, so
    /// runs start in the order the planner chose (priority first) however tasks are scheduled.
    queue: Arc<Mutex<VecDeque<Action>>>,
}

impl Executor {
    pub fn new(ctx: Arc<Ctx>) -> Executor {
        let permits = Arc::new(Semaphore::new(ctx.opts.jobs.max(1)));
        Executor {
            ctx,
            permits,
            set: tokio::task::JoinSet::new(),
            in_flight: Default::default(),
            queue: Default::default(),
        }
    }

    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// Branches with a job queued or running.
    pub fn busy(&self) -> HashSet<String> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn submit(&mut self, actions: Vec<Action>) {
        // Children spawned by runs that died before publishing them are never published: drop
        // them (cheap when there are none: one listing of `refs/baton/spawn/`).
        let source = match self.ctx.board.remote() {
            Some(r) => crate::repo::BranchSource::Remote(r.to_owned()),
            None => crate::repo::BranchSource::Local,
        };
        super::fanout::sweep_stale_spawns(&self.ctx.repo(), &source);
        for action in actions {
            if let Action::Notice { branch, message } = action {
                let mut e = Event::new(&branch, Kind::Notice);
                e.error = Some(message);
                self.ctx.emit(e);
                continue;
            }
            let branch = action.branch().to_owned();
            if !self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(branch.clone()) {
                continue;
            }
            self.queue.lock().unwrap_or_else(|p| p.into_inner()).push_back(action);
            let (ctx, permits, in_flight, queue) =
                (self.ctx.clone(), self.permits.clone(), self.in_flight.clone(), self.queue.clone());
            self.set.spawn(async move {
                let mut shutdown = ctx.shutdown.clone();
                let permit = tokio::select! {
                    p = permits.acquire_owned() => p.ok(),
                    _ = shutdown.wait_for(|s| *s) => None,
                };
                // The oldest queued action, not necessarily the one this task was spawned for.
                let Some(action) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                    return;
                };
                let branch = action.branch().to_owned();
                if permit.is_some() && !ctx.stopping() {
                    if let Err(e) = run_action(&ctx, action).await {
                        let mut ev = Event::new(&branch, Kind::Error);
                        ev.error = Some(format!("{e:#}").replace('\n', " "));
                        ctx.emit(ev);
                    }
                }
                in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&branch);
            });
        }
    }

    /// Collect finished jobs without waiting.
    pub fn reap(&mut self) {
        while let Some(joined) = self.set.try_join_next() {
            self.report_panic(joined);
        }
    }

    pub async fn join_all(&mut self) {
        while let Some(joined) = self.set.join_next().await {
            self.report_panic(joined);
        }
    }

    fn report_panic(&self, joined: Result<(), tokio::task::JoinError>) {
        if let Err(e) = joined {
            let mut ev = Event::new("-", Kind::Error);
            ev.error = Some(format!("internal error in a branch job: {e}"));
            self.ctx.emit(ev);
        }
    }
}
