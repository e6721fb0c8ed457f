//! `max_rss` (superlance memmon's job, built in): measures the whole process tree of each
//! program that sets it, every `max_rss_interval`, and reports one whose resident memory has
//! stayed over `max_rss` for `max_rss_for`. What happens then (a restart through the crash
//! backoff) is the lifecycle's rule ([`crate::lifecycle::Event::OverMemory`]).
//!
//! Costs nothing when no program sets `max_rss`: the task then runs no timer and only wakes
//! when the programs change. Trees are read from /proc on a short-lived thread, never on the
//! event loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::Snapshot;
use crate::config::MaxRss;

/// How long a walk of /proc may take before this round is skipped.
const SAMPLE_WITHIN: Duration = Duration::from_secs(5);

/// A program whose tree stayed over its `max_rss`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverMemory {
    /// The program's name.
    pub program: String,
    /// The process it was measured under; the report is dropped if that one is gone.
    pub pid: i32,
    /// What was measured: `tree RSS 612.0 MiB over max_rss 512.0 MiB for 30s`.
    pub reason: String,
}

/// One watched process: a program's name and pid.
type Watched = (String, i32);

/// What is kept per watched process.
struct Watch {
    limit: MaxRss,
    /// The next measure.
    due: Instant,
    /// Since when it has been over, as of the last measure.
    over_since: Option<Instant>,
}

/// Watches the programs of `snapshot` that set `max_rss` and sends a report for each that stays
/// over it, until the snapshot's sender or the receiver of `reports` is gone.
pub async fn watch(mut snapshot: watch::Receiver<Arc<Snapshot>>, reports: mpsc::Sender<OverMemory>) {
    let mut watched: HashMap<Watched, Watch> = HashMap::new();
    loop {
        let now = Instant::now();
        let running: Vec<(Watched, MaxRss)> = snapshot
            .borrow_and_update()
            .programs
            .iter()
            .filter_map(|p| Some(((p.name.clone(), p.pid?), p.cfg.max_rss?)))
            .collect();
        watched.retain(|key, _| running.iter().any(|(k, _)| k == key));
        for (key, limit) in running {
            // A new process is first measured one interval after it is seen.
            watched.entry(key).or_insert(Watch { limit, due: now + limit.interval, over_since: None });
        }
        let next = watched.values().map(|w| w.due).min();
        tokio::select! {
            changed = snapshot.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return, // supd is done
            },
            () = sleep_until(next) => {}
        }
        let now = Instant::now();
        let due: Vec<i32> = watched.iter().filter(|(_, w)| w.due <= now).map(|((_, pid), _)| *pid).collect();
        let Some(sample) = crate::process::usage::take_off_loop(due, "supd-max-rss", SAMPLE_WITHIN).await else {
            for w in watched.values_mut().filter(|w| w.due <= now) {
                w.due = now + w.limit.interval;
            }
            continue;
        };
        for ((program, pid), w) in watched.iter_mut().filter(|(_, w)| w.due <= now) {
            w.due = now + w.limit.interval;
            let Some(rss) = sample.trees.get(pid).map(|u| u.rss_bytes) else { continue };
            if rss <= w.limit.bytes {
                w.over_since = None;
                continue;
            }
            let since = *w.over_since.get_or_insert(now);
            if now.saturating_duration_since(since) < w.limit.sustained {
                continue;
            }
            w.over_since = None;
            let reason = format!(
                "tree RSS {} over max_rss {} for {}",
                mib(rss),
                mib(w.limit.bytes),
                humantime::format_duration(w.limit.sustained)
            );
            if reports.send(OverMemory { program: program.clone(), pid: *pid, reason }).await.is_err() {
                return;
            }
        }
    }
}

/// Sleeps until `at`; forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// `612.0 MiB`.
pub(super) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}
