//! Developer tiers and their monthly API quotas. Every call made with a user's key is counted
//! (group-committed, so many calls share one write) in the database, so the count holds across
//! every node that shares it; a call past the tier's quota is refused with `quota_exceeded` and
//! the seconds until the month resets.

use crate::auth::Principal;
use crate::batch::Batcher;
use crate::error::{Error, Result, Violation};
use crate::privacy::Actor;
use crate::service::{Levqor, Store};
use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;
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

/// Storage of tiers and usage.
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// A user's tier, if one was set.
    async fn tier_of(&self, user_id: Uuid) -> Result<Option<String>>;
    /// Sets a user's tier.
    async fn set_tier(&self, user_id: Uuid, tier: &str, now: DateTime<Utc>) -> Result<()>;
    /// Adds the counts in one transaction; per item, in order, the day's total for its user
    /// once that item is counted (as if the items were added one after another).
    async fn add_calls(&self, calls: &[CallCount]) -> Result<Vec<u64>>;
    /// A user's calls per day of `month` (`YYYY-MM`), by day.
    async fn usage_days(&self, user_id: Uuid, month: &str) -> Result<Vec<(String, u64)>>;
    /// Deletes a user's tier and usage; how many rows.
    async fn erase_usage(&self, user_id: Uuid) -> Result<u64>;
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

const TIER_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// How calls are counted.
enum Counter {
    /// Every call goes to the database, group-committed: exact across the nodes that share it.
    Shared(Batcher<CallCount, Result<u64>>),
    /// The database has one writer and so one process (SQLite): the counts live here and are
    /// written every [`FLUSH_EVERY`]. A crash loses at most that much counting, never a request.
    Local(Arc<LocalCounts>),
}

/// How often local counts are written.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

struct DayCount {
    month: String,
    stored: u64,
    pending: u64,
}

#[derive(Default)]
struct LocalCounts {
    days: std::sync::Mutex<HashMap<(Uuid, String), DayCount>>,
}

impl LocalCounts {
    fn bump(&self, key: &(Uuid, String)) -> Option<u64> {
        let mut days = self.days.lock().expect("counts lock");
        days.get_mut(key).map(|d| {
            d.pending += 1;
            d.stored + d.pending
        })
    }

    /// Writes what is pending; on failure it stays pending for the next flush.
    async fn flush(&self, store: &dyn Store) -> Result<()> {
        let batch: Vec<CallCount> = {
            let days = self.days.lock().expect("counts lock");
            days.iter()
                .filter(|(_, d)| d.pending > 0)
                .map(|((user_id, day), d)| CallCount {
                    user_id: *user_id,
                    month: d.month.clone(),
                    day: day.clone(),
                    calls: d.pending,
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let totals = store.add_calls(&batch).await?;
        let mut days = self.days.lock().expect("counts lock");
        for (c, total) in batch.iter().zip(totals) {
            if let Some(d) = days.get_mut(&(c.user_id, c.day.clone())) {
                d.pending -= c.calls;
                d.stored = total;
            }
        }
        if days.len() > 100_000 {
            days.retain(|_, d| d.pending > 0);
        }
        Ok(())
    }

    fn pending(&self, user_id: Uuid, month: &str) -> Vec<(String, u64)> {
        let days = self.days.lock().expect("counts lock");
        days.iter()
            .filter(|((u, _), d)| *u == user_id && d.month == month && d.pending > 0)
            .map(|((_, day), d)| (day.clone(), d.pending))
            .collect()
    }
}

/// Tiers, the default one, each user's tier (cached briefly) and the call counter.
pub(crate) struct Quotas {
    store: Arc<dyn Store>,
    pub(crate) tiers: RwLock<Vec<Tier>>,
    pub(crate) default_tier: RwLock<String>,
    cache: RwLock<HashMap<Uuid, (String, Instant)>>,
    /// Per (user, day): the calls of the month's earlier days, which no longer change.
    earlier: RwLock<HashMap<(Uuid, String), u64>>,
    counter: Counter,
}

impl Quotas {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        let counting = store.clone();
        let counter = if store.write_parallelism() > 1 {
            Counter::Shared(Batcher::spawn(
                1024,
                store.write_parallelism(),
                move |calls: Vec<CallCount>| {
                    let store = counting.clone();
                    async move {
                        let totals = store.add_calls(&calls).await?;
                        Ok(totals.into_iter().map(Ok).collect())
                    }
                },
            ))
        } else {
            let local = Arc::new(LocalCounts::default());
            let weak = Arc::downgrade(&local);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(FLUSH_EVERY).await;
                    let Some(local) = weak.upgrade() else { break };
                    if let Err(e) = local.flush(counting.as_ref()).await {
                        tracing::warn!(error = %e, "writing API call counts failed; retrying");
                    }
                }
            });
            Counter::Local(local)
        };
        Self {
            store,
            tiers: RwLock::new(default_tiers()),
            default_tier: RwLock::new("sandbox".into()),
            cache: RwLock::default(),
            earlier: RwLock::default(),
            counter,
        }
    }

    fn tier(&self, name: &str) -> Option<Tier> {
        self.tiers
            .read()
            .expect("tiers lock")
            .iter()
            .find(|t| t.name == name)
            .cloned()
    }

    async fn tier_of(&self, user_id: Uuid) -> Result<Tier> {
        let cached = self
            .cache
            .read()
            .expect("tier cache")
            .get(&user_id)
            .filter(|(_, at)| at.elapsed() < TIER_TTL)
            .map(|(t, _)| t.clone());
        let name = match cached {
            Some(t) => t,
            None => {
                let t = match self.store.tier_of(user_id).await? {
                    Some(t) => t,
                    None => self.default_tier.read().expect("tier lock").clone(),
                };
                let mut cache = self.cache.write().expect("tier cache");
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(user_id, (t.clone(), Instant::now()));
                t
            }
        };
        // A tier removed from the configuration reads as the default one.
        Ok(self.tier(&name).unwrap_or_else(|| {
            let default = self.default_tier.read().expect("tier lock").clone();
            self.tier(&default)
                .unwrap_or_else(|| default_tiers().remove(0))
        }))
    }

    /// The user's calls on the days of `month` before `day`, read once per user and day.
    async fn earlier_days(&self, user_id: Uuid, month: &str, day: &str) -> Result<u64> {
        let key = (user_id, day.to_string());
        if let Some(n) = self.earlier.read().expect("usage cache").get(&key) {
            return Ok(*n);
        }
        let n = self
            .store
            .usage_days(user_id, month)
            .await?
            .into_iter()
            .filter(|(d, _)| d.as_str() < day)
            .map(|(_, n)| n)
            .sum();
        let mut earlier = self.earlier.write().expect("usage cache");
        if earlier.len() > 10_000 {
            earlier.clear();
        }
        earlier.insert(key, n);
        Ok(n)
    }

    /// Counts one call; the day's total for the user with it.
    async fn count(&self, call: CallCount) -> Result<u64> {
        match &self.counter {
            Counter::Shared(batcher) => batcher.submit(call).await?,
            Counter::Local(local) => {
                let key = (call.user_id, call.day.clone());
                if let Some(n) = local.bump(&key) {
                    return Ok(n);
                }
                let stored = self
                    .store
                    .usage_days(call.user_id, &call.month)
                    .await?
                    .into_iter()
                    .find(|(d, _)| *d == call.day)
                    .map_or(0, |(_, n)| n);
                local
                    .days
                    .lock()
                    .expect("counts lock")
                    .entry(key.clone())
                    .or_insert(DayCount {
                        month: call.month,
                        stored,
                        pending: 0,
                    });
                Ok(local.bump(&key).unwrap_or(stored + 1))
            }
        }
    }

    /// The user's calls of `month` by day: what is stored plus what is not written yet.
    async fn usage_days(&self, user_id: Uuid, month: &str) -> Result<Vec<(String, u64)>> {
        let mut days: std::collections::BTreeMap<String, u64> = self
            .store
            .usage_days(user_id, month)
            .await?
            .into_iter()
            .collect();
        if let Counter::Local(local) = &self.counter {
            for (day, n) in local.pending(user_id, month) {
                *days.entry(day).or_default() += n;
            }
        }
        Ok(days.into_iter().collect())
    }

    /// Drops a user's unwritten counts (erasure), so a later flush does not bring them back.
    pub(crate) fn drop_counts(&self, user_id: Uuid) {
        if let Counter::Local(local) = &self.counter {
            local
                .days
                .lock()
                .expect("counts lock")
                .retain(|(u, _), _| *u != user_id);
        }
    }

    pub(crate) fn forget(&self, user_id: Uuid) {
        self.cache.write().expect("tier cache").remove(&user_id);
    }
}

impl Levqor {
    /// Counts one API call of the caller against their monthly quota. The admin is not
    /// metered (`None`). The status says whether this call is past the quota
    /// ([`QuotaStatus::check`]); the adapter reports it either way.
    pub async fn meter(&self, who: &Principal) -> Result<Option<QuotaStatus>> {
        let Some(user_id) = who.user_id() else {
            return Ok(None);
        };
        let now = self.now();
        let tier = self.quotas.tier_of(user_id).await?;
        let (month, day) = (
            now.format("%Y-%m").to_string(),
            now.format("%Y-%m-%d").to_string(),
        );
        let earlier = self.quotas.earlier_days(user_id, &month, &day).await?;
        let today = self
            .quotas
            .count(CallCount {
                user_id,
                month,
                day,
                calls: 1,
            })
            .await?;
        let used = earlier + today;
        let reset = next_month(now);
        Ok(Some(QuotaStatus {
            tier: tier.name,
            limit: tier.monthly_calls,
            used,
            reset,
            reset_in_secs: (reset - now).num_seconds().max(0) as u64,
        }))
    }

    /// The caller's (or `user_id`'s) tier and calls this month, by day.
    pub async fn usage(&self, who: &Principal, user_id: Option<Uuid>) -> Result<Value> {
        let user = self.acting_user(who, user_id).await?;
        let now = self.now();
        let month = now.format("%Y-%m").to_string();
        let tier = self.quotas.tier_of(user.id).await?;
        let days = self.quotas.usage_days(user.id, &month).await?;
        let calls: u64 = days.iter().map(|(_, n)| n).sum();
        Ok(json!({
            "month": month,
            "tier": tier.name,
            "limit": tier.monthly_calls,
            "calls": calls,
            "remaining": tier.monthly_calls.map(|l| l.saturating_sub(calls)),
            "reset": next_month(now),
            "days": days.iter().map(|(d, n)| json!({"date": d, "calls": n})).collect::<Vec<_>>(),
        }))
    }

    /// The configured tiers.
    pub fn tiers(&self) -> Vec<Tier> {
        self.quotas.tiers.read().expect("tiers lock").clone()
    }

    /// Replaces the tiers (deployment configuration).
    pub fn set_tiers(&self, tiers: Vec<Tier>) {
        *self.quotas.tiers.write().expect("tiers lock") = tiers;
    }

    /// The tier of users who have none set (`LEVQOR_DEFAULT_TIER`); an unknown name is refused.
    pub fn set_default_tier(&self, name: &str) -> Result<()> {
        if self.quotas.tier(name).is_none() {
            return Err(Error::invalid(
                "unknown_tier",
                format!("no tier is named {name:?}"),
            ));
        }
        *self.quotas.default_tier.write().expect("tier lock") = name.to_string();
        Ok(())
    }

    /// Sets a user's tier (admin, or the billing provider through its webhook).
    pub async fn set_tier(&self, who: &Principal, user_id: Uuid, tier: &str) -> Result<Tier> {
        who.require_admin()?;
        self.get_user(who, user_id).await?;
        let Some(t) = self.quotas.tier(tier) else {
            let names: Vec<String> = self.tiers().into_iter().map(|t| t.name).collect();
            return Err(Error::violations(
                "validation_failed",
                "unknown tier",
                vec![Violation::new(
                    "/tier",
                    format!("must be one of {}", names.join(", ")),
                )],
            ));
        };
        self.store.set_tier(user_id, &t.name, self.now()).await?;
        self.quotas.forget(user_id);
        self.audit(
            Actor::Admin,
            "tier.set",
            Some(user_id),
            json!({"tier": t.name}),
        )
        .await?;
        Ok(t)
    }
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
