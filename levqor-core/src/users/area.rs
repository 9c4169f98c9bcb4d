//! The user's profile and keys as personal data. Neither is erased by its area: the user row
//! and the keys go last ([`Users::delete`](super::Users)), so an erasure that fails halfway
//! leaves a user who can retry it.

use super::UserStore;
use crate::error::{Error, Result};
use crate::personal_data::{AreaErasure, Person, PersonalDataArea, export_list};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// `profile.json`: the user record.
pub struct ProfileArea(pub Arc<dyn UserStore>);

#[async_trait]
impl PersonalDataArea for ProfileArea {
    fn name(&self) -> &'static str {
        "profile"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        match self.0.get_user(person.id).await? {
            Some(user) => serde_json::to_value(user)
                .map(Some)
                .map_err(|e| Error::internal(e.to_string())),
            None => Ok(None),
        }
    }

    async fn erase(&self, _: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::default())
    }
}

/// `keys.json`: the user's keys, without secrets.
pub struct KeysArea(pub Arc<dyn UserStore>);

#[async_trait]
impl PersonalDataArea for KeysArea {
    fn name(&self) -> &'static str {
        "keys"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        export_list(&self.0.list_keys(person.id).await?)
    }

    async fn erase(&self, _: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::default())
    }
}
