//! The supervisor: one task that owns every [`Program`] and is the only place states change.
//!
//! It sleeps until something happens: SIGCHLD (→ reap), a shutdown signal, a control command,
//! or the earliest deadline a program armed (startsecs, backoff, stopwaitsecs). Nothing polls,
//! so an idle supd makes no wake-ups. After each wake it publishes a [`Snapshot`] for readers.

pub mod backoff;
mod depends;
pub mod program;
mod shutdown;
pub mod snapshot;
pub mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::config::{Condition, Config};
use crate::health::Health;
use crate::health::probe::{self, Report};
use crate::output::{ProgramLogs, Sink};
use crate::process::reaper::{self, Waiters};
use crate::process::{signal as sig, spawn};
pub use program::{Effect, Event, Program};
use shutdown::Shutdown;
pub use snapshot::{ProgramView, Snapshot};
pub use state::State;

/// How long shutdown waits for programs' last output lines.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// A change asked for through the control API. Programs are named by index into the config's
/// program list (the order of [`Snapshot::programs`]).
#[derive(Debug)]
pub enum Command {
    /// Start these programs.
    Start(Vec<usize>),
    /// Stop these programs.
    Stop(Vec<usize>),
    /// Restart these programs.
    Restart(Vec<usize>),
    /// Send a signal to these programs' processes.
    Signal(Signal, Vec<usize>),
    /// Stop everything and exit 0.
    Shutdown,
}

/// A command and where its answer goes: per program, `Ok(spawns before the command)` when
/// accepted (waiters compare it with later snapshots), or why it was refused.
#[derive(Debug)]
pub struct Envelope {
    /// The command.
    pub command: Command,
    /// Answers in the order of the command's indices.
    pub reply: oneshot::Sender<Vec<Result<u64, String>>>,
}

/// The supervisor's state. Built by [`Supervisor::new`], driven by [`Supervisor::run`].
///
/// Programs are named by their index everywhere. `programs`, `deps`, `ranks`, `probes` and
/// `logs` are built together in `new` with one entry per program and never change length, and
/// every index comes from `0..len`, from `by_pid` (filled only at spawn) or from a command that
/// was checked with `get` first: so indexing these vectors cannot panic.
pub struct Supervisor {
    programs: Vec<Program>,
    /// Per program, its dependencies as (program index, condition).
    deps: Vec<Vec<(usize, Condition)>>,
    /// Per program, its depth in the dependency graph (stop order falls with it).
    ranks: Vec<u32>,
    /// Per program, the probe task of its current process and which spawn that is.
    probes: Vec<Option<(u64, tokio::task::JoinHandle<()>)>>,
    reports: (mpsc::Sender<Report>, Option<mpsc::Receiver<Report>>),
    /// Programs that cannot run here (no GPU for `gpu = "required"`), and GPU faults.
    gpu: (Vec<Option<String>>, Option<mpsc::Receiver<crate::gpu::Fault>>),
    /// Exit statuses awaited by exec probes.
    waiters: Waiters,
    /// Where each program's output goes (config order).
    logs: Arc<[ProgramLogs]>,
    by_pid: HashMap<i32, usize>,
    sink: Sink,
    /// Output readers still running, so shutdown can wait for programs' last lines.
    readers: Vec<tokio::task::JoinHandle<()>>,
    shutdown: Option<Shutdown>,
    snapshot: watch::Sender<Arc<Snapshot>>,
}

impl Supervisor {
    /// A supervisor for `config`'s programs, all STOPPED, passing their output to `sink` as
    /// `logs` (from [`Sink::start`]) says.
    pub fn new(config: &Config, sink: Sink, logs: Arc<[ProgramLogs]>, snapshot: watch::Sender<Arc<Snapshot>>) -> Self {
        let now = Instant::now();
        let seed = u64::from(std::process::id()) ^ fastrand::u64(..);
        let programs: Vec<Program> = config
            .programs
            .iter()
            .enumerate()
            .map(|(i, p)| Program::new(Arc::new(p.clone()), now, seed.wrapping_add(i as u64)))
            .collect();
        let index: HashMap<&str, usize> =
            config.programs.iter().enumerate().map(|(i, p)| (p.name.as_str(), i)).collect();
        let deps = config
            .programs
            .iter()
            .map(|p| p.depends_on.iter().filter_map(|d| Some((*index.get(d.program.as_str())?, d.condition))).collect())
            .collect();
        let (tx, rx) = mpsc::channel(256);
        Self {
            probes: programs.iter().map(|_| None).collect(),
            programs,
            deps,
            ranks: crate::config::ranks(&config.programs),
            reports: (tx, Some(rx)),
            gpu: (Vec::new(), None),
            waiters: Waiters::default(),
            logs,
            by_pid: HashMap::new(),
            sink,
            readers: Vec::new(),
            shutdown: None,
            snapshot,
        }
    }

    /// Applies the GPU assignment: `unavailable[i]` is why program i can never start here (it
    /// goes FATAL with that reason when started); `faults` brings changes in the faults of the
    /// GPUs programs hold (see [`crate::gpu::poll`]).
    pub fn with_gpu(mut self, unavailable: Vec<Option<String>>, faults: mpsc::Receiver<crate::gpu::Fault>) -> Self {
        self.gpu = (unavailable, Some(faults));
        self
    }

    /// Runs until shutdown completes; returns supd's exit code: 0, or 1 when a `required`
    /// program went FATAL. Errors: a signal handler could not be installed (start-up only).
    pub async fn run(mut self, mut commands: mpsc::Receiver<Envelope>) -> std::io::Result<i32> {
        // Handlers go in before the first spawn, so no exit can be missed.
        let mut sigchld = signal(SignalKind::child())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigquit = signal(SignalKind::quit())?;
        let mut sighup = signal(SignalKind::hangup())?;
        let mut sigusr2 = signal(SignalKind::user_defined2())?;
        // `run` consumes the supervisor, so the receiver made in `new` is always here.
        let Some(mut reports) = self.reports.1.take() else { return Ok(1) };

        let mut gpu_faults = self.gpu.1.take();
        let now = Instant::now();
        for (i, reason) in std::mem::take(&mut self.gpu.0).into_iter().enumerate() {
            if let Some(reason) = reason {
                self.apply(i, Event::Unavailable { reason }, now);
            }
        }
        for i in 0..self.programs.len() {
            if self.programs[i].cfg.autostart {
                self.apply(i, Event::Start, now);
            }
        }
        loop {
            self.reap(Instant::now());
            self.check_dependencies(Instant::now());
            self.advance_shutdown(Instant::now());
            self.publish();
            if let Some(code) = self.finished() {
                self.drain_output().await;
                return Ok(code);
            }
            let deadline = self.programs.iter().filter_map(Program::deadline).min();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sigchld.recv() => {} // reaped at the top of the loop
                _ = sigterm.recv() => self.begin_shutdown(0, "SIGTERM"),
                _ = sigint.recv() => self.begin_shutdown(0, "SIGINT"),
                _ = sigquit.recv() => self.begin_shutdown(0, "SIGQUIT"),
                _ = sighup.recv() => warn!("SIGHUP received; config reload is not supported yet, ignoring"),
                _ = sigusr2.recv() => {
                    info!("SIGUSR2: reopening log files");
                    let sink = self.sink.clone();
                    tokio::spawn(async move { sink.reopen().await });
                }
                Some(envelope) = commands.recv() => self.command(envelope),
                Some(report) = reports.recv() => self.probe_report(report),
                fault = next_fault(&mut gpu_faults) => match fault {
                    Some((i, fault)) if i < self.programs.len() => self.apply(i, Event::GpuFault(fault), Instant::now()),
                    Some(_) => {}
                    None => gpu_faults = None, // the poller has stopped
                },
                () = sleep => self.fire_deadlines(Instant::now()),
            }
        }
    }

    /// Feeds `event` to program `i` and carries out the effects, feeding spawn results back.
    fn apply(&mut self, i: usize, event: Event, now: Instant) {
        let before = self.programs[i].state();
        if let Event::Exited { status, .. } = &event {
            let p = &self.programs[i];
            if before == State::Stopping {
                info!("stopped: {} ({status})", p.cfg.name);
            } else {
                let expected = if p.expected(*status) { "expected" } else { "not expected" };
                info!("exited: {} ({status}; {expected})", p.cfg.name);
            }
        }
        let mut effects = self.programs[i].on(event, now);
        while !effects.is_empty() {
            let mut next = Vec::new();
            for effect in effects {
                match effect {
                    Effect::Spawn => next.extend(self.spawn(i, now)),
                    Effect::Signal { pid, signal, group } => {
                        let name = &self.programs[i].cfg.name;
                        debug!("sending {} to {name} (pid {pid}, group {group})", signal.as_str());
                        if let Err(e) = sig::send(pid, signal, group) {
                            warn!("cannot send {} to {name} (pid {pid}): {e}", signal.as_str());
                        }
                    }
                }
            }
            effects = next;
        }
        self.sync_probe(i);
        self.after_change(i, before);
    }

    /// Keeps program `i`'s probe task in step with its process: one task per spawn while it is
    /// STARTING or RUNNING, none otherwise.
    fn sync_probe(&mut self, i: usize) {
        let p = &self.programs[i];
        let wanted =
            p.cfg.healthcheck.is_some() && p.pid().is_some() && matches!(p.state(), State::Starting | State::Running);
        let spawn = p.spawns();
        match (&self.probes[i], wanted) {
            (Some((s, _)), true) if *s == spawn => {}
            (_, true) => {
                let task = probe::start(i, spawn, Arc::clone(&p.cfg), self.reports.0.clone(), self.waiters.clone());
                if let Some((_, old)) = self.probes[i].replace((spawn, task)) {
                    old.abort();
                }
            }
            (Some(_), false) => {
                if let Some((_, old)) = self.probes[i].take() {
                    old.abort();
                }
            }
            (None, false) => {}
        }
    }

    fn probe_report(&mut self, report: Report) {
        let Some(p) = self.programs.get(report.program) else { return };
        if p.spawns() != report.spawn || p.pid().is_none() {
            return; // about a process that is gone
        }
        let (before, name) = (p.health(), p.cfg.name.clone());
        let outcome = report.outcome;
        if !outcome.ok {
            debug!("probe of {name} failed: {}", outcome.message);
        }
        self.apply(report.program, Event::Probe(outcome), Instant::now());
        let after = self.programs[report.program].health();
        if after != before
            && let Some(h) = after
        {
            let last = self.programs[report.program].last_probe().map(|o| o.message.clone()).unwrap_or_default();
            match h {
                Health::Unhealthy => warn!("{name} is unhealthy ({last})"),
                _ => info!("{name} is {} ({last})", h.as_str()),
            }
        }
    }

    fn spawn(&mut self, i: usize, now: Instant) -> Vec<Effect> {
        let cfg = Arc::clone(&self.programs[i].cfg);
        let event = match spawn::spawn(&cfg) {
            Ok(child) => {
                self.by_pid.insert(child.pid, i);
                self.readers.retain(|r| !r.is_finished());
                let logs = &self.logs[i];
                for (fd, log) in [(Some(child.stdout), &logs.stdout), (child.stderr, &logs.stderr)] {
                    let Some(fd) = fd else { continue };
                    match self.sink.forward(fd, log) {
                        Ok(reader) => self.readers.push(reader),
                        Err(e) => warn!("cannot read the output of {}: {e}", cfg.name),
                    }
                }
                info!("spawned: {} with pid {}", cfg.name, child.pid);
                Event::Spawned { pid: child.pid }
            }
            Err(e) => {
                error!("spawn error: {}: {e}", cfg.name);
                Event::SpawnFailed { error: format!("spawn error: {e}") }
            }
        };
        self.programs[i].on(event, now)
    }

    /// Logs a state change and acts on a `required` program going FATAL.
    fn after_change(&mut self, i: usize, before: State) {
        let p = &self.programs[i];
        let after = p.state();
        if before == after {
            return;
        }
        let name = &p.cfg.name;
        match after {
            State::Fatal => error!("gave up: {name} entered FATAL: {}", p.error().unwrap_or("")),
            _ => info!("{name}: {before} -> {after}"),
        }
        if after == State::Fatal && p.cfg.required && self.shutdown.is_none() {
            error!("{name} is required and FATAL: stopping everything, exit code 1");
            self.begin_shutdown(1, "a required program is FATAL");
        }
    }

    /// Drains every exit status and routes it by pid; orphans are only logged.
    fn reap(&mut self, now: Instant) {
        let exits = reaper::reap_all();
        if exits.is_empty() {
            return;
        }
        for (pid, status) in exits {
            let Some(i) = self.by_pid.remove(&pid) else {
                if !self.waiters.deliver(pid, status) {
                    debug!("reaped orphan pid={pid} ({status})");
                }
                continue;
            };
            let cfg = &self.programs[i].cfg;
            let group_alive = (cfg.stopasgroup || cfg.killasgroup) && sig::group_alive(pid);
            self.apply(i, Event::Exited { status, group_alive }, now);
        }
        // A STOPPING program whose leader is gone waits for the rest of its group; each reaped
        // orphan may have been the last of one.
        for i in 0..self.programs.len() {
            let p = &self.programs[i];
            if p.state() == State::Stopping && p.pid().is_none() && p.pgid().is_some_and(|g| !sig::group_alive(g)) {
                self.apply(i, Event::GroupGone, now);
            }
        }
    }

    fn fire_deadlines(&mut self, now: Instant) {
        for i in 0..self.programs.len() {
            if self.programs[i].deadline().is_some_and(|d| d <= now) {
                let pid = self.programs[i].pid();
                self.apply(i, Event::Deadline, now);
                // A STOPPING program that outlived SIGKILL is given up on: forget its pid, so
                // a late exit is not taken for a later process of the same program.
                if let Some(pid) = pid
                    && self.programs[i].pid().is_none()
                {
                    self.by_pid.remove(&pid);
                }
            }
        }
    }

    fn command(&mut self, envelope: Envelope) {
        let answers = match envelope.command {
            Command::Start(ids) => self.act(&ids, start_check, Event::Start),
            Command::Stop(ids) => self.act(&ids, stop_check, Event::Stop),
            Command::Restart(ids) => self.act(&ids, |_| Ok(()), Event::Restart),
            Command::Signal(signal, ids) => ids
                .iter()
                .map(|&i| match self.programs.get(i).and_then(Program::pid) {
                    Some(pid) => sig::send(pid, signal, false).map(|()| 0).map_err(|e| e.to_string()),
                    None => Err("not running".into()),
                })
                .collect(),
            Command::Shutdown => {
                self.begin_shutdown(0, "supctl shutdown");
                Vec::new()
            }
        };
        let _ = envelope.reply.send(answers);
    }

    /// Applies `event` to each program that passes `check`; answers with each one's spawn count
    /// before the event (see [`Envelope`]) or why it was refused.
    fn act(&mut self, ids: &[usize], check: fn(State) -> Result<(), String>, event: Event) -> Vec<Result<u64, String>> {
        let now = Instant::now();
        let mut answers = Vec::with_capacity(ids.len());
        for &i in ids {
            let Some(p) = self.programs.get(i) else {
                answers.push(Err("no such program".into()));
                continue;
            };
            let spawns = p.spawns();
            let allowed = if self.shutdown.is_some() { Err("supd is shutting down".into()) } else { check(p.state()) };
            if allowed.is_ok() {
                self.apply(i, event.clone(), now);
            }
            answers.push(allowed.map(|()| spawns));
        }
        answers
    }

    /// Waits, at most [`DRAIN_TIMEOUT`], for the readers to pass on what programs wrote last.
    /// A process that escaped its group may hold a pipe open forever; the bound covers that.
    async fn drain_output(&mut self) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        for reader in self.readers.drain(..) {
            if tokio::time::timeout_at(deadline, reader).await.is_err() {
                break;
            }
        }
    }

    fn publish(&self) {
        let changed = {
            let current = self.snapshot.borrow();
            current.shutting_down != self.shutdown.is_some()
                || current.programs.len() != self.programs.len()
                || current.programs.iter().zip(&self.programs).any(|(v, p)| v.generation != p.generation())
        };
        if changed {
            let programs = self.programs.iter().zip(self.logs.iter()).map(|(p, l)| ProgramView::of(p, l)).collect();
            self.snapshot.send_replace(Arc::new(Snapshot { programs, shutting_down: self.shutdown.is_some() }));
        }
    }
}

/// The next GPU fault; never, without a poller.
async fn next_fault(faults: &mut Option<mpsc::Receiver<crate::gpu::Fault>>) -> Option<crate::gpu::Fault> {
    match faults {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn start_check(state: State) -> Result<(), String> {
    match state {
        State::Starting | State::Running => Err("already started".into()),
        State::Stopping => Err("is stopping; try again once it is stopped".into()),
        _ => Ok(()),
    }
}

fn stop_check(state: State) -> Result<(), String> {
    if matches!(state, State::Starting | State::Running | State::Backoff) { Ok(()) } else { Err("not running".into()) }
}
