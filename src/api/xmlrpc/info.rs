//! supervisord's process info struct (`getProcessInfo`), made from a snapshot's view.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use dxr::Value;

use crate::api::status::{month_day_time, timedelta};
use crate::lifecycle::State;
use crate::process::ExitStatus;
use crate::supervisor::ProgramView;
use crate::supervisor::snapshot::wall_clock;

/// supervisord's state code (`supervisor.states.ProcessStates`).
pub const fn state_code(state: State) -> i32 {
    match state {
        State::Stopped => 0,
        State::Starting => 10,
        State::Running => 20,
        State::Backoff => 30,
        State::Stopping => 40,
        State::Exited => 100,
        State::Fatal => 200,
    }
}

/// Seconds since the epoch, as supervisord's `capped_int` gives them (0 for none).
fn epoch(at: Option<SystemTime>) -> i32 {
    at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
}

/// The info struct of `p` now, with supervisord's members (name, group, description,
/// start, stop, now, state, statename, spawnerr, exitstatus, logfile, stdout_logfile,
/// stderr_logfile, pid) and supd's own beside them (health, restarts), which clients ignore.
pub fn process_info(p: &ProgramView) -> Value {
    let start = epoch(p.last_start);
    // The time of the last stop is when it entered the state it has stopped in.
    let stopped = matches!(p.state, State::Stopped | State::Exited | State::Fatal | State::Backoff);
    let stop = if stopped && p.spawns > 0 { epoch(wall_clock(p.since)) } else { 0 };
    let now_secs = epoch(Some(SystemTime::now()));
    // supervisord's text for a start that failed by exiting, where supd keeps no error.
    let spawnerr = match p.state {
        State::Backoff | State::Fatal => {
            p.error.clone().unwrap_or_else(|| "Exited too quickly (process log may have details)".into())
        }
        _ => String::new(),
    };
    let exitstatus = match (p.state, p.last_exit) {
        (State::Fatal, _) | (_, None) => 0,
        (_, Some((ExitStatus::Code(c), _))) => c,
        (_, Some((ExitStatus::Signal(_), _))) => -1,
    };
    let logfile =
        |log: &crate::output::StreamLog| log.file.as_ref().map(|f| f.path.display().to_string()).unwrap_or_default();
    let (stdout, stderr) = (logfile(&p.logs.stdout), logfile(&p.logs.stderr));
    let description = describe(p, start, stop, now_secs, &spawnerr);
    let uptime_start = if p.state == State::Running { epoch(p.started) } else { start };
    let mut info: BTreeMap<String, Value> = BTreeMap::new();
    let mut put = |k: &str, v: Value| {
        info.insert(k.to_string(), v);
    };
    put("name", Value::String(p.name.clone()));
    put("group", Value::String(p.group.clone()));
    put("description", Value::String(description));
    put("start", Value::Integer(uptime_start));
    put("stop", Value::Integer(stop));
    put("now", Value::Integer(now_secs));
    put("state", Value::Integer(state_code(p.state)));
    put("statename", Value::String(p.state.as_str().to_string()));
    put("spawnerr", Value::String(spawnerr));
    put("exitstatus", Value::Integer(exitstatus));
    put("logfile", Value::String(stdout.clone()));
    put("stdout_logfile", Value::String(stdout));
    put("stderr_logfile", Value::String(stderr));
    put("pid", Value::Integer(p.pid.unwrap_or(0)));
    put("health", Value::String(p.health.map(|h| h.as_str().to_string()).unwrap_or_default()));
    put("restarts", Value::Integer(i32::try_from(p.restarts).unwrap_or(i32::MAX)));
    Value::Struct(info)
}

/// supervisord's description (`_interpretProcessInfo`): `pid 12, uptime 0:04:10` while
/// RUNNING, the spawn error in BACKOFF and FATAL, the stop time (`Dec 07 02:32 AM`, UTC) or
/// `Not started` when stopped, and nothing otherwise.
fn describe(p: &ProgramView, start: i32, stop: i32, now: i32, spawnerr: &str) -> String {
    match p.state {
        State::Running => {
            let up = now.saturating_sub(epoch(p.started)).max(0);
            format!("pid {}, uptime {}", p.pid.unwrap_or(0), timedelta(up))
        }
        State::Fatal | State::Backoff if spawnerr.is_empty() => format!("unknown error (try \"tail {}\")", p.name),
        State::Fatal | State::Backoff => spawnerr.to_string(),
        State::Stopped | State::Exited if start != 0 => month_day_time(stop),
        State::Stopped | State::Exited => "Not started".into(),
        State::Starting | State::Stopping => String::new(),
    }
}
