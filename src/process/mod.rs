//! Processes: spawning programs with their credentials, reaping every child, and signals.
//!
//! One rule holds the module together: only [`reaper::reap_all`] calls `waitpid`, and it runs
//! on the same single thread as [`spawn::spawn`], so the two never overlap (std's `spawn`
//! waits on a child whose exec failed; a concurrent `waitpid(-1)` would steal that status and
//! make std panic).

pub mod reaper;
pub mod signal;
pub mod spawn;

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// It called exit with this code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl ExitStatus {
    /// The code a shell would report: the exit code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(c) => write!(f, "exit status {c}"),
            ExitStatus::Signal(s) => match nix::sys::signal::Signal::try_from(s) {
                Ok(sig) => write!(f, "killed by {}", sig.as_str()),
                Err(_) => write!(f, "killed by signal {s}"),
            },
        }
    }
}
