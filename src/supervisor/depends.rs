//! Dependency gating (`depends_on`): which waiting programs may start, and which never will.

use std::time::Instant;

use super::{Event, Program, State, Supervisor};
use crate::config::Condition;
use crate::health::Health;

impl Supervisor {
    /// Starts programs whose dependencies are met, gives up on those whose dependencies can no
    /// longer be met, and says what the others wait for. Repeats until nothing changes, since a
    /// start (with `startsecs = 0`) can meet another program's condition at once.
    pub(super) fn check_dependencies(&mut self, now: Instant) {
        loop {
            let mut changed = false;
            for i in 0..self.slots.len() {
                let Some(waiting) = self.slots[i].program.waiting().map(str::to_string) else { continue };
                let event = match self.dependency_status(i) {
                    DepStatus::Met => Event::DependenciesMet,
                    DepStatus::Failed(reason) => Event::DependencyFailed { reason },
                    DepStatus::Waiting(what) if what == waiting => continue,
                    DepStatus::Waiting(waiting_for) => Event::DependenciesPending { waiting_for },
                };
                changed |= !matches!(event, Event::DependenciesPending { .. });
                self.apply(i, event, now);
            }
            if !changed {
                return;
            }
        }
    }

    fn dependency_status(&self, i: usize) -> DepStatus {
        let mut waiting = Vec::new();
        for &(j, condition) in &self.slots[i].deps {
            let dep = &self.slots[j].program;
            let name = &dep.cfg.name;
            let met = match condition {
                Condition::Started => dep.state() == State::Running,
                Condition::Healthy => dep.state() == State::Running && dep.health() == Some(Health::Healthy),
                Condition::CompletedSuccessfully => {
                    dep.state() == State::Exited && dep.last_exit().is_some_and(|s| dep.expected(s))
                }
            };
            if met {
                continue;
            }
            let failed = match condition {
                _ if dep.state() == State::Fatal => Some(format!("dependency {name} is FATAL")),
                Condition::CompletedSuccessfully if dep.state() == State::Exited => {
                    Some(format!("dependency {name} did not complete successfully ({})", exit_text(dep)))
                }
                _ => None,
            };
            if let Some(reason) = failed {
                return DepStatus::Failed(reason);
            }
            waiting.push(format!("{name} ({})", condition.as_str()));
        }
        if waiting.is_empty() { DepStatus::Met } else { DepStatus::Waiting(waiting.join(", ")) }
    }
}

/// Where a waiting program's dependencies stand.
enum DepStatus {
    Met,
    Waiting(String),
    Failed(String),
}

fn exit_text(p: &Program) -> String {
    p.last_exit().map_or_else(|| "no exit".into(), |s| s.to_string())
}
