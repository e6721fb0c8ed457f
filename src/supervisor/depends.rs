//! Dependency gating (`depends_on`), as [`planner::gate`] decides it, applied in turn.

use std::time::Instant;

use super::Supervisor;
use crate::lifecycle::planner;

impl Supervisor {
    /// Tells each waiting program where its dependencies stand: started once they are met,
    /// FATAL once they cannot be. Repeats until nothing changes, since a start (with
    /// `startsecs = 0`) can meet another program's condition at once; each program's event is
    /// applied before the next program is looked at, so a chain resolves in one pass.
    pub(super) fn check_dependencies(&mut self, now: Instant) {
        loop {
            let mut changed = false;
            for i in 0..self.slots.len() {
                let slot = &self.slots[i];
                if slot.program.waiting().is_none() {
                    continue;
                }
                let deps = slot.deps.iter().map(|&(j, condition)| (&self.slots[j].program, condition));
                let Some(event) = planner::gate(&slot.program, deps) else { continue };
                changed |= !matches!(event, crate::lifecycle::Event::DependenciesPending { .. });
                self.apply(i, event, now);
            }
            if !changed {
                return;
            }
        }
    }
}
