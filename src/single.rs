//! Single-command mode, `supd -- CMD ARGS...`: an init like tini or dumb-init. Runs one child
//! in its own process group (given the terminal if there is one), forwards signals to it,
//! reaps every zombie, and exits with the child's code (128 + N when killed by signal N).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, error};

use crate::process::{reaper, signal as sig};

/// Runs `argv` until it exits; returns the code supd should exit with (127 when the command is
/// not found, 126 when it cannot be executed, as shells and tini do).
pub async fn run(argv: Vec<OsString>) -> std::io::Result<i32> {
    let forwarded = [
        (SignalKind::terminate(), Signal::SIGTERM),
        (SignalKind::interrupt(), Signal::SIGINT),
        (SignalKind::quit(), Signal::SIGQUIT),
        (SignalKind::hangup(), Signal::SIGHUP),
        (SignalKind::user_defined1(), Signal::SIGUSR1),
        (SignalKind::user_defined2(), Signal::SIGUSR2),
        (SignalKind::window_change(), Signal::SIGWINCH),
        (SignalKind::alarm(), Signal::SIGALRM),
    ];
    let mut streams = Vec::with_capacity(forwarded.len());
    for (kind, sig) in forwarded {
        streams.push((signal(kind)?, sig));
    }
    let mut sigchld = signal(SignalKind::child())?;

    let Some((program, args)) = argv.split_first() else { return Ok(2) };
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            crate::process::reset_signal_dispositions();
            crate::process::cloexec_from_3();
            if libc::setpgid(0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Hand the terminal to the child's group, as tini does. tcsetpgrp from a background
            // group raises SIGTTOU, so block it for the call; no terminal (ENOTTY) is fine.
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTTOU);
            libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
            libc::tcsetpgrp(0, libc::getpgrp());
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
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
        let forward = async {
            let waits = streams.iter_mut().map(|(s, sig)| Box::pin(async move { s.recv().await.map(|_| *sig) }));
            select_first(waits).await
        };
        tokio::select! {
            _ = sigchld.recv() => {}
            Some(signal) = forward => {
                debug!("forwarding {} to {pid}", signal.as_str());
                let _ = sig::send(pid, signal, false);
            }
        }
    }
}

/// The first of `futures` to finish.
async fn select_first<F, T>(futures: impl Iterator<Item = std::pin::Pin<Box<F>>>) -> T
where
    F: std::future::Future<Output = T> + ?Sized,
{
    let mut futures: Vec<_> = futures.collect();
    std::future::poll_fn(|cx| {
        for f in &mut futures {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
