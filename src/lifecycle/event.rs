//! What happens to a program ([`Event`]), what the supervisor must then do ([`Effect`]), and
//! why a control verb is turned down ([`Refusal`]).

use nix::sys::signal::Signal;

use crate::probe::ProbeOutcome;
use crate::process::ExitStatus;

/// Something that happened to a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start it (autostart, or `supctl start`). Resets the failed-start count. Refused while it
    /// is STARTING, RUNNING or STOPPING (supervisord: ALREADY_STARTED).
    Start,
    /// Stop it (`supctl stop`). Refused unless STARTING, RUNNING or BACKOFF (supervisord:
    /// NOT_RUNNING).
    Stop,
    /// Stop it if it runs, then start it (`supctl restart`).
    Restart,
    /// Send its process a signal (`supctl signal`). Refused without a process.
    Signal(Signal),
    /// A reload replaces or removes it: stop it for good; it takes no more verbs.
    Retire,
    /// supd is shutting down: no more restarts, and it takes no more verbs.
    Shutdown,
    /// Its turn came in the ordered shutdown: stop it.
    StopForShutdown,
    /// The spawn asked for by [`Effect::Spawn`] worked.
    Spawned {
        /// The new process (and process group) id.
        pid: i32,
    },
    /// The spawn asked for by [`Effect::Spawn`] failed: before the fork (instead of
    /// [`Event::Spawned`]), or in the child before its exec (instead of its
    /// [`Event::Exited`], which was status 127).
    SpawnFailed {
        /// Why, for `supctl status`.
        error: String,
    },
    /// Its process exited.
    Exited {
        /// How.
        status: ExitStatus,
        /// Whether other processes of its tree are still alive.
        group_alive: bool,
    },
    /// Its process tree, whose leader already exited, has no process left.
    GroupGone,
    /// Its [`super::Program::deadline`] has passed.
    Deadline,
    /// Its process tree outlived SIGKILL by [`super::KILL_GRACE`]; `survivors` are the pids
    /// still alive (the supervisor sends this instead of [`Event::Deadline`] once it killed).
    KillTimedOut {
        /// What is left of it.
        survivors: Vec<i32>,
    },
    /// A probe of its current process finished.
    Probe(ProbeOutcome),
    /// It waits for its dependencies; this says which (shown in status).
    DependenciesPending {
        /// E.g. `postgres (healthy)`.
        waiting_for: String,
    },
    /// Every dependency meets its condition: spawn.
    DependenciesMet,
    /// A dependency can no longer meet its condition (it is FATAL, say): give up.
    DependencyFailed {
        /// Why, for status.
        reason: String,
    },
    /// It cannot run on this machine (`gpu = "required"` and no GPU): every start goes
    /// FATAL with this reason rather than into a crash loop.
    Unavailable {
        /// Why, for status.
        reason: String,
    },
    /// A GPU it holds is lost or reported a critical XID error (`Some`), or no longer is
    /// (`None`): a `gpu = "required"` program counts as unhealthy meanwhile.
    GpuFault(Option<String>),
    /// Its tree's resident memory stayed over `max_rss` for `max_rss_for` (superlance
    /// memmon's rule): stop it and restart it through the crash backoff.
    OverMemory {
        /// Why, for status and the logs: the figure, the limit and how long.
        reason: String,
    },
    /// The kernel OOM-killed a process of its cgroup (at its `memory_max`); its exit follows
    /// and is handled as any other. Counted, and the reason stays until the next spawn.
    OomKilled {
        /// `OOM killed at memory_max 512.0 MiB`.
        reason: String,
    },
}

/// What the supervisor must do for a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Spawn the program and answer with [`Event::Spawned`] or [`Event::SpawnFailed`].
    Spawn,
    /// Send a signal.
    Signal {
        /// The process (and process-group) id.
        pid: i32,
        /// Which signal.
        signal: Signal,
        /// To the whole process group (and what left it) rather than the one process.
        group: bool,
    },
    /// Start probing the current process (it has a healthcheck).
    StartProbe,
    /// Stop probing: the process is stopping or gone.
    StopProbe,
    /// Forget this pid: the process was given up on after SIGKILL, and its late exit must not
    /// be taken for a later process of the program.
    ForgetPid(i32),
    /// The event was a verb the program does not take now; nothing changed.
    Refused(Refusal),
}

/// Why a control verb is turned down, under supervisord's fault names where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `start` of a STARTING or RUNNING program (supervisord: ALREADY_STARTED).
    AlreadyStarted,
    /// `start` of a STOPPING program: try again once it is stopped.
    Stopping,
    /// `stop` or `signal` of a program without a process (supervisord: NOT_RUNNING).
    NotRunning,
    /// supd is shutting down (supervisord: SHUTDOWN_STATE).
    ShuttingDown,
    /// A reload is replacing or removing it.
    Retiring,
}

impl Refusal {
    /// The reason as supctl prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::AlreadyStarted => "already started",
            Refusal::Stopping => "is stopping; try again once it is stopped",
            Refusal::NotRunning => "not running",
            Refusal::ShuttingDown => "supd is shutting down",
            Refusal::Retiring => "a reload is replacing it; try again once it is stopped",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
