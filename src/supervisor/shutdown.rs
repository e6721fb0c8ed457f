//! Ordered shutdown, as [`ShutdownPlan`] orders it: no more restarts, then one level at a
//! time, each fully stopped before the next.

use std::time::Instant;

use tracing::info;

use super::Supervisor;
use crate::lifecycle::Event;
use crate::lifecycle::planner::{self, Level, ShutdownPlan};

impl Supervisor {
    /// Starts the ordered shutdown, to exit with `exit_code` (or the worse code, when one is
    /// under way already).
    pub(super) fn begin_shutdown(&mut self, exit_code: i32, why: &str) {
        if let Some(plan) = &mut self.shutdown {
            plan.raise(exit_code);
            info!("{why} received while shutting down; still stopping programs");
            return;
        }
        info!("shutting down ({why})");
        self.bus.publish("SUPERVISOR_STATE_CHANGE_STOPPING", String::new());
        let now = Instant::now();
        for i in 0..self.slots.len() {
            self.apply(i, Event::Shutdown, now);
        }
        let levels = (0..self.slots.len()).map(|i| self.level(i));
        self.shutdown = Some(ShutdownPlan::new(levels.collect::<Vec<_>>(), exit_code));
    }

    /// Moves the ordered stop on: once no program of the current level is active, stops the
    /// next level down.
    pub(super) fn advance_shutdown(&mut self, now: Instant) {
        loop {
            let Some(mut plan) = self.shutdown.take() else { return };
            let next = plan.advance(|level| {
                (0..self.slots.len()).any(|i| self.level(i) == level && self.slots[i].program.state().is_active())
            });
            self.shutdown = Some(plan);
            let Some(next) = next else { return };
            for i in 0..self.slots.len() {
                if self.level(i) == next {
                    self.apply(i, Event::StopForShutdown, now);
                }
            }
        }
    }

    /// The exit code, once shutdown has stopped every program.
    pub(super) fn finished(&self) -> Option<i32> {
        let any_active = self.slots.iter().any(|s| s.program.state().is_active());
        self.shutdown.as_ref()?.finished(any_active)
    }

    /// Program `i`'s shutdown level (see [`planner::level`]).
    fn level(&self, i: usize) -> Level {
        planner::level(&self.slots[i].program.cfg, self.slots[i].rank)
    }
}
