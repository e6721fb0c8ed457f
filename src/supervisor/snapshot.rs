//! What readers (the control API, the HTTP listener) see of the programs: an immutable copy the
//! supervisor publishes after each change through a `watch` channel. Readers never take a lock
//! the supervisor needs, and times are kept as instants so uptimes are computed when asked.

use std::time::{Duration, Instant, SystemTime};

use super::State;
use super::program::Program;
use crate::api::protocol::{ProbeStatus, ProgramStatus};
use crate::health::{Health, ProbeOutcome};
use crate::output::ProgramLogs;
use crate::process::ExitStatus;

/// Every program at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// In start order.
    pub programs: Vec<ProgramView>,
    /// supd is stopping everything.
    pub shutting_down: bool,
}

/// One program at one moment.
#[derive(Debug, Clone)]
pub struct ProgramView {
    /// Program name.
    pub name: String,
    /// Group name.
    pub group: String,
    /// `autostart`.
    pub autostart: bool,
    /// State.
    pub state: State,
    /// Process id.
    pub pid: Option<i32>,
    /// When the state was entered.
    pub since: Instant,
    /// When the state's timer fires.
    pub deadline: Option<Instant>,
    /// How the last process ended, and whether that was expected.
    pub last_exit: Option<(ExitStatus, bool)>,
    /// Last spawn error or FATAL reason.
    pub error: Option<String>,
    /// Automatic restarts.
    pub restarts: u64,
    /// Spawn attempts.
    pub spawns: u64,
    /// A restart waits for the stop to finish.
    pub restart_pending: bool,
    /// How long a start or stop may take at most, for waiters' time limits.
    pub settle_within: Duration,
    /// Health of the current process, when it has a healthcheck.
    pub health: Option<Health>,
    /// The last probe's result.
    pub last_probe: Option<ProbeOutcome>,
    /// What a STARTING program without a process waits for.
    pub waiting: Option<String>,
    /// A fault of a GPU it holds.
    pub gpu_fault: Option<String>,
    /// [`Program::generation`] when copied.
    pub generation: u64,
    /// Where its output goes; its log files' faults are read when status is asked for.
    pub logs: ProgramLogs,
    /// When its current process was spawned (wall clock), while there is one.
    pub started: Option<SystemTime>,
    /// Processes that outlived SIGKILL in its last stop (pids).
    pub survivors: Vec<i32>,
    /// Its cgroup, when it has one (for `supctl status --tree`).
    pub cgroup: Option<crate::process::cgroup::ProgramCgroup>,
}

impl ProgramView {
    /// A copy of `p`'s visible state; `logs` is where its output goes, `cgroup` its cgroup.
    pub fn of(p: &Program, logs: &ProgramLogs, cgroup: Option<&crate::process::cgroup::ProgramCgroup>) -> Self {
        let cfg = &p.cfg;
        Self {
            name: cfg.name.clone(),
            group: cfg.group.clone(),
            autostart: cfg.autostart,
            state: p.state(),
            pid: p.pid(),
            since: p.since(),
            deadline: p.deadline(),
            last_exit: p.last_exit().map(|s| (s, p.expected(s))),
            error: p.error().map(str::to_string),
            restarts: p.restarts(),
            spawns: p.spawns(),
            restart_pending: p.restart_pending(),
            settle_within: settle_within(cfg),
            health: p.health(),
            last_probe: p.last_probe().cloned(),
            waiting: p.waiting().map(str::to_string),
            gpu_fault: p.gpu_fault().map(str::to_string),
            generation: p.generation(),
            logs: logs.clone(),
            started: p
                .spawned_at()
                .and_then(|at| SystemTime::now().checked_sub(Instant::now().saturating_duration_since(at))),
            survivors: p.survivors().to_vec(),
            cgroup: cgroup.cloned(),
        }
    }

    /// supervisorctl's name: `group:name` in a group of another name.
    pub fn full_name(&self) -> String {
        if self.group == self.name { self.name.clone() } else { format!("{}:{}", self.group, self.name) }
    }

    /// The status as shown to people and scripts at `now`.
    pub fn status(&self, now: Instant) -> ProgramStatus {
        let in_state = now.saturating_duration_since(self.since);
        let running = self.state == State::Running;
        let errors = self.logs.errors();
        let log_errors: String = errors.iter().map(|e| format!("; log: {e}")).collect();
        ProgramStatus {
            log_errors: errors,
            name: self.name.clone(),
            group: self.group.clone(),
            full_name: self.full_name(),
            state: self.state,
            pid: self.pid,
            uptime_secs: running.then_some(in_state.as_secs()),
            description: self.describe(now, in_state) + &log_errors,
            exit_status: self.last_exit.map(|(s, _)| s),
            exit_expected: self.last_exit.map(|(_, e)| e),
            error: self.error.clone(),
            restarts: self.restarts,
            spawns: self.spawns,
            autostart: self.autostart,
            health: self.health,
            last_probe: self.last_probe.as_ref().map(|o| ProbeStatus {
                ok: o.ok,
                message: o.message.clone(),
                latency_ms: o.latency.as_secs_f64() * 1000.0,
                secs_ago: now.saturating_duration_since(o.at).as_secs(),
            }),
            survivors: self.survivors.clone(),
            processes: None,
        }
    }

    fn describe(&self, now: Instant, in_state: Duration) -> String {
        let exit = || match self.last_exit {
            Some((s, true)) => format!("{s} (expected)"),
            Some((s, false)) => format!("{s} (not expected)"),
            None => String::new(),
        };
        let why = || self.error.clone().unwrap_or_else(exit);
        let pid = self.pid.unwrap_or(0);
        let probe = || match &self.last_probe {
            Some(o) => format!("; probe: {} in {:.0} ms", o.message, o.latency.as_secs_f64() * 1000.0),
            None => String::new(),
        };
        match self.state {
            State::Running => {
                let gpu = self.gpu_fault.as_ref().map(|f| format!("; {f}")).unwrap_or_default();
                format!("pid {pid}, uptime {}{}{gpu}", clock(in_state), probe())
            }
            State::Starting if self.pid.is_none() => {
                format!("waiting for {}", self.waiting.as_deref().unwrap_or("dependencies"))
            }
            State::Starting => format!("pid {pid}{}", probe()),
            State::Backoff => {
                let left = self.deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(now));
                format!("retry in {:.1}s; last: {}", left.as_secs_f64(), why())
            }
            State::Stopping => format!("pid {pid}, stopping for {}", clock(in_state)),
            State::Exited => format!("{}, {} ago", exit(), clock(in_state)),
            State::Fatal => why(),
            State::Stopped if self.spawns == 0 => "not started".into(),
            State::Stopped => match &self.error {
                Some(e) => format!("stopped {} ago; {e}", clock(in_state)),
                None => format!("stopped {} ago", clock(in_state)),
            },
        }
    }
}

/// The longest a start or stop of `cfg` should take, for waiters' time limits: its start
/// timing (startsecs, or the healthcheck's start period plus its retries' worth of probes)
/// plus its stop timing.
fn settle_within(cfg: &crate::config::ProgramConfig) -> Duration {
    let start = match &cfg.healthcheck {
        Some(h) if cfg.ready_when_healthy => {
            let probes = h.retries.saturating_add(h.success_threshold);
            h.start_period.saturating_add(h.interval.saturating_add(h.timeout).saturating_mul(probes))
        }
        _ => cfg.startsecs,
    };
    start.saturating_add(cfg.stopwaitsecs).saturating_add(super::program::KILL_GRACE + Duration::from_secs(5))
}

/// `H:MM:SS`, as supervisorctl shows uptimes.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::clock;
    use std::time::Duration;

    #[test]
    fn clock_format() {
        assert_eq!(clock(Duration::from_secs(62)), "0:01:02");
        assert_eq!(clock(Duration::from_secs(100 * 3600 + 5)), "100:00:05");
    }
}
