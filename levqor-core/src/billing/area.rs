//! A person's billing data as personal data: the customer link and dunning state are deleted;
//! revenue is kept for the books, under the tombstone.

use super::BillingStore;
use super::service::status_of;
use crate::error::{Error, Result};
use crate::personal_data::{AreaErasure, Person, PersonalDataArea};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// `billing.json`: the billing state, when there is any.
pub struct BillingArea(pub Arc<dyn BillingStore>);

#[async_trait]
impl PersonalDataArea for BillingArea {
    fn name(&self) -> &'static str {
        "billing"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        let status = status_of(self.0.as_ref(), person.id).await?;
        if !status.customer && status.state == super::DunningState::Active {
            return Ok(None);
        }
        serde_json::to_value(status)
            .map(Some)
            .map_err(|e| Error::internal(e.to_string()))
    }

    async fn erase(&self, person: &Person, tombstone: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::deleted(
            self.0.erase_billing(person.id, tombstone).await?,
        ))
    }
}
