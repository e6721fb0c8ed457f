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
mod escape;
mod frozen;
mod limits;
mod logfiles;
mod orphans;
mod protocol;
mod stdout;
mod wakeups;

/// Held by the tests that load the machine (and time what they see under that load), so that
/// two of them never run at once on a 2-core machine.
pub static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`HEAVY`] (a test that failed while holding it does not poison the others).
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
