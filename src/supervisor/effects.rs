//! Carrying out what the lifecycle decided: each event goes to its program, and the effects
//! that come back (spawn, signal, probe, forget a pid) are done here, spawn results fed back.

use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use tracing::{debug, error, info, warn};

use super::{Supervisor, VerbError};
use crate::config::ProgramConfig;
use crate::events::live::{Change, Kind};
use crate::events::output::OutputEvents;
use crate::lifecycle::planner;
use crate::lifecycle::{Effect, Event, State};
use crate::probe::runner;
use crate::process::{signal as sig, spawn};

impl Supervisor {
    /// Feeds `event` to program `i` and carries out the effects (see [`Supervisor::carry_out`]).
    pub(super) fn apply(&mut self, i: usize, event: Event, now: Instant) {
        // Refusals and failed signals are logged where they happen; only verbs answer them.
        let _ = self.carry_out(i, event, now);
    }

    /// Feeds `event` to program `i` and carries out the effects, feeding spawn results back.
    /// Errors: the program refused the verb, or a signal it asked for could not be sent (what
    /// the control API answers).
    pub(super) fn carry_out(&mut self, i: usize, event: Event, now: Instant) -> Result<(), VerbError> {
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
                            outcome = Err(VerbError::Signal(e));
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
                        self.slots[i].stdin = None;
                    }
                    Effect::Refused(why) => outcome = Err(VerbError::Refused(why)),
                }
            }
            effects = next;
        }
        self.after_change(i, before);
        outcome
    }

    /// Sends `signal` to program `i`'s process `pid` (with `group`, to its whole tree).
    pub(super) fn signal(&mut self, i: usize, pid: i32, signal: Signal, group: bool) -> Result<(), Errno> {
        let name = &self.slots[i].program.cfg.name;
        debug!("sending {} to {name} (pid {pid}, group {group})", signal.as_str());
        let sent = sig::send(pid, signal, group)
            .inspect_err(|e| warn!("cannot send {} to {name} (pid {pid}): {e}", signal.as_str()));
        if group {
            self.signal_escaped(i, pid, signal);
        }
        sent
    }

    /// Starts probing program `i`'s new process, in place of any earlier probe task.
    pub(super) fn start_probe(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let (reports, waiters) = (self.reports.0.clone(), self.waiters.clone());
        let cfg = Arc::clone(&slot.program.cfg);
        let task = runner::start(slot.key, slot.program.spawns(), cfg, reports, waiters);
        if let Some(old) = slot.probe.replace(task) {
            old.abort();
        }
    }

    pub(super) fn spawn(&mut self, i: usize, now: Instant) -> Vec<Effect> {
        let cfg = Arc::clone(&self.slots[i].program.cfg);
        let cgroup = self.cgroup_of(i);
        let spawned =
            self.limit_cgroups(i).and_then(|also| spawn::spawn(&cfg, cgroup.as_ref(), also).map_err(|e| e.to_string()));
        let event = match spawned {
            Ok(child) => {
                self.by_pid.insert(child.pid, i);
                self.readers.retain(|r| !r.is_finished());
                let logs = &self.slots[i].logs;
                self.sink.open_files(logs);
                let mut stdout = child.stdout;
                let stdin_pipe = child.stdin.and_then(|stdin| self.attach_stdin(&cfg, stdin, &mut stdout));
                let streams = [
                    (stdout, &logs.stdout, &cfg.stdout, "stdout"),
                    (child.stderr, &logs.stderr, &cfg.stderr, "stderr"),
                ];
                for (fd, log, stream, channel) in streams {
                    let Some(fd) = fd else { continue };
                    // Subscribed before the reader starts, so that no output is missed.
                    let chunks = (stream.events_enabled && cfg.listener.is_none()).then(|| log.tail.subscribe());
                    match self.sink.forward(fd, log) {
                        Ok(reader) => self.readers.push(match chunks {
                            None => reader,
                            Some(chunks) => {
                                let (process, group) = (cfg.name.clone(), cfg.group.clone());
                                let events = OutputEvents { process, group, pid: child.pid, channel };
                                events.follow(&self.bus, chunks, reader)
                            }
                        }),
                        Err(e) => warn!("cannot read the output of {}: {e}", cfg.name),
                    }
                }
                self.slots[i].stdin = stdin_pipe;
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

    /// Puts a new process's stdin to use: an event listener's carries its events (and takes its
    /// `stdout`, the protocol's other half); any other program's is kept for `sendProcessStdin`
    /// and `fg`, and returned.
    fn attach_stdin(
        &self,
        cfg: &ProgramConfig,
        stdin: std::os::fd::OwnedFd,
        stdout: &mut Option<std::os::fd::OwnedFd>,
    ) -> Option<Arc<crate::process::stdin::Stdin>> {
        if let Some(listener) = &cfg.listener {
            let out = stdout.take()?;
            crate::events::listener::attach(cfg.name.clone(), listener.clone(), stdin, out, &self.bus);
            return None;
        }
        crate::process::stdin::Stdin::new(stdin)
            .inspect_err(|e| warn!("cannot write to the stdin of {}: {e}", cfg.name))
            .ok()
            .map(Arc::new)
    }

    /// Logs a state change, tells event listeners of each step of it, and acts on a
    /// `required` program going FATAL.
    pub(super) fn after_change(&mut self, i: usize, before: State) {
        let transitions = self.slots[i].program.take_transitions();
        let p = &self.slots[i].program;
        // Listeners are not told of listeners, so that none can feed itself.
        if p.cfg.listener.is_none() {
            for &(from, to) in &transitions {
                self.bus
                    .publish(crate::events::process_state_name(to), crate::events::process_state_payload(p, from, to));
            }
        }
        for (from, to) in transitions {
            self.feed.publish(|| {
                let why = match to {
                    State::Exited | State::Backoff | State::Fatal => p.error().map(str::to_string).or_else(|| {
                        p.last_exit()
                            .map(|s| format!("{s} ({})", if p.expected(s) { "expected" } else { "not expected" }))
                    }),
                    _ => None,
                };
                Change::now(&p.cfg.name, &p.cfg.group, Kind::State, Some(from.to_string()), to.to_string(), why)
            });
        }
        if p.restarts() != self.slots[i].restarts_told {
            let (count, told) = (p.restarts(), self.slots[i].restarts_told);
            self.feed.publish(|| {
                Change::now(&p.cfg.name, &p.cfg.group, Kind::Restart, Some(told.to_string()), count.to_string(), None)
            });
            self.slots[i].restarts_told = count;
        }
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
}
