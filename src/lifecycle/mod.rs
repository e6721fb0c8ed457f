//! Every rule of a program's life, and none of its I/O.
//!
//! [`Program::on`] is a pure state machine: an [`Event`] and the time in, [`Effect`]s out.
//! It owns the per-program rules (supervisord's startsecs, startretries, BACKOFF, FATAL,
//! autorestart and exitcodes; stop, SIGKILL and giving up; which control verbs it takes, with
//! a [`Refusal`] otherwise); [`health`] holds Docker's counting rule for probe results and
//! [`backoff`] the restart delays. [`planner`] holds the rules across programs: dependency
//! gating, the ordered shutdown, and a `required` program going FATAL. [`settle`] says when a
//! control verb's work is done, for the waiters of `supctl start` and `stop`.
//!
//! This module never does I/O, never reads the clock and never blocks: the supervisor feeds
//! it events and carries out its effects. Every rule is therefore a unit test with a fake
//! clock, beside it.

pub mod backoff;
mod event;
pub mod health;
pub mod planner;
mod program;
pub mod settle;
mod state;
#[cfg(test)]
mod tests;

pub use event::{Effect, Event, Refusal};
pub use health::Health;
pub use program::{KILL_GRACE, Program};
pub use state::State;
