//! [`Messages`]: sending email for the other domains, and the admin's view of the outbox and
//! its deliveries.

use super::{
    Attempt, Email, EmailKind, Notifier, OutboxMessage, OutboxStore, Rendered, Suppression,
    SuppressionReason, Templates, verify_svix,
};
use crate::audit::{Actor, AuditLog};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::secrets::hash_secret;
use serde::Serialize;
use serde_json::{Value, json};
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

/// The templates there are, and which parts of them the deployment overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateList {
    /// Template names.
    pub templates: Vec<String>,
    /// Overridden parts (`<name>.<part>`, `layout.html`).
    pub overridden: Vec<String>,
}

/// Sends email through the notifier; lists the outbox.
pub struct Messages {
    notifier: Arc<dyn Notifier>,
    outbox: Arc<dyn OutboxStore>,
    audit: Arc<AuditLog>,
    clock: Arc<dyn Clock>,
    templates: Arc<Templates>,
    resend_webhook_secret: Option<String>,
}

/// What a provider's webhook did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderEvent {
    /// The event's type.
    pub event: String,
    /// Addresses newly suppressed by it.
    pub suppressed: usize,
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
            templates: Arc::new(Templates::default()),
            resend_webhook_secret: None,
        }
    }

    /// Checks Resend's webhooks with `secret` (`whsec_…`).
    pub fn with_resend_webhook_secret(mut self, secret: Option<String>) -> Self {
        self.resend_webhook_secret = secret.filter(|s| !s.is_empty());
        self
    }

    /// Resend's webhook (signed as Svix signs): a permanent bounce (`email.bounced` with
    /// `bounce.type` `Permanent`) or a complaint (`email.complained`) suppresses every
    /// recipient of the message; other events are received and ignored. A replayed event
    /// changes nothing. `Unavailable` `webhook_not_configured` without a secret, `Invalid`
    /// `bad_signature` for a bad signature, `bad_event` for a body that is not JSON.
    pub async fn resend_webhook(
        &self,
        payload: &[u8],
        id: &str,
        timestamp: &str,
        signature: &str,
    ) -> Result<ProviderEvent> {
        let secret = self.resend_webhook_secret.as_deref().ok_or_else(|| {
            Error::unavailable("the Resend webhook is not configured on this deployment")
                .with_code("webhook_not_configured")
        })?;
        let now = self.clock.now_micros();
        verify_svix(payload, id, timestamp, signature, secret, now)?;
        let event: Value = serde_json::from_slice(payload)
            .map_err(|_| Error::invalid("bad_event", "the webhook body is not JSON"))?;
        let kind = event["type"].as_str().unwrap_or_default().to_string();
        let data = &event["data"];
        let reason = match kind.as_str() {
            "email.bounced" if data["bounce"]["type"] == "Permanent" => {
                Some(SuppressionReason::HardBounce)
            }
            "email.complained" => Some(SuppressionReason::Complaint),
            _ => None,
        };
        let mut suppressed = 0;
        if let Some(reason) = reason {
            let recipients: Vec<&str> = match &data["to"] {
                Value::Array(to) => to.iter().filter_map(Value::as_str).collect(),
                Value::String(to) => vec![to.as_str()],
                _ => Vec::new(),
            };
            for to in recipients {
                let Ok(email) = crate::users::normalize_email(to) else {
                    continue;
                };
                let added = self
                    .outbox
                    .suppress(&Suppression {
                        id: Uuid::now_v7(),
                        email: email.clone(),
                        reason,
                        detail: data["bounce"]["message"].as_str().map(str::to_string),
                        event_id: Some(id.to_string()),
                        created_at: now,
                    })
                    .await?;
                if added {
                    suppressed += 1;
                    self.audit
                        .record(
                            Actor::System,
                            "suppression.added",
                            None,
                            json!({"address": hash_secret(&email), "reason": reason.as_str(), "event": kind}),
                        )
                        .await?;
                }
            }
        }
        Ok(ProviderEvent {
            event: kind,
            suppressed,
        })
    }

    /// Whether `email` is suppressed (marketing skips it).
    pub async fn is_suppressed(&self, email: &str) -> Result<bool> {
        Ok(self.outbox.suppression(email).await?.is_some())
    }

    /// The suppressed addresses and why, newest first (admin only).
    pub async fn list_suppressions(
        &self,
        who: &Principal,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<Suppression>> {
        who.require_admin()?;
        let page = PageRequest::parse_or_fail(limit, cursor)?;
        let items = self
            .outbox
            .list_suppressions(page.before, page.limit + 1)
            .await?;
        Ok(page.cut(items, |s| s.id))
    }

    /// Lifts an address's suppression (admin only; audited). `NotFound` when it has none.
    pub async fn remove_suppression(&self, who: &Principal, email: &str) -> Result<Suppression> {
        who.require_admin()?;
        let email = crate::users::normalize_email(email)?;
        let existing = self
            .outbox
            .suppression(&email)
            .await?
            .ok_or_else(|| Error::not_found("suppression"))?;
        self.outbox.unsuppress(&email).await?;
        self.audit
            .record(
                Actor::Admin,
                "suppression.removed",
                None,
                json!({"address": hash_secret(&email), "reason": existing.reason.as_str()}),
            )
            .await?;
        Ok(existing)
    }

    /// The same, rendering email from `templates`.
    pub fn with_templates(mut self, templates: Arc<Templates>) -> Self {
        self.templates = templates;
        self
    }

    /// An email to `to` rendered from template `name` with `context` (subject, text and HTML).
    pub fn compose(&self, name: &str, to: &str, context: Value) -> Result<Email> {
        let r = self.templates.render(name, &context)?;
        Ok(Email {
            to: to.to_string(),
            subject: r.subject,
            body: r.text,
            html: Some(r.html),
            ..Email::default()
        })
    }

    /// Template `name` rendered with its sample data (admin only).
    pub fn preview_template(&self, who: &Principal, name: &str) -> Result<Rendered> {
        who.require_admin()?;
        self.templates.preview(name)
    }

    /// The names of the templates and the parts the deployment overrides (admin only).
    pub fn list_templates(&self, who: &Principal) -> Result<TemplateList> {
        who.require_admin()?;
        Ok(TemplateList {
            templates: super::templates::names()
                .into_iter()
                .map(str::to_string)
                .collect(),
            overridden: self.templates.overridden().to_vec(),
        })
    }

    /// `email` as an outbox message written now, for a store call that writes it in the same
    /// transaction as the change that causes it (the address stays out of the logs).
    pub fn queue(&self, email: &Email, kind: EmailKind) -> OutboxMessage {
        OutboxMessage::email(email, kind, self.clock.now_micros())
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
