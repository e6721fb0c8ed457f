//! supd's interfaces: the control API on a unix socket (what supctl speaks), the read-only
//! HTTP listener, and the JSON shapes they share with supctl.

pub mod control;
pub mod health;
pub mod http;
pub mod protocol;

/// Connections served at once on each listener; more wait in the kernel's accept queue, so an
/// idle or hostile client cannot exhaust PID 1's descriptors.
pub const MAX_CONNECTIONS: usize = 128;
