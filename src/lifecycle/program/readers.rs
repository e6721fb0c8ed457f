//! What readers see of a [`Program`]: states under supervisord's names, and the data of the
//! current phase. Nothing here changes it.

use std::time::{Duration, Instant};

use super::{AfterStop, Phase, Program};
use crate::lifecycle::health::HealthCount;
use crate::lifecycle::{Health, State};
use crate::probe::ProbeOutcome;
use crate::process::ExitStatus;

/// What readers see: states under supervisord's names, and the data of the current phase.
impl Program {
    /// The current state.
    pub const fn state(&self) -> State {
        match self.phase {
            Phase::Stopped => State::Stopped,
            Phase::Waiting { .. } | Phase::Spawning | Phase::Starting { .. } => State::Starting,
            Phase::Running { .. } => State::Running,
            Phase::Backoff { .. } => State::Backoff,
            Phase::Stopping { .. } => State::Stopping,
            Phase::Exited => State::Exited,
            Phase::Fatal => State::Fatal,
        }
    }
    /// The current process's pid, while there is one.
    pub const fn pid(&self) -> Option<i32> {
        match self.phase {
            Phase::Starting { pid, .. } | Phase::Running { pid } => Some(pid),
            Phase::Stopping { pid, .. } => pid,
            _ => None,
        }
    }
    /// The process group of the current process, also while STOPPING after its leader exited.
    pub const fn pgid(&self) -> Option<i32> {
        match self.phase {
            Phase::Starting { pid, .. } | Phase::Running { pid } => Some(pid),
            Phase::Stopping { pgid, .. } => Some(pgid),
            _ => None,
        }
    }
    /// When the current state's timer fires: startsecs, backoff, stopwaitsecs or the kill grace.
    pub const fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Starting { until, .. } => until,
            Phase::Backoff { until, .. } => Some(until),
            Phase::Stopping { kill_at, .. } => Some(kill_at),
            _ => None,
        }
    }
    /// When the current process was spawned, while there is one.
    pub fn spawned_at(&self) -> Option<Instant> {
        self.spawned_at.filter(|_| self.pid().is_some())
    }
    /// When the last process was spawned, also after it ended (supervisord's `laststart`).
    pub const fn last_spawned_at(&self) -> Option<Instant> {
        self.spawned_at
    }
    /// The last process's pid, also after it ended.
    pub const fn last_pid(&self) -> Option<i32> {
        self.last_pid
    }
    /// Failed starts in a row (supervisord's `backoff`, the `tries` of its events).
    pub const fn failed_starts(&self) -> u32 {
        self.failed_starts
    }
    /// When the current state was entered.
    pub const fn since(&self) -> Instant {
        self.since
    }
    /// How the last process ended.
    pub const fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit
    }
    /// Whether `status` is an expected exit: a code listed in `exitcodes`. Death by a signal is
    /// never expected (supervisord).
    pub fn expected(&self, status: ExitStatus) -> bool {
        matches!(status, ExitStatus::Code(c) if self.cfg.exitcodes.contains(&c))
    }
    /// The last spawn error or FATAL reason.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    /// Automatic restarts so far.
    pub const fn restarts(&self) -> u64 {
        self.restarts
    }
    /// Restarts for `max_rss` so far (also counted in [`Program::restarts`] once respawned).
    pub const fn memory_restarts(&self) -> u64 {
        self.memory_restarts
    }
    /// OOM kills in its cgroup so far.
    pub const fn oom_kills(&self) -> u64 {
        self.oom_kills
    }
    /// Spawn attempts so far.
    pub const fn spawns(&self) -> u64 {
        self.spawns
    }
    /// The delay of the current BACKOFF.
    pub const fn backoff_delay(&self) -> Option<Duration> {
        match self.phase {
            Phase::Backoff { delay, .. } => Some(delay),
            _ => None,
        }
    }
    /// Whether a start waits for the stop in progress to finish.
    pub const fn restart_pending(&self) -> bool {
        matches!(self.phase, Phase::Stopping { then, .. } if !matches!(then, AfterStop::Nothing))
    }
    /// Health of the current process, while it runs: from its healthcheck, and unhealthy while
    /// a GPU it holds is faulty.
    pub fn health(&self) -> Option<Health> {
        if self.gpu_fault.is_some() && self.pid().is_some() {
            Some(Health::Unhealthy)
        } else {
            self.health.as_ref().map(HealthCount::health)
        }
    }
    /// A fault of a GPU it holds, while there is one.
    pub fn gpu_fault(&self) -> Option<&str> {
        self.gpu_fault.as_deref()
    }
    /// The last probe's result.
    pub const fn last_probe(&self) -> Option<&ProbeOutcome> {
        self.last_probe.as_ref()
    }
    /// What a STARTING program without a process waits for.
    pub fn waiting(&self) -> Option<&str> {
        match &self.phase {
            Phase::Waiting { on } => Some(on),
            _ => None,
        }
    }
    /// Whether SIGKILL was sent in the stop in progress.
    pub const fn killed(&self) -> bool {
        matches!(self.phase, Phase::Stopping { killed: true, .. })
    }
    /// Processes that outlived SIGKILL in the last stop (pids).
    pub fn survivors(&self) -> &[i32] {
        &self.survivors
    }
    /// Changes with every event.
    pub const fn generation(&self) -> u64 {
        self.generation
    }
}
