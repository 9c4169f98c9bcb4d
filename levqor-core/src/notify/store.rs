//! The [`OutboxStore`] port.

use super::OutboxMessage;
use crate::error::Result;
use async_trait::async_trait;
use uuid::Uuid;

/// Storage of the outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Appends a message.
    async fn push_outbox(&self, message: &OutboxMessage) -> Result<()>;
    /// Messages newest first, older than `before` when given.
    async fn list_outbox(&self, before: Option<Uuid>, limit: usize) -> Result<Vec<OutboxMessage>>;
    /// Deletes the messages to `email` (erasure); how many.
    async fn erase_outbox(&self, email: &str) -> Result<u64>;
}
