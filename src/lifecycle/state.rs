//! supervisord's process states, under the names its users know.

use serde::{Deserialize, Serialize};

/// A program's lifecycle state (supervisord's `ProcessStates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Not running, by config (`autostart = false`) or by request.
    Stopped,
    /// Spawned, not yet up for `startsecs`.
    Starting,
    /// Up.
    Running,
    /// Waiting before the next start attempt.
    Backoff,
    /// Stop signal sent, waiting for the process group to exit.
    Stopping,
    /// Exited from RUNNING and not restarted (by `autorestart`).
    Exited,
    /// Gave up: more failed starts in a row than `startretries`, or cannot be spawned.
    Fatal,
}

impl State {
    /// supervisord's RUNNING_STATES: a process exists or is about to.
    pub const fn is_active(self) -> bool {
        matches!(self, State::Starting | State::Running | State::Backoff | State::Stopping)
    }

    /// supervisord's STOPPED_STATES: what `supctl status` exits 3 for.
    pub const fn is_stopped(self) -> bool {
        matches!(self, State::Stopped | State::Exited | State::Fatal)
    }

    /// The name as supervisorctl prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "STOPPED",
            State::Starting => "STARTING",
            State::Running => "RUNNING",
            State::Backoff => "BACKOFF",
            State::Stopping => "STOPPING",
            State::Exited => "EXITED",
            State::Fatal => "FATAL",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
