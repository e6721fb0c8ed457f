//! Health probes: HTTP, TCP and exec checks run on their own schedule beside each program,
//! their results fed to the supervisor as events.

pub mod probe;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Passed.
    pub ok: bool,
    /// What happened: `HTTP 200`, `connected`, `exit status 1`, `timed out after 2s` …
    pub message: String,
    /// How long it took.
    pub latency: Duration,
    /// When it started.
    pub at: Instant,
}
