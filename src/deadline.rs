//! Deadlines that cannot overflow: `Instant + Duration` panics past the clock's range, and
//! PID 1 must never panic, whatever duration a config or a request carries.

use std::time::{Duration, Instant};

/// Stands in for "never" when `now + d` does not fit: about 100 years.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `now + d`, or as late as the clock allows when that overflows.
pub fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).or_else(|| now.checked_add(FAR.min(d))).unwrap_or(now)
}

/// [`after`] for tokio's clock.
pub fn after_tokio(now: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(after(now.into_std(), d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::from_secs(1)), now + Duration::from_secs(1));
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(365 * 24 * 3600));
        let _ = after_tokio(tokio::time::Instant::now(), Duration::MAX);
    }
}
