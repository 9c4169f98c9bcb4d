//! The limit on the calls anyone may make without a key (marketing sign-up and status), per
//! client address. Every adapter counts against the same limiter, so a client cannot double its
//! allowance by switching from REST to gRPC.

use crate::error::{Error, Result};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// Above this many addresses tracked, addresses idle for a whole window are forgotten.
const RETAIN_ABOVE: usize = 100_000;

/// `limit` calls per `window` per client address (a burst of `limit`, then one more each
/// `window / limit`: the generic cell rate algorithm of `governor`). Per node: behind several
/// nodes the effective limit is this times the node count.
pub struct PublicLimiter {
    limiter: DefaultKeyedRateLimiter<Option<IpAddr>>,
}

impl PublicLimiter {
    /// `limit` calls per `window` per address (at least one call, at least a microsecond).
    pub fn new(limit: u32, window: Duration) -> Self {
        let burst = NonZeroU32::new(limit.max(1)).expect("at least one");
        let period = (window / burst.get()).max(Duration::from_micros(1));
        let quota = Quota::with_period(period)
            .expect("the period is not zero")
            .allow_burst(burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    /// Counts a call from `ip` (`None` when the adapter cannot tell the address); `Limit`
    /// `rate_limited` with the seconds to wait when over.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<()> {
        if self.limiter.len() > RETAIN_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::limit(
                "rate_limited",
                "too many requests from this address; try again later",
                wait.as_secs_f64().ceil().max(1.0) as u64,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn an_address_gets_its_burst_then_is_refused_with_the_wait() {
        let limiter = PublicLimiter::new(3, Duration::from_secs(60));
        let ip = Some("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            limiter.check(ip).unwrap();
        }
        let refused = limiter.check(ip).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Limit);
        assert_eq!(refused.code, "rate_limited");
        let wait = refused.retry_after_secs.unwrap();
        assert!(
            (1..=20).contains(&wait),
            "one call comes back every 20 s: {wait}"
        );
    }

    #[test]
    fn addresses_are_counted_apart() {
        let limiter = PublicLimiter::new(1, Duration::from_secs(60));
        limiter.check(Some("192.0.2.1".parse().unwrap())).unwrap();
        limiter.check(Some("192.0.2.2".parse().unwrap())).unwrap();
        limiter.check(None).unwrap();
        assert!(limiter.check(None).is_err());
    }
}
