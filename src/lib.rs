//! supd: a process supervisor that runs as PID 1 in a container.
#![warn(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod config;
pub mod convert;
pub mod ctl;
pub mod deadline;
pub mod gpu;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod process;
pub mod single;
pub mod supervisor;
