//! The reaper: the only place that calls `waitpid`.
//!
//! As PID 1 (or a child subreaper) supd inherits every orphan in the container, so on each
//! SIGCHLD it drains all exit statuses with `waitpid(-1, WNOHANG)` until none is left; signals
//! coalesce, so one SIGCHLD may stand for many exits.

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

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
