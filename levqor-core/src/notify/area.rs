//! Messages to the person's address as personal data: the platform's own record, not exported
//! (their content is in the other areas' files), deleted at erasure.

use super::OutboxStore;
use crate::error::Result;
use crate::personal_data::{AreaErasure, Person, PersonalDataArea};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Messages to the person's address.
pub struct MessagesArea(pub Arc<dyn OutboxStore>);

#[async_trait]
impl PersonalDataArea for MessagesArea {
    fn name(&self) -> &'static str {
        "messages"
    }

    async fn export(&self, _: &Person) -> Result<Option<Value>> {
        Ok(None)
    }

    async fn erase(&self, person: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::deleted(
            self.0.erase_outbox(&person.email).await?,
        ))
    }
}
