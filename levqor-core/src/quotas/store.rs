//! The [`QuotaStore`] port.

use super::CallCount;
use crate::error::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

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
