//! The supervisor: one task that owns every [`Program`] and is the only place states change.
//!
//! It sleeps until something happens: SIGCHLD (→ reap), a shutdown signal, a control command,
//! or the earliest deadline a program armed (startsecs, backoff, stopwaitsecs). Nothing polls,
//! so an idle supd makes no wake-ups. After each wake it publishes a [`Snapshot`] for readers.

mod depends;
mod exits;
mod reload;
mod shutdown;
pub mod snapshot;
mod tree;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::config::{Condition, Config, ProgramConfig};
use crate::gpu::{Gpus, ProgramGpu};
use crate::lifecycle::planner::{self, ShutdownPlan};
use crate::lifecycle::{Effect, Event, Health, Program, State};
use crate::output::{ProgramLogs, Sink};
use crate::probe::runner::{self, Report};
use crate::process::reaper::Waiters;
use crate::process::signal::SignalStream;
use crate::process::{signal as sig, spawn};
pub use reload::ReloadPlan;
pub use snapshot::{ProgramView, Snapshot};

/// What learns of probe results beside the programs themselves (the `/metrics` histogram):
/// the supervisor's one way out to metrics, so it holds no metrics types.
pub trait ProbeObserver: Send + Sync {
    /// One probe of `program` (in `group`) took `latency`.
    fn probe_finished(&self, program: &str, group: &str, latency: std::time::Duration);
    /// A reload removed `program` (in `group`): forget what was kept for it.
    fn forget(&self, program: &str, group: &str);
}

/// How long shutdown waits for programs' last output lines.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// A change asked for through the control API. Programs are named by their names, which are
/// unique, so that a reload between choosing them and acting on them cannot mix them up.
#[derive(Debug)]
pub enum Command {
    /// Start these programs.
    Start(Vec<String>),
    /// Stop these programs.
    Stop(Vec<String>),
    /// Restart these programs.
    Restart(Vec<String>),
    /// Send a signal to these programs' processes.
    Signal(Signal, Vec<String>),
    /// Apply a newly loaded config (see the `reload` module); the answer goes to `reply`: the plan, or
    /// why the config cannot be applied (its GPU requests cannot be met).
    Reload {
        /// The config, loaded and validated.
        config: Box<Config>,
        /// Only compute the plan.
        dry_run: bool,
        /// Where the plan goes.
        reply: oneshot::Sender<Result<ReloadPlan, String>>,
    },
    /// Stop everything and exit 0.
    Shutdown,
}

/// A command and where its answer goes: per program, `Ok(spawns before the command)` when
/// accepted (waiters compare it with later snapshots), or why it was refused.
#[derive(Debug)]
pub struct Envelope {
    /// The command.
    pub command: Command,
    /// Answers in the order of the command's names.
    pub reply: oneshot::Sender<Vec<Result<u64, String>>>,
}

/// One program and what the supervisor keeps beside it.
struct Slot {
    /// Names this program instance for probe reports; a new one when a reload replaces it.
    key: u64,
    program: Program,
    /// Where its output goes.
    logs: ProgramLogs,
    /// Its dependencies as (slot index, condition); rebuilt whenever slots move.
    deps: Vec<(usize, Condition)>,
    /// Its depth in the dependency graph (stop order falls with it).
    rank: u32,
    /// The probe task of its current process.
    probe: Option<tokio::task::JoinHandle<()>>,
    /// The GPUs it got.
    gpu: ProgramGpu,
    /// What a reload decided for it, carried out once it has stopped.
    next: Option<Successor>,
    /// Its cgroup, made at its first spawn when supd has cgroups.
    cgroup: Option<crate::process::cgroup::ProgramCgroup>,
}

/// What becomes of a slot once its program has stopped.
enum Successor {
    /// Start again under a new config.
    Replace(Box<Replacement>),
    /// Forget it: the new config does not have it.
    Remove,
}

/// A program's new config, with what goes with it.
struct Replacement {
    cfg: Arc<ProgramConfig>,
    logs: ProgramLogs,
    gpu: ProgramGpu,
}

/// The supervisor's state. Built by [`Supervisor::new`], driven by [`Supervisor::run`].
///
/// Programs are named by their slot index inside one turn of the loop. Indices come from
/// `0..slots.len()`, from `by_pid` (rebuilt whenever slots move) or from a lookup by name or
/// key, and slots only move in `Supervisor::reindex`, which rebuilds both: so indexing
/// `slots` cannot panic.
pub struct Supervisor {
    slots: Vec<Slot>,
    /// The next slot key.
    keys: u64,
    /// Seeds each program's backoff jitter.
    seed: u64,
    reports: (mpsc::Sender<Report>, Option<mpsc::Receiver<Report>>),
    /// The GPUs, for assigning them again at a reload.
    gpus: Gpus,
    /// GPU faults from the poller.
    gpu_faults: Option<mpsc::Receiver<crate::gpu::Fault>>,
    /// Devices that are lost or reported an XID error, and why.
    broken: BTreeMap<u32, String>,
    /// Exit statuses awaited by exec probes.
    waiters: Waiters,
    /// Exit statuses reaped and not yet handled (see [`REAP_BATCH`]).
    exits: std::collections::VecDeque<(i32, crate::process::ExitStatus)>,
    by_pid: HashMap<i32, usize>,
    /// Slot by program name; rebuilt with `by_pid`.
    by_name: HashMap<String, usize>,
    sink: Sink,
    /// Output readers still running, so shutdown can wait for programs' last lines.
    readers: Vec<tokio::task::JoinHandle<()>>,
    shutdown: Option<ShutdownPlan>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    /// Slots moved or were replaced since the last snapshot.
    moved: bool,
    /// What a reload cannot change, as at start-up.
    fixed: reload::FixedSettings,
    /// Where probe durations are reported (`/metrics`).
    observer: Option<Arc<dyn ProbeObserver>>,
    /// supd's cgroup v2, where it can make one for each program.
    cgroups: Option<crate::process::cgroup::Cgroups>,
    /// The processes as /proc showed them this turn of the loop, when a stop needed them.
    census: Option<crate::process::tree::Census>,
}

impl Supervisor {
    /// A supervisor for `config`'s programs, all STOPPED, with `gpu[i]` what program i got of
    /// `gpus` (see [`crate::gpu::Setup`]) and `faults` the GPU poller's reports. Output goes
    /// through `sink`.
    pub fn new(
        config: &Config,
        gpus: Gpus,
        gpu: Vec<ProgramGpu>,
        faults: mpsc::Receiver<crate::gpu::Fault>,
        sink: Sink,
        snapshot: watch::Sender<Arc<Snapshot>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(256);
        let mut me = Self {
            slots: Vec::new(),
            keys: 0,
            seed: u64::from(std::process::id()) ^ fastrand::u64(..),
            reports: (tx, Some(rx)),
            gpus,
            gpu_faults: Some(faults),
            broken: BTreeMap::new(),
            waiters: Waiters::default(),
            exits: std::collections::VecDeque::new(),
            by_pid: HashMap::new(),
            by_name: HashMap::new(),
            sink,
            readers: Vec::new(),
            shutdown: None,
            snapshot,
            moved: true,
            fixed: reload::FixedSettings::of(config),
            observer: None,
            cgroups: match crate::process::cgroup::Cgroups::set_up(&config.supervisor.cgroup) {
                Ok(c) => {
                    info!("cgroup v2 at {}: each program runs in a cgroup of its own", c.base().display());
                    Some(c)
                }
                Err(why) => {
                    info!(
                        "no cgroup v2 for programs ({why}): a stop finds what left a program's process group by SUPD_PROCESS_NAME"
                    );
                    None
                }
            },
            census: None,
        };
        let ranks = crate::config::ranks(&config.programs);
        let logs = me.sink.logs_for(config);
        let mut gpu = gpu.into_iter();
        let now = Instant::now();
        for ((p, logs), rank) in config.programs.iter().zip(logs).zip(ranks) {
            let slot = me.slot(Arc::new(p.clone()), logs, gpu.next().unwrap_or_default(), rank, now);
            me.slots.push(slot);
        }
        me.reindex();
        me
    }

    /// Reports probe durations and forgotten programs to `observer` (`/metrics` records them).
    pub fn with_probe_observer(mut self, observer: Arc<dyn ProbeObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// A new slot holding a STOPPED program.
    fn slot(&mut self, cfg: Arc<ProgramConfig>, logs: ProgramLogs, gpu: ProgramGpu, rank: u32, now: Instant) -> Slot {
        self.keys += 1;
        let program = Program::new(cfg, now, self.seed.wrapping_add(self.keys));
        Slot { key: self.keys, program, logs, deps: Vec::new(), rank, probe: None, gpu, next: None, cgroup: None }
    }

    /// Rebuilds what names slots by index: dependencies, `by_pid` and `by_name`. (A removed
    /// program that still stops can share its name with one a later reload added again; a
    /// reload puts the new config's programs first, so the first slot of a name is the live one.)
    fn reindex(&mut self) {
        let mut index: HashMap<String, usize> = HashMap::with_capacity(self.slots.len());
        for (i, s) in self.slots.iter().enumerate() {
            index.entry(s.program.cfg.name.clone()).or_insert(i);
        }
        for slot in &mut self.slots {
            let deps = &slot.program.cfg.depends_on;
            slot.deps = deps.iter().filter_map(|d| Some((*index.get(&d.program)?, d.condition))).collect();
        }
        self.by_name = index;
        self.by_pid = self.slots.iter().enumerate().filter_map(|(i, s)| Some((s.program.pid()?, i))).collect();
        self.moved = true;
    }

    /// The slot of the program named `name`.
    fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Runs until shutdown completes; returns supd's exit code: 0, or 1 when a `required`
    /// program went FATAL. Errors: a signal handler could not be installed (start-up only).
    pub async fn run(mut self, mut commands: mpsc::Receiver<Envelope>) -> std::io::Result<i32> {
        // Handlers go in before the first spawn, so no exit can be missed.
        let mut signals = SignalStream::listen(&[
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGUSR2,
        ])?;
        // `run` consumes the supervisor, so the receiver made in `new` is always here.
        let Some(mut reports) = self.reports.1.take() else { return Ok(1) };
        let mut gpu_faults = self.gpu_faults.take();
        let now = Instant::now();
        for i in 0..self.slots.len() {
            self.begin(i, now);
        }
        loop {
            self.census = None;
            self.reap(Instant::now());
            self.settle_reloads(Instant::now());
            self.check_dependencies(Instant::now());
            self.advance_shutdown(Instant::now());
            self.publish();
            if let Some(code) = self.finished() {
                self.remove_cgroups();
                self.drain_output().await;
                return Ok(code);
            }
            // Let the other tasks (control and HTTP clients, output readers) have a turn, now
            // that the snapshot shows this turn's changes: a busy loop would otherwise hold the
            // thread for its whole cooperative budget.
            tokio::task::yield_now().await;
            let deadline = self.slots.iter().filter_map(|s| s.program.deadline()).min();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let more_exits = async {
                if self.exits.is_empty() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                Some(signal) = signals.next() => self.signalled(signal),
                () = more_exits => {} // handled at the top of the loop, in turn with the rest
                Some(envelope) = commands.recv() => self.command(envelope),
                Some(report) = reports.recv() => self.probe_report(report),
                fault = next_fault(&mut gpu_faults) => match fault {
                    Some(fault) => self.gpu_fault(fault, Instant::now()),
                    None => gpu_faults = None, // the poller has stopped
                },
                () = sleep => self.fire_deadlines(Instant::now()),
            }
        }
    }

    /// Acts on a signal to supd: SIGCHLD is reaped at the top of the loop; TERM, INT and QUIT
    /// shut down (exit 0); USR2 reopens the log files (for logrotate).
    fn signalled(&mut self, signal: Signal) {
        match signal {
            Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => self.begin_shutdown(0, signal.as_str()),
            Signal::SIGUSR2 => {
                info!("SIGUSR2: reopening log files");
                let sink = self.sink.clone();
                tokio::spawn(async move { sink.reopen().await });
            }
            _ => {}
        }
    }

    /// Puts a new program on its way: started when `autostart` (a program that cannot run
    /// here goes FATAL at its first start instead).
    fn begin(&mut self, i: usize, now: Instant) {
        if let Some(reason) = self.slots[i].gpu.unavailable.clone() {
            self.apply(i, Event::Unavailable { reason }, now);
        }
        if self.slots[i].program.cfg.autostart && self.shutdown.is_none() {
            self.apply(i, Event::Start, now);
        }
        self.sync_gpu_fault(i, now);
    }

    /// Records a change in a GPU's fault and passes it on to the `required` programs that
    /// hold that GPU.
    fn gpu_fault(&mut self, (index, fault): crate::gpu::Fault, now: Instant) {
        match fault {
            Some(why) => self.broken.insert(index, why),
            None => self.broken.remove(&index),
        };
        for i in 0..self.slots.len() {
            self.sync_gpu_fault(i, now);
        }
    }

    /// Gives program `i` the fault of the first broken GPU it holds, when it is `required`.
    fn sync_gpu_fault(&mut self, i: usize, now: Instant) {
        let slot = &self.slots[i];
        if slot.program.cfg.gpu != crate::config::GpuMode::Required {
            return;
        }
        let fault = slot.gpu.held.iter().find_map(|g| self.broken.get(g)).cloned();
        if fault.as_deref() != slot.program.gpu_fault() {
            self.apply(i, Event::GpuFault(fault), now);
        }
    }

    /// Feeds `event` to program `i` and carries out the effects (see [`Supervisor::carry_out`]).
    fn apply(&mut self, i: usize, event: Event, now: Instant) {
        // Refusals and failed signals are logged where they happen; only verbs answer them.
        let _ = self.carry_out(i, event, now);
    }

    /// Feeds `event` to program `i` and carries out the effects, feeding spawn results back.
    /// Errors: the program refused the verb, or a signal it asked for could not be sent (what
    /// the control API answers).
    fn carry_out(&mut self, i: usize, event: Event, now: Instant) -> Result<(), String> {
        let before = self.slots[i].program.state();
        if let Event::Exited { status, .. } = &event {
            let p = &self.slots[i].program;
            if before == State::Stopping {
                info!("stopped: {} ({status})", p.cfg.name);
            } else {
                let expected = if p.expected(*status) { "expected" } else { "not expected" };
                info!("exited: {} ({status}; {expected})", p.cfg.name);
            }
        }
        let mut outcome = Ok(());
        let mut effects = self.slots[i].program.on(event, now);
        while !effects.is_empty() {
            let mut next = Vec::new();
            for effect in effects {
                match effect {
                    Effect::Spawn => next.extend(self.spawn(i, now)),
                    Effect::Signal { pid, signal, group } => {
                        if let Err(e) = self.signal(i, pid, signal, group) {
                            outcome = Err(e);
                        }
                    }
                    Effect::StartProbe => self.start_probe(i),
                    Effect::StopProbe => {
                        if let Some(task) = self.slots[i].probe.take() {
                            task.abort();
                        }
                    }
                    Effect::ForgetPid(pid) => {
                        self.by_pid.remove(&pid);
                    }
                    Effect::Refused(why) => outcome = Err(why.to_string()),
                }
            }
            effects = next;
        }
        self.after_change(i, before);
        outcome
    }

    /// Sends `signal` to program `i`'s process `pid` (with `group`, to its whole tree).
    fn signal(&mut self, i: usize, pid: i32, signal: Signal, group: bool) -> Result<(), String> {
        let name = &self.slots[i].program.cfg.name;
        debug!("sending {} to {name} (pid {pid}, group {group})", signal.as_str());
        let sent = sig::send(pid, signal, group).map_err(|e| {
            warn!("cannot send {} to {name} (pid {pid}): {e}", signal.as_str());
            e.to_string()
        });
        if group {
            self.signal_escaped(i, pid, signal);
        }
        sent
    }

    /// Starts probing program `i`'s new process, in place of any earlier probe task.
    fn start_probe(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let (reports, waiters) = (self.reports.0.clone(), self.waiters.clone());
        let cfg = Arc::clone(&slot.program.cfg);
        let task = runner::start(slot.key, slot.program.spawns(), cfg, reports, waiters);
        if let Some(old) = slot.probe.replace(task) {
            old.abort();
        }
    }

    fn probe_report(&mut self, report: Report) {
        let Some(i) = self.slots.iter().position(|s| s.key == report.program) else { return };
        let p = &self.slots[i].program;
        if p.spawns() != report.spawn || p.pid().is_none() {
            return; // about a process that is gone
        }
        let (before, name) = (p.health(), p.cfg.name.clone());
        let outcome = report.outcome;
        if let Some(o) = &self.observer {
            o.probe_finished(&name, &p.cfg.group, outcome.latency);
        }
        if !outcome.ok {
            debug!("probe of {name} failed: {}", outcome.message);
        }
        self.apply(i, Event::Probe(outcome), Instant::now());
        let after = self.slots[i].program.health();
        if after != before
            && let Some(h) = after
        {
            let last = self.slots[i].program.last_probe().map(|o| o.message.clone()).unwrap_or_default();
            match h {
                Health::Unhealthy => warn!("{name} is unhealthy ({last})"),
                _ => info!("{name} is {} ({last})", h.as_str()),
            }
        }
    }

    fn spawn(&mut self, i: usize, now: Instant) -> Vec<Effect> {
        let cfg = Arc::clone(&self.slots[i].program.cfg);
        let cgroup = self.cgroup_of(i);
        let event = match spawn::spawn(&cfg, cgroup.as_ref()) {
            Ok(child) => {
                self.by_pid.insert(child.pid, i);
                self.readers.retain(|r| !r.is_finished());
                let logs = &self.slots[i].logs;
                self.sink.open_files(logs);
                for (fd, log) in [(child.stdout, &logs.stdout), (child.stderr, &logs.stderr)] {
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
        self.slots[i].program.on(event, now)
    }

    /// Logs a state change and acts on a `required` program going FATAL.
    fn after_change(&mut self, i: usize, before: State) {
        let p = &self.slots[i].program;
        let after = p.state();
        if before == after {
            return;
        }
        let name = &p.cfg.name;
        match after {
            State::Fatal => error!("gave up: {name} entered FATAL: {}", p.error().unwrap_or("")),
            _ => info!("{name}: {before} -> {after}"),
        }
        if planner::demands_shutdown(p, before) && self.shutdown.is_none() {
            error!("{name} is required and FATAL: stopping everything, exit code 1");
            self.begin_shutdown(1, "a required program is FATAL");
        }
    }

    fn command(&mut self, envelope: Envelope) {
        let answers = match envelope.command {
            Command::Start(names) => self.verb(&names, &Event::Start),
            Command::Stop(names) => self.verb(&names, &Event::Stop),
            Command::Restart(names) => self.verb(&names, &Event::Restart),
            Command::Signal(signal, names) => self.verb(&names, &Event::Signal(signal)),
            Command::Reload { config, dry_run, reply } => {
                let _ = reply.send(self.reload(*config, dry_run, Instant::now()));
                Vec::new()
            }
            Command::Shutdown => {
                self.begin_shutdown(0, "supctl shutdown");
                Vec::new()
            }
        };
        let _ = envelope.reply.send(answers);
    }

    /// Gives `event` (a control verb) to each named program; answers with each one's spawn
    /// count before the event (see [`Envelope`]), or why the program refused it.
    fn verb(&mut self, names: &[String], event: &Event) -> Vec<Result<u64, String>> {
        let now = Instant::now();
        let mut answers = Vec::with_capacity(names.len());
        for name in names {
            let Some(i) = self.find(name) else {
                answers.push(Err("no such program".into()));
                continue;
            };
            let spawns = self.slots[i].program.spawns();
            answers.push(self.carry_out(i, event.clone(), now).map(|()| spawns));
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

    fn publish(&mut self) {
        let changed = std::mem::take(&mut self.moved) || {
            let current = self.snapshot.borrow();
            current.shutting_down != self.shutdown.is_some()
                || current.programs.iter().zip(&self.slots).any(|(v, s)| v.generation != s.program.generation())
        };
        if changed {
            let programs = self.slots.iter().map(|s| ProgramView::of(&s.program, &s.logs, s.cgroup.as_ref())).collect();
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
