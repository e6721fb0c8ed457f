//! A program's status as supctl, `/health` and scripts see it: the snapshot's view of a
//! program turned into the protocol's [`ProgramStatus`] (the `status` line's description
//! text is made here, and only here).

use std::time::{Duration, Instant};

use super::protocol::{ProbeStatus, ProgramStatus};
use crate::lifecycle::State;
use crate::supervisor::ProgramView;

/// `p`'s status as shown to people and scripts at `now`.
pub fn status(p: &ProgramView, now: Instant) -> ProgramStatus {
    let in_state = now.saturating_duration_since(p.since);
    let running = p.state == State::Running;
    let errors = p.logs.errors();
    let log_errors: String = errors.iter().map(|e| format!("; log: {e}")).collect();
    ProgramStatus {
        log_errors: errors,
        name: p.name.clone(),
        group: p.group.clone(),
        full_name: p.full_name(),
        state: p.state,
        pid: p.pid,
        uptime_secs: running.then_some(in_state.as_secs()),
        description: describe(p, now, in_state) + &log_errors,
        exit_status: p.last_exit.map(|(s, _)| s),
        exit_expected: p.last_exit.map(|(_, e)| e),
        error: p.error.clone(),
        restarts: p.restarts,
        spawns: p.spawns,
        autostart: p.autostart,
        health: p.health,
        last_probe: p.last_probe.as_ref().map(|o| ProbeStatus {
            ok: o.ok,
            message: o.message.clone(),
            latency_ms: o.latency.as_secs_f64() * 1000.0,
            secs_ago: now.saturating_duration_since(o.at).as_secs(),
        }),
        survivors: p.survivors.clone(),
        processes: None,
    }
}

/// The description column of `p`'s status line at `now`, `in_state` after it entered its state.
fn describe(p: &ProgramView, now: Instant, in_state: Duration) -> String {
    let exit = || match p.last_exit {
        Some((s, true)) => format!("{s} (expected)"),
        Some((s, false)) => format!("{s} (not expected)"),
        None => String::new(),
    };
    let why = || p.error.clone().unwrap_or_else(exit);
    let pid = p.pid.unwrap_or(0);
    // The health rides in the description, so the state column stays one word as in
    // supervisorctl (`supctl status | awk '{print $4}'` is the pid).
    let health = p.health.map(|h| format!(", {}", h.as_str())).unwrap_or_default();
    let probe = || match &p.last_probe {
        Some(o) => format!("; probe: {} in {:.0} ms", o.message, o.latency.as_secs_f64() * 1000.0),
        None => String::new(),
    };
    match p.state {
        State::Running => {
            let gpu = p.gpu_fault.as_ref().map(|f| format!("; {f}")).unwrap_or_default();
            format!("pid {pid}, uptime {}{health}{}{gpu}", clock(in_state), probe())
        }
        State::Starting if p.pid.is_none() => {
            format!("waiting for {}", p.waiting.as_deref().unwrap_or("dependencies"))
        }
        State::Starting => format!("pid {pid}{health}{}", probe()),
        State::Backoff => {
            let left = p.deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(now));
            format!("retry in {:.1}s; last: {}", left.as_secs_f64(), why())
        }
        State::Stopping => format!("pid {pid}, stopping for {}", clock(in_state)),
        State::Exited => format!("{}, {} ago", exit(), clock(in_state)),
        State::Fatal => why(),
        State::Stopped if p.spawns == 0 => "not started".into(),
        State::Stopped => match &p.error {
            Some(e) => format!("stopped {} ago; {e}", clock(in_state)),
            None => format!("stopped {} ago", clock(in_state)),
        },
    }
}

/// `H:MM:SS`, as supervisorctl shows uptimes.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::clock;
    use std::time::Duration;

    #[test]
    fn clock_format() {
        assert_eq!(clock(Duration::from_secs(62)), "0:01:02");
        assert_eq!(clock(Duration::from_secs(100 * 3600 + 5)), "100:00:05");
    }
}
