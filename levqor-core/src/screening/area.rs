//! A person's screening records as personal data.

use super::ScreeningStore;
use crate::error::Result;
use crate::personal_data::{AreaErasure, Person, PersonalDataArea, export_list};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// The person's screening records (refusals, holds, warnings, appeals).
pub struct ScreeningsArea(pub Arc<dyn ScreeningStore>);

#[async_trait]
impl PersonalDataArea for ScreeningsArea {
    fn name(&self) -> &'static str {
        "screenings"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .0
                .list_screenings(Some(person.id), before, 1000)
                .await?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            all.extend(page);
        }
        export_list(&all)
    }

    async fn erase(&self, person: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::deleted(
            self.0.erase_screenings(person.id).await?,
        ))
    }
}
