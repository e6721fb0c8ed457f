//! The rules across programs, as pure decisions the supervisor applies one at a time:
//! dependency gating (compose's `depends_on` conditions), the ordered shutdown (dependents
//! before what they depend on, then by priority, each level fully stopped before the next),
//! and the whole of supd stopping with exit code 1 when a `required` program goes FATAL.

use super::{Event, Health, Program, State};
use crate::config::{Condition, ProgramConfig};

/// What a program that waits for its dependencies should be told, given each dependency and
/// the condition it must meet: [`Event::DependenciesMet`] once all are met,
/// [`Event::DependencyFailed`] once one can no longer be met (it is FATAL; a one-shot exited
/// badly), else [`Event::DependenciesPending`] when what it waits for changed. `None`: it does
/// not wait, or nothing changed.
pub fn gate<'a>(program: &Program, deps: impl IntoIterator<Item = (&'a Program, Condition)>) -> Option<Event> {
    let waiting = program.waiting()?;
    let mut pending = Vec::new();
    for (dep, condition) in deps {
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
                let exit = dep.last_exit().map_or_else(|| "no exit".into(), |s| s.to_string());
                Some(format!("dependency {name} did not complete successfully ({exit})"))
            }
            _ => None,
        };
        if let Some(reason) = failed {
            return Some(Event::DependencyFailed { reason });
        }
        pending.push(format!("{name} ({})", condition.as_str()));
    }
    if pending.is_empty() {
        return Some(Event::DependenciesMet);
    }
    let waiting_for = pending.join(", ");
    (waiting_for != waiting).then_some(Event::DependenciesPending { waiting_for })
}

/// Whether `program`, which was `before` an event, now stops all of supd: it is `required`
/// and has just gone FATAL (supd then exits 1).
pub fn demands_shutdown(program: &Program, before: State) -> bool {
    program.cfg.required && before != State::Fatal && program.state() == State::Fatal
}

/// A program's place in the ordered shutdown: (dependency rank, group priority, priority);
/// the highest level stops first.
pub type Level = (u32, i64, i64);

/// The shutdown level of `cfg` at dependency rank `rank` (see [`crate::config::ranks`]).
pub fn level(cfg: &ProgramConfig, rank: u32) -> Level {
    (rank, cfg.group_priority, cfg.priority)
}

/// The ordered shutdown in progress: which levels are left, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownPlan {
    /// Levels still to stop, ascending, so the next is at the end.
    levels: Vec<Level>,
    /// The level being stopped now.
    current: Option<Level>,
    exit_code: i32,
}

impl ShutdownPlan {
    /// A shutdown of programs at `levels`, to exit with `exit_code`.
    pub fn new(levels: impl IntoIterator<Item = Level>, exit_code: i32) -> Self {
        let mut levels: Vec<Level> = levels.into_iter().collect();
        levels.sort_unstable();
        levels.dedup();
        Self { levels, current: None, exit_code }
    }

    /// Another reason to shut down came: the exit code is the worse of the two.
    pub fn raise(&mut self, exit_code: i32) {
        self.exit_code = self.exit_code.max(exit_code);
    }

    /// The next level to stop, once no program of the current one is active (`active(level)`
    /// says whether one is); `None` while the current level still stops, or when none is left.
    pub fn advance(&mut self, active: impl Fn(Level) -> bool) -> Option<Level> {
        if self.current.is_some_and(&active) {
            return None;
        }
        self.current = self.levels.pop();
        self.current
    }

    /// The exit code, once every level was stopped and no program is active.
    pub fn finished(&self, any_active: bool) -> Option<i32> {
        (self.levels.is_empty() && !any_active).then_some(self.exit_code)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::Dependency;
    use crate::process::ExitStatus;

    /// A program named `name` that has gone through `events` at a fake `now`, each spawn
    /// answered with pid 100.
    fn program(name: &str, edit: impl FnOnce(&mut ProgramConfig), events: Vec<Event>) -> Program {
        let mut cfg = ProgramConfig::example(name);
        cfg.startsecs = Duration::ZERO;
        edit(&mut cfg);
        let now = Instant::now();
        let mut p = Program::new(Arc::new(cfg), now, 1);
        for event in events {
            if p.on(event, now).contains(&super::super::Effect::Spawn) {
                p.on(Event::Spawned { pid: 100 }, now);
            }
        }
        p
    }

    fn waiter() -> Program {
        let deps = vec![Dependency { program: "db".into(), condition: Condition::Healthy }];
        program("web", |c| c.depends_on = deps, vec![Event::Start])
    }

    #[test]
    fn a_waiting_program_is_told_when_its_dependencies_are_met_or_cannot_be() {
        let web = waiter();
        let stopped = program("db", |_| {}, vec![]);
        assert_eq!(
            gate(&web, [(&stopped, Condition::Healthy)]),
            Some(Event::DependenciesPending { waiting_for: "db (healthy)".into() })
        );
        let running = program("db", |_| {}, vec![Event::Start]);
        assert_eq!(gate(&web, [(&running, Condition::Started)]), Some(Event::DependenciesMet));
        let exit = Event::Exited { status: ExitStatus::Code(1), group_alive: false };
        let fatal = program(
            "db",
            |c| {
                c.startretries = 0;
                c.startsecs = Duration::from_secs(1);
            },
            vec![Event::Start, exit],
        );
        assert_eq!(fatal.state(), State::Fatal);
        assert_eq!(
            gate(&web, [(&fatal, Condition::Started)]),
            Some(Event::DependencyFailed { reason: "dependency db is FATAL".into() })
        );
        let exited = program(
            "db",
            |c| c.autorestart = crate::config::Autorestart::Never,
            vec![Event::Start, Event::Exited { status: ExitStatus::Code(2), group_alive: false }],
        );
        assert_eq!(
            gate(&web, [(&exited, Condition::CompletedSuccessfully)]),
            Some(Event::DependencyFailed {
                reason: "dependency db did not complete successfully (exit status 2)".into()
            })
        );
        assert_eq!(gate(&running, [(&stopped, Condition::Started)]), None, "a running program waits for nothing");
    }

    #[test]
    fn what_a_program_waits_for_is_said_once() {
        let mut web = waiter();
        let db = program("db", |_| {}, vec![]);
        let event = gate(&web, [(&db, Condition::Healthy)]);
        web.on(event.unwrap_or(Event::DependenciesMet), Instant::now());
        assert_eq!(gate(&web, [(&db, Condition::Healthy)]), None);
    }

    #[test]
    fn a_required_program_going_fatal_stops_supd() {
        let p = program("db", |c| c.required = true, vec![Event::Start, Event::Unavailable { reason: "x".into() }]);
        assert!(!demands_shutdown(&p, State::Running), "RUNNING: no");
        let p =
            program("db", |c| c.required = true, vec![Event::Unavailable { reason: "no GPU".into() }, Event::Start]);
        assert!(demands_shutdown(&p, State::Stopped));
        assert!(!demands_shutdown(&p, State::Fatal), "only as it goes FATAL");
        let p = program("db", |_| {}, vec![Event::Unavailable { reason: "no GPU".into() }, Event::Start]);
        assert!(!demands_shutdown(&p, State::Stopped), "not required");
    }

    #[test]
    fn shutdown_stops_the_highest_level_first_each_fully_before_the_next() {
        let mut plan = ShutdownPlan::new([(0, 999, 10), (1, 999, 5), (0, 999, 20), (0, 999, 10)], 0);
        assert_eq!(plan.advance(|_| false), Some((1, 999, 5)), "dependents of others first");
        assert_eq!(plan.advance(|_| true), None, "while that level still stops");
        assert_eq!(plan.advance(|_| false), Some((0, 999, 20)), "then by priority, highest first");
        assert_eq!(plan.advance(|_| false), Some((0, 999, 10)));
        assert_eq!(plan.finished(true), None, "a program still stops");
        plan.raise(1);
        plan.raise(0);
        assert_eq!(plan.advance(|_| false), None);
        assert_eq!(plan.finished(false), Some(1), "the worse exit code wins");
    }
}
