//! Users and their API keys. Users are keyed by normalized email, so creating one is
//! idempotent; API keys are shown once and stored only as SHA-256 hashes; a key lookup is
//! trusted for [`KEY_CACHE_TTL`].

mod area;
mod service;
#[cfg(test)]
mod service_tests;
mod store;

pub use area::{KeysArea, ProfileArea};
pub use service::{KEY_CACHE_TTL, UserListener, Users, acting_id};
pub use store::UserStore;

pub use crate::secrets::hash_secret;

use crate::error::{Error, Result, Violation};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user of the platform: the owner of jobs and keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable id.
    pub id: Uuid,
    /// Normalized (trimmed, lower-cased) email; unique.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
}

/// An API key as stored and listed: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Stable id.
    pub id: Uuid,
    /// The owning user.
    pub user_id: Uuid,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    /// What the key may do.
    pub scopes: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: the stored record plus the secret, which is never available again.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// The stored record.
    pub key: ApiKey,
    /// The secret to hand to the user once.
    pub secret: String,
}

/// The scopes a key may hold.
pub const SCOPES: &[&str] = &["*", "jobs:read", "jobs:write"];

/// Changes to a user.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New email.
    pub email: Option<String>,
    /// New name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
}

/// What an upsert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    /// A new user was created.
    Created(User),
    /// A user with that email already existed and is returned unchanged.
    Existing(User),
}

impl Upserted {
    /// The user, new or existing.
    pub fn user(&self) -> &User {
        match self {
            Upserted::Created(u) | Upserted::Existing(u) => u,
        }
    }
}

/// Trims and lower-cases an email, and checks its shape; the result is the user's key.
pub fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(Error::violations(
            "validation_failed",
            "email is not a valid address",
            vec![Violation::new(
                "/email",
                "must be an email address like name@example.com",
            )],
        ))
    }
}

/// Checks a display name: at most 200 characters, no control characters.
pub fn validate_name(name: Option<&str>) -> Result<Option<String>> {
    match name.map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) if n.chars().count() > 200 || n.chars().any(char::is_control) => {
            Err(Error::violations(
                "validation_failed",
                "name is not acceptable",
                vec![Violation::new(
                    "/name",
                    "must be at most 200 characters without control characters",
                )],
            ))
        }
        Some(n) => Ok(Some(n.to_string())),
    }
}

/// Checks requested scopes; none requested means all (`*`).
pub fn validate_scopes(scopes: Option<Vec<String>>) -> Result<Vec<String>> {
    let scopes = scopes.unwrap_or_else(|| vec!["*".to_string()]);
    let bad: Vec<Violation> = scopes
        .iter()
        .enumerate()
        .filter(|(_, s)| !SCOPES.contains(&s.as_str()))
        .map(|(i, s)| {
            Violation::new(
                format!("/scopes/{i}"),
                format!("unknown scope {s:?}; known: {}", SCOPES.join(", ")),
            )
        })
        .collect();
    if !bad.is_empty() {
        return Err(Error::violations("validation_failed", "unknown scope", bad));
    }
    if scopes.is_empty() {
        return Err(Error::violations(
            "validation_failed",
            "a key needs at least one scope",
            vec![Violation::new("/scopes", "must not be empty")],
        ));
    }
    Ok(scopes)
}

/// Makes a new key for `user_id`: 32 random bytes, `lq_` + hex.
pub fn issue_key(user_id: Uuid, scopes: Vec<String>, now: DateTime<Utc>) -> (IssuedKey, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("lq_{}", hex::encode(bytes));
    let hash = hash_secret(&secret);
    let key = ApiKey {
        id: Uuid::now_v7(),
        user_id,
        prefix: secret[..11].to_string(),
        scopes,
        created_at: now,
        revoked_at: None,
    };
    (IssuedKey { key, secret }, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a b@example.com",
            "a@b@example.com",
            "ada@.com",
        ] {
            let err = normalize_email(bad).unwrap_err();
            assert_eq!(err.violations[0].pointer, "/email", "{bad}");
        }
    }

    #[test]
    fn issued_keys_are_random_and_only_their_hash_is_kept() {
        let (a, hash_a) = issue_key(Uuid::nil(), vec!["*".into()], Utc::now());
        let (b, _) = issue_key(Uuid::nil(), vec!["*".into()], Utc::now());
        assert_ne!(a.secret, b.secret);
        assert_eq!(hash_a, hash_secret(&a.secret));
        assert!(a.secret.starts_with(&a.key.prefix));
        assert!(!hash_a.contains(&a.secret[3..]));
    }

    #[test]
    fn unknown_scopes_are_reported_by_position() {
        let err = validate_scopes(Some(vec!["jobs:read".into(), "root".into()])).unwrap_err();
        assert_eq!(err.violations[0].pointer, "/scopes/1");
        assert_eq!(validate_scopes(None).unwrap(), vec!["*"]);
    }
}
