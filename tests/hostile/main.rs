//! Hostile conditions: what a hostile user, a noisy neighbour or a real-world supervisord.conf
//! does to PID 1. Each test here failed on the code before its fix (issue 14).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../supd/harness.rs"]
#[allow(dead_code)]
mod harness;

mod churn;
mod connections;
mod depends;
mod devstdout;
mod frozen;
mod limits;
mod logfiles;
mod protocol;
mod stdout;
mod wakeups;
