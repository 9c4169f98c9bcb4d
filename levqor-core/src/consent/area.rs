//! A person's consent data as personal data. The three areas erase together, in one store call
//! (`consents` does it): subscriptions, objections and the subject link are deleted; terms
//! acceptances are kept for the record under the tombstone, without address or client.

use super::{Consent, ConsentStore};
use crate::error::Result;
use crate::personal_data::{AreaErasure, Person, PersonalDataArea, export_list};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

/// `consents.json`: the marketing consent and the person's ledger records.
pub struct ConsentsArea(pub Arc<Consent>);

#[async_trait]
impl PersonalDataArea for ConsentsArea {
    fn name(&self) -> &'static str {
        "consents"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        let store = self.0.store();
        let sub = store.subscription_by_email(&person.email).await?;
        let mut subjects = vec![store.subject_of(person.id).await?];
        subjects.extend(sub.as_ref().map(|s| s.id));
        let ledger = self.0.ledger_of(&subjects).await?;
        Ok((sub.is_some() || !ledger.is_empty())
            .then(|| json!({"marketing": sub, "ledger": ledger})))
    }

    async fn erase(&self, person: &Person, tombstone: Uuid) -> Result<AreaErasure> {
        let e = self
            .0
            .store()
            .erase_consents(person.id, &person.email, tombstone)
            .await?;
        self.0.forget(person.id);
        Ok(AreaErasure {
            deleted: e.deleted,
            pseudonymized: e.pseudonymized,
        })
    }
}

/// `objections.json` (erased with the consents).
pub struct ObjectionsArea(pub Arc<dyn ConsentStore>);

#[async_trait]
impl PersonalDataArea for ObjectionsArea {
    fn name(&self) -> &'static str {
        "objections"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        export_list(&self.0.list_objections(person.id).await?)
    }

    async fn erase(&self, _: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::default())
    }
}

/// `terms.json`: the person's acceptances (pseudonymized with the consents).
pub struct TermsArea(pub Arc<dyn ConsentStore>);

#[async_trait]
impl PersonalDataArea for TermsArea {
    fn name(&self) -> &'static str {
        "terms"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        export_list(&self.0.list_acceptances(person.id).await?)
    }

    async fn erase(&self, _: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::default())
    }
}
