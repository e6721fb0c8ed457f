//! The health rule behind `GET /health` and `supctl health`.

use std::time::Instant;

use super::protocol::{HealthReport, ProgramStatus};
use crate::lifecycle::Health;
use crate::lifecycle::State;
use crate::supervisor::snapshot::Snapshot;

/// Whether one program counts as ready: RUNNING and, where it has a healthcheck, healthy; or
/// EXITED with an expected code (a one-shot that finished its job). Programs with
/// `autostart = false` do not count.
pub fn ready(status: &ProgramStatus) -> bool {
    let running = status.state == State::Running && status.health.is_none_or(|h| h == Health::Healthy);
    !status.autostart || running || (status.state == State::Exited && status.exit_expected == Some(true))
}

/// The health report for `snapshot` and the GPU state `gpu` at `now`: healthy when every
/// autostart program is ready and supd is not shutting down. (A program that holds a faulty
/// GPU is unhealthy and so not ready; the GPU itself does not decide.)
pub fn report(snapshot: &Snapshot, gpu: &crate::gpu::SharedGpuView, now: Instant) -> HealthReport {
    let programs: Vec<ProgramStatus> = snapshot.programs.iter().map(|p| super::status::status(p, now)).collect();
    let mut not_ready: Vec<String> =
        programs.iter().filter(|p| !ready(p)).map(|p| format!("{} ({})", p.full_name, p.state_text())).collect();
    if snapshot.shutting_down {
        not_ready.insert(0, "supd (shutting down)".into());
    }
    let status = if not_ready.is_empty() { "healthy" } else { "unhealthy" };
    let gpu = gpu.lock().ok().map(|g| g.clone());
    HealthReport { status: status.into(), not_ready, programs, gpu }
}

/// The answer for one program (`GET /health/NAME`): its status and whether it is ready, or
/// `None` when no program has that name (`NAME` or `GROUP:NAME`).
pub fn program(snapshot: &Snapshot, name: &str, now: Instant) -> Option<(bool, ProgramStatus)> {
    let view = snapshot.programs.iter().find(|p| p.name == name || p.full_name() == name)?;
    let status = super::status::status(view, now);
    // Even a program without autostart answers for itself: asked by name, it must be up.
    let ready = ready(&ProgramStatus { autostart: true, ..status.clone() });
    Some((ready, status))
}
