//! A person's tier and API usage as personal data.

use super::Quotas;
use crate::error::{Error, Result};
use crate::personal_data::{AreaErasure, Person, PersonalDataArea};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// `usage.json`: this month's tier and calls.
pub struct UsageArea(pub Arc<Quotas>);

#[async_trait]
impl PersonalDataArea for UsageArea {
    fn name(&self) -> &'static str {
        "usage"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        let usage = self.0.usage_of(person.id).await?;
        if usage.calls == 0 && usage.tier == "sandbox" {
            return Ok(None);
        }
        serde_json::to_value(usage)
            .map(Some)
            .map_err(|e| Error::internal(e.to_string()))
    }

    async fn erase(&self, person: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::deleted(self.0.erase(person.id).await?))
    }
}
