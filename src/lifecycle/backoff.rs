//! Restart delays: 0 for the first restart after a stable run, then `initial` doubling up to
//! `max`, each with ±10% jitter so that programs that failed together do not retry together.

use std::time::Duration;

use crate::config::BackoffConfig;

/// The delay before attempt `n` of a streak: `n = 0` is immediate, `n >= 1` is
/// `initial * 2^(n-1)` capped at `max`, times a jitter factor in `[0.9, 1.1]` drawn from `rng`.
pub fn delay(cfg: &BackoffConfig, n: u32, rng: &mut fastrand::Rng) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(31));
    let base = cfg.initial.saturating_mul(factor).min(cfg.max);
    // `mul_f64` panics on overflow; the config bounds `max` to a year, and this never panics.
    Duration::try_from_secs_f64(base.as_secs_f64() * (0.9 + rng.f64() * 0.2)).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_initial_to_cap_with_jitter() {
        let cfg = BackoffConfig::default();
        let mut rng = fastrand::Rng::with_seed(7);
        assert_eq!(delay(&cfg, 0, &mut rng), Duration::ZERO);
        for (n, base) in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (40, 60.0)] {
            let d = delay(&cfg, n, &mut rng).as_secs_f64();
            assert!((base * 0.9..=base * 1.1).contains(&d), "attempt {n}: {d} s not within 10% of {base} s");
        }
    }
}
