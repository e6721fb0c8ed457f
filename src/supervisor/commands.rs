//! Control verbs from the API: each named program's lifecycle takes or refuses the verb, and
//! the answer goes back with the spawn count a waiter compares later snapshots with.

use std::time::Instant;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::{ReloadPlan, Supervisor};
use crate::config::Config;
use crate::lifecycle::{Event, Refusal};

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
    /// Apply a newly loaded config (see the `reload` module); the answer goes to `reply`: the
    /// plan, or why it was not applied.
    Reload {
        /// The config, loaded and validated.
        config: Box<Config>,
        /// Only compute the plan.
        dry_run: bool,
        /// Where the plan goes.
        reply: oneshot::Sender<Result<ReloadPlan, ReloadError>>,
    },
    /// Add one group of a newly loaded config, leaving every other program as it is
    /// (supervisord's `addProcessGroup`).
    AddGroup {
        /// The config, loaded and validated.
        config: Box<Config>,
        /// The group.
        group: String,
        /// Whether it was added.
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    /// Forget one stopped group (supervisord's `removeProcessGroup`).
    RemoveGroup {
        /// The group.
        group: String,
        /// Whether it was removed.
        reply: oneshot::Sender<Result<(), GroupError>>,
    },
    /// Stop everything and exit 0.
    Shutdown,
    /// Tell event listeners `REMOTE_COMMUNICATION` with this type and data (supervisord's
    /// `sendRemoteCommEvent`).
    RemoteCommunication {
        /// The event's `type:` field.
        kind: String,
        /// What follows it.
        data: String,
    },
}

/// Why a group could not be added or removed (supervisord's faults of the same names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// No such group (in the new config, for an add; among the programs, for a remove).
    #[error("no such group")]
    BadName,
    /// The group is there already.
    #[error("already added")]
    AlreadyAdded,
    /// A program of the group still runs.
    #[error("still running")]
    StillRunning,
    /// The reload it takes was refused.
    #[error("{0}")]
    Reload(ReloadError),
}

/// Why a verb did nothing to one program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerbError {
    /// No program has that name (any more: a reload removed it).
    #[error("no such program")]
    NoSuchProgram,
    /// The program's lifecycle does not take the verb now.
    #[error("{0}")]
    Refused(Refusal),
    /// The signal could not be sent.
    #[error("{0}")]
    Signal(Errno),
}

/// Why a reload was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// supd is shutting down and takes no more changes.
    #[error("supd is shutting down")]
    ShuttingDown,
}

/// A command and where its answer goes: per program, `Ok(spawns before the command)` when
/// accepted (waiters compare it with later snapshots), or why it was refused.
#[derive(Debug)]
pub struct Envelope {
    /// The command.
    pub command: Command,
    /// Answers in the order of the command's names.
    pub reply: oneshot::Sender<Vec<Result<u64, VerbError>>>,
}

impl Supervisor {
    pub(super) fn command(&mut self, envelope: Envelope) {
        let answers = match envelope.command {
            Command::Start(names) => self.verb(&names, &Event::Start),
            Command::Stop(names) => self.verb(&names, &Event::Stop),
            Command::Restart(names) => self.verb(&names, &Event::Restart),
            Command::Signal(signal, names) => self.verb(&names, &Event::Signal(signal)),
            Command::Reload { config, dry_run, reply } => {
                let _ = reply.send(self.reload(*config, dry_run, Instant::now()));
                Vec::new()
            }
            Command::AddGroup { config, group, reply } => {
                let _ = reply.send(self.add_group(*config, &group, Instant::now()));
                Vec::new()
            }
            Command::RemoveGroup { group, reply } => {
                let _ = reply.send(self.remove_group(&group, Instant::now()));
                Vec::new()
            }
            Command::Shutdown => {
                self.begin_shutdown(0, "supctl shutdown");
                Vec::new()
            }
            Command::RemoteCommunication { kind, data } => {
                self.bus.publish("REMOTE_COMMUNICATION", format!("type:{kind}\n{data}"));
                Vec::new()
            }
        };
        let _ = envelope.reply.send(answers);
    }

    /// Gives `event` (a control verb) to each named program; answers with each one's spawn
    /// count before the event (see [`Envelope`]), or why the program refused it.
    pub(super) fn verb(&mut self, names: &[String], event: &Event) -> Vec<Result<u64, VerbError>> {
        let now = Instant::now();
        let mut answers = Vec::with_capacity(names.len());
        for name in names {
            let Some(i) = self.find(name) else {
                answers.push(Err(VerbError::NoSuchProgram));
                continue;
            };
            let spawns = self.slots[i].program.spawns();
            answers.push(self.carry_out(i, event.clone(), now).map(|()| spawns));
        }
        answers
    }
}
