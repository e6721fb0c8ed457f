//! The child's side of a spawn, and how a child that could not exec tells supd so.
//!
//! supd forks and goes on at once: it never waits for the child to exec. (std's `Command`
//! does, over a pipe of its own per spawn, which puts every spawn behind the previous child's
//! exec: 200 programs took half a second.) A child that cannot exec writes one
//! [`ExecFailure`] record (its pid, the step, the errno) into a pipe that all spawns share, and
//! exits 127. The record is in the pipe before the exit status exists, so whoever reaps the
//! exit finds the record with [`read_failures`]; the reaper stays the one owner of every exit
//! status.
//!
//! Between fork and exec the child makes only async-signal-safe calls on memory prepared
//! before the fork: no allocation, no lock.

use std::collections::HashMap;
use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::stat::Mode;
use nix::unistd;

/// The step of a child's setup that failed, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Step {
    /// Putting its stdin, stdout and stderr in place (dup2).
    Stdio = 1,
    /// setsid: a session and process group of its own.
    Setsid,
    /// setrlimit for an `rlimit_*`.
    Rlimit,
    /// setgroups, setgid or setuid for `user`.
    User,
    /// chdir to `directory`.
    Chdir,
    /// The exec itself.
    Exec,
}

impl Step {
    fn from_raw(raw: i32) -> Option<Step> {
        [Step::Stdio, Step::Setsid, Step::Rlimit, Step::User, Step::Chdir, Step::Exec]
            .into_iter()
            .find(|s| *s as i32 == raw)
    }
}

/// Why a forked child did not exec: the step and the errno it failed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecFailure {
    /// Which step.
    pub step: Step,
    /// The errno.
    pub errno: Errno,
}

impl std::fmt::Display for ExecFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let step = match self.step {
            Step::Stdio => "dup2",
            Step::Setsid => "setsid",
            Step::Rlimit => "setrlimit",
            Step::User => "switching user",
            Step::Chdir => "chdir",
            Step::Exec => "execve",
        };
        write!(f, "{step}: {}", self.errno.desc())
    }
}

/// A record in the failure pipe: pid, step, errno, as native-endian i32s. 12 bytes, so a
/// write is atomic (under PIPE_BUF) and the pipe only ever holds whole records.
const RECORD: usize = 12;

/// The failure pipe, (read end, write end), both non-blocking and close-on-exec: the write end
/// closes in a child at its exec, so only a child that failed writes. `None` when it could
/// not be made (children then only exit 127).
fn failure_pipe() -> Option<&'static (OwnedFd, OwnedFd)> {
    static PIPE: OnceLock<Option<(OwnedFd, OwnedFd)>> = OnceLock::new();
    PIPE.get_or_init(|| {
        let (read, write) = unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).ok()?;
        // Above 2 (supd may have started with a standard descriptor closed), so that no
        // child's dup2 onto 0, 1 or 2 replaces the write end before it is used.
        let above_2 = |fd: OwnedFd| -> Option<OwnedFd> {
            if fd.as_raw_fd() > 2 {
                return Some(fd);
            }
            let moved = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).ok()?;
            // SAFETY: fcntl just made this descriptor, and nothing else owns it.
            Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(moved) })
        };
        Some((above_2(read)?, above_2(write)?))
    })
    .as_ref()
}

/// Moves every failure record waiting in the pipe into `into`, by pid. Call it after reaping:
/// a reaped child's record is already there. `into` is bounded by the caller taking each
/// record when it handles that pid's exit; as a backstop, past 1024 entries it is cleared.
pub fn read_failures(into: &mut HashMap<i32, ExecFailure>) {
    let Some((read, _)) = failure_pipe() else { return };
    let mut buf = [0u8; RECORD * 64];
    loop {
        let n = match unistd::read(read, &mut buf) {
            Ok(0) | Err(_) => return, // EAGAIN: nothing (more) waiting
            Ok(n) => n,
        };
        if into.len() > 1024 {
            into.clear();
        }
        for record in buf[..n].chunks_exact(RECORD) {
            let field = |i: usize| i32::from_ne_bytes([record[i], record[i + 1], record[i + 2], record[i + 3]]);
            if let Some(step) = Step::from_raw(field(4)) {
                into.insert(field(0), ExecFailure { step, errno: Errno::from_raw(field(8)) });
            }
        }
    }
}

/// A string for exec held a NUL byte.
#[derive(Debug)]
pub(super) struct NulError;

/// What a child runs, prepared before the fork.
pub(super) struct Plan {
    /// The executable's path, argv and envp, each NUL-terminated, back to back in one
    /// allocation: after the fork, every page the parent writes is copied while the child
    /// still shares it, and freeing dozens of small strings wrote to many.
    strings: Vec<u8>,
    /// Pointers into `strings`: argv, a null, envp, a null.
    pointers: Vec<*const c_char>,
    /// Where envp starts in `pointers`.
    envp_at: usize,
    pub(super) setup: ChildSetup,
}

impl Plan {
    /// `path` run with `argv` (argv[0] included) and `envp` (`KEY=value`) after `setup`.
    /// Errors: a string with a NUL byte, which exec could not take.
    pub(super) fn new<'a>(
        path: &[u8],
        argv: impl ExactSizeIterator<Item = &'a [u8]>,
        envp: impl ExactSizeIterator<Item = Vec<u8>>,
        setup: ChildSetup,
    ) -> Result<Plan, NulError> {
        let (argc, envc) = (argv.len(), envp.len());
        let mut strings = Vec::with_capacity(4096);
        let mut starts = Vec::with_capacity(argc + envc + 1);
        let mut push = |s: &[u8]| {
            if s.contains(&0) {
                return Err(NulError);
            }
            starts.push(strings.len());
            strings.extend_from_slice(s);
            strings.push(0);
            Ok(())
        };
        push(path)?;
        for a in argv {
            push(a)?;
        }
        for e in envp {
            push(&e)?;
        }
        // Pointers only once `strings` no longer grows.
        let base = strings.as_ptr().cast::<c_char>();
        let at = |i: usize| base.wrapping_add(starts[i]);
        let mut pointers = Vec::with_capacity(argc + envc + 2);
        pointers.extend((1..=argc).map(at));
        pointers.push(std::ptr::null());
        pointers.extend((argc + 1..=argc + envc).map(at));
        pointers.push(std::ptr::null());
        Ok(Plan { strings, pointers, envp_at: argc + 1, setup })
    }

    /// Forks a child that runs the plan with `stdio` as its stdin, stdout and stderr; its pid.
    /// Returns at once: a failure after the fork comes later, as an [`ExecFailure`] record and
    /// exit status 127. Errors: fork's.
    pub(super) fn fork(&self, stdio: [RawFd; 3]) -> nix::Result<i32> {
        let report = failure_pipe().map_or(-1, |(_, w)| w.as_raw_fd());
        // Signals are blocked across the fork so that none runs supd's handlers in the child
        // before it has reset them (the handlers write to supd's own self-pipe).
        // SAFETY: plain signal-mask calls on local sets.
        let old = unsafe {
            let mut all = std::mem::zeroed::<libc::sigset_t>();
            let mut old = std::mem::zeroed::<libc::sigset_t>();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            old
        };
        let dir = self.setup.cgroups.dir.as_ref().map(AsRawFd::as_raw_fd);
        // SAFETY: the child only runs `exec`, which makes raw, async-signal-safe calls on
        // memory prepared before the fork, and never returns.
        let forked = unsafe { fork_into(dir) };
        if let Ok((0, born_in_cgroup)) = forked {
            let join = if born_in_cgroup { None } else { dir };
            // SAFETY: we are the child between fork and exec.
            unsafe { self.exec(stdio, report, join) }
        }
        // SAFETY: restores the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        forked.map(|(pid, _)| pid)
    }

    /// The child: set up (joining the cgroup `join` by its `cgroup.procs` when it was not
    /// born in it), exec; on failure, report and exit 127 (what a shell exits with when it
    /// cannot run a command).
    ///
    /// # Safety
    /// Only in a child between fork and exec.
    unsafe fn exec(&self, stdio: [RawFd; 3], report: RawFd, join: Option<RawFd>) -> ! {
        // SAFETY: the caller's contract.
        let (step, errno) = match unsafe { self.setup.apply(stdio, join) } {
            Err(failed) => failed,
            // SAFETY: NUL-terminated arrays of pointers to strings that outlive the call.
            Ok(()) => unsafe {
                let (path, argv) = (self.strings.as_ptr().cast(), self.pointers.as_ptr());
                libc::execve(path, argv, argv.add(self.envp_at));
                (Step::Exec, Errno::last())
            },
        };
        let mut record = [0u8; RECORD];
        // SAFETY: getpid is a plain syscall.
        let pid = unsafe { libc::getpid() };
        for (i, v) in [pid, step as i32, errno as i32].into_iter().enumerate() {
            record[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        // SAFETY: write and _exit are async-signal-safe; a full pipe loses only the detail.
        unsafe {
            libc::write(report, record.as_ptr().cast(), RECORD);
            libc::_exit(127)
        }
    }
}

/// The cgroups a child goes into.
#[derive(Default)]
pub(super) struct Cgroups {
    /// Its own cgroup v2 directory (`O_PATH`), where clone3 creates it.
    pub(super) dir: Option<OwnedFd>,
    /// The `cgroup.procs` of its cgroup v1 limit cgroups, which it joins by writing `0`.
    pub(super) also_join: Vec<OwnedFd>,
}

/// clone3's flag for "create the child in the cgroup `cgroup`" (linux/sched.h; libc's
/// constant is an overflowing c_int).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3(2)'s arguments (`struct clone_args` of linux/sched.h, its size 88 version, which
/// has `cgroup`; glibc has no clone3 wrapper).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A new process, a copy of this one as fork(2) makes, born in the cgroup `dir` when there is
/// one: `Ok((pid, true))` in the parent when it was, `(pid, false)` when clone3 refused
/// (before Linux 5.7, seccomp filters) and plain fork took over; pid 0 in the child.
///
/// # Safety
/// As fork's in a threaded process: the child may only make async-signal-safe calls. After
/// clone3, glibc's own fork bookkeeping has not run either, so the child must make raw calls
/// only (no malloc, no locks, no glibc set*id that signals other threads).
unsafe fn fork_into(dir: Option<RawFd>) -> Result<(libc::pid_t, bool), Errno> {
    if let Some(dir) = dir {
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: dir as u64,
            ..CloneArgs::default()
        };
        // SAFETY: a valid clone_args of the size given; fork semantics (no CLONE_VM).
        let pid = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, size_of::<CloneArgs>()) };
        if let Ok(pid) = libc::pid_t::try_from(pid)
            && pid >= 0
        {
            return Ok((pid, true));
        }
    }
    // SAFETY: the caller's contract.
    Errno::result(unsafe { libc::fork() }).map(|pid| (pid, false))
}

/// What the child does between fork and exec, prepared in the parent.
#[derive(Default)]
pub(super) struct ChildSetup {
    pub(super) cgroups: Cgroups,
    /// uid, gid and supplementary groups, as raw ids.
    pub(super) switch_user: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    pub(super) directory: Option<CString>,
    pub(super) umask: Option<Mode>,
    /// `rlimit_*`: set before the switch of user, while a hard limit may still be raised.
    pub(super) rlimits: Vec<(Resource, u64)>,
}

impl ChildSetup {
    /// Runs in the child, so only async-signal-safe calls on memory prepared in the parent
    /// (nix's wrappers here are plain syscalls). Order matters: cgroups first (a process that
    /// cannot join runs outside them); signals back to their defaults; stdio in place; a new
    /// session; then, as credentials(7) and setgroups(2) require, supplementary groups and gid
    /// while still root, and uid last (after setuid the process may no longer change groups).
    /// chdir comes after the switch so the user's own permissions apply.
    ///
    /// # Safety
    /// Only in a child between fork and exec.
    unsafe fn apply(&self, stdio: [RawFd; 3], join: Option<RawFd>) -> Result<(), (Step, Errno)> {
        if let Some(dir) = join {
            // SAFETY: plain syscalls on a descriptor the child holds and a static string.
            unsafe {
                let procs = libc::openat(dir, c"cgroup.procs".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if procs >= 0 {
                    libc::write(procs, b"0".as_ptr().cast(), 1);
                }
            }
        }
        for procs in &self.cgroups.also_join {
            let _ = unistd::write(procs, b"0");
        }
        // SAFETY: the caller's contract.
        unsafe {
            super::super::reset_signal_dispositions();
            let mut none = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            put_stdio(stdio).map_err(|e| (Step::Stdio, e))?;
            super::super::cloexec_from_3();
        }
        unistd::setsid().map_err(|e| (Step::Setsid, e))?;
        for &(resource, limit) in &self.rlimits {
            setrlimit(resource, limit, limit).map_err(|e| (Step::Rlimit, e))?;
        }
        if let Some((uid, gid, groups)) = &self.switch_user {
            // Raw syscalls: glibc's wrappers would try to change the credentials of threads
            // this copy of supd does not have (clone3 skipped glibc's fork bookkeeping).
            // SAFETY: plain syscalls on memory prepared before the fork.
            unsafe {
                let rc = libc::syscall(libc::SYS_setgroups, groups.len() as libc::c_long, groups.as_ptr());
                Errno::result(rc).map_err(|e| (Step::User, e))?;
                Errno::result(libc::syscall(libc::SYS_setgid, libc::c_long::from(*gid)))
                    .map_err(|e| (Step::User, e))?;
                Errno::result(libc::syscall(libc::SYS_setuid, libc::c_long::from(*uid)))
                    .map_err(|e| (Step::User, e))?;
            }
        }
        if let Some(dir) = &self.directory {
            unistd::chdir(dir.as_c_str()).map_err(|e| (Step::Chdir, e))?;
        }
        if let Some(mask) = self.umask {
            nix::sys::stat::umask(mask);
        }
        Ok(())
    }
}

/// Makes `stdio` the child's descriptors 0, 1 and 2 (dup2 clears close-on-exec on them). A
/// source below 3 (supd started with a standard descriptor closed) is first moved up, so that
/// no dup2 overwrites a source still to come.
///
/// # Safety
/// Only in a child between fork and exec.
unsafe fn put_stdio(mut stdio: [RawFd; 3]) -> Result<(), Errno> {
    for fd in &mut stdio {
        if *fd < 3 {
            // SAFETY: a plain fcntl on a descriptor the child holds.
            *fd = Errno::result(unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3) })?;
        }
    }
    for (target, fd) in (0..).zip(stdio) {
        // SAFETY: a plain dup2.
        Errno::result(unsafe { libc::dup2(fd, target) })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{WaitStatus, waitpid};

    /// Forks `path` with `setup` and waits for it; its exit status and failure record.
    fn run(path: &[u8], setup: ChildSetup) -> (WaitStatus, Option<ExecFailure>) {
        let argv = [path];
        let plan = Plan::new(path, argv.into_iter(), std::iter::empty(), setup).expect("no NUL");
        let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).expect("null");
        let fd = null.as_raw_fd();
        let pid = plan.fork([fd, fd, fd]).expect("fork");
        let status = waitpid(nix::unistd::Pid::from_raw(pid), None).expect("waitpid");
        let mut failures = HashMap::new();
        read_failures(&mut failures);
        (status, failures.remove(&pid))
    }

    // One test: the failure pipe is the process's, and a test reading it takes every record.
    #[test]
    fn a_child_that_cannot_exec_exits_127_and_leaves_the_step_and_errno() {
        let (status, failure) = run(b"/no/such/binary", ChildSetup::default());
        assert!(matches!(status, WaitStatus::Exited(_, 127)), "{status:?}");
        assert_eq!(failure, Some(ExecFailure { step: Step::Exec, errno: Errno::ENOENT }));
        let setup = ChildSetup { directory: Some(CString::from(c"/no/such/dir")), ..ChildSetup::default() };
        let (_, failure) = run(b"/bin/true", setup);
        assert_eq!(failure.map(|f| f.to_string()).as_deref(), Some("chdir: No such file or directory"));
        let (status, failure) = run(b"/bin/true", ChildSetup::default());
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
        assert_eq!(failure, None, "a child that execs leaves no record");
    }

    #[test]
    fn plans_refuse_nul_bytes() {
        let argv = [b"a\0b".as_slice()];
        assert!(Plan::new(b"/bin/true", argv.into_iter(), std::iter::empty(), ChildSetup::default()).is_err());
    }
}
