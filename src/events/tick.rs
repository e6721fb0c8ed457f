//! `TICK_5`, `TICK_60` and `TICK_3600`: sent at each multiple of 5, 60 and 3600 seconds of the
//! wall clock, as supervisord sends them, by one timer task that runs only while some listener
//! process subscribes to a tick; supd stays without wake-ups otherwise.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Bus;

/// A listener that takes ticks: keeps the timer running while it lives.
#[derive(Debug)]
pub struct TickGuard(Bus);

impl Drop for TickGuard {
    fn drop(&mut self) {
        self.0.tick_subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts a listener process that takes ticks, starting the timer when it is the first.
pub fn subscribe(bus: &Bus) -> TickGuard {
    bus.tick_subscribers.fetch_add(1, Ordering::AcqRel);
    if bus.tick_running.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        tokio::spawn(run(bus.clone()));
    }
    TickGuard(bus.clone())
}

/// Sleeps to each next multiple of 5 s and sends its ticks; ends once no listener takes them.
async fn run(bus: Bus) {
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let next = (now.as_secs() / 5 + 1) * 5;
        tokio::time::sleep(Duration::from_secs(next).saturating_sub(now)).await;
        if bus.tick_subscribers.load(Ordering::Acquire) == 0 {
            bus.tick_running.store(false, Ordering::Release);
            // A listener that came just now found the timer still running: run on for it.
            let again = bus.tick_subscribers.load(Ordering::Acquire) > 0
                && bus.tick_running.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok();
            if !again {
                return;
            }
        }
        let payload = format!("when:{next}");
        bus.publish("TICK_5", payload.clone());
        if next.is_multiple_of(60) {
            bus.publish("TICK_60", payload.clone());
        }
        if next.is_multiple_of(3600) {
            bus.publish("TICK_3600", payload);
        }
    }
}
