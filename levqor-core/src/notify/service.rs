//! [`Messages`]: sending email for the other domains, and the admin's view of the outbox and
//! its deliveries.

use super::{Attempt, Email, EmailKind, Notifier, OutboxMessage, OutboxStore};
use crate::audit::{Actor, AuditLog};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::secrets::hash_secret;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// One outbox message with every attempt to deliver it (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxEntry {
    /// The message and where its delivery stands.
    pub message: OutboxMessage,
    /// The attempts, first first.
    pub attempts: Vec<Attempt>,
}

/// Sends email through the notifier; lists the outbox.
pub struct Messages {
    notifier: Arc<dyn Notifier>,
    outbox: Arc<dyn OutboxStore>,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
}

impl Messages {
    /// Messages sent through `notifier`; `outbox` is what the admin lists.
    pub fn new(
        notifier: Arc<dyn Notifier>,
        outbox: Arc<dyn OutboxStore>,
        audit: Arc<AuditLog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            notifier,
            outbox,
            audit,
            clock,
        }
    }

    /// Sends a transactional email.
    pub async fn send_transactional(&self, email: Email) -> Result<()> {
        self.send(email, EmailKind::Transactional).await
    }

    /// Sends an email. Addresses never reach the logs, only their hash.
    pub async fn send(&self, email: Email, kind: EmailKind) -> Result<()> {
        self.notifier
            .send_email(&email, kind, self.clock.now_micros())
            .await
            .inspect_err(|e| {
                tracing::warn!(to = %hash_secret(&email.to), code = e.code, "email not accepted");
            })
    }

    /// The outbox, newest first (admin only).
    pub async fn list_outbox(
        &self,
        who: &Principal,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<OutboxMessage>> {
        who.require_admin()?;
        let page = PageRequest::parse_or_fail(limit, cursor)?;
        let items = self.outbox.list_outbox(page.before, page.limit + 1).await?;
        Ok(page.cut(items, |m| m.id))
    }

    /// One message with its delivery attempts (admin only).
    pub async fn get_outbox(&self, who: &Principal, id: Uuid) -> Result<OutboxEntry> {
        who.require_admin()?;
        let message = self
            .outbox
            .get_outbox(id)
            .await?
            .ok_or_else(|| Error::not_found("message"))?;
        let attempts = self.outbox.list_attempts(id).await?;
        Ok(OutboxEntry { message, attempts })
    }

    /// Puts a `failed` or `unknown` message back in the queue, due now (admin only): the
    /// admin's decision that sending it (again) is right. `Conflict` `not_retryable` for a
    /// message in any other state.
    pub async fn retry_outbox(&self, who: &Principal, id: Uuid) -> Result<OutboxEntry> {
        who.require_admin()?;
        let before = self.get_outbox(who, id).await?;
        if !self
            .outbox
            .retry_outbox(id, self.clock.now_micros())
            .await?
        {
            return Err(Error::conflict(
                "not_retryable",
                format!(
                    "the message is {}; only failed or unknown messages can be retried",
                    before.message.delivery.status.as_str()
                ),
            ));
        }
        self.audit
            .record(
                Actor::Admin,
                "outbox.retried",
                None,
                json!({"message_id": id, "was": before.message.delivery.status.as_str()}),
            )
            .await?;
        self.get_outbox(who, id).await
    }
}
