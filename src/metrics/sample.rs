//! Process-tree samples from /proc, taken on a thread of their own so that a scrape never
//! walks /proc: resident memory and CPU time of each program's whole tree, and supd's own.
//!
//! The thread starts with the first scrape and then samples every [`INTERVAL`]: a supd that is
//! never scraped never wakes for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::supervisor::Snapshot;

/// Time between samples once scraping has begun.
pub const INTERVAL: Duration = Duration::from_secs(5);

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

/// One sample: per program root pid, its tree's usage; and supd's own.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Keyed by the pid of the program's process.
    pub trees: HashMap<i32, Usage>,
    /// supd itself.
    pub own: Own,
}

/// The sampler: started by the first [`Sampler::latest`].
#[derive(Debug)]
pub struct Sampler {
    snapshot: watch::Receiver<Arc<Snapshot>>,
    latest: std::sync::Mutex<Option<watch::Receiver<Arc<Sample>>>>,
}

impl Sampler {
    /// A sampler of the programs in `snapshot`; nothing runs until the first call to `latest`.
    pub fn new(snapshot: watch::Receiver<Arc<Snapshot>>) -> Sampler {
        Sampler { snapshot, latest: std::sync::Mutex::new(None) }
    }

    /// The latest sample. The first call starts the sampling thread and waits (at most 1 s)
    /// for its first sample; later calls never wait. `None` when the thread cannot start.
    pub async fn latest(&self) -> Option<Arc<Sample>> {
        let mut rx = {
            let Ok(mut latest) = self.latest.lock() else { return None };
            match latest.as_ref() {
                Some(rx) => return Some(rx.borrow().clone()),
                None => {
                    let rx = start(self.snapshot.clone())?;
                    *latest = Some(rx.clone());
                    rx
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
        Some(rx.borrow().clone())
    }
}

fn start(snapshot: watch::Receiver<Arc<Snapshot>>) -> Option<watch::Receiver<Arc<Sample>>> {
    let (tx, rx) = watch::channel(Arc::new(Sample::default()));
    let spawned = std::thread::Builder::new().name("supd-sampler".into()).stack_size(256 * 1024).spawn(move || {
        loop {
            let roots: Vec<i32> = snapshot.borrow().programs.iter().filter_map(|p| p.pid).collect();
            if tx.send(Arc::new(take(&roots))).is_err() {
                return;
            }
            std::thread::sleep(INTERVAL);
        }
    });
    match spawned {
        Ok(_) => Some(rx),
        Err(e) => {
            warn!("cannot start the metrics sampler: {e}; process-tree metrics are left out");
            None
        }
    }
}

/// One process as /proc/PID/stat has it.
#[derive(Debug, Clone, Copy)]
struct Stat {
    ppid: i32,
    /// utime + stime + cutime + cstime, clock ticks.
    ticks: u64,
    rss_pages: u64,
    threads: u64,
    start_ticks: u64,
    vsize: u64,
}

/// Reads every process once and sums each root's tree (the root and all its descendants).
fn take(roots: &[i32]) -> Sample {
    let (tick, page) = (clock_ticks(), page_size());
    let mut procs: HashMap<i32, Stat> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            if let Some(stat) = read_stat(pid) {
                procs.insert(pid, stat);
            }
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
            usage.rss_bytes += stat.rss_pages * page;
            usage.cpu_seconds += stat.ticks as f64 / tick;
            stack.extend(children.get(&pid).into_iter().flatten());
        }
        trees.insert(root, usage);
    }
    Sample { trees, own: own(tick, page) }
}

fn own(tick: f64, page: u64) -> Own {
    let Some(stat) = read_stat(std::process::id() as i32) else { return Own::default() };
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok()))
        .unwrap_or(0.0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    let max_fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map(|(soft, _)| soft);
    Own {
        // Without children: those are the programs, counted by their own metrics.
        cpu_seconds: stat.ticks as f64 / tick,
        rss_bytes: stat.rss_pages * page,
        virtual_bytes: stat.vsize,
        start_time_seconds: boot + stat.start_ticks as f64 / tick,
        open_fds,
        max_fds: max_fds.unwrap_or(0),
        threads: stat.threads,
    }
}

/// Parses /proc/PID/stat (proc(5)); fields are counted after the `)` that ends the name,
/// which may itself hold spaces and parentheses.
fn read_stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text, pid == std::process::id() as i32)
}

fn parse_stat(text: &str, own: bool) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state) of proc(5), so field N is f[N - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let (utime, stime, cutime, cstime) = (num(14)?, num(15)?, num(16)?, num(17)?);
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        ticks: utime + stime + if own { 0 } else { cutime + cstime },
        threads: num(20)?,
        start_ticks: num(22)?,
        vsize: num(23)?,
        rss_pages: num(24)?,
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 2 3 4 10 20 30 40 20 0 3 0 500 8192 25 18446744073709551615";
        let s = parse_stat(line, false).unwrap();
        assert_eq!((s.ppid, s.ticks, s.threads, s.start_ticks, s.vsize, s.rss_pages), (7, 100, 3, 500, 8192, 25));
        assert_eq!(parse_stat(line, true).unwrap().ticks, 30, "supd's own CPU leaves its children out");
    }

    #[test]
    fn a_tree_sums_the_root_and_its_descendants() {
        let me = std::process::id() as i32;
        let sample = take(&[me]);
        let usage = sample.trees[&me];
        assert!(usage.rss_bytes > 0 && usage.cpu_seconds >= 0.0, "{usage:?}");
        assert!(sample.own.rss_bytes > 0 && sample.own.threads >= 1 && sample.own.open_fds > 0, "{:?}", sample.own);
    }
}
