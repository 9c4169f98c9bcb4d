//! Outbound messages. Email enters through the [`Notifier`] port; the deployment's notifier is
//! the outbox ([`OutboxNotifier`]), and a job's `email` step writes its message in the same
//! transaction as the step's checkpoint. The outbox is the queue of the [`Dispatcher`]: it
//! claims due messages under a lease and hands each to the [`Channel`] of its kind (SMTP or
//! Resend for `email`; Slack, Telegram, webhooks), with retries and backoff, recording every
//! attempt. [`Messages`] is what the other domains send through (it keeps addresses out of the
//! logs) and what the admin reads the outbox with.

mod area;
mod dispatch;
#[cfg(test)]
mod dispatch_tests;
mod service;
mod store;
mod suppression;
mod templates;

pub use area::MessagesArea;
pub use dispatch::{DispatchConfig, DispatchHandle, DispatchTick, Dispatcher};
pub use service::{Messages, OutboxEntry, ProviderEvent, TemplateList};
pub(crate) use store::apply_settle;
pub use store::{ABANDONED, Attempt, EXPIRED, OutboxClaim, OutboxStore, Settle, Settled};
pub use suppression::{
    SVIX_TOLERANCE_SECS, Suppression, SuppressionReason, sign_svix, verify_svix,
};
pub use templates::{Rendered, Templates};

use crate::error::Result;
use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// An email to send.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// The job that sent it, if one did.
    pub job_id: Option<Uuid>,
    /// Files attached.
    pub attachments: Vec<Attachment>,
    /// The HTML part, if the email has one (every email rendered from a template does).
    pub html: Option<String>,
    /// Extra headers (`List-Unsubscribe`, `List-Unsubscribe-Post` on marketing email).
    pub headers: BTreeMap<String, String>,
}

/// A file attached to an email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name.
    pub filename: String,
    /// MIME type.
    pub content_type: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// Why an email is sent: transactional mail (confirmations, notices the law or the service
/// requires) goes to anyone; marketing only to confirmed consents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    /// Required by the service or the law.
    Transactional,
    /// Promotional; needs consent.
    Marketing,
}

impl EmailKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailKind::Transactional => "transactional",
            EmailKind::Marketing => "marketing",
        }
    }
}

/// An attachment as stored in the outbox: its bytes in standard base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAttachment {
    /// File name.
    pub filename: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: usize,
    /// The bytes, base64.
    pub content_base64: String,
}

impl From<&Attachment> for StoredAttachment {
    fn from(a: &Attachment) -> Self {
        Self {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.content.len(),
            content_base64: base64::engine::general_purpose::STANDARD.encode(&a.content),
        }
    }
}

/// A message written to the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Stable, time-ordered id.
    pub id: Uuid,
    /// Delivery channel (`email`).
    pub channel: String,
    /// Recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Body.
    pub body: String,
    /// The job that sent it.
    pub job_id: Option<Uuid>,
    /// `transactional` or `marketing`.
    pub kind: EmailKind,
    /// Attached files.
    pub attachments: Vec<StoredAttachment>,
    /// The HTML part of an email.
    #[serde(default)]
    pub html: Option<String>,
    /// Extra headers of an email.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Where its delivery stands.
    #[serde(flatten)]
    pub delivery: Delivery,
}

impl OutboxMessage {
    /// A new, pending email from `email`, written at `now`.
    pub fn email(email: &Email, kind: EmailKind, now: DateTime<Utc>) -> Self {
        Self {
            kind,
            attachments: email
                .attachments
                .iter()
                .map(StoredAttachment::from)
                .collect(),
            html: email.html.clone(),
            headers: email.headers.clone(),
            ..Self::to_channel(
                "email",
                &email.to,
                &email.subject,
                &email.body,
                email.job_id,
                now,
            )
        }
    }

    /// A new, pending message of `channel` (`slack`, `telegram`, `webhook`) to `to` (nothing for
    /// Slack's one webhook, a chat id, a URL), written at `now`. For a webhook, `subject` is the
    /// event name and `body` the JSON document.
    pub fn to_channel(
        channel: &str,
        to: &str,
        subject: &str,
        body: &str,
        job_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            channel: channel.into(),
            to: to.into(),
            subject: subject.into(),
            body: body.into(),
            job_id,
            kind: EmailKind::Transactional,
            attachments: Vec::new(),
            html: None,
            headers: BTreeMap::new(),
            created_at: now,
            delivery: Delivery::pending(now),
        }
    }

    /// The key a provider deduplicates this message by: the same on every attempt.
    pub fn idempotency_key(&self) -> String {
        format!("levqor-{}", self.id)
    }
}

/// Where a message's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Claimed by a dispatcher, which is delivering it now.
    Sending,
    /// The provider accepted it.
    Sent,
    /// Refused by the provider, out of attempts, or too old to send.
    Failed,
    /// A dispatcher stopped (a crash) while delivering it through a channel that cannot
    /// deduplicate: it may or may not have left, so it is not sent again without an admin.
    Unknown,
}

impl DeliveryStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Unknown => "unknown",
        }
    }

    /// The status of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "sending" => DeliveryStatus::Sending,
            "sent" => DeliveryStatus::Sent,
            "failed" => DeliveryStatus::Failed,
            "unknown" => DeliveryStatus::Unknown,
            _ => return None,
        })
    }
}

/// A message's delivery: its status, attempts so far and what the provider last said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts started.
    pub attempts: u32,
    /// When it may be tried next (pending messages).
    pub next_attempt_at: DateTime<Utc>,
    /// When the provider accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// The provider's id of the accepted message.
    pub provider_message_id: Option<String>,
    /// What went wrong on the last failed attempt.
    pub last_error: Option<String>,
}

impl Delivery {
    /// Not tried yet; due at `now`.
    pub fn pending(now: DateTime<Utc>) -> Self {
        Self {
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            sent_at: None,
            provider_message_id: None,
            last_error: None,
        }
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// The provider accepted the message.
    Sent {
        /// Its id at the provider, if it gave one.
        provider_message_id: Option<String>,
        /// The provider's answer, for the attempt log.
        answer: String,
    },
    /// Not accepted this time; a later attempt may succeed (the provider is down, busy or
    /// answered a temporary error).
    Retry {
        /// Why.
        error: String,
        /// How long the provider asked to be left alone (HTTP `Retry-After`, Telegram's
        /// `retry_after`): the next attempt waits at least this long, up to the dispatcher's
        /// longest backoff.
        after: Option<std::time::Duration>,
    },
    /// Refused for good (a bad address, a rejected request): no attempt will change it.
    Reject {
        /// Why.
        error: String,
    },
}

/// Delivers outbox messages of one channel (`email`, `slack`, `telegram`, `webhook`) to a
/// provider. Implementations never panic on a provider's answer and classify every failure as
/// retryable or not.
#[async_trait]
pub trait Channel: Send + Sync {
    /// The outbox channel it delivers (`email`, ...).
    fn channel(&self) -> &str;
    /// Whether the provider deduplicates by [`OutboxMessage::idempotency_key`], so that a
    /// message whose earlier attempt may have reached it can be sent again safely.
    fn deduplicates(&self) -> bool;
    /// Attempts to deliver one message.
    async fn deliver(&self, message: &OutboxMessage) -> Delivered;
}

/// Accepts emails for delivery: where every email the platform writes enters. An error means
/// the email was not accepted and the operation that sent it fails.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one email.
    async fn send_email(&self, email: &Email, kind: EmailKind, now: DateTime<Utc>) -> Result<()>;
}

/// The default notifier: every email lands in the outbox, the queue the [`Dispatcher`] delivers
/// from (when a provider is configured).
pub struct OutboxNotifier {
    store: Arc<dyn OutboxStore>,
}

impl OutboxNotifier {
    /// A notifier writing to `store`.
    pub fn new(store: Arc<dyn OutboxStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Notifier for OutboxNotifier {
    async fn send_email(&self, email: &Email, kind: EmailKind, now: DateTime<Utc>) -> Result<()> {
        self.store
            .push_outbox(&OutboxMessage::email(email, kind, now))
            .await
    }
}
