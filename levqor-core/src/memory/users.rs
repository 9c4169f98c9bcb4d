//! Users and keys in memory.

use super::MemoryStore;
use crate::error::{Error, Result};
use crate::users::{ApiKey, Upserted, User, UserStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[async_trait]
impl UserStore for MemoryStore {
    async fn upsert_user(&self, user: User) -> Result<Upserted> {
        let mut s = self.lock();
        if let Some(existing) = s.users.values().find(|u| u.email == user.email) {
            return Ok(Upserted::Existing(existing.clone()));
        }
        s.users.insert(user.id, user.clone());
        Ok(Upserted::Created(user))
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<User>> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        Ok(self
            .lock()
            .users
            .values()
            .find(|u| u.email == email)
            .cloned())
    }

    async fn update_user(&self, user: &User) -> Result<Option<User>> {
        let mut s = self.lock();
        if !s.users.contains_key(&user.id) {
            return Ok(None);
        }
        if s.users
            .values()
            .any(|u| u.email == user.email && u.id != user.id)
        {
            return Err(Error::conflict(
                "email_taken",
                "another user has this email",
            ));
        }
        match s.users.get_mut(&user.id) {
            Some(stored) => {
                *stored = user.clone();
                Ok(Some(user.clone()))
            }
            None => Ok(None),
        }
    }

    async fn insert_key(&self, key: &ApiKey, secret_hash: &str) -> Result<()> {
        self.lock()
            .keys
            .insert(key.id, (key.clone(), secret_hash.to_string()));
        Ok(())
    }

    async fn list_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>> {
        Ok(self
            .lock()
            .keys
            .values()
            .rev()
            .filter(|(k, _)| k.user_id == user_id)
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn get_key(&self, id: Uuid) -> Result<Option<ApiKey>> {
        Ok(self.lock().keys.get(&id).map(|(k, _)| k.clone()))
    }

    async fn revoke_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<ApiKey>> {
        let mut s = self.lock();
        Ok(s.keys.get_mut(&id).map(|(k, _)| {
            k.revoked_at.get_or_insert(now);
            k.clone()
        }))
    }

    async fn list_users(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<User>> {
        Ok(self
            .lock()
            .users
            .values()
            .filter(|u| after.is_none_or(|a| u.id > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn delete_user(&self, id: Uuid) -> Result<bool> {
        let mut s = self.lock();
        s.keys.retain(|_, (k, _)| k.user_id != id);
        Ok(s.users.remove(&id).is_some())
    }

    async fn find_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKey>> {
        Ok(self
            .lock()
            .keys
            .values()
            .find(|(k, h)| h == secret_hash && k.revoked_at.is_none())
            .map(|(k, _)| k.clone()))
    }
}
