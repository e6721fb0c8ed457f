//! Who gets a connection slot when clients are hostile.
//!
//! Each listener accepts every connection at once (nothing waits in the kernel's queue behind a
//! full house) and admits it here. At most [`MAX_CONNECTIONS`] are live; when a new one comes
//! and the house is full, the connection that has waited longest *without a request in
//! progress* (idle, or still dribbling its request head) is closed to make room. A client that
//! sends its request at once, as supctl, Docker, Kubernetes and Prometheus do, is served at
//! once; idle and slowloris clients can only push each other out. When every live connection
//! is busy (`tail -f` followers, waiting `start`s), the new one is refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Live connections on one listener, at most.
pub const MAX_CONNECTIONS: usize = 256;

/// The connection slots of one listener.
#[derive(Debug)]
pub struct Admission {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    live: usize,
    /// Sequence numbers rise with each admission and each return to idle, so the first entry
    /// is the connection that has been idle longest.
    next: u64,
    idle: BTreeMap<u64, Arc<Notify>>,
}

impl Admission {
    /// Slots for `cap` live connections.
    pub fn new(cap: usize) -> Arc<Admission> {
        Arc::new(Admission { cap, inner: Mutex::new(Inner::default()) })
    }

    /// Admits a new connection, idle until it calls [`Ticket::busy`]; closes the oldest idle
    /// one when the house is full. `None`: every live connection is busy; refuse this one.
    pub fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let mut inner = self.inner.lock().ok()?;
        if inner.live >= self.cap {
            // The evicted connection leaves (and frees its slot) at its next poll; until then
            // the house holds one more, bounded by the evictions in flight.
            let (_, oldest) = inner.idle.pop_first()?;
            oldest.notify_one();
            inner.live -= 1;
        }
        inner.live += 1;
        let evict = Arc::new(Notify::new());
        let seq = inner.next;
        inner.next += 1;
        inner.idle.insert(seq, Arc::clone(&evict));
        Some(Ticket { admission: Arc::clone(self), seq: Some(seq), evict, counted: true })
    }
}

/// One admitted connection. Dropping it frees the slot.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    /// Its place among the idle connections, while it is idle.
    seq: Option<u64>,
    evict: Arc<Notify>,
    /// Whether it still holds a slot (an evicted one gave its slot up already).
    counted: bool,
}

impl Ticket {
    /// A complete request arrived: it may no longer be closed to make room. `false` when it
    /// was chosen for eviction just before (then close it).
    pub fn busy(&mut self) -> bool {
        let Some(seq) = self.seq.take() else { return true };
        let Ok(mut inner) = self.admission.inner.lock() else { return true };
        let kept = inner.idle.remove(&seq).is_some();
        if !kept {
            self.counted = false;
        }
        kept
    }

    /// Its request was answered and it waits for the next (HTTP keep-alive): the youngest idle
    /// connection now.
    pub fn idle(&mut self) {
        let Ok(mut inner) = self.admission.inner.lock() else { return };
        if self.seq.is_none() && self.counted {
            let seq = inner.next;
            inner.next += 1;
            inner.idle.insert(seq, Arc::clone(&self.evict));
            self.seq = Some(seq);
        }
    }

    /// Resolves when this connection is closed to make room.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// What [`Ticket::evicted`] waits on, for a task that shares the ticket behind a lock.
    pub fn eviction(&self) -> Arc<Notify> {
        Arc::clone(&self.evict)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Ok(mut inner) = self.admission.inner.lock() else { return };
        let still_listed = self.seq.is_some_and(|seq| inner.idle.remove(&seq).is_some());
        if self.counted && (still_listed || self.seq.is_none()) {
            inner.live -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_closes_the_oldest_idle_connection_and_never_a_busy_one() {
        let slots = Admission::new(2);
        let mut a = slots.admit().unwrap();
        let b = slots.admit().unwrap();
        assert!(a.busy());
        // Full: b (idle) makes room for c.
        let c = slots.admit().unwrap();
        assert!(futures_ready(b.evicted()));
        drop(b);
        // Full with a busy and c idle: d evicts c.
        let d = slots.admit().unwrap();
        assert!(futures_ready(c.evicted()));
        drop(c);
        let mut d = d;
        assert!(d.busy());
        // Both busy: refused.
        assert!(slots.admit().is_none());
        a.idle();
        drop(d);
        assert!(slots.admit().is_some());
        assert_eq!(slots.inner.lock().unwrap().live, 1, "a, idle again");
    }

    #[test]
    fn an_evicted_connection_that_turns_busy_is_told_to_close() {
        let slots = Admission::new(1);
        let mut a = slots.admit().unwrap();
        let _b = slots.admit().unwrap();
        assert!(!a.busy(), "a was chosen for eviction");
        drop(a);
        assert_eq!(slots.inner.lock().unwrap().live, 1);
    }

    /// Whether `f` is ready at its first poll.
    fn futures_ready(f: impl std::future::Future<Output = ()>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        std::pin::pin!(f).poll(&mut cx).is_ready()
    }
}
