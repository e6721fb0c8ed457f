//! Sending signals to a program's process or its whole process group.

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Sends `signal` to `pid`, or to the process group it leads when `group` is set (each program
/// runs in its own session, so its pgid is its pid). A process already gone is not an error.
pub fn send(pid: i32, signal: Signal, group: bool) -> nix::Result<()> {
    let result = if group { killpg(Pid::from_raw(pid), signal) } else { kill(Pid::from_raw(pid), signal) };
    match result {
        Err(Errno::ESRCH) => Ok(()),
        other => other,
    }
}

/// Whether any process is left in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    !matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
}
