//! Integration tests: supd as a real PID 1 with real programs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod ctl;
mod dashboard;
mod depends;
mod events;
mod gpu;
mod harness;
mod health;
mod lifecycle;
mod limits;
mod logs;
mod metrics;
mod output;
mod parity;
mod pid1;
mod reload;
mod spawn;
mod top;
mod xmlrpc;
