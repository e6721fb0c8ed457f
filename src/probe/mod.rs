//! Health probes: HTTP, TCP and exec checks run on their own schedule beside each program
//! ([`runner`]), their results fed to the supervisor as events. This module only measures:
//! what the results mean (Docker's counting rule, healthy or not) is the lifecycle's. Each
//! probe is bounded by its `timeout`, and none touches the supervisor's state.

pub mod runner;

use std::time::{Duration, Instant};

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
