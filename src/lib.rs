//! supd: a process supervisor that runs as PID 1 in a container.
//!
//! # Theory of operation
//!
//! ```text
//!  config files ─▶ config::load ─▶ Config (final: nothing edits it later)
//!   raw (serde, exact key paths) → expanded (${VAR}, %(…)s) → resolved (files merged,
//!   groups, numprocs, users, this machine's GPUs) → validated
//!
//!                  ┌──────────── supervisor: one task, owns every lifecycle::Program ─────────┐
//!   events ──────▶ │ Program::on(event, now) ─▶ effects      planner: gating, ordered stop   │
//!   SIGCHLD → reap │   spawn, signal, start/stop probe,      settle: when a verb is done     │
//!   timers         │   forget a pid, refuse a verb                                           │
//!   probe results  └──────┬──────────────────────────────────────────────────────┬──────────┘
//!   control verbs         │ effects carried out: process::spawn, process::signal │ publishes
//!   signals, GPU faults   ▼                                                      ▼ a Snapshot
//!                   programs' pipes ─▶ output (reader tasks, one writer thread)   api: supctl's
//!                                                                                 socket, HTTP
//!                                                                                 /health, /metrics
//! ```
//!
//! Who owns what:
//! - [`lifecycle`] owns every rule of a program's life (supervisord's states and their
//!   transitions, Docker's health counting, backoff, which verbs are taken, dependency gating,
//!   the ordered shutdown). It is pure: no I/O, no clock, no tasks, so each rule is a unit
//!   test with a fake clock.
//! - [`supervisor`] owns the programs: it feeds them events and carries out their effects,
//!   and is the only place their state changes. Readers get an immutable [`supervisor::Snapshot`].
//! - [`process`] owns processes: spawning (credentials, session, cgroup), the one `waitpid`
//!   loop, signals, and finding a program's whole tree.
//! - [`output`] owns programs' output; [`probe`] runs health checks; [`gpu`] finds and
//!   watches GPUs; [`config`] turns files into a [`config::Config`]; [`events`] hands
//!   supervisord's events to event listeners by supervisord's protocol.
//! - [`api`] alone turns snapshots into supctl's JSON and HTTP bodies; [`metrics`] reads the
//!   snapshot and is told probe durations through [`supervisor::ProbeObserver`].
//!
//! The one rule: nothing blocks the event loop. Files, /proc, the user database and NVML are
//! read off it (`spawn_blocking`, the writer thread, the GPU poller); every wait on a client
//! or a child has a timeout; every queue is bounded.
//!
//! Layers, lowest first (`tests/layers` fails on a use that points up or sideways):
//! `deadline`, `config` → `process`, `output`, `gpu` → `probe`, `logging` → `lifecycle` →
//! `events` → `supervisor`, `single` → `metrics` → `api`. The binaries (`supd`, and `supctl` with its
//! client, its text and `convert`) sit above the library; PID 1 never links supctl's code.
#![warn(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod config;
pub mod deadline;
pub mod events;
pub mod gpu;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod probe;
pub mod process;
pub mod single;
pub mod supervisor;
