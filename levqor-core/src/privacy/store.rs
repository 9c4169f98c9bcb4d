//! The [`PrivacyStore`] port.

use super::{DataClass, Event, ExportRecord, Held, LegalHold};
use crate::error::Result;
use crate::notify::OutboxMessage;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Storage of analytics events, export records and legal holds, and the sweep of retention.
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// Records events.
    async fn record_events(&self, events: &[Event]) -> Result<()>;
    /// A user's events, oldest first, after `after` when given.
    async fn list_events(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Event>>;
    /// Deletes a user's events; how many.
    async fn erase_events(&self, user_id: Uuid) -> Result<u64>;
    /// Records an export with `messages` (the email that carries it) written to the outbox in
    /// the same transaction.
    async fn record_export(&self, export: &ExportRecord, messages: &[OutboxMessage]) -> Result<()>;
    /// The user's newest export.
    async fn last_export(&self, user_id: Uuid) -> Result<Option<ExportRecord>>;
    /// Deletes a user's export records; how many.
    async fn erase_exports(&self, user_id: Uuid) -> Result<u64>;
    /// Places or replaces a legal hold.
    async fn set_legal_hold(&self, hold: &LegalHold) -> Result<()>;
    /// Lifts a hold; whether there was one.
    async fn clear_legal_hold(&self, user_id: Uuid) -> Result<bool>;
    /// Every hold.
    async fn legal_holds(&self) -> Result<Vec<LegalHold>>;
    /// Deletes (or, for step outputs, nulls) what `class` holds from before `cutoff`, keeping
    /// what belongs to `held`; with `dry_run`, only counts. How many rows.
    async fn sweep(
        &self,
        class: DataClass,
        cutoff: DateTime<Utc>,
        held: &Held,
        dry_run: bool,
    ) -> Result<u64>;
}
