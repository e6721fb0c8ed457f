//! Process-tree samples (see [`crate::process::usage`]) kept for scrapes: resident memory and
//! CPU time of each program's whole tree, and supd's own.
//!
//! Taken on demand: a scrape that finds no sample younger than [`MAX_AGE`] has one taken on a
//! short-lived thread (never on the event loop) and waits for it; scrapes that come meanwhile
//! wait for the same one, so a burst of scrapes costs one walk of /proc. Nothing runs between
//! scrapes, so a supd that is scraped now and then is back to zero wake-ups in between.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::process::usage::Sample;
use crate::supervisor::Snapshot;

/// How old a sample may be and still serve a scrape.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// How long a scrape waits for a new sample before it goes without one.
const WAIT: Duration = Duration::from_secs(2);
/// The shortest span CPU percentages are measured over: without a sample this old or older
/// (but younger than [`RATE_SPAN_MAX`]), a second one is taken this long after the first.
const RATE_SPAN: Duration = Duration::from_millis(250);
/// The longest span a CPU percentage is averaged over.
const RATE_SPAN_MAX: Duration = Duration::from_secs(30);

/// A sample and when it was taken.
type Timed = (Instant, Arc<Sample>);

/// The samples kept: the latest, and the one before it (for CPU percentages).
#[derive(Debug, Default)]
struct Kept {
    latest: Option<Timed>,
    previous: Option<Timed>,
}

/// The sampler: the latest samples and when they were taken.
#[derive(Debug)]
pub struct Sampler {
    snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Held across the wait for a new sample, so concurrent scrapes share it.
    kept: tokio::sync::Mutex<Kept>,
}

/// Each program tree's CPU use as a percentage of one core, by root pid.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    /// The latest sample.
    pub sample: Arc<Sample>,
    /// CPU % (100 is one core busy) between the sample before and this one.
    pub cpu_percent: HashMap<i32, f64>,
}

impl Sampler {
    /// A sampler of the programs in `snapshot`; nothing runs until the first call to `latest`.
    pub fn new(snapshot: watch::Receiver<Arc<Snapshot>>) -> Sampler {
        Sampler { snapshot, kept: tokio::sync::Mutex::new(Kept::default()) }
    }

    /// A sample at most [`MAX_AGE`] old: the cached one, or a new one taken now off the event
    /// loop. `None` when none can be taken (no thread, or /proc took longer than 2 s).
    pub async fn latest(&self) -> Option<Arc<Sample>> {
        self.within(MAX_AGE).await.map(|((_, sample), _)| sample)
    }

    /// The latest sample with each tree's CPU % since the one before, which is taken 250 ms
    /// earlier when none is from 0.25 to 30 s before it (`supctl status -v`).
    pub async fn with_rates(&self) -> Option<Rates> {
        let span = |now: &Timed, before: &Option<Timed>| {
            let span = before.as_ref().map(|(at, _)| now.0.saturating_duration_since(*at))?;
            (RATE_SPAN..=RATE_SPAN_MAX).contains(&span).then_some(span.as_secs_f64())
        };
        let (mut now, mut before) = self.within(MAX_AGE).await?;
        if span(&now, &before).is_none() {
            tokio::time::sleep(RATE_SPAN).await;
            (now, before) = self.within(RATE_SPAN).await?;
        }
        let cpu_percent = match (span(&now, &before), &before) {
            (Some(secs), Some((_, prev))) => now
                .1
                .trees
                .iter()
                .filter_map(|(pid, usage)| {
                    let was = prev.trees.get(pid)?;
                    Some((*pid, (usage.cpu_seconds - was.cpu_seconds).max(0.0) / secs * 100.0))
                })
                .collect(),
            _ => HashMap::new(),
        };
        Some(Rates { sample: now.1, cpu_percent })
    }

    /// The latest sample, at most `max_age` old (taken now when the kept one is older), and
    /// the one before it.
    async fn within(&self, max_age: Duration) -> Option<(Timed, Option<Timed>)> {
        let mut kept = self.kept.lock().await;
        if let Some(latest) = kept.latest.as_ref().filter(|(at, _)| at.elapsed() < max_age) {
            return Some((latest.clone(), kept.previous.clone()));
        }
        let roots: Vec<i32> = self.snapshot.borrow().programs.iter().filter_map(|p| p.pid).collect();
        let sample = Arc::new(crate::process::usage::take_off_loop(roots, "supd-sampler", WAIT).await?);
        let now = (Instant::now(), sample);
        kept.previous = kept.latest.replace(now.clone());
        Some((now, kept.previous.clone()))
    }
}
