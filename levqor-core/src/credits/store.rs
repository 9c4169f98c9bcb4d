//! The [`CreditStore`] port.

use super::{Account, Entry, Hold, NewEntry, Posted};
use crate::error::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Storage of the ledger. Each call is one transaction that keeps the account's totals equal to
/// the sums of its entries and never lets `available` go below zero.
#[async_trait]
pub trait CreditStore: Send + Sync {
    /// An account's totals (zero when it has no entry).
    async fn account(&self, user_id: Uuid) -> Result<Account>;
    /// Posts a grant, purchase, refund, referral or adjustment. A negative adjustment spends
    /// (bucket order) and is refused with `insufficient_credits` beyond what is available.
    async fn post_entry(&self, entry: &NewEntry) -> Result<Posted>;
    /// The account's entries, newest first, older than `before` when given.
    async fn list_entries(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Entry>>;
    /// Open holds to close now: their job ended (or is gone), or they expired before `now`.
    async fn holds_to_close(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Hold>>;
    /// Closes the hold on `job_id`, charging `actual` (0 releases it; never above the hold).
    /// `false` when it was closed already.
    async fn close_hold(&self, job_id: Uuid, actual: i64, now: DateTime<Utc>) -> Result<bool>;
    /// Expires the unspent rest of buckets whose expiry passed, never below what holds need;
    /// how many credits expired.
    async fn expire_credits(&self, now: DateTime<Utc>) -> Result<i64>;
    /// Moves a user's ledger (entries without their reasons, buckets, holds, totals) to
    /// `tombstone`, for erasure: the amounts stay, the person goes. How many entries moved.
    async fn pseudonymize_credits(&self, user_id: Uuid, tombstone: Uuid) -> Result<u64>;
}
