//! [`Quotas`]: tiers, metering each call against the caller's monthly quota, and usage.

use super::counter::CallCounter;
use super::{CallCount, QuotaStatus, QuotaStore, Tier, default_tiers, next_month};
use crate::audit::{Actor, AuditLog};
use crate::auth::Principal;
use crate::cache::TtlCache;
use crate::clock::Clock;
use crate::error::{Error, Result, Violation};
use crate::users::Users;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

/// How long a user's tier is trusted.
const TIER_TTL: Duration = Duration::from_secs(5);

/// A user's calls this month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// The user's tier.
    pub tier: String,
    /// Calls the tier allows a month (`None`: unlimited).
    pub limit: Option<u64>,
    /// Calls made this month.
    pub calls: u64,
    /// Calls left (`None`: unlimited).
    pub remaining: Option<u64>,
    /// When the month resets.
    pub reset: DateTime<Utc>,
    /// Calls per day.
    pub days: Vec<DayUsage>,
}

/// Calls on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// How many.
    pub calls: u64,
}

/// Tiers, each user's tier (cached briefly) and the call counter.
pub struct Quotas {
    store: Arc<dyn QuotaStore>,
    users: Arc<Users>,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
    tiers: RwLock<Vec<Tier>>,
    default_tier: RwLock<String>,
    user_tiers: TtlCache<Uuid, String>,
    /// Per (user, day): the calls of the month's earlier days, which no longer change.
    earlier: TtlCache<(Uuid, String), u64>,
    counter: CallCounter,
}

impl Quotas {
    /// Quotas over `store`, which serves `parallelism` writes at once (see [`CallCounter`]).
    pub(crate) fn new(
        store: Arc<dyn QuotaStore>,
        parallelism: usize,
        users: Arc<Users>,
        audit: Arc<AuditLog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            counter: CallCounter::new(store.clone(), parallelism),
            store,
            users,
            audit,
            clock,
            tiers: RwLock::new(default_tiers()),
            default_tier: RwLock::new("sandbox".into()),
            user_tiers: TtlCache::new(TIER_TTL, 10_000),
            earlier: TtlCache::new(Duration::from_secs(24 * 3600), 10_000),
        }
    }

    /// The configured tiers.
    pub fn tiers(&self) -> Vec<Tier> {
        self.tiers.read().expect("tiers lock").clone()
    }

    /// Replaces the tiers (deployment configuration).
    pub fn set_tiers(&self, tiers: Vec<Tier>) {
        *self.tiers.write().expect("tiers lock") = tiers;
    }

    /// The tier of users who have none set.
    pub fn default_tier(&self) -> String {
        self.default_tier.read().expect("tier lock").clone()
    }

    /// Sets the tier of users who have none set (`LEVQOR_DEFAULT_TIER`); an unknown name is
    /// refused.
    pub fn set_default_tier(&self, name: &str) -> Result<()> {
        if self.tier(name).is_none() {
            return Err(Error::invalid(
                "unknown_tier",
                format!("no tier is named {name:?}"),
            ));
        }
        *self.default_tier.write().expect("tier lock") = name.to_string();
        Ok(())
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
        let name = match self.user_tiers.get(&user_id) {
            Some(t) => t,
            None => {
                let t = match self.store.tier_of(user_id).await? {
                    Some(t) => t,
                    None => self.default_tier(),
                };
                self.user_tiers.insert(user_id, t.clone());
                t
            }
        };
        // A tier removed from the configuration reads as the default one.
        Ok(self.tier(&name).unwrap_or_else(|| {
            self.tier(&self.default_tier())
                .unwrap_or_else(|| default_tiers().remove(0))
        }))
    }

    /// The user's calls on the days of `month` before `day`, read once per user and day:
    /// what is stored and what this node has not written yet (yesterday's last second).
    async fn earlier_days(&self, user_id: Uuid, month: &str, day: &str) -> Result<u64> {
        let key = (user_id, day.to_string());
        if let Some(n) = self.earlier.get(&key) {
            return Ok(n);
        }
        let n = self
            .counter
            .usage_days(user_id, month)
            .await?
            .into_iter()
            .filter(|(d, _)| d.as_str() < day)
            .map(|(_, n)| n)
            .sum();
        self.earlier.insert(key, n);
        Ok(n)
    }

    /// Counts one API call of the caller against their monthly quota. The admin is not
    /// metered (`None`). The status says whether this call is past the quota
    /// ([`QuotaStatus::check`]); the adapter reports it either way.
    pub async fn meter(&self, who: &Principal) -> Result<Option<QuotaStatus>> {
        let Some(user_id) = who.user_id() else {
            return Ok(None);
        };
        let now = self.clock.now_micros();
        let tier = self.tier_of(user_id).await?;
        let (month, day) = (
            now.format("%Y-%m").to_string(),
            now.format("%Y-%m-%d").to_string(),
        );
        let earlier = self.earlier_days(user_id, &month, &day).await?;
        let today = self
            .counter
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
    pub async fn usage(&self, who: &Principal, user_id: Option<Uuid>) -> Result<Usage> {
        let user = self.users.acting(who, user_id).await?;
        self.usage_of(user.id).await
    }

    /// A user's tier and calls this month, by day.
    pub(crate) async fn usage_of(&self, user_id: Uuid) -> Result<Usage> {
        let now = self.clock.now_micros();
        let month = now.format("%Y-%m").to_string();
        let tier = self.tier_of(user_id).await?;
        let days = self.counter.usage_days(user_id, &month).await?;
        let calls: u64 = days.iter().map(|(_, n)| n).sum();
        Ok(Usage {
            month,
            tier: tier.name,
            limit: tier.monthly_calls,
            calls,
            remaining: tier.monthly_calls.map(|l| l.saturating_sub(calls)),
            reset: next_month(now),
            days: days
                .into_iter()
                .map(|(date, calls)| DayUsage { date, calls })
                .collect(),
        })
    }

    /// Sets a user's tier (admin, or the billing provider through its webhook).
    pub async fn set_tier(&self, who: &Principal, user_id: Uuid, tier: &str) -> Result<Tier> {
        who.require_admin()?;
        self.users.get(who, user_id).await?;
        let Some(t) = self.tier(tier) else {
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
        self.store
            .set_tier(user_id, &t.name, self.clock.now_micros())
            .await?;
        self.user_tiers.remove(&user_id);
        self.audit
            .record(
                Actor::Admin,
                "tier.set",
                Some(user_id),
                json!({"tier": t.name}),
            )
            .await?;
        Ok(t)
    }

    /// Erases a user's tier and usage, unwritten counts included; how many rows.
    pub(crate) async fn erase(&self, user_id: Uuid) -> Result<u64> {
        self.counter.drop_counts(user_id);
        self.user_tiers.remove(&user_id);
        self.store.erase_usage(user_id).await
    }
}
