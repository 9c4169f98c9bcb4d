//! The [`UserStore`] port.

use super::{ApiKey, Upserted, User};
use crate::error::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Storage of users and keys.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts `user` unless its email exists; returns the user that holds the email.
    async fn upsert_user(&self, user: User) -> Result<Upserted>;
    /// A user by id.
    async fn get_user(&self, id: Uuid) -> Result<Option<User>>;
    /// A user by normalized email.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// Replaces a user's email and name; `Conflict` with code `email_taken` when another user
    /// holds the email; `None` when no such user.
    async fn update_user(&self, user: &User) -> Result<Option<User>>;
    /// Stores a key record with the hash of its secret.
    async fn insert_key(&self, key: &ApiKey, secret_hash: &str) -> Result<()>;
    /// The user's keys, newest first, revoked ones included.
    async fn list_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>>;
    /// A key by id.
    async fn get_key(&self, id: Uuid) -> Result<Option<ApiKey>>;
    /// Marks the key revoked (idempotent: a revoked key keeps its first revocation time).
    async fn revoke_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<ApiKey>>;
    /// The live (unrevoked) key whose secret hashes to `secret_hash`.
    async fn find_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKey>>;
    /// Users by id, after `after` when given.
    async fn list_users(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<User>>;
    /// Deletes a user and their keys; whether there was one.
    async fn delete_user(&self, id: Uuid) -> Result<bool>;
}
