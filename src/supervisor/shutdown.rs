//! Ordered shutdown: no more restarts, then one level at a time, each fully stopped before
//! the next: programs that others depend on after those others, then by priority.

use std::time::Instant;

use super::{Event, Supervisor};
use tracing::info;

/// Ordered shutdown: priority levels are stopped highest first, each fully before the next.
#[derive(Debug)]
pub(super) struct Shutdown {
    /// Levels still to stop, ascending, so the next is at the end.
    levels: Vec<Level>,
    /// The level being stopped now.
    current: Option<Level>,
    exit_code: i32,
}

/// A shutdown level: (dependency rank, group priority, priority).
pub(super) type Level = (u32, i64, i64);

impl Supervisor {
    pub(super) fn begin_shutdown(&mut self, exit_code: i32, why: &str) {
        if let Some(s) = &mut self.shutdown {
            s.exit_code = s.exit_code.max(exit_code);
            info!("{why} received while shutting down; still stopping programs");
            return;
        }
        info!("shutting down ({why})");
        let now = Instant::now();
        for i in 0..self.slots.len() {
            self.apply(i, Event::Shutdown, now);
        }
        let mut levels: Vec<Level> = (0..self.slots.len()).map(|i| self.level(i)).collect();
        levels.sort_unstable();
        levels.dedup();
        self.shutdown = Some(Shutdown { levels, current: None, exit_code });
    }

    /// Moves the ordered stop on: once no program of the current level is active, stops the
    /// next level down.
    pub(super) fn advance_shutdown(&mut self, now: Instant) {
        loop {
            let Some(s) = &self.shutdown else { return };
            if let Some(current) = s.current
                && (0..self.slots.len()).any(|i| self.level(i) == current && self.slots[i].program.state().is_active())
            {
                return;
            }
            let Some(s) = &mut self.shutdown else { return };
            let Some(next) = s.levels.pop() else {
                s.current = None;
                return;
            };
            s.current = Some(next);
            for i in 0..self.slots.len() {
                if self.level(i) == next {
                    self.apply(i, Event::Stop, now);
                }
            }
        }
    }

    /// The exit code, once shutdown has stopped every program.
    pub(super) fn finished(&self) -> Option<i32> {
        let s = self.shutdown.as_ref()?;
        let done = s.levels.is_empty() && self.slots.iter().all(|s| !s.program.state().is_active());
        done.then_some(s.exit_code)
    }

    /// A program's shutdown level: programs others depend on stop after them, then by
    /// (group priority, priority), highest first.
    fn level(&self, i: usize) -> Level {
        let cfg = &self.slots[i].program.cfg;
        (self.slots[i].rank, cfg.group_priority, cfg.priority)
    }
}
