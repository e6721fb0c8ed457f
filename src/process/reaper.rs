//! The reaper: the only place that calls `waitpid`.
//!
//! As PID 1 (or a child subreaper) supd inherits every orphan in the container, so on each
//! SIGCHLD it drains all exit statuses with `waitpid(-1, WNOHANG)` until none is left; signals
//! coalesce, so one SIGCHLD may stand for many exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::sync::oneshot;

use super::ExitStatus;

/// Collects every exited child's `(pid, status)` without blocking.
pub fn reap_all() -> Vec<(i32, ExitStatus)> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid.as_raw(), ExitStatus::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _core)) => out.push((pid.as_raw(), ExitStatus::Signal(sig as i32))),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!("waitpid failed: {e}");
                break;
            }
        }
    }
    out
}

/// Makes supd the reaper of orphans below it when it is not PID 1 (`PR_SET_CHILD_SUBREAPER`),
/// so that the same reaping rules hold outside a PID namespace.
pub fn become_subreaper() -> nix::Result<()> {
    if std::process::id() == 1 {
        return Ok(());
    }
    nix::sys::prctl::set_child_subreaper(true)
}

/// Exit statuses awaited by pid, for processes that are not programs (exec probes). Shared
/// between the supervisor, which delivers, and probe tasks, which wait. The lock is a std
/// Mutex, never held across an await.
#[derive(Debug, Clone, Default)]
pub struct Waiters(Arc<Mutex<HashMap<i32, oneshot::Sender<ExitStatus>>>>);

impl Waiters {
    /// Asks for `pid`'s exit status. Call it right after spawning, before any await, so the
    /// reaper (on the same thread) cannot take the status first.
    pub fn register(&self, pid: i32) -> oneshot::Receiver<ExitStatus> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut map) = self.0.lock() {
            map.insert(pid, tx);
        }
        rx
    }

    /// Delivers `status` if someone waits for `pid`; whether someone did.
    pub fn deliver(&self, pid: i32, status: ExitStatus) -> bool {
        let waiter = self.0.lock().ok().and_then(|mut map| map.remove(&pid));
        waiter.map(|tx| tx.send(status)).is_some()
    }
}
