//! Privacy's own personal data: the person's analytics events, and the records of the exports
//! sent to them (not exported: their content is the other files).

use super::PrivacyStore;
use crate::error::Result;
use crate::personal_data::{AreaErasure, Person, PersonalDataArea, export_list};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// `events.json`: the person's analytics events, oldest first.
pub struct EventsArea(pub Arc<dyn PrivacyStore>);

#[async_trait]
impl PersonalDataArea for EventsArea {
    fn name(&self) -> &'static str {
        "events"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.0.list_events(person.id, after, 5000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            all.extend(page);
        }
        export_list(&all)
    }

    async fn erase(&self, person: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::deleted(self.0.erase_events(person.id).await?))
    }
}

/// The records of exports sent to the person.
pub struct ExportsArea(pub Arc<dyn PrivacyStore>);

#[async_trait]
impl PersonalDataArea for ExportsArea {
    fn name(&self) -> &'static str {
        "exports"
    }

    async fn export(&self, _: &Person) -> Result<Option<Value>> {
        Ok(None)
    }

    async fn erase(&self, person: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::deleted(self.0.erase_exports(person.id).await?))
    }
}
