//! supd's interfaces: the control API on a unix socket (what supctl speaks), the read-only
//! HTTP listener, and the JSON shapes they share with supctl.
//!
//! Owns the wire: only this module turns snapshots into supctl's JSON, status lines and HTTP
//! bodies. It never changes a program itself (verbs go to the supervisor as commands), never
//! takes a lock the supervisor needs, and lets no client hold a slot or the loop: every read
//! and write has a deadline, and idle connections make room for new ones.

pub mod admission;
mod answer;
pub mod control;
pub mod dashboard;
mod groups;
pub mod http;
pub mod protocol;
pub mod readiness;
pub mod status;
pub mod streamed;
mod tail;
pub(crate) mod wait;
pub mod xmlrpc;

/// How long a client may take to send a complete request (the control socket's line, an HTTP
/// request head). Real clients send theirs at once.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long supd waits for a client to take an answer before it gives up on the client.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
