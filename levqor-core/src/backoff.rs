//! Exponential backoff with jitter, shared by the engine's job retries and the outbox
//! dispatcher's delivery retries.

use std::time::Duration;

/// The delay before attempt `attempts + 1`: `base * 2^(attempts-1)`, capped, scaled by `jitter`
/// (a number in `[0.5, 1.0]`, so retries of many jobs or messages spread out).
pub fn retry_delay(attempts: i32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    let raw = base.saturating_mul(2u32.saturating_pow(exp)).min(cap);
    raw.mul_f64(jitter.clamp(0.5, 1.0))
}
