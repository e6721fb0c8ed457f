//! When a control verb's work is done: `supctl start` and `restart` wait for a new process
//! RUNNING (or a failure), `stop` for no process left, as supervisorctl waits. The waiter
//! compares what it sees now with the spawn count from before its verb.

use super::State;

/// What a verb waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// A new process RUNNING, or a failure (`start`, `restart`).
    Started,
    /// No process left (`stop`).
    Stopped,
}

/// What a program shows a waiter: its state, its spawn count, whether a start waits for a
/// stop in progress, and the pids left over from its last stop.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Its state now.
    pub state: State,
    /// Its spawn count now ([`super::Program::spawns`]).
    pub spawns: u64,
    /// [`super::Program::restart_pending`].
    pub restart_pending: bool,
    /// [`super::Program::survivors`].
    pub survivors: &'a [i32],
}

/// How a verb ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Started (RUNNING) or stopped, as asked.
    Done,
    /// As asked, but processes of the old process tree outlived SIGKILL.
    LeftSurvivors,
    /// It could not: the state says why (FATAL, EXITED, BACKOFF …).
    Failed,
}

/// Whether the verb that left `spawns_before` is done, as `now` shows it; `None` while under way.
pub fn settled(now: Progress<'_>, spawns_before: u64, awaited: Awaited) -> Option<Settled> {
    let survivors = !now.survivors.is_empty();
    match awaited {
        Awaited::Stopped if now.state.is_active() => None,
        Awaited::Stopped if survivors => Some(Settled::LeftSurvivors),
        Awaited::Stopped => Some(Settled::Done),
        Awaited::Started if now.spawns == spawns_before && (now.state.is_active() || now.restart_pending) => None,
        Awaited::Started if matches!(now.state, State::Starting | State::Stopping) => None,
        Awaited::Started if now.state == State::Running && survivors => Some(Settled::LeftSurvivors),
        Awaited::Started if now.state == State::Running => Some(Settled::Done),
        Awaited::Started => Some(Settled::Failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(state: State, spawns: u64) -> Progress<'static> {
        Progress { state, spawns, restart_pending: false, survivors: &[] }
    }

    #[test]
    fn a_start_waits_for_a_new_process_to_run_or_fail() {
        assert_eq!(settled(at(State::Running, 1), 1, Awaited::Started), None, "the old process, before the stop");
        assert_eq!(settled(at(State::Starting, 2), 1, Awaited::Started), None);
        assert_eq!(settled(at(State::Backoff, 2), 1, Awaited::Started), Some(Settled::Failed));
        assert_eq!(settled(at(State::Running, 2), 1, Awaited::Started), Some(Settled::Done));
        assert_eq!(settled(at(State::Fatal, 1), 1, Awaited::Started), Some(Settled::Failed), "FATAL at once");
        let pending = Progress { restart_pending: true, ..at(State::Stopped, 1) };
        assert_eq!(settled(pending, 1, Awaited::Started), None, "the start follows the stop");
    }

    #[test]
    fn a_stop_waits_for_no_process_and_reports_survivors() {
        assert_eq!(settled(at(State::Stopping, 1), 1, Awaited::Stopped), None);
        assert_eq!(settled(at(State::Stopped, 1), 1, Awaited::Stopped), Some(Settled::Done));
        let left = Progress { survivors: &[7], ..at(State::Stopped, 1) };
        assert_eq!(settled(left, 1, Awaited::Stopped), Some(Settled::LeftSurvivors));
        let left = Progress { survivors: &[7], ..at(State::Running, 2) };
        assert_eq!(settled(left, 1, Awaited::Started), Some(Settled::LeftSurvivors));
    }
}
