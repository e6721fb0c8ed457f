//! supd: a process supervisor that runs as PID 1 in a container.
#![warn(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod config;
pub mod deadline;
pub mod gpu;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod probe;
pub mod process;
pub mod single;
pub mod supervisor;
