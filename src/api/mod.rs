//! supd's interfaces: the control API on a unix socket (what supctl speaks), the read-only
//! HTTP listener, and the JSON shapes they share with supctl.

pub mod control;
pub mod health;
pub mod http;
pub mod protocol;
