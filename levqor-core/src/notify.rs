//! Outbound messages. Email goes through the [`Notifier`] port; the default notifier writes to
//! the outbox so that every message is inspectable by an admin.

use crate::error::Result;
use async_trait::async_trait;
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
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// Storage of the outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Appends a message.
    async fn push_outbox(&self, message: &OutboxMessage) -> Result<()>;
    /// Messages newest first, older than `before` when given.
    async fn list_outbox(&self, before: Option<Uuid>, limit: usize) -> Result<Vec<OutboxMessage>>;
}

/// Sends messages. An error means the message was not accepted and the step that sent it fails.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one email.
    async fn send_email(&self, email: &Email, now: DateTime<Utc>) -> Result<()>;
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
    async fn send_email(&self, email: &Email, now: DateTime<Utc>) -> Result<()> {
        let message = OutboxMessage {
            id: Uuid::now_v7(),
            channel: "email".into(),
            to: email.to.clone(),
            subject: email.subject.clone(),
            body: email.body.clone(),
            job_id: email.job_id,
            created_at: now,
        };
        self.store.push_outbox(&message).await
    }
}
