//! supervisord's events, for its event listeners (`[eventlistener.NAME]`, superlance's
//! `httpok`, `memmon`, `crashmail` …): the supervisor publishes each state change on a
//! [`Bus`]; each listener process has a task ([`listener`]) that hands it the events it
//! subscribed to, one at a time, by supervisord's protocol; [`tick`] makes `TICK_*` events,
//! only while a listener subscribes to them. And supd's own feed ([`live`]) for `/events` and
//! `supctl events`.
//!
//! Owns the events' names and payloads and the protocol. Never blocks the supervisor: publishing
//! is a bounded broadcast, and a listener too slow to keep up loses the oldest of its events
//! (with a warning), as supervisord's `buffer_size` does.

pub mod listener;
pub mod live;
pub mod output;
pub mod tick;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast;

use crate::lifecycle::{Program, State};

/// How many events the bus holds for a listener task that has not taken them yet.
const BUS_CAPACITY: usize = 1024;

/// One event: supervisord's type name and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// supervisord's serial, across all events.
    pub serial: u64,
    /// E.g. `PROCESS_STATE_RUNNING`, `TICK_60`.
    pub name: &'static str,
    /// E.g. `processname:web groupname:web from_state:STARTING pid:12`.
    pub payload: String,
}

/// Where events go out to the listeners' tasks. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Bus {
    /// Made by the first listener: a channel's slots take memory that a supd without
    /// listeners has no use for.
    tx: Arc<OnceLock<broadcast::Sender<Arc<Notification>>>>,
    serial: Arc<AtomicU64>,
    /// Listener processes that subscribe to a tick now (the tick timer runs while > 0).
    tick_subscribers: Arc<AtomicUsize>,
    /// Whether the tick timer runs.
    tick_running: Arc<std::sync::atomic::AtomicBool>,
}

impl Bus {
    /// Sends event `name` with `payload` to every listener task (nothing, without one).
    pub fn publish(&self, name: &'static str, payload: String) {
        let Some(tx) = self.tx.get().filter(|tx| tx.receiver_count() > 0) else { return };
        let serial = self.serial.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let _ = tx.send(Arc::new(Notification { serial, name, payload }));
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notification>> {
        self.tx.get_or_init(|| broadcast::channel(BUS_CAPACITY).0).subscribe()
    }
}

/// supervisord's name of the event for entering `state` (`PROCESS_STATE_RUNNING` …).
pub const fn process_state_name(state: State) -> &'static str {
    match state {
        State::Stopped => "PROCESS_STATE_STOPPED",
        State::Starting => "PROCESS_STATE_STARTING",
        State::Running => "PROCESS_STATE_RUNNING",
        State::Backoff => "PROCESS_STATE_BACKOFF",
        State::Stopping => "PROCESS_STATE_STOPPING",
        State::Exited => "PROCESS_STATE_EXITED",
        State::Fatal => "PROCESS_STATE_FATAL",
    }
}

/// supervisord's payload of `p` going from `from` to `to`: `processname:web groupname:web
/// from_state:STARTING`, then `tries:N` (STARTING, BACKOFF), `expected:0|1 pid:N` (EXITED) or
/// `pid:N` (RUNNING, STOPPING, STOPPED).
pub fn process_state_payload(p: &Program, from: State, to: State) -> String {
    let mut payload = format!("processname:{} groupname:{} from_state:{from}", p.cfg.name, p.cfg.group);
    let pid = p.last_pid().unwrap_or(0);
    match to {
        State::Starting | State::Backoff => payload.push_str(&format!(" tries:{}", p.failed_starts())),
        State::Exited => {
            let expected = p.last_exit().is_some_and(|s| p.expected(s));
            payload.push_str(&format!(" expected:{} pid:{pid}", u8::from(expected)));
        }
        State::Running | State::Stopping | State::Stopped => payload.push_str(&format!(" pid:{pid}")),
        State::Fatal => {}
    }
    payload
}

/// Whether a listener subscribed to `events` gets event `name`: the name itself, a family
/// it belongs to (`PROCESS_STATE` for `PROCESS_STATE_RUNNING`, `TICK` for `TICK_5`), or
/// `EVENT`, which is every event (supervisord's event type hierarchy).
pub fn subscribes(events: &[String], name: &str) -> bool {
    events
        .iter()
        .any(|e| e == "EVENT" || e == name || name.strip_prefix(e.as_str()).is_some_and(|rest| rest.starts_with('_')))
}

/// Whether `events` take a tick.
pub fn wants_ticks(events: &[String]) -> bool {
    ["TICK_5", "TICK_60", "TICK_3600"].iter().any(|t| subscribes(events, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_take_their_members() {
        let events = vec!["PROCESS_STATE".to_string(), "TICK_60".to_string()];
        assert!(subscribes(&events, "PROCESS_STATE_EXITED"));
        assert!(subscribes(&events, "TICK_60"));
        assert!(!subscribes(&events, "TICK_5"));
        assert!(!subscribes(&events, "SUPERVISOR_STATE_CHANGE_RUNNING"));
        assert!(subscribes(&["EVENT".to_string()], "TICK_5"));
        assert!(wants_ticks(&["TICK".to_string()]) && !wants_ticks(&events[..1]));
    }
}
