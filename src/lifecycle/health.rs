//! Docker's HEALTHCHECK counting rule (with Kubernetes' `successThreshold`), as one process's
//! probe results arrive: when a program becomes healthy, and when unhealthy. What then happens
//! to the program (a restart, or a failed start) is [`super::Program`]'s to decide.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::Healthcheck;
use crate::deadline::after;

/// A program's health, beside its state (Docker's health status names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No probe has passed yet since the start.
    Starting,
    /// `success_threshold` probes in a row passed.
    Healthy,
    /// `retries` probes in a row failed (outside `start_period`).
    Unhealthy,
}

impl Health {
    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// The count of one process's probe results so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCount {
    health: Health,
    /// Probes failed in a row (outside the start period).
    failures: u32,
    /// Probes passed in a row.
    successes: u32,
    /// Until when failures do not count (Docker: `--start-period`); `None` once a probe passed.
    start_period_ends: Option<Instant>,
}

/// What one probe result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy: `success_threshold` passes in a row (said again at each pass after that).
    Healthy,
    /// Just became unhealthy: `retries` failures in a row outside the start period.
    BecameUnhealthy,
    /// Nothing to act on.
    Unchanged,
}

impl HealthCount {
    /// A process spawned at `now`: health `starting`, its start period running.
    pub fn new(check: &Healthcheck, now: Instant) -> Self {
        let start_period_ends = (!check.start_period.is_zero()).then(|| after(now, check.start_period));
        Self { health: Health::Starting, failures: 0, successes: 0, start_period_ends }
    }

    /// The health so far.
    pub const fn health(&self) -> Health {
        self.health
    }

    /// Counts one probe result (`ok`) at `now`. Docker: `retries` failures in a row make it
    /// unhealthy, but failures inside `start_period` do not count, and the first pass ends that
    /// period; Kubernetes: `successThreshold` passes in a row make it healthy.
    pub fn record(&mut self, ok: bool, now: Instant, check: &Healthcheck) -> Verdict {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            self.start_period_ends = None;
            if self.successes < check.success_threshold {
                return Verdict::Unchanged;
            }
            self.health = Health::Healthy;
            return Verdict::Healthy;
        }
        self.successes = 0;
        if self.start_period_ends.is_some_and(|end| now < end) {
            return Verdict::Unchanged;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures < check.retries || self.health == Health::Unhealthy {
            return Verdict::Unchanged;
        }
        self.health = Health::Unhealthy;
        Verdict::BecameUnhealthy
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{OnUnhealthy, Probe};

    fn check(retries: u32, success_threshold: u32, start_period: u64) -> Healthcheck {
        Healthcheck {
            probe: Probe::Tcp { host: "127.0.0.1".into(), port: 1 },
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            start_period: Duration::from_secs(start_period),
            start_interval: Duration::from_secs(1),
            retries,
            success_threshold,
            on_unhealthy: OnUnhealthy::Restart,
        }
    }

    #[test]
    fn success_threshold_passes_in_a_row_make_it_healthy() {
        let (c, now) = (check(3, 2, 0), Instant::now());
        let mut h = HealthCount::new(&c, now);
        assert_eq!(h.record(true, now, &c), Verdict::Unchanged);
        assert_eq!(h.record(false, now, &c), Verdict::Unchanged, "a failure breaks the run of passes");
        assert_eq!(h.record(true, now, &c), Verdict::Unchanged);
        assert_eq!((h.record(true, now, &c), h.health()), (Verdict::Healthy, Health::Healthy));
    }

    #[test]
    fn retries_failures_in_a_row_make_it_unhealthy_once() {
        let (c, now) = (check(3, 1, 0), Instant::now());
        let mut h = HealthCount::new(&c, now);
        h.record(true, now, &c);
        assert_eq!(h.record(false, now, &c), Verdict::Unchanged);
        assert_eq!(h.record(false, now, &c), Verdict::Unchanged);
        assert_eq!((h.record(false, now, &c), h.health()), (Verdict::BecameUnhealthy, Health::Unhealthy));
        assert_eq!(h.record(false, now, &c), Verdict::Unchanged, "said once, not at every failure");
        assert_eq!(h.record(true, now, &c), Verdict::Healthy, "one pass recovers");
    }

    #[test]
    fn the_start_period_hides_failures_until_it_ends_or_a_probe_passes() {
        let (c, now) = (check(1, 1, 30), Instant::now());
        let mut h = HealthCount::new(&c, now);
        assert_eq!(h.record(false, now + Duration::from_secs(29), &c), Verdict::Unchanged);
        assert_eq!(h.health(), Health::Starting);
        assert_eq!(h.record(false, now + Duration::from_secs(30), &c), Verdict::BecameUnhealthy);

        let mut h = HealthCount::new(&c, now);
        h.record(true, now, &c);
        assert_eq!(h.record(false, now, &c), Verdict::BecameUnhealthy, "the first pass ended the start period");
    }
}
