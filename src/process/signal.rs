//! Signals: the ones supd receives, as one stream (signal-hook-tokio), and sending them to a
//! program's process or its whole process group.

use std::pin::Pin;

use futures_core::Stream;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use signal_hook_tokio::Signals;

/// The signals supd receives, as one stream.
pub struct SignalStream(Signals);

impl SignalStream {
    /// Installs handlers for `signals` (so none of them goes unseen from now on, nor takes its
    /// default action). Errors: a handler could not be installed (start-up only).
    pub fn listen(signals: &[Signal]) -> std::io::Result<Self> {
        let numbers: Vec<i32> = signals.iter().map(|&s| s as i32).collect();
        Signals::new(numbers).map(Self)
    }

    /// The next signal to arrive; `None` once the stream is closed. Signals of one kind that
    /// arrive while none is taken count once, as the kernel counts them.
    pub async fn next(&mut self) -> Option<Signal> {
        loop {
            let number = std::future::poll_fn(|cx| Pin::new(&mut self.0).poll_next(cx)).await?;
            if let Ok(signal) = Signal::try_from(number) {
                return Some(signal);
            }
        }
    }
}

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
