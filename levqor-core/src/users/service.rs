//! [`Users`]: authentication, users and their keys, and "who does this call act on".

use super::{ApiKey, IssuedKey, Upserted, User, UserPatch, UserStore};
use crate::auth::Principal;
use crate::cache::TtlCache;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::secrets::{constant_time_eq, hash_secret};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a key lookup is trusted. Revoking a key through this node drops it at once; a key
/// revoked through another node stops working here within this time.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);
const KEY_CACHE_MAX: usize = 10_000;

/// Told of every user upsert, new or not (a retried create must be harmless to it): how other
/// domains act on a new user (the sign-up grant of credits) without users knowing them.
#[async_trait]
pub trait UserListener: Send + Sync {
    /// `user` was created, or created before and asked for again.
    async fn upserted(&self, user: &User, now: DateTime<Utc>) -> Result<()>;
}

/// Users and keys.
pub struct Users {
    store: Arc<dyn UserStore>,
    clock: Arc<dyn Clock>,
    admin_key_hash: Option<String>,
    /// Recently seen live keys, so a busy client does not cost a database read per request.
    keys: TtlCache<String, Principal>,
    listeners: Vec<Arc<dyn UserListener>>,
}

impl Users {
    /// Users over `store`; `admin_key` is the deployment's admin secret, if any.
    pub fn new(store: Arc<dyn UserStore>, clock: Arc<dyn Clock>, admin_key: Option<&str>) -> Self {
        Self {
            store,
            clock,
            admin_key_hash: admin_key.filter(|k| !k.is_empty()).map(hash_secret),
            keys: TtlCache::new(KEY_CACHE_TTL, KEY_CACHE_MAX),
            listeners: Vec::new(),
        }
    }

    /// Adds a listener of upserts.
    pub fn listen(&mut self, listener: Arc<dyn UserListener>) {
        self.listeners.push(listener);
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    /// Who holds `secret`: the admin key or a live user key.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        let hash = hash_secret(secret.trim());
        if self
            .admin_key_hash
            .as_deref()
            .is_some_and(|admin| constant_time_eq(admin.as_bytes(), hash.as_bytes()))
        {
            return Ok(Principal::Admin);
        }
        if let Some(principal) = self.keys.get(&hash) {
            return Ok(principal);
        }
        match self.store.find_key_by_hash(&hash).await? {
            Some(key) => {
                let principal = Principal::User {
                    user_id: key.user_id,
                    key_id: key.id,
                    scopes: key.scopes,
                };
                self.keys.insert(hash, principal.clone());
                Ok(principal)
            }
            None => Err(Error::unauthenticated("the API key is unknown or revoked")),
        }
    }

    /// Creates a user, or returns the one that has the email (admin only).
    pub async fn create(
        &self,
        who: &Principal,
        email: &str,
        name: Option<&str>,
    ) -> Result<Upserted> {
        who.require_admin()?;
        let email = super::normalize_email(email)?;
        let name = super::validate_name(name)?;
        let now = self.clock.now_micros();
        let upserted = self
            .store
            .upsert_user(User {
                id: Uuid::now_v7(),
                email,
                name,
                created_at: now,
                updated_at: now,
            })
            .await?;
        for listener in &self.listeners {
            listener.upserted(upserted.user(), now).await?;
        }
        Ok(upserted)
    }

    /// A user the caller may see.
    pub async fn get(&self, who: &Principal, id: Uuid) -> Result<User> {
        who.check_owner(id, "user")?;
        self.store
            .get_user(id)
            .await?
            .ok_or_else(|| Error::not_found("user"))
    }

    /// A user by email, if the caller may see them.
    pub async fn find(&self, who: &Principal, email: &str) -> Result<User> {
        let email = super::normalize_email(email)?;
        let user = self
            .store
            .find_user_by_email(&email)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        who.check_owner(user.id, "user")?;
        Ok(user)
    }

    /// Changes a user's email or name.
    pub async fn update(&self, who: &Principal, id: Uuid, patch: UserPatch) -> Result<User> {
        let mut user = self.get(who, id).await?;
        if let Some(email) = patch.email {
            user.email = super::normalize_email(&email)?;
        }
        if let Some(name) = patch.name {
            user.name = super::validate_name(name.as_deref())?;
        }
        user.updated_at = self.clock.now_micros();
        self.store
            .update_user(&user)
            .await?
            .ok_or_else(|| Error::not_found("user"))
    }

    /// The caller's own user.
    pub async fn me(&self, who: &Principal) -> Result<User> {
        self.acting(who, None).await
    }

    /// The user a call acts on: the caller, or `user_id` for the admin (a user naming another
    /// user reads as not found).
    pub async fn acting(&self, who: &Principal, user_id: Option<Uuid>) -> Result<User> {
        self.get(who, acting_id(who, user_id)?).await
    }

    /// Issues a key for a user; the secret is in the result and nowhere else.
    pub async fn create_key(
        &self,
        who: &Principal,
        user_id: Uuid,
        scopes: Option<Vec<String>>,
    ) -> Result<IssuedKey> {
        who.require_scope("*")?;
        self.get(who, user_id).await?;
        let scopes = super::validate_scopes(scopes)?;
        let (issued, hash) = super::issue_key(user_id, scopes, self.clock.now_micros());
        self.store.insert_key(&issued.key, &hash).await?;
        Ok(issued)
    }

    /// A user's keys, without secrets.
    pub async fn list_keys(&self, who: &Principal, user_id: Uuid) -> Result<Vec<ApiKey>> {
        self.get(who, user_id).await?;
        self.store.list_keys(user_id).await
    }

    /// Revokes a key; it stops working on this node at once.
    pub async fn revoke_key(&self, who: &Principal, key_id: Uuid) -> Result<ApiKey> {
        who.require_scope("*")?;
        let key = self
            .store
            .get_key(key_id)
            .await?
            .ok_or_else(|| Error::not_found("key"))?;
        who.check_owner(key.user_id, "key")?;
        let revoked = self
            .store
            .revoke_key(key_id, self.clock.now_micros())
            .await?
            .ok_or_else(|| Error::not_found("key"))?;
        self.forget_key(key_id);
        Ok(revoked)
    }

    /// The last step of an erasure: revokes every key of the user (forgotten at once) and
    /// deletes the user; how many keys they had.
    pub(crate) async fn delete(&self, user_id: Uuid) -> Result<u64> {
        let keys = self.store.list_keys(user_id).await?;
        for key in &keys {
            self.store
                .revoke_key(key.id, self.clock.now_micros())
                .await?;
            self.forget_key(key.id);
        }
        self.store.delete_user(user_id).await?;
        Ok(keys.len() as u64)
    }

    fn forget_key(&self, key_id: Uuid) {
        self.keys
            .retain(|_, p| !matches!(p, Principal::User { key_id: k, .. } if *k == key_id));
    }
}

/// The id of the user a call acts on: `user_id` when named, else the caller's own; the admin
/// must name one (`Forbidden` `user_key_required`).
pub fn acting_id(who: &Principal, user_id: Option<Uuid>) -> Result<Uuid> {
    match (who, user_id) {
        (_, Some(id)) => Ok(id),
        (Principal::User { user_id, .. }, None) => Ok(*user_id),
        (Principal::Admin, None) => Err(Error::forbidden(
            "user_key_required",
            "this acts on one user: call it with the user's key or under /v1/admin/users/{id}",
        )),
    }
}
