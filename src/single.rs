//! Single-command mode, `supd -- CMD ARGS...`: an init like tini or dumb-init. Runs one child
//! in its own process group (given the terminal if there is one), forwards signals to it,
//! reaps every zombie, and exits with the child's code (128 + N when killed by signal N).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use std::os::fd::BorrowedFd;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::{self, Pid};
use tracing::{debug, error};

use crate::process::signal::SignalStream;
use crate::process::{reaper, signal as sig};

/// Runs `argv` until it exits; returns the code supd should exit with (127 when the command is
/// not found, 126 when it cannot be executed, as shells and tini do).
pub async fn run(argv: Vec<OsString>) -> std::io::Result<i32> {
    // Every signal an init forwards (as tini does), and SIGCHLD to reap.
    let forwarded = [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGALRM,
    ];
    let mut signals = SignalStream::listen(&[&forwarded[..], &[Signal::SIGCHLD]].concat())?;

    let Some((program, args)) = argv.split_first() else { return Ok(2) };
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            crate::process::reset_signal_dispositions();
            crate::process::cloexec_from_3();
            unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            // Hand the terminal to the child's group, as tini does. tcsetpgrp from a background
            // group raises SIGTTOU, so block it for the call; no terminal (ENOTTY) is fine.
            let ttou = SigSet::from(Signal::SIGTTOU);
            let mut old = SigSet::empty();
            let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old));
            let _ = unistd::tcsetpgrp(BorrowedFd::borrow_raw(0), unistd::getpgrp());
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            error!("cannot execute {}: {e}", program.to_string_lossy());
            return Ok(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 });
        }
    };
    let pid = child.id() as i32;
    drop(child); // never waited on: the reaper owns exit statuses

    loop {
        for (reaped, status) in reaper::reap_all() {
            if reaped == pid {
                debug!("child {pid} ended: {status}");
                return Ok(status.shell_code());
            }
            debug!("reaped orphan pid={reaped} ({status})");
        }
        match signals.next().await {
            Some(Signal::SIGCHLD) => {} // reaped at the top of the loop
            Some(signal) => {
                debug!("forwarding {} to {pid}", signal.as_str());
                let _ = sig::send(pid, signal, false);
            }
            None => return Ok(1), // the stream never closes while supd holds it
        }
    }
}
