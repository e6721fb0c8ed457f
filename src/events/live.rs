//! supd's own live feed, for `GET /events` (Server-Sent Events) and `supctl events`: one
//! [`Change`] per state change, restart, health change, probe result change and GPU fault.
//!
//! Publishing costs nothing without a follower (the change is not even built), and the feed
//! runs no timer. Followers are bounded: at most [`MAX_FOLLOWERS`] at once, so that they can
//! never take every connection slot from `/health`, and one that falls behind is dropped
//! rather than waited for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Followers at once, over both listeners.
pub const MAX_FOLLOWERS: usize = 32;
/// Changes a follower may fall behind by before it is dropped.
const BACKLOG: usize = 256;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A supervisord state: `from` and `to` are `STOPPED`, `STARTING`, `RUNNING` …
    State,
    /// supd restarted the program on its own (autorestart, a failed start's retry, an
    /// unhealthy program): `to` is the restart count.
    Restart,
    /// Its health: `starting`, `healthy`, `unhealthy`.
    Health,
    /// Its last probe: `pass` or `fail`, with the probe's message as the reason.
    Probe,
    /// A GPU it holds: `fault` or `ok`.
    Gpu,
    /// Its tree's memory stayed over `max_rss`: `over`, with the figures as the reason (a
    /// restart follows).
    Memory,
}

impl Kind {
    /// Its name, as in the JSON and as the Server-Sent Event's `event:`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::State => "state",
            Kind::Restart => "restart",
            Kind::Health => "health",
            Kind::Probe => "probe",
            Kind::Gpu => "gpu",
            Kind::Memory => "memory",
        }
    }
}

/// One change of one program. Holds no command line and no environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// When, RFC 3339 in UTC with milliseconds.
    pub time: String,
    /// The program.
    pub program: String,
    /// Its group.
    pub group: String,
    /// What changed.
    pub kind: Kind,
    /// Before, when there was something before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// After.
    pub to: String,
    /// Why, when supd knows (an exit, a spawn error, a probe's message, a GPU's fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Change {
    /// A change of `kind` of `program` in `group`, now.
    pub fn now(
        program: &str,
        group: &str,
        kind: Kind,
        from: Option<String>,
        to: String,
        reason: Option<String>,
    ) -> Change {
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        Change { time, program: program.to_string(), group: group.to_string(), kind, from, to, reason }
    }
}

/// Where changes go out to followers. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Feed {
    /// Made by the first follower.
    tx: Arc<OnceLock<broadcast::Sender<Arc<Change>>>>,
    followers: Arc<AtomicUsize>,
}

impl Feed {
    /// Sends the change `make` builds to every follower; without one, `make` is not called.
    pub fn publish(&self, make: impl FnOnce() -> Change) {
        if let Some(tx) = self.tx.get().filter(|tx| tx.receiver_count() > 0) {
            let _ = tx.send(Arc::new(make()));
        }
    }

    /// Changes from now on, for one more follower; `None` when [`MAX_FOLLOWERS`] follow
    /// already. Dropping the [`Follower`] makes room again.
    pub fn follow(&self) -> Option<Follower> {
        let taken =
            self.followers.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_FOLLOWERS).then_some(n + 1));
        taken.ok()?;
        let changes = self.tx.get_or_init(|| broadcast::channel(BACKLOG).0).subscribe();
        Some(Follower { changes, followers: Arc::clone(&self.followers) })
    }
}

/// One follower's changes.
#[derive(Debug)]
pub struct Follower {
    changes: broadcast::Receiver<Arc<Change>>,
    followers: Arc<AtomicUsize>,
}

impl Follower {
    /// The next change; `None` once this follower fell more than 256 changes behind (it is
    /// dropped: it reconnects and reads the state anew) or supd is going away.
    pub async fn next(&mut self) -> Option<Arc<Change>> {
        self.changes.recv().await.ok()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.followers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_are_bounded_and_changes_are_built_only_for_them() {
        let feed = Feed::default();
        feed.publish(|| unreachable!("no follower: nothing is built"));
        let mut all: Vec<Follower> = (0..MAX_FOLLOWERS).filter_map(|_| feed.follow()).collect();
        assert_eq!(all.len(), MAX_FOLLOWERS);
        assert!(feed.follow().is_none(), "one more is refused");
        all.pop();
        assert!(feed.follow().is_some(), "a follower gone makes room");
    }

    #[tokio::test]
    async fn a_follower_that_falls_behind_is_dropped() {
        let feed = Feed::default();
        let mut slow = feed.follow().unwrap_or_else(|| unreachable!());
        for i in 0..=BACKLOG {
            feed.publish(|| Change::now("p", "p", Kind::State, None, i.to_string(), None));
        }
        assert!(slow.next().await.is_none());
    }
}
