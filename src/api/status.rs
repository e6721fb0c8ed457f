//! A program's status as supctl, `/health` and scripts see it: the snapshot's view of a
//! program turned into the protocol's [`ProgramStatus`] (the `status` line's description
//! text is made here, and only here).

use std::time::{Duration, Instant};

use super::protocol::{ProbeStatus, ProgramStatus, Resources, SupdFigures};
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
        max_rss_restarts: p.memory_restarts,
        oom_kills: p.oom_kills,
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
        resources: None,
    }
}

/// Fills in each running program's CPU % and resident memory from `sampler` (a sample at
/// most 1 s old, see [`crate::metrics::sample`]), and gives supd's own figures; `None` when
/// no sample could be taken.
pub async fn add_resources(
    programs: &mut [ProgramStatus],
    sampler: &crate::metrics::sample::Sampler,
) -> Option<SupdFigures> {
    let rates = sampler.with_rates().await?;
    for status in programs {
        let Some(pid) = status.pid else { continue };
        let Some(usage) = rates.sample.trees.get(&pid) else { continue };
        let cpu_percent = rates.cpu_percent.get(&pid).copied();
        status.resources = Some(Resources { cpu_percent, rss_bytes: usage.rss_bytes });
    }
    let own = rates.sample.own;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Some(SupdFigures {
        pid: std::process::id(),
        uptime_secs: (now.as_secs_f64() - own.start_time_seconds).max(0.0) as u64,
        rss_bytes: own.rss_bytes,
        memory_used_bytes: rates.sample.memory.map(|m| m.used_bytes),
        memory_limit_bytes: rates.sample.memory.map(|m| m.limit_bytes),
    })
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
            let memory = match p.memory_restarts {
                0 => String::new(),
                n => format!("; restarted {n}x for max_rss"),
            };
            format!("pid {pid}, uptime {}{health}{}{gpu}{memory}", clock(in_state), probe())
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
        // supervisord's: the time it stopped (then supd's account of the exit).
        // An OOM kill says so before the signal.
        State::Exited => match &p.error {
            Some(e) => format!("{}; {e}; {}", stopped_at(p), exit()),
            None => format!("{}; {}", stopped_at(p), exit()),
        },
        State::Fatal => why(),
        State::Stopped if p.spawns == 0 => "Not started".into(),
        State::Stopped => match &p.error {
            Some(e) => format!("{}; {e}", stopped_at(p)),
            None => stopped_at(p),
        },
    }
}

/// When `p` entered its (stopped) state, as supervisord shows it: `Dec 07 02:32 AM`, UTC.
fn stopped_at(p: &ProgramView) -> String {
    let at =
        crate::supervisor::snapshot::wall_clock(p.since).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    month_day_time(at.map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX)))
}

/// `H:MM:SS`, as supervisorctl shows uptimes.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Python's `str(timedelta(seconds=s))`: `0:04:10`, `1 day, 2:03:04`, `3 days, 0:00:01`.
pub(crate) fn timedelta(s: i32) -> String {
    let (days, rest) = (s / 86_400, s % 86_400);
    let clock = format!("{}:{:02}:{:02}", rest / 3600, rest / 60 % 60, rest % 60);
    match days {
        0 => clock,
        1 => format!("1 day, {clock}"),
        d => format!("{d} days, {clock}"),
    }
}

/// `strftime('%b %d %I:%M %p')` of epoch seconds `t`, in UTC (a container's usual zone).
pub(crate) fn month_day_time(t: i32) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let t = i64::from(t.max(0));
    let (days, secs) = (t / 86_400, t % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let (hour, minute) = (secs / 3600, secs / 60 % 60);
    let (h12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    let name = MONTHS.get((month - 1) as usize).copied().unwrap_or("Jan");
    format!("{name} {day:02} {h12:02}:{minute:02} {ampm}")
}

#[cfg(test)]
mod tests {
    use super::{clock, month_day_time, timedelta};
    use std::time::Duration;

    #[test]
    fn times_read_as_supervisord_writes_them() {
        assert_eq!(timedelta(250), "0:04:10");
        assert_eq!(timedelta(86_400 + 7384), "1 day, 2:03:04");
        assert_eq!(timedelta(3 * 86_400 + 1), "3 days, 0:00:01");
        // 2026-12-07 02:32 UTC, and a PM time on a leap day.
        assert_eq!(month_day_time(1_796_610_720), "Dec 07 02:32 AM");
        assert_eq!(month_day_time(1_709_164_800 + 13 * 3600 + 5 * 60), "Feb 29 01:05 PM");
    }

    #[test]
    fn clock_format() {
        assert_eq!(clock(Duration::from_secs(62)), "0:01:02");
        assert_eq!(clock(Duration::from_secs(100 * 3600 + 5)), "100:00:05");
    }
}
