//! What every handler shares.

use levqor_core::{Error, Levqor};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared state of the REST adapter.
#[derive(Clone)]
pub struct AppState {
    /// The service.
    pub levqor: Arc<Levqor>,
    /// Limits the routes anyone may call without a key (marketing sign-up and status).
    pub public_limit: Arc<PublicLimiter>,
}

impl AppState {
    /// State over `levqor` with the default public limit (10 calls per client address per
    /// minute).
    pub fn new(levqor: Arc<Levqor>) -> Self {
        Self {
            levqor,
            public_limit: Arc::new(PublicLimiter::new(10, Duration::from_secs(60))),
        }
    }
}

/// A fixed-window limit per client address for the routes that need no key. Per node: behind
/// several nodes the effective limit is this times the node count.
pub struct PublicLimiter {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
}

impl PublicLimiter {
    /// `limit` calls per `window` per address.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a call from `ip`; `Limit` `rate_limited` with the seconds to wait when over.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), Error> {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("limiter lock");
        if seen.len() > 100_000 {
            seen.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = seen.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let wait = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(Error::limit(
                "rate_limited",
                "too many requests from this address; try again later",
                wait.as_secs().max(1),
            ));
        }
        entry.1 += 1;
        Ok(())
    }
}
