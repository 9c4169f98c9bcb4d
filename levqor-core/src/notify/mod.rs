//! Outbound messages. Email goes through the [`Notifier`] port; the default notifier writes to
//! the outbox so that every message is inspectable by an admin. [`Messages`] is what the other
//! domains send through (it keeps addresses out of the logs) and what the admin reads the outbox
//! with.

mod area;
mod service;
mod store;

pub use area::MessagesArea;
pub use service::Messages;
pub use store::OutboxStore;

use crate::error::Result;
use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// An email to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// Sends messages. An error means the message was not accepted and the step that sent it fails.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one email.
    async fn send_email(&self, email: &Email, kind: EmailKind, now: DateTime<Utc>) -> Result<()>;
}

/// The default notifier: every email lands in the outbox.
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
        let message = OutboxMessage {
            id: Uuid::now_v7(),
            channel: "email".into(),
            to: email.to.clone(),
            subject: email.subject.clone(),
            body: email.body.clone(),
            job_id: email.job_id,
            kind,
            attachments: email
                .attachments
                .iter()
                .map(StoredAttachment::from)
                .collect(),
            created_at: now,
        };
        self.store.push_outbox(&message).await
    }
}
