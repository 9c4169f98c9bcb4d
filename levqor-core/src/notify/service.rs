//! [`Messages`]: sending email for the other domains, and the admin's view of the outbox.

use super::{Email, EmailKind, Notifier, OutboxMessage, OutboxStore};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::Result;
use crate::page::{Page, PageRequest};
use crate::secrets::hash_secret;
use std::sync::Arc;

/// Sends email through the notifier; lists the outbox.
pub struct Messages {
    notifier: Arc<dyn Notifier>,
    outbox: Arc<dyn OutboxStore>,
    clock: Arc<dyn Clock>,
}

impl Messages {
    /// Messages sent through `notifier`; `outbox` is what the admin lists.
    pub fn new(
        notifier: Arc<dyn Notifier>,
        outbox: Arc<dyn OutboxStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            notifier,
            outbox,
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
}
