//! The audit trail: who did what to whose data. Every domain writes to it through
//! [`AuditLog`]; records hold no personal data (a user appears as the SHA-256 of their id, see
//! [`audit_subject`]).

use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

/// Who did an audited thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The admin key.
    Admin,
    /// A user's key, on their own data.
    User,
    /// The platform itself (sweeps, system jobs).
    System,
}

impl Actor {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Admin => "admin",
            Actor::User => "user",
            Actor::System => "system",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Actor::Admin, Actor::User, Actor::System]
            .into_iter()
            .find(|a| a.as_str() == s)
    }

    /// The actor a principal is.
    pub fn of(who: &Principal) -> Self {
        match who {
            Principal::Admin => Actor::Admin,
            Principal::User { .. } => Actor::User,
        }
    }
}

/// One audited action. Holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Stable, time-ordered id.
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// What, e.g. `export.sent`, `user.erased`, `terms.published`.
    pub action: String,
    /// SHA-256 of the user id acted on, if any.
    pub subject: Option<String>,
    /// Facts of the action (counts, versions), never personal data.
    pub detail: Value,
}

/// Storage of the audit trail (append-only; the retention sweep deletes old records).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an audit record.
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;
    /// Audit records, newest first, older than `before` when given.
    async fn list_audit(&self, before: Option<Uuid>, limit: usize) -> Result<Vec<AuditRecord>>;
    /// Audit records of `action` about `subject` (or every subject), newest first.
    async fn find_audit(&self, action: &str, subject: Option<&str>) -> Result<Vec<AuditRecord>>;
}

/// How a user appears in audit records and logs: the SHA-256 of their id, hex.
pub fn audit_subject(user_id: Uuid) -> String {
    hex::encode(Sha256::digest(user_id.as_bytes()))
}

/// Writes audit records at the clock's time.
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
}

impl AuditLog {
    /// An audit log over `store`.
    pub fn new(store: Arc<dyn AuditStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Records that `actor` did `action` (to `user_id`'s data, if any).
    pub async fn record(
        &self,
        actor: Actor,
        action: &str,
        user_id: Option<Uuid>,
        detail: Value,
    ) -> Result<()> {
        self.store
            .append_audit(&AuditRecord {
                id: Uuid::now_v7(),
                at: self.clock.now_micros(),
                actor,
                action: action.into(),
                subject: user_id.map(audit_subject),
                detail,
            })
            .await
    }

    /// The store, for reads.
    pub fn store(&self) -> &Arc<dyn AuditStore> {
        &self.store
    }
}
