//! Exits and timers: every exit status is reaped at once, and handled in batches that take
//! turns with the loop's other sources; deadlines (startsecs, backoff, stopwaitsecs) fire here.

use std::time::Instant;

use tracing::{debug, error, warn};

use super::Supervisor;
use crate::lifecycle::{Event, State};
use crate::process::{reaper, signal as sig, spawn};

/// Exit statuses handled in one turn of the loop; the rest wait for the next turn, after the
/// other sources (commands, probe reports, signals, other tasks) have had theirs, so that a
/// storm of exits (restart churn, orphans) cannot starve them.
const REAP_BATCH: usize = 8;
/// The same for exits of orphans and probes, which cost next to nothing each.
const ORPHAN_BATCH: usize = 1024;

impl Supervisor {
    /// Drains every exit status, and routes up to [`REAP_BATCH`] programs' (and
    /// [`ORPHAN_BATCH`] others') by pid; orphans are only logged.
    pub(super) fn reap(&mut self, now: Instant) {
        self.exits.extend(reaper::reap_all());
        if self.exits.is_empty() {
            return;
        }
        // After the reap: a reaped child's exec failure record is in the pipe by now.
        spawn::read_failures(&mut self.exec_failures);
        let (mut programs, mut others) = (0, 0);
        while programs < REAP_BATCH && others < ORPHAN_BATCH {
            let Some((pid, status)) = self.exits.pop_front() else { break };
            let failure = self.exec_failures.remove(&pid);
            let Some(i) = self.by_pid.remove(&pid) else {
                others += 1;
                if let Some(failure) = failure {
                    warn!("an exec probe (pid {pid}) could not run: {failure}");
                }
                if !self.waiters.deliver(pid, status) {
                    debug!("reaped orphan pid={pid} ({status})");
                }
                continue;
            };
            programs += 1;
            let p = &self.slots[i].program;
            if let Some(failure) = failure.filter(|_| matches!(p.state(), State::Starting | State::Running)) {
                let command = p.cfg.command.first().map_or("", String::as_str);
                let error = format!("spawn error: cannot execute {command}: {failure}");
                error!("{}: {error}", p.cfg.name);
                self.apply(i, Event::SpawnFailed { error }, now);
                continue;
            }
            // A stop waits for the whole tree (what left the group too); otherwise the group.
            let group_alive = if p.state() == State::Stopping {
                self.tree_alive(i)
            } else {
                (p.cfg.stopasgroup || p.cfg.killasgroup) && sig::group_alive(pid)
            };
            self.check_oom(i, now);
            self.apply(i, Event::Exited { status, group_alive }, now);
        }
        // A STOPPING program whose leader is gone waits for the rest of its tree; each reaped
        // orphan may have been the last of one.
        for i in 0..self.slots.len() {
            let p = &self.slots[i].program;
            if p.state() == State::Stopping && p.pid().is_none() && p.pgid().is_some() && !self.tree_alive(i) {
                self.apply(i, Event::GroupGone, now);
            }
        }
    }

    pub(super) fn fire_deadlines(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            if self.slots[i].program.deadline().is_some_and(|d| d <= now) {
                let p = &self.slots[i].program;
                let event = if p.state() == State::Stopping && p.killed() {
                    Event::KillTimedOut { survivors: self.tree_members(i) }
                } else {
                    Event::Deadline
                };
                self.apply(i, event, now);
            }
        }
    }
}
