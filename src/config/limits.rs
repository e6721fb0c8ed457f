//! A program's cgroup limits (`memory_max`, `memory_high`, `memory_swap_max`, `cpu_max`,
//! `cpu_weight`, `pids_max`, `io_weight`, named after cgroup v2's files) and `limits`, what
//! happens where cgroups cannot apply them. Read by `resolve/limits.rs`; written into cgroups
//! by the process layer's `limits` module.

use serde::Serialize;

/// cgroup v2's default CPU period, µs (`cpu.max`'s second field).
pub const CPU_PERIOD_US: u64 = 100_000;

/// The limits of one program's cgroup; `None` leaves a resource unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CgroupLimits {
    /// `memory_max`, bytes: over it the kernel reclaims, then OOM-kills in the program's tree.
    pub memory_max: Option<u64>,
    /// `memory_high`, bytes: over it the tree is throttled and reclaimed hard (v1: the soft
    /// limit).
    pub memory_high: Option<u64>,
    /// `memory_swap_max`, bytes of swap (v1: written as memory + swap).
    pub memory_swap_max: Option<u64>,
    /// `cpu_max`: CPU time per [`CPU_PERIOD_US`], µs (`"50%"` is 50,000; `"2 cores"` 200,000).
    pub cpu_max_us: Option<u64>,
    /// `cpu_weight`, 1 to 10,000 (100 is the default share; v1: `cpu.shares` = weight × 1024 / 100).
    pub cpu_weight: Option<u32>,
    /// `pids_max`: processes and threads at most.
    pub pids_max: Option<u64>,
    /// `io_weight`, 1 to 10,000 (v1: `blkio.weight`, 10 to 1,000).
    pub io_weight: Option<u32>,
}

impl CgroupLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        *self != CgroupLimits::default()
    }
}

/// `limits`: what supd does with a program whose cgroup limits it cannot apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum LimitsMode {
    /// `"required"`: the program is not started (FATAL, saying why).
    #[default]
    Required,
    /// `"best_effort"`: it runs with the limits that apply, and a warning for the others.
    BestEffort,
}
