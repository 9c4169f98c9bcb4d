//! The [`BillingStore`] port.

use super::{DiscountCode, Dunning, Revenue};
use crate::credits::EntryKind;
use crate::error::Result;
use crate::notify::OutboxMessage;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Storage of billing: customers, processed events, dunning, revenue, discount codes.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait BillingStore: Send + Sync {
    /// The provider's customer id of a user.
    async fn customer_of(&self, user_id: Uuid) -> Result<Option<String>>;
    /// Stores a user's customer id unless one is stored; returns the stored one.
    async fn set_customer(&self, user_id: Uuid, customer_id: &str) -> Result<String>;
    /// The user of a customer id.
    async fn user_of_customer(&self, customer_id: &str) -> Result<Option<Uuid>>;
    /// Whether an event id was recorded (its event was applied).
    async fn event_recorded(&self, id: &str) -> Result<bool>;
    /// Records an event id once its event was applied; `false` when it was recorded before.
    async fn record_event(&self, id: &str, kind: &str, now: DateTime<Utc>) -> Result<bool>;
    /// A user's dunning record.
    async fn dunning(&self, user_id: Uuid) -> Result<Option<Dunning>>;
    /// Saves an account's dunning state with `messages` (its reminder or notice) written to the
    /// outbox in the same transaction: a crash cannot save one without the other. Only if the
    /// stored record is still `previous` (`None`: there is none); otherwise writes nothing and
    /// returns `false`, so of two deliveries that read the same record one moves it (and sends
    /// its message), never both.
    async fn put_dunning<'a>(
        &self,
        dunning: &Dunning,
        previous: Option<&'a Dunning>,
        messages: &[OutboxMessage],
    ) -> Result<bool>;
    /// Every record that is past due.
    async fn past_due(&self) -> Result<Vec<Dunning>>;
    /// Records revenue (idempotent by id).
    async fn record_revenue(&self, revenue: &Revenue) -> Result<()>;
    /// Revenue received in `[from, to)`.
    async fn revenue_between(&self, from: DateTime<Utc>, to: DateTime<Utc>)
    -> Result<Vec<Revenue>>;
    /// `(finished_at, milliseconds run)` of jobs that ended in `[from, to)`.
    async fn job_runtimes_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>>;
    /// `(created_at, credits)` of the ledger entries of `kind` in `[from, to)`.
    async fn entries_between(
        &self,
        kind: EntryKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>>;
    /// Stores new codes; `Conflict` `discount_code_exists` when one is taken (none is stored).
    async fn create_codes(&self, codes: &[DiscountCode]) -> Result<()>;
    /// A code.
    async fn get_code(&self, code: &str) -> Result<Option<DiscountCode>>;
    /// Whether the user redeemed the code.
    async fn redeemed(&self, code: &str, user_id: Uuid) -> Result<bool>;
    /// Redeems a code for a user in one transaction: refused when expired, exhausted or
    /// already redeemed by the user.
    async fn redeem(&self, code: &str, user_id: Uuid, now: DateTime<Utc>) -> Result<DiscountCode>;
    /// Deletes a user's customer link and dunning record; pseudonymizes their revenue.
    async fn erase_billing(&self, user_id: Uuid, tombstone: Uuid) -> Result<u64>;
}
