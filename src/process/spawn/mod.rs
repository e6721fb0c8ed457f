//! Spawning a program: its own session, its user's credentials, a clean environment, stdin
//! from /dev/null and stdout/stderr on fresh pipes (or /dev/null, for a stream that goes
//! nowhere). supd opens every descriptor with `O_CLOEXEC`, so nothing of supd's leaks into a
//! program. A spawn never waits for the child: what can be checked before the fork is (the
//! command, the directory, rlimits), and the rest is reported after, see [`child`].

mod child;

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::fcntl::OFlag;
use nix::sys::resource::{RLIM_INFINITY, Resource};
use nix::sys::stat::Mode;
use nix::unistd::{self, pipe2};

use self::child::{Cgroups, ChildSetup, Plan};
pub use self::child::{ExecFailure, Step, read_failures};
use super::cgroup::ProgramCgroup;
use crate::config::{Credentials, ProgramConfig, Rlimit, StreamConfig};

/// A started process and the read ends of its output pipes.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid, which is also its process group and session id.
    pub pid: i32,
    /// Read end of its stdout (and of stderr when `redirect_stderr`); `None` when it goes to
    /// /dev/null.
    pub stdout: Option<OwnedFd>,
    /// Read end of its stderr; `None` when `redirect_stderr`, or when it goes to /dev/null.
    pub stderr: Option<OwnedFd>,
    /// Write end of its stdin: an event listener's, and a program's with `stdin_pipe`
    /// (everyone else's is /dev/null).
    pub stdin: Option<OwnedFd>,
}

/// Why a program could not be started. Each counts as a failed start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The command is not a file, or not found in `PATH`.
    #[error("command not found: {0}")]
    NotFound(String),
    /// The command exists but is not executable.
    #[error("command is not executable: {0}")]
    NotExecutable(PathBuf),
    /// `directory` does not exist.
    #[error("directory does not exist: {0}")]
    NoDirectory(PathBuf),
    /// A pipe could not be made.
    #[error("cannot create a pipe: {0}")]
    Pipe(nix::Error),
    /// An `rlimit_*` is above supd's own hard limit, which only CAP_SYS_RESOURCE may raise.
    #[error("{key} = {value} is above the hard limit {hard}, and supd lacks CAP_SYS_RESOURCE to raise it")]
    Rlimit {
        /// The key.
        key: &'static str,
        /// Its value.
        value: u64,
        /// supd's hard limit, which the program inherits.
        hard: u64,
    },
    /// fork failed (what fails in the child after the fork, the credential change, chdir or
    /// the exec, comes later as an [`ExecFailure`]).
    #[error("cannot execute {command}: {source}")]
    Exec {
        /// The command.
        command: String,
        /// fork's errno.
        source: std::io::Error,
    },
}

/// Starts `program`, in `cgroup` when it has one and in the cgroups whose `cgroup.procs` are
/// `also_join` (its cgroup v1 limits, see [`super::limits`]). Returns once the child is forked,
/// without waiting for its exec: a failure in the child between fork and exec comes as exit
/// status 127 with an [`ExecFailure`] record (see [`read_failures`]).
pub fn spawn(
    program: &ProgramConfig,
    cgroup: Option<&ProgramCgroup>,
    also_join: Vec<OwnedFd>,
) -> Result<Spawned, SpawnError> {
    // An event listener's stdout carries its protocol, so it is always a pipe, and its stdin
    // is one too: events go in there.
    let listener = program.listener.is_some();
    check_rlimits(program)?;
    let (stdout_r, stdout_w) = if listener { pipe()? } else { output(&program.stdout)? };
    let (stdin_r, stdin_w) = if listener || program.stdin_pipe { pipe()? } else { (None, None) };
    let (stderr_r, stderr_w) = if program.redirect_stderr { (None, None) } else { output(&program.stderr)? };
    // Opened before fork; one that cannot be opened leaves the program outside its cgroup
    // (stop then finds its processes as without cgroups).
    let cgroup_dir = cgroup.and_then(|c| c.dir_for_child().ok());
    let plan = plan(program, &program.command, Cgroups { dir: cgroup_dir, also_join })?;
    let null = dev_null()?;
    let fd = |f: &Option<OwnedFd>| f.as_ref().map_or(null, AsRawFd::as_raw_fd);
    let stdout = fd(&stdout_w);
    let stderr = if program.redirect_stderr { stdout } else { fd(&stderr_w) };
    let name = program.command.first().map_or("", String::as_str);
    let pid = fork(&plan, [fd(&stdin_r), stdout, stderr], name)?;
    // Our copies of the child's ends close here, so EOF comes when the program closes them.
    drop((stdin_r, stdout_w, stderr_w));
    Ok(Spawned { pid, stdout: stdout_r, stderr: stderr_r, stdin: stdin_w })
}

/// Refuses, before fork, an `rlimit_*` that the child could not set: one above supd's hard
/// limit without CAP_SYS_RESOURCE (setrlimit would fail in the child with a bare EPERM).
fn check_rlimits(program: &ProgramConfig) -> Result<(), SpawnError> {
    for &(r, value) in &program.rlimits {
        let resource = resource(r);
        let hard = nix::sys::resource::getrlimit(resource).map_or(RLIM_INFINITY, |(_, hard)| hard);
        let value = if value == u64::MAX { RLIM_INFINITY } else { value };
        if value > hard && !super::may_raise_hard_limits() {
            let key = match r {
                Rlimit::NoFile => "rlimit_nofile",
                Rlimit::NProc => "rlimit_nproc",
                Rlimit::Core => "rlimit_core",
                Rlimit::MemLock => "rlimit_memlock",
            };
            return Err(SpawnError::Rlimit { key, value, hard });
        }
    }
    Ok(())
}

/// setrlimit(2)'s name of `r`.
const fn resource(r: Rlimit) -> Resource {
    match r {
        Rlimit::NoFile => Resource::RLIMIT_NOFILE,
        Rlimit::NProc => Resource::RLIMIT_NPROC,
        Rlimit::Core => Resource::RLIMIT_CORE,
        Rlimit::MemLock => Resource::RLIMIT_MEMLOCK,
    }
}

/// A pipe for one output stream, as (read end, write end); neither when the stream goes
/// nowhere (`*_logfile = "NONE"` without passthrough), so the program writes to /dev/null and
/// supd holds no pipe and reads nothing for it.
fn output(stream: &StreamConfig) -> Result<(Option<OwnedFd>, Option<OwnedFd>), SpawnError> {
    if stream.file.is_none() && !stream.passthrough {
        return Ok((None, None));
    }
    pipe()
}

/// A pipe, as (read end, write end), both close-on-exec.
fn pipe() -> Result<(Option<OwnedFd>, Option<OwnedFd>), SpawnError> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)?;
    Ok((Some(r), Some(w)))
}

/// Starts `argv` the way `program` runs (user, environment, directory, own session), with
/// output discarded: an exec health probe. Returns its pid, which is also its process group.
pub fn spawn_probe(program: &ProgramConfig, argv: &[String]) -> Result<i32, SpawnError> {
    let Some(first) = argv.first() else { return Err(SpawnError::NotFound(String::new())) };
    let plan = plan(program, argv, Cgroups::default())?;
    let null = dev_null()?;
    fork(&plan, [null; 3], first)
}

/// /dev/null, opened once, for every stream that goes nowhere.
fn dev_null() -> Result<std::os::fd::RawFd, SpawnError> {
    static NULL: OnceLock<Result<OwnedFd, nix::errno::Errno>> = OnceLock::new();
    let null = NULL.get_or_init(|| nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()));
    null.as_ref().map(AsRawFd::as_raw_fd).map_err(|&e| SpawnError::Pipe(e))
}

/// Forks the child that runs `plan`; its pid.
fn fork(plan: &Plan, stdio: [std::os::fd::RawFd; 3], name: &str) -> Result<i32, SpawnError> {
    plan.fork(stdio).map_err(|e| SpawnError::Exec {
        command: name.to_string(),
        source: std::io::Error::from_raw_os_error(e as i32),
    })
}

/// What the child of `argv` runs: `program`'s executable lookup, environment and setup.
fn plan(program: &ProgramConfig, argv: &[String], cgroups: Cgroups) -> Result<Plan, SpawnError> {
    let Some(first) = argv.first() else { return Err(SpawnError::NotFound(String::new())) };
    let env = environment(program);
    let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
    let executable = resolve_command(first, path_var.as_deref(), program.directory.as_deref())?;
    if let Some(dir) = &program.directory
        && !dir.is_dir()
    {
        return Err(SpawnError::NoDirectory(dir.clone()));
    }
    // A NUL byte cannot reach exec; the config refuses them, so this is only a backstop.
    let envp = env.into_iter().map(|(k, v)| {
        let mut pair = k.into_vec();
        pair.push(b'=');
        pair.extend(v.into_vec());
        pair
    });
    let argv = argv.iter().map(|a| a.as_bytes());
    let setup = child_setup(program, cgroups);
    Plan::new(executable.as_os_str().as_bytes(), argv, envp, setup).map_err(|_| SpawnError::NotFound(first.clone()))
}

/// What the child does between fork and exec for `program`.
fn child_setup(program: &ProgramConfig, cgroups: Cgroups) -> ChildSetup {
    let switch_user = program.user.as_ref().filter(|c| needs_switch(c)).map(|c| (c.uid, c.gid, c.groups.clone()));
    let directory = program.directory.as_ref().and_then(|d| CString::new(d.as_os_str().as_bytes()).ok());
    let umask = program.umask.map(Mode::from_bits_truncate);
    let rlimits =
        program.rlimits.iter().map(|&(r, v)| (resource(r), if v == u64::MAX { RLIM_INFINITY } else { v })).collect();
    ChildSetup { cgroups, switch_user, directory, umask, rlimits }
}

/// Whether running as `creds` needs a credential change (it does not when supd already runs
/// as that user and group, which is how an unprivileged supd runs its programs).
fn needs_switch(creds: &Credentials) -> bool {
    creds.uid != unistd::geteuid().as_raw() || creds.gid != unistd::getegid().as_raw()
}

/// The program's environment: supd's own, then the user's identity (`HOME`, `USER`, `LOGNAME`,
/// `SHELL`), then `SUPD_GROUP_NAME`, then the program's `environment`, then
/// `SUPD_PROCESS_NAME` and `SUPD_INSTANCE` (last, so nothing overrides them: they mark the
/// program's processes, see [`super::tree`]).
pub fn environment(program: &ProgramConfig) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let mut set = |k: &str, v: OsString| {
        env.retain(|(key, _)| key != k);
        env.push((k.into(), v));
    };
    if let Some(c) = &program.user {
        set("HOME", c.home.clone().into());
        set("USER", c.user.clone().into());
        set("LOGNAME", c.user.clone().into());
        set("SHELL", c.shell.clone().into());
    }
    set("SUPD_GROUP_NAME", program.group.clone().into());
    // supervisord's, which its clients (supervisorctl, superlance, childutils) read; supd's
    // main puts SUPERVISOR_SERVER_URL in its own environment, which every program inherits.
    set("SUPERVISOR_ENABLED", "1".into());
    set("SUPERVISOR_PROCESS_NAME", program.name.clone().into());
    set("SUPERVISOR_GROUP_NAME", program.group.clone().into());
    for (k, v) in &program.environment {
        set(k, v.into());
    }
    set(super::tree::MARKER, program.name.clone().into());
    set(super::tree::INSTANCE, super::tree::instance().into());
    env
}

/// Finds the file to exec: a name with a `/` as is (relative to `directory`), otherwise the
/// first executable match in `path` (the program's own `PATH`).
fn resolve_command(
    name: &str,
    path: Option<&std::ffi::OsStr>,
    directory: Option<&Path>,
) -> Result<PathBuf, SpawnError> {
    if name.contains('/') {
        let candidate = match directory {
            Some(d) if !name.starts_with('/') => d.join(name),
            _ => PathBuf::from(name),
        };
        return match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(PathBuf::from(name)),
            Ok(_) => Err(SpawnError::NotExecutable(candidate)),
            Err(_) => Err(SpawnError::NotFound(name.to_string())),
        };
    }
    let path = path.map(OsString::from).unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut found_not_executable = None;
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if let Ok(m) = std::fs::metadata(&candidate)
            && m.is_file()
        {
            if m.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
            found_not_executable.get_or_insert(candidate);
        }
    }
    Err(found_not_executable.map_or_else(|| SpawnError::NotFound(name.to_string()), SpawnError::NotExecutable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_resolve_through_path() {
        let found = resolve_command("sh", Some("/nonexistent:/bin".as_ref()), None);
        assert_eq!(found.ok(), Some(PathBuf::from("/bin/sh")));
        assert!(matches!(resolve_command("no-such-cmd-x", Some("/bin".as_ref()), None), Err(SpawnError::NotFound(_))));
        assert!(matches!(resolve_command("/etc/passwd", None, None), Err(SpawnError::NotExecutable(_))));
    }
}
