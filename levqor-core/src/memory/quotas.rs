//! Tiers and usage in memory.

use super::MemoryStore;
use crate::error::Result;
use crate::quotas::{CallCount, QuotaStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[async_trait]
impl QuotaStore for MemoryStore {
    async fn tier_of(&self, user_id: Uuid) -> Result<Option<String>> {
        Ok(self.lock().tiers.get(&user_id).cloned())
    }

    async fn set_tier(&self, user_id: Uuid, tier: &str, _now: DateTime<Utc>) -> Result<()> {
        self.lock().tiers.insert(user_id, tier.to_string());
        Ok(())
    }

    async fn add_calls(&self, calls: &[CallCount]) -> Result<Vec<u64>> {
        let mut s = self.lock();
        Ok(calls
            .iter()
            .map(|c| {
                let day = s.usage_days.entry((c.user_id, c.day.clone())).or_default();
                *day += c.calls;
                *day
            })
            .collect())
    }

    async fn usage_days(&self, user_id: Uuid, month: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .lock()
            .usage_days
            .iter()
            .filter(|((u, d), _)| *u == user_id && d.starts_with(month))
            .map(|((_, d), n)| (d.clone(), *n))
            .collect())
    }

    async fn erase_usage(&self, user_id: Uuid) -> Result<u64> {
        let mut s = self.lock();
        let before = s.usage_days.len() + s.tiers.len();
        s.usage_days.retain(|(u, _), _| *u != user_id);
        s.tiers.remove(&user_id);
        Ok((before - s.usage_days.len() - s.tiers.len()) as u64)
    }
}
