//! One program's lifecycle as a pure state machine: [`Program::on`] takes an event and the
//! time and returns the effects to carry out. No I/O happens here, so every supervisord rule
//! (startsecs, startretries, BACKOFF, FATAL, autorestart/exitcodes, stop timeouts) and every
//! refusal of a control verb is a fast unit test with a fake clock (see `tests.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

mod readers;

use super::backoff;
use super::event::{Effect, Event, Refusal};
use super::health::{HealthCount, Verdict};
use super::state::State;
use crate::config::{Autorestart, GpuMode, OnUnhealthy, ProgramConfig};
use crate::deadline::after;
use crate::probe::ProbeOutcome;
use crate::process::ExitStatus;

/// How long to wait for a process tree to go after SIGKILL before giving up on it (a process
/// in uninterruptible sleep can outlive SIGKILL for a while).
pub const KILL_GRACE: Duration = Duration::from_secs(5);

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

/// Where a program is, with what holds only there: a pid exists only while STARTING, RUNNING
/// or STOPPING, a timer only where one runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Stopped,
    /// STARTING without a process: its dependencies are not met yet.
    Waiting {
        on: String,
    },
    /// STARTING: a spawn was asked for and its result has not come back.
    Spawning,
    /// STARTING with a process; RUNNING once `until` passes (`None`: once healthy).
    Starting {
        pid: i32,
        until: Option<Instant>,
    },
    Running {
        pid: i32,
    },
    /// Waiting `delay` before the next start, until `until`.
    Backoff {
        until: Instant,
        delay: Duration,
    },
    /// The stop signal went to the tree of `pgid`, whose leader `pid` may have exited already;
    /// SIGKILL at `kill_at` (or, once `killed`, given up on then).
    Stopping {
        pid: Option<i32>,
        pgid: i32,
        kill_at: Instant,
        killed: bool,
        then: AfterStop,
    },
    Exited,
    Fatal,
}

/// A program and everything supd knows about it.
#[derive(Debug)]
pub struct Program {
    /// Its configuration.
    pub cfg: Arc<ProgramConfig>,
    phase: Phase,
    /// When the current state was entered.
    since: Instant,
    /// When the last process was spawned.
    spawned_at: Option<Instant>,
    /// The last process's pid, also after it ended (supervisord's events carry it).
    last_pid: Option<i32>,
    /// Failed starts in a row (supervisord's backoff counter).
    failed_starts: u32,
    /// Restarts after exits from RUNNING in the current backoff streak.
    streak: u32,
    /// supd is shutting down: exits are final, verbs are refused.
    shutting_down: bool,
    /// A reload replaces or removes it: verbs are refused.
    retiring: bool,
    last_exit: Option<ExitStatus>,
    /// The last spawn error or the reason for FATAL.
    error: Option<String>,
    /// Automatic restarts so far.
    restarts: u64,
    /// Of those, restarts for `max_rss` (asked for; counted when the stop begins).
    memory_restarts: u64,
    /// OOM kills in its cgroup.
    oom_kills: u64,
    /// Spawn attempts so far, for waiters that must tell one attempt from the next.
    spawns: u64,
    rng: fastrand::Rng,
    /// The current process's probe results, for programs with a healthcheck.
    health: Option<HealthCount>,
    last_probe: Option<ProbeOutcome>,
    /// Why it can never start here ([`Event::Unavailable`]).
    unavailable: Option<String>,
    /// A fault of a GPU it holds ([`Event::GpuFault`]).
    gpu_fault: Option<String>,
    /// Bumped by every event, so readers can tell that something changed.
    generation: u64,
    /// Processes that outlived SIGKILL in the last stop; cleared when a stop begins.
    survivors: Vec<i32>,
    /// State changes not yet taken by [`Program::take_transitions`], in order.
    transitions: Vec<(State, State)>,
}

impl Program {
    /// A STOPPED program. `seed` seeds its backoff jitter.
    pub fn new(cfg: Arc<ProgramConfig>, now: Instant, seed: u64) -> Self {
        Self {
            cfg,
            phase: Phase::Stopped,
            since: now,
            spawned_at: None,
            last_pid: None,
            failed_starts: 0,
            streak: 0,
            shutting_down: false,
            retiring: false,
            last_exit: None,
            error: None,
            restarts: 0,
            memory_restarts: 0,
            oom_kills: 0,
            spawns: 0,
            rng: fastrand::Rng::with_seed(seed),
            health: None,
            last_probe: None,
            unavailable: None,
            gpu_fault: None,
            generation: 0,
            survivors: Vec::new(),
            transitions: Vec::new(),
        }
    }

    /// The state changes since the last call, in order, each as (from, to): what supervisord's
    /// PROCESS_STATE events report. An exit from RUNNING passes through EXITED even when a
    /// restart follows at once, as in supervisord.
    pub fn take_transitions(&mut self) -> Vec<(State, State)> {
        std::mem::take(&mut self.transitions)
    }

    /// Applies `event` at `now`; returns what to do. A verb the program does not take now
    /// answers [`Effect::Refused`] and changes nothing; an event that no longer applies (about
    /// a process that is gone, say) is dropped.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        self.generation = self.generation.wrapping_add(1);
        match event {
            Event::Start => self.verb_start(now),
            Event::Stop => self.verb_stop(now),
            Event::Restart => self.verb_restart(now),
            Event::Signal(signal) => match self.pid() {
                Some(pid) => vec![Effect::Signal { pid, signal, group: false }],
                None => refuse(Refusal::NotRunning),
            },
            Event::Retire => {
                self.retiring = true;
                self.halt(now)
            }
            Event::Shutdown => {
                self.shutting_down = true;
                match &mut self.phase {
                    Phase::Stopping { then, .. } => *then = AfterStop::Nothing,
                    Phase::Backoff { .. } | Phase::Waiting { .. } => return self.enter(Phase::Stopped, now),
                    _ => {}
                }
                Vec::new()
            }
            Event::StopForShutdown => self.halt(now),
            Event::Unavailable { reason } => {
                self.unavailable = Some(reason);
                Vec::new()
            }
            Event::GpuFault(fault) => {
                // Only a program that cannot do without its GPU counts as unhealthy for it;
                // an `optional` one may well be running on the CPU.
                self.gpu_fault = fault.filter(|_| self.cfg.gpu == GpuMode::Required);
                Vec::new()
            }
            Event::OverMemory { reason } => match self.phase {
                Phase::Starting { .. } | Phase::Running { .. } => {
                    self.memory_restarts = self.memory_restarts.saturating_add(1);
                    self.error = Some(reason);
                    self.stop(AfterStop::Restart, now)
                }
                _ => Vec::new(), // already stopping, or no process: nothing to restart
            },
            Event::OomKilled { reason } => {
                self.oom_kills = self.oom_kills.saturating_add(1);
                self.error = Some(reason);
                Vec::new()
            }
            event => self.on_process(event, now),
        }
    }

    /// The events about the process and its timers, by phase.
    fn on_process(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        match (&mut self.phase, event) {
            (Phase::Waiting { on }, Event::DependenciesPending { waiting_for }) => {
                *on = waiting_for;
                Vec::new()
            }
            (Phase::Waiting { .. }, Event::DependenciesMet) => self.spawn(now),
            (Phase::Waiting { .. }, Event::DependencyFailed { reason }) => {
                self.error = Some(reason);
                self.enter(Phase::Fatal, now)
            }
            (Phase::Spawning, Event::Spawned { pid }) => self.spawned(pid, now),
            (Phase::Spawning, Event::SpawnFailed { error }) => {
                self.error = Some(error);
                self.failed_start(now)
            }
            // The child could not exec: a failed start whatever `startsecs` said.
            (Phase::Starting { .. } | Phase::Running { .. }, Event::SpawnFailed { error }) => {
                let mut effects = self.exited(ExitStatus::Code(127));
                self.error = Some(error);
                effects.extend(self.failed_start(now));
                effects
            }
            (&mut Phase::Starting { pid, until: Some(_) }, Event::Deadline) => self.running(pid, now),
            (Phase::Starting { .. }, Event::Exited { status, .. }) => {
                let mut effects = self.exited(status);
                effects.extend(self.failed_start(now));
                effects
            }
            (Phase::Running { .. }, Event::Exited { status, .. }) => {
                self.failed_starts = 0;
                let mut effects = self.exited(status);
                self.enter(Phase::Exited, now);
                effects.extend(self.after_run(status, now));
                effects
            }
            (Phase::Starting { .. } | Phase::Running { .. }, Event::Probe(outcome)) => self.probed(outcome, now),
            (Phase::Backoff { .. }, Event::Deadline) => {
                self.restarts = self.restarts.saturating_add(1);
                self.spawn(now)
            }
            (Phase::Stopping { pid, .. }, Event::Exited { status, group_alive }) => {
                *pid = None;
                self.exited(status);
                if group_alive { Vec::new() } else { self.stopped(now) }
            }
            (Phase::Stopping { pid: None, .. }, Event::GroupGone) => self.stopped(now),
            (Phase::Stopping { pid, pgid, kill_at, killed: killed @ false, .. }, Event::Deadline) => {
                *killed = true;
                *kill_at = after(now, KILL_GRACE);
                // The leader's own group when it is gone, or when killasgroup says so.
                let group = self.cfg.killasgroup || pid.is_none();
                vec![Effect::Signal { pid: pid.unwrap_or(*pgid), signal: Signal::SIGKILL, group }]
            }
            (Phase::Stopping { killed: true, .. }, Event::Deadline) => self.given_up(Vec::new(), now),
            (Phase::Stopping { killed: true, .. }, Event::KillTimedOut { survivors }) => self.given_up(survivors, now),
            _ => Vec::new(),
        }
    }

    /// `start`: from STOPPED, EXITED, FATAL or BACKOFF (supervisord: ALREADY_STARTED otherwise).
    fn verb_start(&mut self, now: Instant) -> Vec<Effect> {
        if let Some(why) = self.verbs_refused() {
            return refuse(why);
        }
        match self.phase {
            Phase::Stopping { .. } => refuse(Refusal::Stopping),
            Phase::Waiting { .. } | Phase::Spawning | Phase::Starting { .. } | Phase::Running { .. } => {
                refuse(Refusal::AlreadyStarted)
            }
            Phase::Stopped | Phase::Backoff { .. } | Phase::Exited | Phase::Fatal => self.start(now),
        }
    }

    /// `stop`: from STARTING, RUNNING or BACKOFF (supervisord: NOT_RUNNING otherwise).
    fn verb_stop(&mut self, now: Instant) -> Vec<Effect> {
        if let Some(why) = self.verbs_refused() {
            return refuse(why);
        }
        match self.phase {
            Phase::Stopped | Phase::Stopping { .. } | Phase::Exited | Phase::Fatal => refuse(Refusal::NotRunning),
            _ => self.halt(now),
        }
    }

    /// `restart`: stop it where it runs, then start it; a stop in progress is followed by a start.
    fn verb_restart(&mut self, now: Instant) -> Vec<Effect> {
        if let Some(why) = self.verbs_refused() {
            return refuse(why);
        }
        match &mut self.phase {
            Phase::Stopping { then, .. } => {
                *then = AfterStop::Start;
                Vec::new()
            }
            Phase::Waiting { .. } | Phase::Spawning | Phase::Starting { .. } | Phase::Running { .. } => {
                self.stop(AfterStop::Start, now)
            }
            Phase::Stopped | Phase::Backoff { .. } | Phase::Exited | Phase::Fatal => self.start(now),
        }
    }

    /// Why no verb is taken now, whatever the state.
    fn verbs_refused(&self) -> Option<Refusal> {
        if self.shutting_down {
            Some(Refusal::ShuttingDown)
        } else if self.retiring {
            Some(Refusal::Retiring)
        } else {
            None
        }
    }

    /// Stops it for good, from any state: no restart follows.
    fn halt(&mut self, now: Instant) -> Vec<Effect> {
        match &mut self.phase {
            Phase::Stopping { then, .. } => {
                *then = AfterStop::Nothing;
                Vec::new()
            }
            Phase::Backoff { .. } => self.enter(Phase::Stopped, now),
            Phase::Waiting { .. } | Phase::Spawning | Phase::Starting { .. } | Phase::Running { .. } => {
                self.stop(AfterStop::Nothing, now)
            }
            Phase::Stopped | Phase::Exited | Phase::Fatal => Vec::new(),
        }
    }

    /// A start asked for: FATAL at once where it cannot run here, else a spawn (or a wait for
    /// its dependencies). A start resets the failed-start count (supervisord).
    fn start(&mut self, now: Instant) -> Vec<Effect> {
        if let Some(reason) = self.unavailable.clone() {
            self.error = Some(reason);
            return self.enter(Phase::Fatal, now);
        }
        self.failed_starts = 0;
        self.streak = 0;
        if self.cfg.depends_on.is_empty() {
            return self.spawn(now);
        }
        self.enter(Phase::Waiting { on: "dependencies".into() }, now)
    }

    fn spawn(&mut self, now: Instant) -> Vec<Effect> {
        self.spawns = self.spawns.wrapping_add(1);
        self.enter(Phase::Spawning, now);
        vec![Effect::Spawn]
    }

    /// supervisord: STARTING until the process has been up `startsecs`; supd: or until healthy
    /// (`startsecs = "healthy"`).
    fn spawned(&mut self, pid: i32, now: Instant) -> Vec<Effect> {
        self.spawned_at = Some(now);
        self.last_pid = Some(pid);
        self.error = None;
        self.health = self.cfg.healthcheck.as_ref().map(|check| HealthCount::new(check, now));
        let mut effects = if self.cfg.ready_when_healthy {
            self.enter(Phase::Starting { pid, until: None }, now)
        } else if self.cfg.startsecs.is_zero() {
            // RUNNING at once, but the failed starts count on until the first exit that is
            // not an exec failure: the exec is not confirmed yet (see Event::SpawnFailed).
            self.enter(Phase::Running { pid }, now)
        } else {
            self.enter(Phase::Starting { pid, until: Some(after(now, self.cfg.startsecs)) }, now)
        };
        if self.health.is_some() {
            effects.push(Effect::StartProbe);
        }
        effects
    }

    fn running(&mut self, pid: i32, now: Instant) -> Vec<Effect> {
        self.failed_starts = 0;
        self.enter(Phase::Running { pid }, now)
    }

    /// Sends `stopsignal` (and SIGCONT) and waits `stopwaitsecs` for the tree to go; `then`
    /// follows once it has. Without a process it is stopped at once.
    fn stop(&mut self, then: AfterStop, now: Instant) -> Vec<Effect> {
        let Some(pid) = self.pid() else {
            self.enter(Phase::Stopped, now);
            return self.after_stop(then, now);
        };
        self.survivors.clear();
        let kill_at = after(now, self.cfg.stopwaitsecs);
        self.enter(Phase::Stopping { pid: Some(pid), pgid: pid, kill_at, killed: false, then }, now);
        let (signal, group) = (self.cfg.stopsignal, self.cfg.stopasgroup);
        let mut effects = vec![Effect::Signal { pid, signal, group }];
        // A stopped (SIGSTOP, traced) process cannot act on `stopsignal` until it runs again,
        // and would cost the whole stopwaitsecs; SIGCONT right after lets it act at once
        // (systemd does the same).
        if !matches!(signal, Signal::SIGKILL | Signal::SIGCONT) {
            effects.push(Effect::Signal { pid, signal: Signal::SIGCONT, group });
        }
        if self.health.is_some() {
            effects.push(Effect::StopProbe);
        }
        effects
    }

    /// The tree is gone: STOPPED, then what the stop was for.
    fn stopped(&mut self, now: Instant) -> Vec<Effect> {
        let then = match self.phase {
            Phase::Stopping { then, .. } => then,
            _ => AfterStop::Nothing,
        };
        self.enter(Phase::Stopped, now);
        self.after_stop(then, now)
    }

    fn after_stop(&mut self, then: AfterStop, now: Instant) -> Vec<Effect> {
        match then {
            AfterStop::Nothing => Vec::new(),
            AfterStop::Start => self.start(now),
            AfterStop::Restart => self.restart_with_backoff(now),
            AfterStop::FailedStart => self.failed_start(now),
        }
    }

    /// The tree outlived SIGKILL by [`KILL_GRACE`]: STOPPED, reporting what is left.
    fn given_up(&mut self, survivors: Vec<i32>, now: Instant) -> Vec<Effect> {
        self.error = Some(if survivors.is_empty() {
            "the process group did not exit after SIGKILL".into()
        } else {
            let pids: Vec<String> = survivors.iter().map(i32::to_string).collect();
            format!("still alive after SIGKILL: pid {}", pids.join(", "))
        });
        self.survivors = survivors;
        let forget = self.pid().map(Effect::ForgetPid);
        let mut effects = self.stopped(now);
        effects.extend(forget);
        effects
    }

    fn exited(&mut self, status: ExitStatus) -> Vec<Effect> {
        self.last_exit = Some(status);
        let probed = self.health.take().is_some();
        if probed && !matches!(self.phase, Phase::Stopping { .. }) { vec![Effect::StopProbe] } else { Vec::new() }
    }

    /// supervisord: an exit before `startsecs` is a failed start; more than `startretries` of
    /// them in a row is FATAL. Retries back off like restarts do (1 s, 2 s, 4 s … by default).
    fn failed_start(&mut self, now: Instant) -> Vec<Effect> {
        self.failed_starts = self.failed_starts.saturating_add(1);
        if self.shutting_down {
            return self.enter(Phase::Exited, now);
        }
        if self.failed_starts > self.cfg.startretries {
            let why = match (&self.error, self.last_exit) {
                (Some(e), _) => e.clone(),
                (None, Some(status)) => format!("exited too quickly ({status})"),
                (None, None) => "exited too quickly".into(),
            };
            self.error = Some(format!("gave up after {} failed starts: {why}", self.failed_starts));
            return self.enter(Phase::Fatal, now);
        }
        let delay = backoff::delay(&self.cfg.backoff, self.failed_starts, &mut self.rng);
        self.enter(Phase::Backoff { until: after(now, delay), delay }, now)
    }

    /// An exit from RUNNING: supervisord's autorestart/exitcodes rule, then supd's backoff.
    fn after_run(&mut self, status: ExitStatus, now: Instant) -> Vec<Effect> {
        let restart = !self.shutting_down
            && match self.cfg.autorestart {
                Autorestart::Always => true,
                Autorestart::Never => false,
                Autorestart::Unexpected => !self.expected(status),
            };
        if !restart {
            return self.enter(Phase::Exited, now);
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
        self.enter(Phase::Backoff { until: after(now, delay), delay }, now)
    }

    /// A probe result, counted by Docker's rule ([`HealthCount`]). Unhealthy with
    /// `on_unhealthy = "restart"` stops it, and the restart then goes through the crash backoff
    /// (or, before it was ever ready under `startsecs = "healthy"`, counts as a failed start).
    fn probed(&mut self, outcome: ProbeOutcome, now: Instant) -> Vec<Effect> {
        let ok = outcome.ok;
        self.last_probe = Some(outcome);
        let (Some(check), Some(count)) = (self.cfg.healthcheck.as_ref(), self.health.as_mut()) else {
            return Vec::new();
        };
        match (count.record(ok, now, check), &self.phase) {
            (Verdict::Healthy, &Phase::Starting { pid, .. }) if self.cfg.ready_when_healthy => self.running(pid, now),
            (Verdict::BecameUnhealthy, phase) if check.on_unhealthy == OnUnhealthy::Restart => {
                let then =
                    if matches!(phase, Phase::Starting { .. }) { AfterStop::FailedStart } else { AfterStop::Restart };
                self.stop(then, now)
            }
            _ => Vec::new(),
        }
    }

    fn enter(&mut self, phase: Phase, now: Instant) -> Vec<Effect> {
        let from = self.state();
        self.phase = phase;
        self.since = now;
        let to = self.state();
        // A bounded log: the supervisor takes it after every event.
        if from != to && self.transitions.len() < 64 {
            self.transitions.push((from, to));
        }
        Vec::new()
    }
}

fn refuse(why: Refusal) -> Vec<Effect> {
    vec![Effect::Refused(why)]
}
