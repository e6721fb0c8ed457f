//! What a process tree uses, read from /proc with the procfs crate: the resident memory and
//! CPU time of each program's whole tree, supd's own figures, and the container's memory.
//! One call walks /proc once; callers run it off the event loop (the metrics sampler, the
//! `max_rss` watcher).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One process tree's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// User + system CPU time, seconds, including that of children already reaped.
    pub cpu_seconds: f64,
}

/// supd's own figures, for the standard `process_*` metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Own {
    /// `process_cpu_seconds_total`.
    pub cpu_seconds: f64,
    /// `process_resident_memory_bytes`.
    pub rss_bytes: u64,
    /// `process_virtual_memory_bytes`.
    pub virtual_bytes: u64,
    /// `process_start_time_seconds` (Unix time).
    pub start_time_seconds: f64,
    /// `process_open_fds`.
    pub open_fds: u64,
    /// `process_max_fds`.
    pub max_fds: u64,
    /// `process_threads`.
    pub threads: u64,
}

/// The memory of the whole container (or machine), as `supctl top`'s header shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memory {
    /// In use, bytes: the cgroup's `memory.current` (v1: `memory.usage_in_bytes`), or, with
    /// no memory cgroup, `MemTotal - MemAvailable` from /proc/meminfo.
    pub used_bytes: u64,
    /// The limit, bytes: `memory.max` (v1: `memory.limit_in_bytes`), or `MemTotal` when the
    /// cgroup sets none.
    pub limit_bytes: u64,
}

/// One sample: per program root pid, its tree's usage; and supd's own.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Keyed by the pid of the program's process.
    pub trees: HashMap<i32, Usage>,
    /// supd itself.
    pub own: Own,
    /// The container's memory; `None` when neither the cgroup nor /proc/meminfo can be read.
    pub memory: Option<Memory>,
}

/// [`take`] on a short-lived thread named `name`, never on the event loop; `None` when the
/// thread cannot start (said in supd's log) or the walk takes longer than `within`.
pub async fn take_off_loop(roots: Vec<i32>, name: &str, within: std::time::Duration) -> Option<Sample> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name(name.into()).stack_size(256 * 1024).spawn(move || {
        let _ = tx.send(take(&roots));
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot start a thread to read /proc ({name}): {e}");
        return None;
    }
    tokio::time::timeout(within, rx).await.ok()?.ok()
}

/// Reads every process once and sums each root's tree (the root and all its descendants).
pub fn take(roots: &[i32]) -> Sample {
    let (tick, page) = (procfs::ticks_per_second().max(1) as f64, procfs::page_size());
    let mut procs: HashMap<i32, procfs::process::Stat> = HashMap::new();
    if let Ok(all) = procfs::process::all_processes() {
        for stat in all.flatten().filter_map(|p| p.stat().ok()) {
            procs.insert(stat.pid, stat);
        }
    }
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, stat) in &procs {
        children.entry(stat.ppid).or_default().push(pid);
    }
    let mut trees = HashMap::new();
    for &root in roots {
        let mut usage = Usage::default();
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            let Some(stat) = procs.get(&pid) else { continue };
            usage.rss_bytes = usage.rss_bytes.saturating_add(stat.rss.saturating_mul(page));
            usage.cpu_seconds += ticks(stat, true) as f64 / tick;
            stack.extend(children.get(&pid).into_iter().flatten());
        }
        trees.insert(root, usage);
    }
    Sample { trees, own: own(tick, page), memory: memory(Path::new("/sys/fs/cgroup"), Path::new("/proc/meminfo")) }
}

/// utime + stime, and with `children` the reaped children's too.
fn ticks(stat: &procfs::process::Stat, children: bool) -> u64 {
    let reaped = if children { stat.cutime.max(0).saturating_add(stat.cstime.max(0)) as u64 } else { 0 };
    stat.utime.saturating_add(stat.stime).saturating_add(reaped)
}

/// The container's memory: its cgroup's figures under `cgroupfs` (v2 at the root, else v1's
/// memory controller), capped by and falling back to the machine's from `meminfo`.
fn memory(cgroupfs: &Path, meminfo: &Path) -> Option<Memory> {
    let number = |path: PathBuf| std::fs::read_to_string(path).ok()?.trim().parse::<u64>().ok();
    use procfs::FromRead;
    let machine = procfs::Meminfo::from_file(meminfo).ok().map(|m| Memory {
        used_bytes: m.mem_total.saturating_sub(m.mem_available.unwrap_or(m.mem_free)),
        limit_bytes: m.mem_total,
    });
    let v2 = number(cgroupfs.join("memory.current")).map(|used| (used, number(cgroupfs.join("memory.max"))));
    let v1 = || {
        let dir = cgroupfs.join("memory");
        number(dir.join("memory.usage_in_bytes")).map(|used| (used, number(dir.join("memory.limit_in_bytes"))))
    };
    match (v2.or_else(v1), machine) {
        // "max" (v2) does not parse, and v1's "no limit" is a huge number: the machine's total.
        (Some((used, limit)), machine) => {
            let total = machine.map_or(u64::MAX, |m| m.limit_bytes);
            Some(Memory { used_bytes: used, limit_bytes: limit.unwrap_or(total).min(total) })
        }
        (None, machine) => machine,
    }
}

fn own(tick: f64, page: u64) -> Own {
    let Ok(me) = procfs::process::Process::myself() else { return Own::default() };
    let Ok(stat) = me.stat() else { return Own::default() };
    let boot = procfs::boot_time_secs().unwrap_or(0) as f64;
    let max_fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map(|(soft, _)| soft);
    Own {
        // Without children: those are the programs, counted by their own metrics.
        cpu_seconds: ticks(&stat, false) as f64 / tick,
        rss_bytes: stat.rss.saturating_mul(page),
        virtual_bytes: stat.vsize,
        start_time_seconds: boot + stat.starttime as f64 / tick,
        open_fds: me.fd_count().map_or(0, |n| n as u64),
        max_fds: max_fds.unwrap_or(0),
        threads: u64::try_from(stat.num_threads).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_memory_comes_from_the_cgroup_capped_by_the_machine() {
        let dir = tempfile::tempdir().unwrap();
        let meminfo = dir.path().join("meminfo");
        let rest = ["Buffers", "Cached", "SwapCached", "Active", "Inactive", "SwapTotal", "SwapFree", "Dirty"]
            .into_iter()
            .chain(["Writeback", "Mapped", "Slab", "Committed_AS", "VmallocTotal", "VmallocUsed", "VmallocChunk"])
            .map(|k| format!("{k}: 0 kB\n"))
            .collect::<String>();
        let text = format!("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 400 kB\n{rest}");
        std::fs::write(&meminfo, text).unwrap();
        let machine = Memory { used_bytes: 600 * 1024, limit_bytes: 1000 * 1024 };
        assert_eq!(memory(dir.path(), &meminfo), Some(machine), "no cgroup: the machine");
        std::fs::create_dir(dir.path().join("memory")).unwrap();
        std::fs::write(dir.path().join("memory/memory.usage_in_bytes"), "5000\n").unwrap();
        std::fs::write(dir.path().join("memory/memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(
            memory(dir.path(), &meminfo),
            Some(Memory { used_bytes: 5000, limit_bytes: 1000 * 1024 }),
            "v1, no limit"
        );
        std::fs::write(dir.path().join("memory.current"), "7000\n").unwrap();
        std::fs::write(dir.path().join("memory.max"), "65536\n").unwrap();
        assert_eq!(memory(dir.path(), &meminfo), Some(Memory { used_bytes: 7000, limit_bytes: 65536 }), "v2 limit");
        std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        assert_eq!(memory(dir.path(), &meminfo), Some(Memory { used_bytes: 7000, limit_bytes: 1000 * 1024 }), "v2 max");
    }

    #[test]
    fn a_tree_sums_the_root_and_its_descendants() {
        let me = std::process::id() as i32;
        // Spend CPU until the kernel has counted a tick of it (10 ms), so the reading can fail.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let sample = loop {
            let sample = take(&[me]);
            if sample.trees[&me].cpu_seconds > 0.0 || std::time::Instant::now() > deadline {
                break sample;
            }
            std::hint::black_box((0..1_000_000u64).fold(0u64, |a, b| a ^ b.wrapping_mul(31)));
        };
        let usage = sample.trees[&me];
        assert!(usage.rss_bytes > 0 && usage.cpu_seconds > 0.0, "{usage:?}");
        assert!(sample.own.rss_bytes > 0 && sample.own.threads >= 1 && sample.own.open_fds > 0, "{:?}", sample.own);
    }
}
