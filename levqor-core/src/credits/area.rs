//! A person's credit ledger as personal data. The ledger is a record the law requires: at
//! erasure it stays, with the person replaced by the tombstone and the reasons removed.

use super::CreditStore;
use crate::error::Result;
use crate::personal_data::{AreaErasure, Person, PersonalDataArea};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

/// `credits.json`: the account and every entry.
pub struct CreditsArea(pub Arc<dyn CreditStore>);

#[async_trait]
impl PersonalDataArea for CreditsArea {
    fn name(&self) -> &'static str {
        "credits"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        let mut entries = Vec::new();
        let mut before = None;
        loop {
            let page = self.0.list_entries(person.id, before, 1000).await?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            entries.extend(page);
        }
        if entries.is_empty() {
            return Ok(None);
        }
        let account = self.0.account(person.id).await?;
        Ok(Some(json!({"account": account, "entries": entries})))
    }

    async fn erase(&self, person: &Person, tombstone: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure {
            deleted: 0,
            pseudonymized: self.0.pseudonymize_credits(person.id, tombstone).await?,
        })
    }
}
