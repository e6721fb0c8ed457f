//! The supervisor: one task that owns every program.
pub mod backoff;
pub mod program;
pub mod state;
pub use state::State;
