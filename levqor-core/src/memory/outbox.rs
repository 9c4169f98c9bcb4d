//! The outbox in memory.

use super::MemoryStore;
use crate::error::Result;
use crate::notify::{OutboxMessage, OutboxStore};
use async_trait::async_trait;
use uuid::Uuid;

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn push_outbox(&self, message: &OutboxMessage) -> Result<()> {
        self.lock().outbox.insert(message.id, message.clone());
        Ok(())
    }

    async fn list_outbox(&self, before: Option<Uuid>, limit: usize) -> Result<Vec<OutboxMessage>> {
        Ok(self
            .lock()
            .outbox
            .values()
            .rev()
            .filter(|m| before.is_none_or(|b| m.id < b))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn erase_outbox(&self, email: &str) -> Result<u64> {
        let mut s = self.lock();
        let before = s.outbox.len();
        s.outbox.retain(|_, m| m.to != email);
        Ok((before - s.outbox.len()) as u64)
    }
}
