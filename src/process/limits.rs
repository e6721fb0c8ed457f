//! Programs' cgroup limits (`memory_max`, `cpu_max`, …): where they can be applied, the files
//! that apply them, and how many OOM kills they caused.
//!
//! cgroup v2 first: the limits go into the program's own cgroup (see [`super::cgroup`]), with
//! the controllers enabled in supd's cgroup's `cgroup.subtree_control` (supd first moves
//! itself into a leaf, `supd/`, as the "no internal processes" rule asks). Where v2 has no
//! controllers (a kernel that binds them all to v1, as on older hosts), cgroup v1's `memory`,
//! `cpu`, `pids` and `blkio` hierarchies: a directory per program in each, which the child
//! joins between fork and exec. The mapping between the two follows systemd's.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::config::limits::{CPU_PERIOD_US, CgroupLimits};

/// A cgroup controller a limit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// `memory_max`, `memory_high`, `memory_swap_max`.
    Memory,
    /// `cpu_max`, `cpu_weight`.
    Cpu,
    /// `pids_max`.
    Pids,
    /// `io_weight` (v1: blkio).
    Io,
}

impl Controller {
    const ALL: [Controller; 4] = [Controller::Memory, Controller::Cpu, Controller::Pids, Controller::Io];

    /// Its name in cgroup v2 (`cgroup.controllers`).
    fn v2(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
            Controller::Io => "io",
        }
    }

    /// Its hierarchy's name in cgroup v1.
    fn v1(self) -> &'static str {
        match self {
            Controller::Io => "blkio",
            other => other.v2(),
        }
    }
}

/// One file to write in a program's cgroup: the config key it comes from, the controller,
/// the file and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// `memory_max`, …
    pub key: &'static str,
    /// Which controller's file it is.
    pub controller: Controller,
    /// `memory.max`, …
    pub file: &'static str,
    /// What is written.
    pub value: String,
}

fn setting(key: &'static str, controller: Controller, file: &'static str, value: impl ToString) -> Setting {
    Setting { key, controller, file, value: value.to_string() }
}

/// cgroup v2's files for `l`, named as the config keys are.
pub fn v2_settings(l: &CgroupLimits) -> Vec<Setting> {
    use Controller::*;
    let mut out = Vec::new();
    out.extend(l.memory_max.map(|b| setting("memory_max", Memory, "memory.max", b)));
    out.extend(l.memory_high.map(|b| setting("memory_high", Memory, "memory.high", b)));
    out.extend(l.memory_swap_max.map(|b| setting("memory_swap_max", Memory, "memory.swap.max", b)));
    out.extend(l.cpu_max_us.map(|q| setting("cpu_max", Cpu, "cpu.max", format!("{q} {CPU_PERIOD_US}"))));
    out.extend(l.cpu_weight.map(|w| setting("cpu_weight", Cpu, "cpu.weight", w)));
    out.extend(l.pids_max.map(|n| setting("pids_max", Pids, "pids.max", n)));
    out.extend(l.io_weight.map(|w| setting("io_weight", Io, "io.weight", format!("default {w}"))));
    out
}

/// cgroup v1's files for `l`, in the order they must be written (the memory limit before
/// memory + swap, which may not be below it), and the keys v1 cannot express.
pub fn v1_settings(l: &CgroupLimits) -> (Vec<Setting>, Vec<&'static str>) {
    use Controller::*;
    let (mut out, mut cannot) = (Vec::new(), Vec::new());
    out.extend(l.memory_max.map(|b| setting("memory_max", Memory, "memory.limit_in_bytes", b)));
    // v1 has no throttling limit; the soft limit is what reclaim aims at under pressure.
    out.extend(l.memory_high.map(|b| setting("memory_high", Memory, "memory.soft_limit_in_bytes", b)));
    match (l.memory_swap_max, l.memory_max) {
        (Some(swap), Some(max)) => {
            out.push(setting("memory_swap_max", Memory, "memory.memsw.limit_in_bytes", max.saturating_add(swap)))
        }
        (Some(_), None) => cannot.push("memory_swap_max"), // v1 limits memory + swap together
        (None, _) => {}
    }
    if let Some(q) = l.cpu_max_us {
        out.push(setting("cpu_max", Cpu, "cpu.cfs_period_us", CPU_PERIOD_US));
        out.push(setting("cpu_max", Cpu, "cpu.cfs_quota_us", q));
    }
    // systemd's conversions: shares = weight × 1024 / 100; blkio weight = io weight × 5.
    let shares = |w: u32| (u64::from(w) * 1024 / 100).clamp(2, 262_144);
    out.extend(l.cpu_weight.map(|w| setting("cpu_weight", Cpu, "cpu.shares", shares(w))));
    out.extend(l.pids_max.map(|n| setting("pids_max", Pids, "pids.max", n)));
    out.extend(l.io_weight.map(|w| setting("io_weight", Io, "blkio.weight", (w.saturating_mul(5)).clamp(10, 1000))));
    (out, cannot)
}

/// Where this supd can apply limits.
#[derive(Debug)]
pub enum Limiter {
    /// cgroup v2: in each program's own cgroup.
    V2 {
        /// The controllers enabled for the programs' cgroups.
        enabled: Vec<Controller>,
    },
    /// cgroup v1: a directory per program in each hierarchy found.
    V1 {
        /// Per controller, the directory of this supd's program cgroups.
        dirs: Vec<(Controller, PathBuf)>,
    },
}

impl Limiter {
    /// Finds where limits apply: v2 controllers for the cgroups under `v2_base` (enabling
    /// them), else v1 hierarchies (making this supd's directory in each). Errors: neither.
    pub fn detect(v2_base: Option<&Path>) -> Result<Limiter, String> {
        let v2 = match v2_base {
            Some(base) => match enable_v2(base) {
                Ok(enabled) if !enabled.is_empty() => return Ok(Limiter::V2 { enabled }),
                Ok(_) => "cgroup v2 offers no controller here".to_string(),
                Err(e) => format!("cannot enable cgroup v2 controllers in {}: {e}", base.display()),
            },
            None => "supd has no cgroup v2 of its own".to_string(),
        };
        let read = |p| std::fs::read_to_string(p).unwrap_or_default();
        let dirs = v1_dirs(&read("/proc/self/mountinfo"), &read("/proc/self/cgroup"));
        if dirs.is_empty() {
            return Err(format!("{v2}, and no cgroup v1 memory, cpu, pids or blkio hierarchy is writable"));
        }
        Ok(Limiter::V1 { dirs })
    }

    /// The keys of `l` this limiter cannot apply.
    pub fn missing(&self, l: &CgroupLimits) -> Vec<&'static str> {
        match self {
            Limiter::V2 { enabled } => {
                v2_settings(l).into_iter().filter(|s| !enabled.contains(&s.controller)).map(|s| s.key).collect()
            }
            Limiter::V1 { dirs } => {
                let (settings, mut cannot) = v1_settings(l);
                // A file the kernel does not offer (blkio.weight without the BFQ scheduler,
                // memsw without swap accounting) cannot be written either.
                let offered = |s: &Setting| dirs.iter().any(|(c, dir)| *c == s.controller && dir.join(s.file).exists());
                cannot.extend(settings.iter().filter(|s| !offered(s)).map(|s| s.key));
                cannot.dedup();
                cannot
            }
        }
    }

    /// Writes program `name`'s limits: into `v2_dir` (its own cgroup) under v2, into a new
    /// directory per controller under v1. Errors: a file that cannot be written, named.
    pub fn apply(&self, name: &str, l: &CgroupLimits, v2_dir: Option<&Path>) -> Result<ProgramLimits, String> {
        let write = |dir: &Path, s: &Setting| {
            std::fs::write(dir.join(s.file), &s.value)
                .map_err(|e| format!("{}: cannot write {:?} to {}: {e}", s.key, s.value, dir.join(s.file).display()))
        };
        match self {
            Limiter::V2 { enabled } => {
                let dir = v2_dir.ok_or("the program has no cgroup v2 of its own")?;
                for s in v2_settings(l).iter().filter(|s| enabled.contains(&s.controller)) {
                    write(dir, s)?;
                }
                Ok(ProgramLimits { v1: Vec::new(), memory: Some((dir.to_path_buf(), true)) })
            }
            Limiter::V1 { dirs } => {
                let mut made = ProgramLimits { v1: Vec::new(), memory: None };
                let settings = v1_settings(l).0;
                for (controller, base) in dirs {
                    if !settings.iter().any(|s| s.controller == *controller) {
                        continue;
                    }
                    let dir = base.join(format!("program-{name}"));
                    if let Err(e) = std::fs::create_dir(&dir)
                        && e.kind() != std::io::ErrorKind::AlreadyExists
                    {
                        return Err(format!("cannot make {}: {e}", dir.display()));
                    }
                    for s in settings.iter().filter(|s| s.controller == *controller) {
                        write(&dir, s)?;
                    }
                    if *controller == Controller::Memory {
                        made.memory = Some((dir.clone(), false));
                    }
                    made.v1.push(dir);
                }
                Ok(made)
            }
        }
    }
}

/// Enables the v2 controllers offered to `base`'s children, moving supd into `base/supd` first
/// when it is in `base` itself; the controllers enabled.
fn enable_v2(base: &Path) -> std::io::Result<Vec<Controller>> {
    let offered = std::fs::read_to_string(base.join("cgroup.controllers"))?;
    let wanted: Vec<Controller> =
        Controller::ALL.into_iter().filter(|c| offered.split_whitespace().any(|o| o == c.v2())).collect();
    if wanted.is_empty() {
        return Ok(wanted);
    }
    let me = std::process::id().to_string();
    let procs = std::fs::read_to_string(base.join("cgroup.procs")).unwrap_or_default();
    if procs.lines().any(|l| l.trim() == me) {
        let leaf = base.join("supd");
        if let Err(e) = std::fs::create_dir(&leaf)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(e);
        }
        std::fs::write(leaf.join("cgroup.procs"), "0")?;
    }
    let line: Vec<String> = wanted.iter().map(|c| format!("+{}", c.v2())).collect();
    std::fs::write(base.join("cgroup.subtree_control"), line.join(" "))?;
    Ok(wanted)
}

/// This supd's directory in each writable v1 hierarchy of a controller limits need, made now
/// (`supd-<pid namespace>-<pid>` under supd's own cgroup there), from `mountinfo` and
/// `cgroup` as /proc/self has them.
fn v1_dirs(mountinfo: &str, cgroup: &str) -> Vec<(Controller, PathBuf)> {
    let own = super::cgroup::own_dir_name();
    let mut dirs = Vec::new();
    for controller in Controller::ALL {
        let Some((root, mountpoint)) = mountinfo.lines().find_map(|line| {
            let (fields, rest) = line.split_once(" - ")?;
            let mut rest = rest.split_whitespace();
            let (fstype, _source, options) = (rest.next()?, rest.next()?, rest.next()?);
            (fstype == "cgroup" && options.split(',').any(|o| o == controller.v1())).then_some(())?;
            let f: Vec<&str> = fields.split_whitespace().collect();
            Some((*f.get(3)?, *f.get(4)?))
        }) else {
            continue;
        };
        let Some(path) = cgroup.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            names.split(',').any(|n| n == controller.v1()).then_some(path)
        }) else {
            continue;
        };
        let below = path.strip_prefix(root.trim_end_matches('/')).unwrap_or(path).trim_start_matches('/');
        let dir = Path::new(mountpoint).join(below).join(&own);
        match std::fs::create_dir(&dir) {
            Ok(()) => dirs.push((controller, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => dirs.push((controller, dir)),
            Err(_) => {} // read-only, or not ours: this controller cannot be used
        }
    }
    dirs
}

/// The cgroups holding one program's limits.
#[derive(Debug, Clone, Default)]
pub struct ProgramLimits {
    /// Its directories in v1 hierarchies, which the child joins.
    v1: Vec<PathBuf>,
    /// Where its memory is accounted, and whether that is v2.
    memory: Option<(PathBuf, bool)>,
}

impl ProgramLimits {
    /// Each v1 directory's `cgroup.procs`, opened for the child to write `0` into.
    pub fn procs_for_child(&self) -> Vec<OwnedFd> {
        let open = |d: &PathBuf| std::fs::OpenOptions::new().write(true).open(d.join("cgroup.procs")).ok();
        self.v1.iter().filter_map(open).map(OwnedFd::from).collect()
    }

    /// OOM kills in its memory cgroup so far (`oom_kill` of v2's `memory.events`, v1's
    /// `memory.oom_control`); `None` without a memory cgroup or a count.
    pub fn oom_kills(&self) -> Option<u64> {
        let (dir, v2) = self.memory.as_ref()?;
        let text = std::fs::read_to_string(dir.join(if *v2 { "memory.events" } else { "memory.oom_control" })).ok()?;
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
    }

    /// Removes its v1 directories, when empty (a program a reload removed, or at exit).
    pub fn remove(&self) {
        for dir in &self.v1 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Removes this supd's v1 directories, when empty (at exit, after the programs').
pub fn remove(limiter: &Limiter) {
    if let Limiter::V1 { dirs } = limiter {
        for (_, dir) in dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests;
