//! A program's processes when it has no cgroup of its own: those that left its process group
//! (`setsid`, a double fork) are still found, by the `SUPD_PROCESS_NAME` (with this supd's
//! `SUPD_INSTANCE`) every program's environment carries and its descendants inherit, and by
//! parent links from its process. They
//! are signalled through pidfds, so a pid that was reused between finding and signalling is
//! never hit.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The variable that marks a program's processes (see [`super::spawn::environment`]).
pub const MARKER: &str = "SUPD_PROCESS_NAME";
/// The variable that says which supd started them, so that another supd on the same host with
/// a program of the same name is never taken for this one: [`instance`].
pub const INSTANCE: &str = "SUPD_INSTANCE";

/// This supd's instance id: its pid and its start time (clock ticks since boot), unique on
/// the host while it runs.
pub fn instance() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let start = procfs::process::Process::myself().and_then(|p| p.stat()).map_or(0, |s| s.starttime);
        format!("{}.{start}", std::process::id())
    })
}

/// Every live process once (zombies and supd itself left out), read from /proc: its parent,
/// its process group and its program's name from its environment. Taken at most once a turn
/// of the supervisor's loop, however many programs stop in it.
#[derive(Debug, Default)]
pub struct Census {
    /// pid → (parent pid, process group).
    procs: HashMap<i32, (i32, i32)>,
    /// Program name (`SUPD_PROCESS_NAME`) → its marked processes.
    marked: HashMap<String, Vec<i32>>,
}

impl Census {
    /// Reads /proc now.
    pub fn take() -> Census {
        let me = std::process::id() as i32;
        let mut census = Census::default();
        let Ok(all) = procfs::process::all_processes() else { return census };
        for process in all.flatten() {
            let Ok(stat) = process.stat() else { continue };
            if stat.pid == me || stat.state == 'Z' {
                continue;
            }
            census.procs.insert(stat.pid, (stat.ppid, stat.pgrp));
            if let Some(name) = marker(stat.pid) {
                census.marked.entry(name).or_default().push(stat.pid);
            }
        }
        census
    }

    /// Program `name`'s processes: those marked with its name, and the descendants of `root`
    /// (its process, while it has one), sorted.
    pub fn members(&self, name: &str, root: Option<i32>) -> Vec<i32> {
        let mut out = self.marked.get(name).cloned().unwrap_or_default();
        if let Some(root) = root {
            out.extend(self.procs.keys().copied().filter(|&pid| self.descends(pid, root)));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Those of `pids` that are not in process group `pgid` (which a group signal reached).
    pub fn outside_group(&self, pids: &[i32], pgid: i32) -> Vec<i32> {
        pids.iter().copied().filter(|pid| self.procs.get(pid).is_none_or(|&(_, g)| g != pgid)).collect()
    }

    fn descends(&self, pid: i32, root: i32) -> bool {
        let mut at = pid;
        // Parent links end at pid 0 or 1; the walk is bounded by the table's size.
        for _ in 0..=self.procs.len() {
            if at == root {
                return true;
            }
            match self.procs.get(&at) {
                Some(&(parent, _)) if parent > 1 => at = parent,
                _ => return false,
            }
        }
        false
    }
}

/// Process `pid`'s process group, if it is alive.
pub fn pgrp(pid: i32) -> Option<i32> {
    procfs::process::Process::new(pid).and_then(|p| p.stat()).ok().map(|s| s.pgrp)
}

/// The program name in process `pid`'s environment, if it has one and this supd started it.
fn marker(pid: i32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let (name, ours) = (format!("{MARKER}="), format!("{INSTANCE}={}", instance()));
    let mut entries = environ.split(|b| *b == 0);
    if !entries.clone().any(|entry| entry == ours.as_bytes()) {
        return None;
    }
    entries.find_map(|entry| entry.strip_prefix(name.as_bytes())).map(|n| String::from_utf8_lossy(n).into_owned())
}

/// Whether process `pid`'s environment has `SUPD_PROCESS_NAME=name`.
fn marked(pid: i32, name: &str) -> bool {
    marker(pid).is_some_and(|m| m == name)
}

/// Sends `signal` to each of `pids` that still belongs to program `name` or descends from
/// `root`: each is pinned with a pidfd first and checked again after, so a pid reused since
/// [`Census::take`] found it is left alone. Returns how many were signalled.
pub fn signal(pids: &[i32], name: &str, root: Option<i32>, signal: nix::sys::signal::Signal) -> usize {
    let mut sent = 0;
    for &pid in pids {
        let Some(fd) = pidfd(pid) else { continue };
        // Pinned now: if `pid` names the same process as before, it is still ours.
        if !(marked(pid, name) || root.is_some_and(|r| descends(pid, r))) {
            continue;
        }
        // SAFETY: a pidfd we own, a valid signal number, no siginfo.
        let rc = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), signal as libc::c_int, std::ptr::null::<u8>(), 0)
        };
        if rc == 0 {
            sent += 1;
        }
    }
    sent
}

/// A pidfd for `pid`, or `None` when it is gone (or the kernel is older than 5.3).
fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a descriptor just returned to us, owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether `pid` descends from `root`, by parent links.
fn descends(pid: i32, root: i32) -> bool {
    let mut at = pid;
    for _ in 0..4096 {
        if at == root {
            return true;
        }
        match procfs::process::Process::new(at).and_then(|p| p.stat()) {
            Ok(stat) if stat.ppid > 1 => at = stat.ppid,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts `sleep 30` as a grandchild in a session of its own with `env`; its pid.
    fn escaped_sleep(env: &[(&str, &str)]) -> i32 {
        let mut child = std::process::Command::new("setsid")
            .args(["sh", "-c", "sleep 30 >/dev/null & echo $!"])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
        child.wait().unwrap();
        out.trim().parse().unwrap()
    }

    #[test]
    fn finds_a_marked_process_that_left_the_tree_and_only_its_own_supds() {
        let name = format!("tree-test-{}", std::process::id());
        // setsid and a double fork: the grandchild is in no tree of ours and no group of ours.
        let ours = escaped_sleep(&[(MARKER, &name), (INSTANCE, instance())]);
        let theirs = escaped_sleep(&[(MARKER, &name), (INSTANCE, "another-supd")]);
        assert_eq!(Census::take().members(&name, None), vec![ours]);
        assert_eq!(signal(&[ours, theirs], &name, None, nix::sys::signal::Signal::SIGKILL), 1);
        assert_eq!(signal(&[ours], "someone-else", None, nix::sys::signal::Signal::SIGKILL), 0);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(theirs), nix::sys::signal::Signal::SIGKILL);
    }
}
