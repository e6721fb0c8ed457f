//! The supervisor: one task that owns every [`Program`] and is the only place states change.
//!
//! It sleeps until something happens: SIGCHLD (→ reap), a shutdown signal, a control command,
//! or the earliest deadline a program armed (startsecs, backoff, stopwaitsecs). Nothing polls,
//! so an idle supd makes no wake-ups. After each wake it publishes a [`Snapshot`] for readers.
//!
//! It decides nothing itself: every rule is the lifecycle's (see [`crate::lifecycle`]); this
//! module feeds events in and carries effects out. It never blocks (no file, /proc beyond a
//! stopping program's tree, or network I/O on its thread) and never knows the wire format.

mod commands;
mod depends;
mod effects;
mod exits;
mod limits;
mod memory;
mod reload;
mod reports;
mod shutdown;
pub mod snapshot;
mod tree;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::config::{Condition, Config, ProgramConfig};
use crate::gpu::Gpus;
use crate::lifecycle::planner::ShutdownPlan;
use crate::lifecycle::{Event, Program};
use crate::output::{ProgramLogs, Sink};
use crate::probe::runner::Report;
use crate::process::reaper::Waiters;
use crate::process::signal::SignalStream;
pub use commands::{Command, Envelope, GroupError, ReloadError, VerbError};
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

/// One program and what the supervisor keeps beside it.
struct Supervised {
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
    /// What a reload decided for it, carried out once it has stopped.
    next: Option<Successor>,
    /// Its cgroup, made at its first spawn when supd has cgroups.
    cgroup: Option<crate::process::cgroup::ProgramCgroup>,
    /// Its process's stdin, with `stdin_pipe`, while the process lives.
    stdin: Option<Arc<crate::process::stdin::Stdin>>,
    /// The restart count the live feed last told.
    restarts_told: u64,
    /// Its cgroup limits' cgroups, made at its first spawn when it has limits.
    limits: Option<crate::process::limits::ProgramLimits>,
    /// The OOM kills its memory cgroup had counted when its process was spawned.
    oom_seen: u64,
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
}

/// The supervisor's state. Built by [`Supervisor::new`], driven by [`Supervisor::run`].
///
/// Programs are named by their slot index inside one turn of the loop. Indices come from
/// `0..slots.len()`, from `by_pid` (rebuilt whenever slots move) or from a lookup by name or
/// key, and slots only move in `Supervisor::reindex`, which rebuilds both: so indexing
/// `slots` cannot panic.
pub struct Supervisor {
    slots: Vec<Supervised>,
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
    /// Why reaped children could not exec, by pid, until their exits are handled.
    exec_failures: HashMap<i32, crate::process::spawn::ExecFailure>,
    by_pid: HashMap<i32, usize>,
    /// Supervised by program name; rebuilt with `by_pid`.
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
    /// Where events go out to event listeners.
    bus: crate::events::Bus,
    /// supd's own live feed (`/events`, `supctl events`).
    feed: crate::events::live::Feed,
    /// The settings of the config in force, to rebuild one around a group added or removed.
    settings: (crate::config::SupervisorConfig, crate::config::GpuConfig, Vec<std::path::PathBuf>),
    /// Where probe durations are reported (`/metrics`).
    observer: Option<Arc<dyn ProbeObserver>>,
    /// supd's cgroup v2, where it can make one for each program.
    cgroups: Option<crate::process::cgroup::Cgroups>,
    /// The processes as /proc showed them this turn of the loop, when a stop needed them.
    census: Option<crate::process::tree::Census>,
    /// Where programs' cgroup limits apply, found when the first program with limits begins.
    limiter: Option<Result<crate::process::limits::Limiter, String>>,
}

impl Supervisor {
    /// A supervisor for `config`'s programs, all STOPPED, with `gpu[i]` what program i got of
    /// `gpus` (see [`crate::gpu::Setup`]) and `faults` the GPU poller's reports. Output goes
    /// through `sink`.
    pub fn new(
        config: &Config,
        gpus: Gpus,
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
            exec_failures: HashMap::new(),
            by_pid: HashMap::new(),
            by_name: HashMap::new(),
            sink,
            readers: Vec::new(),
            shutdown: None,
            snapshot,
            moved: true,
            fixed: reload::FixedSettings::of(config),
            settings: (config.supervisor.clone(), config.gpu.clone(), config.sources.clone()),
            bus: crate::events::Bus::default(),
            feed: crate::events::live::Feed::default(),
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
            limiter: None,
        };
        let ranks = crate::config::ranks(&config.programs);
        let logs = me.sink.logs_for(config);
        let now = Instant::now();
        for ((p, logs), rank) in config.programs.iter().zip(logs).zip(ranks) {
            let slot = me.slot(Arc::new(p.clone()), logs, rank, now);
            me.slots.push(slot);
        }
        me.reindex();
        me
    }

    /// supd's live feed, for the listeners that serve `/events` and `supctl events`.
    pub fn feed(&self) -> crate::events::live::Feed {
        self.feed.clone()
    }

    /// Reports probe durations and forgotten programs to `observer` (`/metrics` records them).
    pub fn with_probe_observer(mut self, observer: Arc<dyn ProbeObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// A new slot holding a STOPPED program.
    fn slot(&mut self, cfg: Arc<ProgramConfig>, logs: ProgramLogs, rank: u32, now: Instant) -> Supervised {
        self.keys += 1;
        let program = Program::new(cfg, now, self.seed.wrapping_add(self.keys));
        let (deps, probe, next, cgroup, stdin) = (Vec::new(), None, None, None, None);
        let (limits, oom_seen) = (None, 0);
        Supervised {
            key: self.keys,
            program,
            logs,
            deps,
            rank,
            probe,
            next,
            cgroup,
            stdin,
            restarts_told: 0,
            limits,
            oom_seen,
        }
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
        let (over_tx, mut over_memory) = mpsc::channel(16);
        tokio::spawn(memory::watch(self.snapshot.subscribe(), over_tx));
        let now = Instant::now();
        for i in 0..self.slots.len() {
            self.begin(i, now);
        }
        self.bus.publish("SUPERVISOR_STATE_CHANGE_RUNNING", String::new());
        loop {
            self.census = None;
            self.reap(Instant::now());
            self.settle_reloads(Instant::now());
            self.check_dependencies(Instant::now());
            self.advance_shutdown(Instant::now());
            self.publish();
            if let Some(code) = self.finished() {
                self.remove_cgroups();
                self.remove_limits();
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
                Some(over) = over_memory.recv() => self.over_memory(over, Instant::now()),
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
        if let Some(reason) = self.slots[i].program.cfg.gpu_unavailable.clone() {
            self.apply(i, Event::Unavailable { reason }, now);
        }
        self.check_limits(i, now);
        if self.slots[i].program.cfg.autostart && self.shutdown.is_none() {
            self.apply(i, Event::Start, now);
        }
        self.sync_gpu_fault(i, now);
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
            let programs = self
                .slots
                .iter()
                .map(|s| ProgramView::of(&s.program, &s.logs, s.cgroup.as_ref(), s.stdin.clone()))
                .collect();
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
