//! One program's lifecycle as a pure state machine: [`Program::on`] takes an event and the
//! time and returns the effects to carry out. No I/O happens here, so every supervisord rule
//! (startsecs, startretries, BACKOFF, FATAL, autorestart/exitcodes, stop timeouts) is a fast
//! unit test with a fake clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::backoff;
use super::state::State;
use crate::config::{Autorestart, OnUnhealthy, ProgramConfig};
use crate::deadline::after;
use crate::health::{Health, ProbeOutcome};
use crate::process::ExitStatus;

/// How long to wait for a process group to go after SIGKILL before giving up on it (a process
/// in uninterruptible sleep can outlive SIGKILL for a while).
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Something that happened to a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start it (autostart, or `supctl start`). Resets the failed-start count.
    Start,
    /// Stop it (`supctl stop`, or shutdown).
    Stop,
    /// Stop it if it runs, then start it (`supctl restart`).
    Restart,
    /// The spawn asked for by [`Effect::Spawn`] worked.
    Spawned {
        /// The new process (and process group) id.
        pid: i32,
    },
    /// The spawn asked for by [`Effect::Spawn`] failed.
    SpawnFailed {
        /// Why, for `supctl status`.
        error: String,
    },
    /// Its process exited.
    Exited {
        /// How.
        status: ExitStatus,
        /// Whether other processes are still in its process group.
        group_alive: bool,
    },
    /// Its process group, whose leader already exited, has no process left.
    GroupGone,
    /// Its [`Program::deadline`] has passed.
    Deadline,
    /// Its process tree outlived SIGKILL by [`KILL_GRACE`]; `survivors` are the pids still
    /// alive (the supervisor sends this instead of [`Event::Deadline`] once it has killed).
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
    /// (`None`): it counts as unhealthy meanwhile.
    GpuFault(Option<String>),
    /// supd is shutting down: no more restarts.
    Shutdown,
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
        /// To the whole process group rather than the one process.
        group: bool,
    },
}

/// What happens once a stop completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStop {
    /// Stay STOPPED.
    Nothing,
    /// Start again (`supctl restart`).
    Start,
    /// Restart through the crash backoff (it was stopped for being unhealthy).
    Restart,
    /// Count a failed start (it never became healthy under `startsecs = "healthy"`).
    FailedStart,
}

/// A program and everything supd knows about it.
#[derive(Debug)]
pub struct Program {
    /// Its configuration.
    pub cfg: Arc<ProgramConfig>,
    state: State,
    /// The running process, if any.
    pid: Option<i32>,
    /// The process group still to watch while STOPPING (its leader may already be gone).
    pgid: Option<i32>,
    /// When the current state was entered.
    since: Instant,
    /// When the current (or last) process was spawned.
    spawned_at: Option<Instant>,
    /// When this state's timer fires: startsecs, backoff, stopwaitsecs or the kill grace.
    deadline: Option<Instant>,
    /// Failed starts in a row (supervisord's backoff counter).
    failed_starts: u32,
    /// Restarts after exits from RUNNING in the current backoff streak.
    streak: u32,
    /// SIGKILL was sent in this STOPPING.
    killed: bool,
    /// What follows the stop in progress.
    after_stop: AfterStop,
    /// supd is shutting down: exits are final.
    shutting_down: bool,
    last_exit: Option<ExitStatus>,
    /// The last spawn error or the reason for FATAL.
    error: Option<String>,
    /// Automatic restarts so far.
    restarts: u64,
    /// Spawn attempts so far, for waiters that must tell one attempt from the next.
    spawns: u64,
    /// The delay chosen for the current BACKOFF.
    backoff_delay: Duration,
    rng: fastrand::Rng,
    /// Health of the current process, for programs with a healthcheck.
    health: Option<Health>,
    /// Probes failed in a row (outside the start period).
    probe_failures: u32,
    /// Probes passed in a row.
    probe_successes: u32,
    /// Until when failures do not count (`start_period`); `None` once a probe passed.
    start_period_ends: Option<Instant>,
    last_probe: Option<ProbeOutcome>,
    /// STARTING without a process: what it waits for.
    waiting: Option<String>,
    /// Why it can never start here ([`Event::Unavailable`]).
    unavailable: Option<String>,
    /// A fault of a GPU it holds ([`Event::GpuFault`]).
    gpu_fault: Option<String>,
    /// Bumped by every event, so readers can tell that something changed.
    generation: u64,
    /// Processes that outlived SIGKILL in the last stop; cleared when a stop begins.
    survivors: Vec<i32>,
}

impl Program {
    /// A STOPPED program. `seed` seeds its backoff jitter.
    pub fn new(cfg: Arc<ProgramConfig>, now: Instant, seed: u64) -> Self {
        Self {
            cfg,
            state: State::Stopped,
            pid: None,
            pgid: None,
            since: now,
            spawned_at: None,
            deadline: None,
            failed_starts: 0,
            streak: 0,
            killed: false,
            after_stop: AfterStop::Nothing,
            shutting_down: false,
            last_exit: None,
            error: None,
            restarts: 0,
            spawns: 0,
            backoff_delay: Duration::ZERO,
            rng: fastrand::Rng::with_seed(seed),
            health: None,
            probe_failures: 0,
            probe_successes: 0,
            start_period_ends: None,
            last_probe: None,
            waiting: None,
            unavailable: None,
            gpu_fault: None,
            generation: 0,
            survivors: Vec::new(),
        }
    }

    /// When the current process was spawned, while there is one.
    pub fn spawned_at(&self) -> Option<Instant> {
        self.spawned_at.filter(|_| self.pid.is_some())
    }

    /// Applies `event` at `now`; returns what to do.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        use State::*;
        self.generation = self.generation.wrapping_add(1);
        let waiting = self.waiting.is_some();
        match (self.state, event) {
            (_, Event::Unavailable { reason }) => {
                self.unavailable = Some(reason);
                Vec::new()
            }
            (_, Event::GpuFault(fault)) => {
                self.gpu_fault = fault;
                Vec::new()
            }
            (Stopped | Exited | Fatal | Backoff, Event::Start) if !self.shutting_down && self.unavailable.is_some() => {
                self.error = self.unavailable.clone();
                self.enter(Fatal, now, None)
            }
            (Stopped | Exited | Fatal | Backoff, Event::Start) if !self.shutting_down => {
                self.failed_starts = 0;
                self.streak = 0;
                if self.cfg.depends_on.is_empty() {
                    return self.spawn(now);
                }
                self.enter(Starting, now, None);
                self.waiting = Some("dependencies".into());
                Vec::new()
            }
            (Starting, Event::DependenciesPending { waiting_for }) if waiting => {
                self.waiting = Some(waiting_for);
                Vec::new()
            }
            (Starting, Event::DependenciesMet) if waiting => self.spawn(now),
            (Starting, Event::DependencyFailed { reason }) if waiting => {
                self.error = Some(reason);
                self.enter(Fatal, now, None)
            }
            (Starting | Running, Event::Stop) => self.stop(now),
            (Backoff, Event::Stop) => self.enter(Stopped, now, None),
            (Starting | Running, Event::Restart) => {
                self.after_stop = AfterStop::Start;
                self.stop(now)
            }
            (Stopping, Event::Restart) => {
                self.after_stop = AfterStop::Start;
                Vec::new()
            }
            (_, Event::Restart) => self.on(Event::Start, now),
            (Starting, Event::Spawned { pid }) => {
                self.pid = Some(pid);
                self.pgid = Some(pid);
                self.spawned_at = Some(now);
                self.error = None;
                self.reset_health(now);
                if self.cfg.ready_when_healthy {
                    self.enter(Starting, now, None)
                } else if self.cfg.startsecs.is_zero() {
                    self.running(now)
                } else {
                    self.enter(Starting, now, Some(after(now, self.cfg.startsecs)))
                }
            }
            (Starting, Event::SpawnFailed { error }) => {
                self.error = Some(error);
                self.failed_start(now)
            }
            (Starting, Event::Deadline) if self.pid.is_some() => self.running(now),
            (Starting, Event::Exited { status, .. }) => {
                self.exited(status);
                self.failed_start(now)
            }
            (Running, Event::Exited { status, .. }) => {
                self.exited(status);
                self.after_run(status, now)
            }
            (Starting | Running, Event::Probe(outcome)) if self.pid.is_some() => self.probed(outcome, now),
            (Backoff, Event::Deadline) => {
                self.restarts = self.restarts.saturating_add(1);
                self.spawn(now)
            }
            (Stopping, Event::Exited { status, group_alive }) => {
                self.exited(status);
                if group_alive { Vec::new() } else { self.stopped(now) }
            }
            (Stopping, Event::GroupGone) if self.pid.is_none() => self.stopped(now),
            (Stopping, Event::Deadline) if !self.killed => {
                self.killed = true;
                self.deadline = Some(after(now, KILL_GRACE));
                let target = self.pid.or(self.pgid);
                let group = self.cfg.killasgroup || self.pid.is_none();
                target.map(|pid| vec![Effect::Signal { pid, signal: Signal::SIGKILL, group }]).unwrap_or_default()
            }
            (Stopping, Event::Deadline) => self.on(Event::KillTimedOut { survivors: Vec::new() }, now),
            (Stopping, Event::KillTimedOut { survivors }) if self.killed => {
                self.error = Some(if survivors.is_empty() {
                    "the process group did not exit after SIGKILL".into()
                } else {
                    let pids: Vec<String> = survivors.iter().map(i32::to_string).collect();
                    format!("still alive after SIGKILL: pid {}", pids.join(", "))
                });
                self.survivors = survivors;
                self.pid = None;
                self.stopped(now)
            }
            (_, Event::Shutdown) => {
                self.shutting_down = true;
                self.after_stop = AfterStop::Nothing;
                if self.state == Backoff || waiting { self.enter(Stopped, now, None) } else { Vec::new() }
            }
            // Anything else is stale or does not apply (a start of a running program, say);
            // the control API refuses those before they get here.
            _ => Vec::new(),
        }
    }

    fn reset_health(&mut self, now: Instant) {
        let check = self.cfg.healthcheck.as_ref();
        self.health = check.map(|_| Health::Starting);
        self.probe_failures = 0;
        self.probe_successes = 0;
        self.start_period_ends = check.filter(|c| !c.start_period.is_zero()).map(|c| after(now, c.start_period));
    }

    /// Docker's health rules: `success_threshold` passes in a row make it healthy, and the
    /// first pass ends `start_period`; `retries` failures in a row outside `start_period` make
    /// it unhealthy. Unhealthy with `on_unhealthy = "restart"` stops it, and the restart then
    /// goes through the crash backoff (or, before it was ever ready under `startsecs =
    /// "healthy"`, counts as a failed start).
    fn probed(&mut self, outcome: ProbeOutcome, now: Instant) -> Vec<Effect> {
        let ok = outcome.ok;
        self.last_probe = Some(outcome);
        let Some(check) = self.cfg.healthcheck.as_ref() else { return Vec::new() };
        if ok {
            self.probe_failures = 0;
            self.probe_successes = self.probe_successes.saturating_add(1);
            self.start_period_ends = None;
            if self.probe_successes >= check.success_threshold {
                self.health = Some(Health::Healthy);
                if self.state == State::Starting && self.cfg.ready_when_healthy {
                    return self.running(now);
                }
            }
            return Vec::new();
        }
        self.probe_successes = 0;
        if self.start_period_ends.is_some_and(|end| now < end) {
            return Vec::new();
        }
        self.probe_failures = self.probe_failures.saturating_add(1);
        if self.probe_failures < check.retries || self.health == Some(Health::Unhealthy) {
            return Vec::new();
        }
        self.health = Some(Health::Unhealthy);
        if check.on_unhealthy == OnUnhealthy::Ignore {
            return Vec::new();
        }
        self.after_stop = if self.state == State::Starting { AfterStop::FailedStart } else { AfterStop::Restart };
        self.stop(now)
    }

    fn spawn(&mut self, now: Instant) -> Vec<Effect> {
        self.spawns = self.spawns.wrapping_add(1);
        self.pid = None;
        self.enter(State::Starting, now, None);
        vec![Effect::Spawn]
    }

    fn running(&mut self, now: Instant) -> Vec<Effect> {
        self.failed_starts = 0;
        self.enter(State::Running, now, None)
    }

    fn stop(&mut self, now: Instant) -> Vec<Effect> {
        let Some(pid) = self.pid else { return self.enter(State::Stopped, now, None) };
        self.killed = false;
        self.survivors.clear();
        self.enter(State::Stopping, now, Some(after(now, self.cfg.stopwaitsecs)));
        let (signal, group) = (self.cfg.stopsignal, self.cfg.stopasgroup);
        let mut effects = vec![Effect::Signal { pid, signal, group }];
        // A stopped (SIGSTOP, traced) process cannot act on `stopsignal` until it runs again,
        // and would cost the whole stopwaitsecs; SIGCONT right after lets it act at once
        // (systemd does the same).
        if !matches!(signal, Signal::SIGKILL | Signal::SIGCONT) {
            effects.push(Effect::Signal { pid, signal: Signal::SIGCONT, group });
        }
        effects
    }

    fn stopped(&mut self, now: Instant) -> Vec<Effect> {
        self.pgid = None;
        self.enter(State::Stopped, now, None);
        match std::mem::replace(&mut self.after_stop, AfterStop::Nothing) {
            AfterStop::Nothing => Vec::new(),
            AfterStop::Start => self.on(Event::Start, now),
            AfterStop::Restart => self.restart_with_backoff(now),
            AfterStop::FailedStart => self.failed_start(now),
        }
    }

    fn exited(&mut self, status: ExitStatus) {
        self.pid = None;
        self.health = None;
        self.last_exit = Some(status);
    }

    /// supervisord: an exit before `startsecs` is a failed start; more than `startretries` of
    /// them in a row is FATAL. Retries back off like restarts do (1 s, 2 s, 4 s … by default).
    fn failed_start(&mut self, now: Instant) -> Vec<Effect> {
        self.pgid = None;
        self.failed_starts = self.failed_starts.saturating_add(1);
        if self.shutting_down {
            return self.enter(State::Exited, now, None);
        }
        if self.failed_starts > self.cfg.startretries {
            let why = match (&self.error, self.last_exit) {
                (Some(e), _) => e.clone(),
                (None, Some(status)) => format!("exited too quickly ({status})"),
                (None, None) => "exited too quickly".into(),
            };
            self.error = Some(format!("gave up after {} failed starts: {why}", self.failed_starts));
            return self.enter(State::Fatal, now, None);
        }
        let delay = backoff::delay(&self.cfg.backoff, self.failed_starts, &mut self.rng);
        self.backoff(delay, now)
    }

    /// An exit from RUNNING: supervisord's autorestart/exitcodes rule, then supd's backoff.
    fn after_run(&mut self, status: ExitStatus, now: Instant) -> Vec<Effect> {
        self.pgid = None;
        let restart = !self.shutting_down
            && match self.cfg.autorestart {
                Autorestart::Always => true,
                Autorestart::Never => false,
                Autorestart::Unexpected => !self.expected(status),
            };
        if !restart {
            return self.enter(State::Exited, now, None);
        }
        self.restart_with_backoff(now)
    }

    /// The crash backoff: immediate after a stable run, then doubling (see [`backoff`]).
    fn restart_with_backoff(&mut self, now: Instant) -> Vec<Effect> {
        let ran = self.spawned_at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if ran >= self.cfg.backoff.reset {
            self.streak = 0;
        }
        let delay = backoff::delay(&self.cfg.backoff, self.streak, &mut self.rng);
        self.streak = self.streak.saturating_add(1);
        if delay.is_zero() {
            self.restarts = self.restarts.saturating_add(1);
            return self.spawn(now);
        }
        self.backoff(delay, now)
    }

    fn backoff(&mut self, delay: Duration, now: Instant) -> Vec<Effect> {
        self.backoff_delay = delay;
        self.enter(State::Backoff, now, Some(after(now, delay)))
    }

    fn enter(&mut self, state: State, now: Instant, deadline: Option<Instant>) -> Vec<Effect> {
        self.waiting = None;
        self.state = state;
        self.since = now;
        self.deadline = deadline;
        Vec::new()
    }

    /// Whether `status` is an expected exit: a code listed in `exitcodes`. Death by a signal is
    /// never expected (supervisord).
    pub fn expected(&self, status: ExitStatus) -> bool {
        matches!(status, ExitStatus::Code(c) if self.cfg.exitcodes.contains(&c))
    }

    /// The current state.
    pub const fn state(&self) -> State {
        self.state
    }
    /// The running process's pid.
    pub const fn pid(&self) -> Option<i32> {
        self.pid
    }
    /// The process group watched while STOPPING.
    pub const fn pgid(&self) -> Option<i32> {
        self.pgid
    }
    /// When the current state's timer fires.
    pub const fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    /// When the current state was entered.
    pub const fn since(&self) -> Instant {
        self.since
    }
    /// How the last process ended.
    pub const fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit
    }
    /// The last spawn error or FATAL reason.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    /// Automatic restarts so far.
    pub const fn restarts(&self) -> u64 {
        self.restarts
    }
    /// Spawn attempts so far.
    pub const fn spawns(&self) -> u64 {
        self.spawns
    }
    /// The delay of the current BACKOFF.
    pub const fn backoff_delay(&self) -> Duration {
        self.backoff_delay
    }
    /// Whether a restart waits for the stop to finish.
    pub fn restart_pending(&self) -> bool {
        self.after_stop != AfterStop::Nothing
    }
    /// Health of the current process, while it runs: from its healthcheck, and unhealthy while
    /// a GPU it holds is faulty.
    pub fn health(&self) -> Option<Health> {
        if self.gpu_fault.is_some() && self.pid.is_some() { Some(Health::Unhealthy) } else { self.health }
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
        self.waiting.as_deref()
    }
    /// Whether SIGKILL was sent in the stop in progress.
    pub const fn killed(&self) -> bool {
        self.killed
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(edit: impl FnOnce(&mut ProgramConfig)) -> Arc<ProgramConfig> {
        let mut c = ProgramConfig::example("web");
        edit(&mut c);
        Arc::new(c)
    }

    /// A program plus a fake clock.
    struct Rig {
        p: Program,
        now: Instant,
        next_pid: i32,
    }

    impl Rig {
        fn new(edit: impl FnOnce(&mut ProgramConfig)) -> Self {
            let now = Instant::now();
            Self { p: Program::new(cfg(edit), now, 1), now, next_pid: 100 }
        }
        /// Feeds an event and answers Spawn effects with a new pid, like the supervisor does.
        fn on(&mut self, e: Event) -> Vec<Effect> {
            let mut effects = self.p.on(e, self.now);
            while let Some(i) = effects.iter().position(|e| *e == Effect::Spawn) {
                effects.remove(i);
                self.next_pid += 1;
                effects.extend(self.p.on(Event::Spawned { pid: self.next_pid }, self.now));
            }
            effects
        }
        fn advance(&mut self, d: Duration) {
            self.now += d;
        }
        /// Jumps to the pending deadline and fires it.
        fn fire(&mut self) -> Vec<Effect> {
            let d = self.p.deadline().unwrap_or_else(|| panic!("no deadline in {}", self.p.state()));
            self.now = d;
            self.on(Event::Deadline)
        }
        fn exit(&mut self, code: i32) -> Vec<Effect> {
            self.on(Event::Exited { status: ExitStatus::Code(code), group_alive: false })
        }
    }

    #[test]
    fn start_is_running_after_startsecs() {
        let mut r = Rig::new(|_| {});
        r.on(Event::Start);
        assert_eq!((r.p.state(), r.p.pid()), (State::Starting, Some(101)));
        assert_eq!(r.p.deadline(), Some(r.now + Duration::from_secs(1)));
        r.fire();
        assert_eq!(r.p.state(), State::Running);
    }

    #[test]
    fn a_tree_that_outlives_sigkill_is_reported_until_the_next_stop() {
        let mut r = Rig::new(|_| {});
        r.on(Event::Start);
        r.fire();
        r.on(Event::Stop);
        r.fire(); // SIGKILL
        assert!(r.p.killed());
        r.now = r.p.deadline().unwrap();
        r.on(Event::KillTimedOut { survivors: vec![7, 9] });
        assert_eq!((r.p.state(), r.p.survivors()), (State::Stopped, &[7, 9][..]));
        assert_eq!(r.p.error(), Some("still alive after SIGKILL: pid 7, 9"));
        r.on(Event::Start);
        r.fire();
        assert_eq!(r.p.survivors(), &[7, 9], "still shown while the next process runs");
        r.on(Event::Stop);
        assert!(r.p.survivors().is_empty(), "a new stop starts afresh");
    }

    #[test]
    fn startsecs_zero_is_running_at_once() {
        let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
        r.on(Event::Start);
        assert_eq!(r.p.state(), State::Running);
    }

    #[test]
    fn failed_starts_back_off_then_go_fatal_after_startretries() {
        let mut r = Rig::new(|c| c.startretries = 2);
        r.on(Event::Start);
        for attempt in 1..=2 {
            r.advance(Duration::from_millis(100));
            r.exit(1);
            assert_eq!(r.p.state(), State::Backoff, "failed start {attempt}");
            let wait = r.p.deadline().map(|d| d - r.now).unwrap_or_default().as_secs_f64();
            let base = f64::from(1u32 << (attempt - 1));
            assert!((base * 0.9..=base * 1.1).contains(&wait), "attempt {attempt} waited {wait}");
            r.fire();
            assert_eq!(r.p.state(), State::Starting);
        }
        r.exit(1);
        assert_eq!(r.p.state(), State::Fatal);
        assert!(r.p.error().unwrap_or("").contains("exited too quickly (exit status 1)"));
        assert_eq!(r.p.spawns(), 3, "1 start + startretries retries");
    }

    #[test]
    fn spawn_errors_are_failed_starts() {
        let mut r = Rig::new(|c| c.startretries = 0);
        assert_eq!(r.p.on(Event::Start, r.now), vec![Effect::Spawn]);
        r.p.on(Event::SpawnFailed { error: "command not found: x".into() }, r.now);
        assert_eq!(r.p.state(), State::Fatal);
        assert!(r.p.error().unwrap_or("").contains("command not found: x"));
    }

    #[test]
    fn running_exit_restarts_at_once_then_backs_off_doubling() {
        let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
        r.on(Event::Start);
        r.advance(Duration::from_secs(5));
        r.exit(1);
        assert_eq!(r.p.state(), State::Running, "the first restart after a stable run is immediate");
        assert_eq!(r.p.restarts(), 1);
        for base in [1.0, 2.0, 4.0] {
            r.exit(1);
            assert_eq!(r.p.state(), State::Backoff);
            let wait = r.p.deadline().map(|d| d - r.now).unwrap_or_default().as_secs_f64();
            assert!((base * 0.9..=base * 1.1).contains(&wait), "waited {wait}, wanted ~{base}");
            r.fire();
            assert_eq!(r.p.state(), State::Running);
        }
    }

    #[test]
    fn a_long_run_resets_the_backoff() {
        let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
        r.on(Event::Start);
        r.exit(1);
        r.exit(1);
        assert_eq!(r.p.state(), State::Backoff);
        r.fire();
        r.advance(Duration::from_secs(61));
        r.exit(1);
        assert_eq!(r.p.state(), State::Running, "60 s up forgets the streak");
    }

    #[test]
    fn autorestart_and_exitcodes_follow_supervisord() {
        let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
        r.on(Event::Start);
        r.exit(0);
        assert_eq!(r.p.state(), State::Exited, "0 is expected: no restart under \"unexpected\"");
        r.on(Event::Start);
        r.on(Event::Exited { status: ExitStatus::Signal(9), group_alive: false });
        assert_eq!(r.p.state(), State::Running, "death by signal is unexpected");

        let mut r = Rig::new(|c| {
            c.startsecs = Duration::ZERO;
            c.autorestart = Autorestart::Always;
        });
        r.on(Event::Start);
        r.exit(0);
        assert_eq!(r.p.state(), State::Running);

        let mut r = Rig::new(|c| {
            c.startsecs = Duration::ZERO;
            c.autorestart = Autorestart::Never;
        });
        r.on(Event::Start);
        r.exit(3);
        assert_eq!((r.p.state(), r.p.last_exit()), (State::Exited, Some(ExitStatus::Code(3))));
    }

    #[test]
    fn stop_signals_the_group_and_continues_it_then_kills_after_stopwaitsecs() {
        let mut r = Rig::new(|c| c.stopsignal = Signal::SIGINT);
        r.on(Event::Start);
        r.fire();
        let effects = r.on(Event::Stop);
        let sig = |signal| Effect::Signal { pid: 101, signal, group: true };
        assert_eq!(effects, vec![sig(Signal::SIGINT), sig(Signal::SIGCONT)]);
        assert_eq!(r.p.state(), State::Stopping);
        let effects = r.fire();
        assert_eq!(effects, vec![Effect::Signal { pid: 101, signal: Signal::SIGKILL, group: true }]);
        r.on(Event::Exited { status: ExitStatus::Signal(9), group_alive: false });
        assert_eq!(r.p.state(), State::Stopped);
    }

    #[test]
    fn stopping_waits_for_the_whole_group() {
        let mut r = Rig::new(|_| {});
        r.on(Event::Start);
        r.on(Event::Stop);
        r.on(Event::Exited { status: ExitStatus::Code(0), group_alive: true });
        assert_eq!(r.p.state(), State::Stopping, "a grandchild is still in the group");
        let effects = r.fire();
        assert_eq!(effects, vec![Effect::Signal { pid: 101, signal: Signal::SIGKILL, group: true }]);
        r.on(Event::GroupGone);
        assert_eq!(r.p.state(), State::Stopped);
    }

    #[test]
    fn restart_starts_again_once_stopped() {
        let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
        r.on(Event::Start);
        r.on(Event::Restart);
        assert_eq!(r.p.state(), State::Stopping);
        r.exit(0);
        assert_eq!((r.p.state(), r.p.pid()), (State::Running, Some(102)));
    }

    #[test]
    fn shutdown_cancels_backoff_and_restarts() {
        let mut r = Rig::new(|c| c.startsecs = Duration::ZERO);
        r.on(Event::Start);
        r.exit(1);
        r.exit(1);
        assert_eq!(r.p.state(), State::Backoff);
        r.on(Event::Shutdown);
        assert_eq!(r.p.state(), State::Stopped);
        assert!(r.on(Event::Start).is_empty(), "no start during shutdown");
    }

    #[test]
    fn manual_start_leaves_fatal_and_resets_retries() {
        let mut r = Rig::new(|c| c.startretries = 0);
        r.on(Event::Start);
        r.exit(1);
        assert_eq!(r.p.state(), State::Fatal);
        r.on(Event::Start);
        assert_eq!(r.p.state(), State::Starting);
    }

    fn with_check(edit: impl FnOnce(&mut crate::config::Healthcheck)) -> impl FnOnce(&mut ProgramConfig) {
        move |c: &mut ProgramConfig| {
            let mut check = crate::config::Healthcheck {
                probe: crate::config::Probe::Tcp { host: "127.0.0.1".into(), port: 1 },
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(2),
                start_period: Duration::ZERO,
                start_interval: Duration::from_secs(1),
                retries: 3,
                success_threshold: 1,
                on_unhealthy: OnUnhealthy::Restart,
            };
            edit(&mut check);
            c.healthcheck = Some(check);
            c.startsecs = Duration::ZERO;
        }
    }

    impl Rig {
        fn probe(&mut self, ok: bool) -> Vec<Effect> {
            let outcome = ProbeOutcome { ok, message: String::new(), latency: Duration::ZERO, at: self.now };
            self.on(Event::Probe(outcome))
        }
    }

    #[test]
    fn health_follows_docker_retries_and_success_threshold() {
        let mut r = Rig::new(with_check(|c| {
            c.success_threshold = 2;
            c.on_unhealthy = OnUnhealthy::Ignore;
        }));
        r.on(Event::Start);
        assert_eq!(r.p.health(), Some(Health::Starting));
        r.probe(true);
        assert_eq!(r.p.health(), Some(Health::Starting), "one pass of two");
        r.probe(true);
        assert_eq!(r.p.health(), Some(Health::Healthy));
        r.probe(false);
        r.probe(false);
        assert_eq!(r.p.health(), Some(Health::Healthy), "two failures of three");
        assert!(r.probe(false).is_empty(), "ignore: no stop");
        assert_eq!((r.p.health(), r.p.state()), (Some(Health::Unhealthy), State::Running));
    }

    #[test]
    fn failures_in_start_period_do_not_count_until_it_ends() {
        let mut r = Rig::new(with_check(|c| {
            c.start_period = Duration::from_secs(30);
            c.retries = 1;
        }));
        r.on(Event::Start);
        r.probe(false);
        r.probe(false);
        assert_eq!(r.p.health(), Some(Health::Starting));
        r.advance(Duration::from_secs(31));
        let effects = r.probe(false);
        assert_eq!(r.p.health(), Some(Health::Unhealthy));
        assert_eq!(effects[0], Effect::Signal { pid: 101, signal: Signal::SIGTERM, group: true });
    }

    #[test]
    fn unhealthy_restarts_through_the_crash_backoff() {
        let mut r = Rig::new(with_check(|c| c.retries = 1));
        r.on(Event::Start);
        r.advance(Duration::from_secs(5));
        for round in 0..3 {
            r.probe(false);
            assert_eq!(r.p.state(), State::Stopping, "round {round}");
            r.on(Event::Exited { status: ExitStatus::Signal(15), group_alive: false });
            if round == 0 {
                assert_eq!(r.p.state(), State::Running, "first restart after a stable run is immediate");
            } else {
                assert_eq!(r.p.state(), State::Backoff, "round {round} backs off");
                r.fire();
            }
        }
        assert_eq!((r.p.restarts(), r.p.health()), (3, Some(Health::Starting)));
    }

    #[test]
    fn startsecs_healthy_gates_running_and_never_healthy_is_a_failed_start() {
        let mut r = Rig::new(|c| {
            with_check(|h| h.retries = 2)(c);
            c.ready_when_healthy = true;
            c.startretries = 0;
        });
        r.on(Event::Start);
        assert_eq!((r.p.state(), r.p.deadline()), (State::Starting, None));
        r.probe(true);
        assert_eq!(r.p.state(), State::Running);

        let mut r = Rig::new(|c| {
            with_check(|h| h.retries = 2)(c);
            c.ready_when_healthy = true;
            c.startretries = 0;
        });
        r.on(Event::Start);
        r.probe(false);
        r.probe(false);
        assert_eq!(r.p.state(), State::Stopping);
        r.on(Event::Exited { status: ExitStatus::Signal(15), group_alive: false });
        assert_eq!(r.p.state(), State::Fatal, "startretries = 0: the one failed start is fatal");
    }

    #[test]
    fn dependencies_hold_the_start_and_a_failed_one_is_fatal() {
        let dep =
            || vec![crate::config::Dependency { program: "db".into(), condition: crate::config::Condition::Healthy }];
        let mut r = Rig::new(|c| c.depends_on = dep());
        assert!(r.on(Event::Start).is_empty());
        assert_eq!((r.p.state(), r.p.pid(), r.p.waiting()), (State::Starting, None, Some("dependencies")));
        r.on(Event::DependenciesPending { waiting_for: "db (healthy)".into() });
        assert_eq!(r.p.waiting(), Some("db (healthy)"));
        r.on(Event::DependenciesMet);
        assert_eq!((r.p.pid(), r.p.waiting()), (Some(101), None));

        let mut r = Rig::new(|c| c.depends_on = dep());
        r.on(Event::Start);
        r.on(Event::DependencyFailed { reason: "dependency db is FATAL".into() });
        assert_eq!((r.p.state(), r.p.error()), (State::Fatal, Some("dependency db is FATAL")));

        let mut r = Rig::new(|c| c.depends_on = dep());
        r.on(Event::Start);
        r.on(Event::Shutdown);
        assert_eq!(r.p.state(), State::Stopped, "a waiting program is simply not started at shutdown");
    }
}
