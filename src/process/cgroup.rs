//! A cgroup v2 of its own for each program, where supd's cgroup is writable: then nothing a
//! program starts can leave it (a daemon that double-forks and calls `setsid` included), and a
//! stop that reaches SIGKILL ends with `cgroup.kill`, as systemd's `KillMode=control-group`.
//!
//! Only the core interface files are used (`cgroup.procs`, `cgroup.events`, `cgroup.kill`), no
//! controller, so the "no internal processes" rule never applies and supd can stay in its own
//! cgroup beside its programs'. Where there is no writable cgroup2 hierarchy (cgroup v1, a
//! read-only `/sys/fs/cgroup`), [`super::tree`] finds a program's processes instead.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::config::CgroupSetting;

/// Where the programs' cgroups go: supd's own cgroup in the cgroup2 hierarchy (or the one
/// `[supervisor] cgroup` names), or a directory of this supd's in it when others share it.
#[derive(Debug, Clone)]
pub struct Cgroups {
    base: PathBuf,
    /// The directory made for this supd, removed at exit.
    own_dir: bool,
}

/// Why programs get no cgroups of their own (one line, for the start-up log); their trees
/// are then found by their marker variables instead.
#[derive(Debug, thiserror::Error)]
pub enum CgroupSetupError {
    /// `[supervisor] cgroup = "off"`.
    #[error("[supervisor] cgroup = \"off\"")]
    Off,
    /// /proc could not be read.
    #[error("{path}: {source}")]
    Proc {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// No cgroup2 mount shows supd's own cgroup (cgroup v1, or a private namespace without one).
    #[error("no cgroup2 hierarchy shows supd's cgroup")]
    NotFound,
    /// supd may not make directories there (Docker mounts /sys/fs/cgroup read-only).
    #[error("{} is not writable: {source}", path.display())]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The kernel is older than 5.14, so a tree cannot be killed at once.
    #[error("{} has no cgroup.kill (kernel before 5.14)", path.display())]
    NoKill {
        /// supd's cgroup directory.
        path: PathBuf,
    },
}

impl Cgroups {
    /// Sets up programs' cgroups as `setting` says. Errors: why there are none.
    pub fn set_up(setting: &CgroupSetting) -> Result<Cgroups, CgroupSetupError> {
        let found = match setting {
            CgroupSetting::Off => return Err(CgroupSetupError::Off),
            CgroupSetting::Path(path) => path.clone(),
            CgroupSetting::Auto => {
                let read =
                    |path| std::fs::read_to_string(path).map_err(|source| CgroupSetupError::Proc { path, source });
                let (mountinfo, own) = (read("/proc/self/mountinfo")?, read("/proc/self/cgroup")?);
                locate(&mountinfo, &own, Path::is_dir).ok_or(CgroupSetupError::NotFound)?
            }
        };
        // Alone in its cgroup (PID 1 of a container), supd puts programs right in it; where
        // other processes share it (a host, a test), in a directory of its own, named so that
        // no other supd picks the same (its pid namespace and pid).
        let me = std::process::id();
        let procs = std::fs::read_to_string(found.join("cgroup.procs")).unwrap_or_default();
        let alone = procs.lines().all(|l| l.trim() == me.to_string());
        let base = if alone {
            found
        } else {
            let dir = found.join(own_dir_name());
            std::fs::create_dir(&dir).map_err(|source| CgroupSetupError::NotWritable { path: found, source })?;
            dir
        };
        let probe = base.join("program-supd-probe");
        if let Err(source) = std::fs::create_dir(&probe) {
            return Err(CgroupSetupError::NotWritable { path: base, source });
        }
        let has_kill = probe.join("cgroup.kill").exists();
        let _ = std::fs::remove_dir(&probe);
        let cgroups = Cgroups { own_dir: !alone, base };
        if !has_kill {
            cgroups.remove();
            return Err(CgroupSetupError::NoKill { path: cgroups.base.clone() });
        }
        Ok(cgroups)
    }

    /// Removes the directory made for this supd, when empty (at exit, after every program's).
    pub fn remove(&self) {
        if self.own_dir {
            let _ = std::fs::remove_dir(&self.base);
        }
    }

    /// supd's cgroup directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The cgroup of program `name`, made if it does not exist. Errors: it cannot be made.
    pub fn program(&self, name: &str) -> std::io::Result<ProgramCgroup> {
        let dir = self.base.join(format!("program-{name}"));
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        Ok(ProgramCgroup { dir })
    }
}

/// The name of the directory this supd makes for its programs' cgroups where it shares a
/// cgroup: `supd-<pid namespace>-<pid>`, so that no other supd picks the same.
pub(super) fn own_dir_name() -> String {
    let ns = std::fs::read_link("/proc/self/ns/pid").ok().map(|l| l.to_string_lossy().into_owned());
    let ns = ns.as_deref().and_then(|l| l.strip_prefix("pid:[")?.strip_suffix(']')).unwrap_or("0");
    format!("supd-{ns}-{}", std::process::id())
}

/// supd's cgroup in the cgroup2 mounts listed in `mountinfo`, from the `0::PATH` line of
/// `cgroup` (both as /proc/self has them): under the last mount that shows it (a later mount
/// may hide an earlier one, as a cgroup2 mounted over a v1 `/sys/fs/cgroup` hides
/// `/sys/fs/cgroup/unified`), as `exists` tells.
fn locate(mountinfo: &str, cgroup: &str, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let own = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    // mountinfo(5): ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
    let mounts = mountinfo.lines().filter_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        if rest.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let f: Vec<&str> = fields.split_whitespace().collect();
        Some((*f.get(3)?, *f.get(4)?))
    });
    let candidates: Vec<PathBuf> = mounts
        .filter_map(|(root, mountpoint)| {
            // The mount shows the hierarchy from ROOT down; supd's path must lie below it.
            let below = own.strip_prefix(root.trim_end_matches('/'))?.trim_start_matches('/');
            Some(Path::new(mountpoint).join(below))
        })
        .collect();
    candidates.into_iter().rev().find(|p| exists(p))
}

/// One program's cgroup.
#[derive(Debug, Clone)]
pub struct ProgramCgroup {
    dir: PathBuf,
}

impl ProgramCgroup {
    /// Its directory, opened (`O_PATH`) for a child to be born in it: clone3's
    /// `CLONE_INTO_CGROUP` (Linux 5.7), which spares the migration that writing `cgroup.procs`
    /// costs (milliseconds: it waits for an RCU grace period, and holds up the next mkdir).
    /// Where clone3 refuses, the child writes `0` into `cgroup.procs` under it instead; either
    /// way it is in the cgroup before it runs a single instruction of the program.
    pub fn dir_for_child(&self) -> std::io::Result<OwnedFd> {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        Ok(std::fs::OpenOptions::new().read(true).custom_flags(flags).open(&self.dir)?.into())
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every process in it now.
    pub fn pids(&self) -> Vec<i32> {
        let text = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Whether any process is left in it (`cgroup.events`: `populated 1`).
    pub fn populated(&self) -> bool {
        let events = std::fs::read_to_string(self.dir.join("cgroup.events")).unwrap_or_default();
        events.lines().any(|l| l.trim() == "populated 1")
    }

    /// SIGKILLs every process in it at once (`cgroup.kill`), forks in flight included.
    pub fn kill(&self) -> std::io::Result<()> {
        std::fs::OpenOptions::new().write(true).open(self.dir.join("cgroup.kill"))?.write_all(b"1")
    }

    /// Removes it, when empty (a program a reload removed, or at exit).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_supds_cgroup_below_the_cgroup2_mount() {
        let all = |_: &Path| true;
        let mountinfo = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                         90 31 0:40 / /mnt/cg2 rw,relatime - cgroup2 none rw\n";
        assert_eq!(locate(mountinfo, "4:memory:/x\n0::/test-1\n", all), Some(PathBuf::from("/mnt/cg2/test-1")));
        assert_eq!(locate(mountinfo, "0::/\n", all), Some(PathBuf::from("/mnt/cg2")));
        // A container's view: the mount's root is its own cgroup.
        let ns = "90 31 0:40 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(locate(ns, "0::/docker/abc/sub\n", all), Some(PathBuf::from("/sys/fs/cgroup/sub")));
        assert_eq!(locate("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", "0::/\n", all), None);
        // A later mount hides an earlier one.
        let both = "61 51 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                    69 51 0:38 / /sys/fs/cgroup rw - cgroup2 none rw\n";
        let shown = |p: &Path| !p.starts_with("/sys/fs/cgroup/unified");
        assert_eq!(locate(both, "0::/t\n", shown), Some(PathBuf::from("/sys/fs/cgroup/t")));
    }
}
