//! A person's jobs as personal data: exported whole; at erasure, the ones still waiting or
//! running are canceled first (so no worker writes them again), then every job goes with its
//! steps, queue entries and leases.

use super::Jobs;
use super::store::JobFilter;
use crate::error::Result;
use crate::personal_data::{AreaErasure, Person, PersonalDataArea, export_list};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// The person's jobs.
pub struct JobsArea(pub Arc<Jobs>);

impl JobsArea {
    /// Every page of the person's jobs, newest first.
    async fn each_page(&self, owner: Uuid, mut f: impl FnMut(Vec<crate::Job>)) -> Result<()> {
        let mut before = None;
        loop {
            let page = self
                .0
                .store()
                .list_jobs(&JobFilter {
                    owner_id: Some(owner),
                    status: None,
                    before,
                    limit: 1000,
                })
                .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            before = Some(last.id);
            f(page);
        }
    }
}

#[async_trait]
impl PersonalDataArea for JobsArea {
    fn name(&self) -> &'static str {
        "jobs"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        let mut all = Vec::new();
        self.each_page(person.id, |page| all.extend(page)).await?;
        export_list(&all)
    }

    async fn erase(&self, person: &Person, _: Uuid) -> Result<AreaErasure> {
        let mut live = Vec::new();
        self.each_page(person.id, |page| {
            live.extend(
                page.into_iter()
                    .filter(|j| !j.status.is_terminal())
                    .map(|j| j.id),
            )
        })
        .await?;
        for id in live {
            self.0.cancel_any(id).await?;
        }
        Ok(AreaErasure::deleted(
            self.0.store().erase_jobs(person.id).await?,
        ))
    }
}
