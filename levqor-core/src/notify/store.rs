//! The [`OutboxStore`] port: the outbox as the dispatcher's queue.

use super::{DeliveryStatus, OutboxMessage, Suppression};
use crate::error::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A request to claim due messages under one lease token.
#[derive(Debug, Clone)]
pub struct OutboxClaim {
    /// Fences the settle: only the holder of the token may record the attempt's end.
    pub token: Uuid,
    /// The claiming node, for operators.
    pub node: String,
    /// Pending messages whose next attempt is not after this are due.
    pub now: DateTime<Utc>,
    /// The lease ends here; a message still `sending` after it was abandoned by its node.
    pub lease_until: DateTime<Utc>,
    /// Pending messages due before this are not claimed: they waited too long (no dispatcher
    /// ran) and are failed by [`OutboxStore::sweep_outbox`] instead.
    pub not_before: DateTime<Utc>,
    /// Only messages of these channels.
    pub channels: Vec<String>,
    /// Of those, the channels whose abandoned (`sending`, lease expired) messages may be
    /// claimed again: their provider deduplicates.
    pub reclaim: Vec<String>,
    /// At most this many.
    pub limit: usize,
}

/// The end of one attempt, recorded by the holder of its claim.
#[derive(Debug, Clone)]
pub struct Settle {
    /// The message.
    pub message_id: Uuid,
    /// The claim's token.
    pub token: Uuid,
    /// `sent`, `pending` (another attempt at `next_attempt_at`) or `failed`.
    pub status: DeliveryStatus,
    /// For `pending`: when to try again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// For `sent`: the provider's id.
    pub provider_message_id: Option<String>,
    /// The attempt, for the log.
    pub attempt: Attempt,
}

/// One delivery attempt, as the admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// The node that made it.
    pub node: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When the provider answered (or the attempt gave up).
    pub finished_at: DateTime<Utc>,
    /// `sent`, `retry` or `rejected`.
    pub outcome: String,
    /// The provider's answer or the error.
    pub answer: String,
}

/// What the abandoned-message sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Abandoned while sending through a channel that cannot deduplicate: now `unknown`.
    pub unknown: u64,
    /// Pending but due before the claim's `not_before`: now `failed`.
    pub expired: u64,
}

/// Storage of the outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Appends a message.
    async fn push_outbox(&self, message: &OutboxMessage) -> Result<()>;
    /// Messages newest first, older than `before` when given.
    async fn list_outbox(&self, before: Option<Uuid>, limit: usize) -> Result<Vec<OutboxMessage>>;
    /// One message.
    async fn get_outbox(&self, id: Uuid) -> Result<Option<OutboxMessage>>;
    /// Deletes the messages to `email` and its suppression (erasure); how many rows.
    async fn erase_outbox(&self, email: &str) -> Result<u64>;
    /// Claims due messages of `claim.channels`, oldest due first, marking them `sending` under
    /// the claim's token and counting the attempt: pending messages due at `claim.now`, and
    /// abandoned ones of the `claim.reclaim` channels. Two claims never take the same message.
    async fn claim_outbox(&self, claim: &OutboxClaim) -> Result<Vec<OutboxMessage>>;
    /// Records the ends of attempts, each only if its claim still holds the message; per
    /// settle, whether it applied.
    async fn settle_outbox(&self, settles: &[Settle]) -> Result<Vec<bool>>;
    /// Before `claim` is made: marks messages of its channels that were abandoned while sending
    /// (lease ended by `claim.now`) as `unknown` unless their channel is one to reclaim, and
    /// pending messages of its channels due before `claim.not_before` as `failed`.
    async fn sweep_outbox(&self, claim: &OutboxClaim) -> Result<Settled>;
    /// Puts a `failed` or `unknown` message back to `pending`, due at `now` (an admin's
    /// decision); whether it was in one of those states.
    async fn retry_outbox(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool>;
    /// The attempts made to deliver a message, first first.
    async fn list_attempts(&self, message_id: Uuid) -> Result<Vec<Attempt>>;
    /// Suppresses an address; `false` when it already was (the first reason stays).
    async fn suppress(&self, suppression: &Suppression) -> Result<bool>;
    /// The suppression of an address, if any.
    async fn suppression(&self, email: &str) -> Result<Option<Suppression>>;
    /// Suppressions newest first, older than `before` when given.
    async fn list_suppressions(
        &self,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Suppression>>;
    /// Lifts an address's suppression; whether there was one.
    async fn unsuppress(&self, email: &str) -> Result<bool>;
}

/// `last_error` of a message abandoned mid-attempt through a channel that cannot deduplicate.
pub const ABANDONED: &str = "the node delivering it stopped mid-attempt: whether it left is unknown, so it is not sent again without an admin";

/// `last_error` of a message that waited longer than the dispatcher's max age.
pub const EXPIRED: &str = "not delivered within the dispatcher's max age";

/// `message` after `settle` (the in-memory store; the SQL stores write the same columns).
pub(crate) fn apply_settle(message: &mut OutboxMessage, settle: &Settle) {
    let d = &mut message.delivery;
    d.status = settle.status;
    if let Some(at) = settle.next_attempt_at {
        d.next_attempt_at = at;
    }
    if settle.status == DeliveryStatus::Sent {
        d.sent_at = Some(settle.attempt.finished_at);
        d.provider_message_id = settle.provider_message_id.clone();
        d.last_error = None;
    } else {
        d.last_error = Some(settle.attempt.answer.clone());
    }
}
