//! Processes: spawning programs with their credentials, reaping every child, and signals.
//! It knows nothing of states or rules: it does what the supervisor asks, at once.
//!
//! One rule holds the module together: only [`reaper::reap_all`] calls `waitpid`. A spawn
//! never waits for its child (not even for its exec, unlike std's `Command`); a child that
//! cannot exec exits 127 and leaves the reason where the reaper's caller finds it
//! ([`spawn::read_failures`]).

pub mod cgroup;
pub mod limits;
pub mod reaper;
pub mod signal;
pub mod spawn;
pub mod stdin;
pub mod tree;
pub mod usage;

use std::fmt;

/// Marks every descriptor from 3 up close-on-exec, in a child between fork and exec, so a
/// program gets only stdin, stdout and stderr: supd opens its own descriptors `O_CLOEXEC`, and
/// this also keeps back whatever supd inherited from its parent. (Close-on-exec rather than
/// close, so the exec-failure pipe stays usable until the exec.) Kernels before 5.11 lack the
/// flag; there the first 1024 are marked one by one.
///
/// # Safety
/// Only in a child between fork and exec: it makes raw `close_range`/`fcntl` calls.
pub unsafe fn cloexec_from_3() {
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        let rc = libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
        if rc != 0 {
            for fd in 3..1024 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}

/// Resets every signal's disposition to the default, in a child between fork and exec. (Through
/// libc: nix's `Signal` has no realtime signals, and they must be reset too.)
///
/// A program must not inherit what supd's own parent left ignored (`nohup supd` would make
/// every program ignore SIGHUP), nor Rust's ignored SIGPIPE. Signals 32 and 33 are reserved to
/// glibc, which refuses to change them here and sets them up in every program it starts.
///
/// # Safety
/// Only in a child between fork and exec: it calls `signal(2)`, which is async-signal-safe.
pub unsafe fn reset_signal_dispositions() {
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: resetting a disposition to SIG_DFL is always allowed; errors are ignored.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

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

/// Raises supd's own soft (and, when needed, hard) limit of open files to at least `minfds`
/// and of processes to at least `minprocs`, as supervisord does at start; programs inherit
/// them. Errors: a limit cannot be raised that far (a hard limit above its own needs root),
/// for people.
pub fn raise_own_limits(minfds: Option<u64>, minprocs: Option<u64>) -> Result<(), String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    for (resource, key, least) in
        [(Resource::RLIMIT_NOFILE, "minfds", minfds), (Resource::RLIMIT_NPROC, "minprocs", minprocs)]
    {
        let Some(least) = least else { continue };
        let (soft, hard) = getrlimit(resource).map_err(|e| format!("{key}: cannot read the limit: {e}"))?;
        if soft >= least {
            continue;
        }
        setrlimit(resource, least, hard.max(least))
            .map_err(|e| format!("{key} = {least}: cannot raise the limit from {soft} (hard {hard}): {e}"))?;
    }
    Ok(())
}

/// Whether supd has CAP_SYS_RESOURCE, which raising a hard limit needs (read once from
/// /proc/self/status; container runtimes often drop it).
pub fn may_raise_hard_limits() -> bool {
    static MAY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MAY.get_or_init(|| {
        const CAP_SYS_RESOURCE: u32 = 24;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let effective = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim);
        effective
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .is_some_and(|caps| caps >> CAP_SYS_RESOURCE & 1 == 1)
    })
}
