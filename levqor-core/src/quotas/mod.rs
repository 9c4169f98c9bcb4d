//! Developer tiers and their monthly API quotas. Every call made with a user's key is counted
//! in the database (group-committed, so many calls share one write, when several nodes may
//! write; in memory and written each second on a single-writer store), so the count holds across
//! every node that shares it; a call past the tier's quota is refused with `quota_exceeded` and
//! the seconds until the month resets.

mod area;
mod counter;
mod public;
mod service;
#[cfg(test)]
mod service_tests;
mod store;

pub use area::UsageArea;
pub use counter::FLUSH_EVERY;
pub use public::PublicLimiter;
pub use service::{DayUsage, Quotas, Usage};
pub use store::QuotaStore;

use crate::error::{Error, Result};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A developer tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Its name, e.g. `sandbox`.
    pub name: String,
    /// API calls per calendar month (UTC); `None` is unlimited.
    pub monthly_calls: Option<u64>,
    /// Its monthly price in cents (0: free).
    pub price_cents: i64,
}

/// Sandbox (1,000 calls a month, free), Pro (10,000, $19), Enterprise (unlimited, $199).
pub fn default_tiers() -> Vec<Tier> {
    vec![
        Tier {
            name: "sandbox".into(),
            monthly_calls: Some(1_000),
            price_cents: 0,
        },
        Tier {
            name: "pro".into(),
            monthly_calls: Some(10_000),
            price_cents: 1_900,
        },
        Tier {
            name: "enterprise".into(),
            monthly_calls: None,
            price_cents: 19_900,
        },
    ]
}

/// Calls to count for one user on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCount {
    /// Whose.
    pub user_id: Uuid,
    /// The month, `YYYY-MM`.
    pub month: String,
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// How many.
    pub calls: u64,
}

/// Where a user stands against their quota after a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaStatus {
    /// Their tier.
    pub tier: String,
    /// Calls allowed this month (`None`: unlimited).
    pub limit: Option<u64>,
    /// Calls made this month, this one included.
    pub used: u64,
    /// When the month resets.
    pub reset: DateTime<Utc>,
    /// Seconds from now until then.
    pub reset_in_secs: u64,
}

impl QuotaStatus {
    /// Calls left this month (`None`: unlimited).
    pub fn remaining(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.used))
    }

    /// Where the caller stands, as every adapter reports it on each answer (HTTP headers, gRPC
    /// metadata): `x-ratelimit-limit` and `-remaining` (`unlimited` for a tier without a
    /// quota) and `-reset` (seconds until the month's quota resets).
    pub fn rate_limit_fields(&self) -> [(&'static str, String); 3] {
        let number = |n: Option<u64>| n.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
        [
            ("x-ratelimit-limit", number(self.limit)),
            ("x-ratelimit-remaining", number(self.remaining())),
            ("x-ratelimit-reset", self.reset_in_secs.to_string()),
        ]
    }

    /// `Limit` `quota_exceeded` when this call was past the quota.
    pub fn check(&self) -> Result<()> {
        match self.limit {
            Some(limit) if self.used > limit => Err(Error::limit(
                "quota_exceeded",
                format!(
                    "the {} tier allows {limit} API calls a month; the quota resets at {}",
                    self.tier, self.reset
                ),
                self.reset_in_secs.max(1),
            )),
            _ => Ok(()),
        }
    }
}

/// The first instant of the month after `now`'s.
pub fn next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists")
}

/// The first day of `month` (`YYYY-MM`).
pub fn month_start(month: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_reset_on_the_first() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(
            next_month(t),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        let t = Utc.with_ymd_and_hms(2026, 2, 3, 4, 5, 6).unwrap();
        assert_eq!(
            next_month(t),
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(month_start("2026-02"), NaiveDate::from_ymd_opt(2026, 2, 1));
    }

    #[test]
    fn a_call_past_the_quota_is_refused_with_the_time_to_reset() {
        let s = QuotaStatus {
            tier: "sandbox".into(),
            limit: Some(2),
            used: 3,
            reset: Utc::now(),
            reset_in_secs: 100,
        };
        assert_eq!(s.remaining(), Some(0));
        let e = s.check().unwrap_err();
        assert_eq!((e.code, e.retry_after_secs), ("quota_exceeded", Some(100)));
        let ok = QuotaStatus { used: 2, ..s };
        assert!(ok.check().is_ok());
        let unlimited = QuotaStatus {
            limit: None,
            used: 1_000_000,
            ..ok
        };
        assert_eq!(unlimited.remaining(), None);
        assert!(unlimited.check().is_ok());
    }
}
