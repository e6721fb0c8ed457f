//! What readers (the control API, the HTTP listener) see of the programs: an immutable copy the
//! supervisor publishes after each change through a `watch` channel. Readers never take a lock
//! the supervisor needs, and times are kept as instants so uptimes are computed when asked.

use std::time::{Duration, Instant, SystemTime};

use crate::lifecycle::{Health, KILL_GRACE, Program, State};
use crate::output::ProgramLogs;
use crate::probe::ProbeOutcome;
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
    /// Of those, for `max_rss`.
    pub memory_restarts: u64,
    /// OOM kills in its cgroup.
    pub oom_kills: u64,
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
    /// When its last process was spawned (wall clock), also after it ended.
    pub last_start: Option<SystemTime>,
    /// Processes that outlived SIGKILL in its last stop (pids).
    pub survivors: Vec<i32>,
    /// Its cgroup, when it has one (for `supctl status --tree`).
    pub cgroup: Option<crate::process::cgroup::ProgramCgroup>,
    /// Its configuration (for XML-RPC's `getAllConfigInfo`).
    pub cfg: std::sync::Arc<crate::config::ProgramConfig>,
    /// Its process's stdin, with `stdin_pipe`, while the process lives (XML-RPC's
    /// `sendProcessStdin`, `supctl fg`).
    pub stdin: Option<std::sync::Arc<crate::process::stdin::Stdin>>,
}

impl ProgramView {
    /// A copy of `p`'s visible state; `logs` is where its output goes, `cgroup` its cgroup,
    /// `stdin` its process's stdin.
    pub fn of(
        p: &Program,
        logs: &ProgramLogs,
        cgroup: Option<&crate::process::cgroup::ProgramCgroup>,
        stdin: Option<std::sync::Arc<crate::process::stdin::Stdin>>,
    ) -> Self {
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
            memory_restarts: p.memory_restarts(),
            oom_kills: p.oom_kills(),
            spawns: p.spawns(),
            restart_pending: p.restart_pending(),
            settle_within: settle_within(cfg),
            health: p.health(),
            last_probe: p.last_probe().cloned(),
            waiting: p.waiting().map(str::to_string),
            gpu_fault: p.gpu_fault().map(str::to_string),
            generation: p.generation(),
            logs: logs.clone(),
            started: p.spawned_at().and_then(wall_clock),
            last_start: p.last_spawned_at().and_then(wall_clock),
            survivors: p.survivors().to_vec(),
            cgroup: cgroup.cloned(),
            cfg: std::sync::Arc::clone(&p.cfg),
            stdin,
        }
    }

    /// Writes `data` to its process's stdin. Errors: it has no process, its stdin is not a
    /// pipe, or the write failed.
    pub async fn write_stdin(&self, data: &[u8]) -> Result<(), crate::process::stdin::StdinError> {
        use crate::process::stdin::StdinError;
        let stdin = match (&self.stdin, self.pid) {
            (_, None) => return Err(StdinError::NotRunning),
            (None, Some(_)) => return Err(StdinError::NotAPipe),
            (Some(stdin), Some(_)) => stdin,
        };
        Ok(stdin.write(data).await?)
    }

    /// supervisorctl's name: `group:name` in a group of another name.
    pub fn full_name(&self) -> String {
        crate::config::namespec(&self.group, &self.name)
    }
}

/// The wall-clock time of `at`, an instant in the past.
pub fn wall_clock(at: Instant) -> Option<SystemTime> {
    SystemTime::now().checked_sub(Instant::now().saturating_duration_since(at))
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
    start.saturating_add(cfg.stopwaitsecs).saturating_add(KILL_GRACE + Duration::from_secs(5))
}
