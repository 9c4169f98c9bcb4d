//! Signed webhooks: `POST <url>` of the message's JSON document with `Levqor-Signature:
//! t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">` (the deployment's secret; the same scheme as
//! Stripe's, see `levqor_core::signature`), `Levqor-Event` and `Levqor-Webhook-Id` (the
//! message id, the same on every attempt). A receiver deduplicates by that id, so a message
//! abandoned mid-attempt is sent again. The URLs come from workflows, so the same address
//! policy as `http_request` applies: no private, loopback or link-local targets unless the
//! deployment allows them, checked before connecting and in the DNS resolver, and no redirects.

use super::{DELIVERY_TIMEOUT, classify_http, retry_after, unreachable};
use crate::fetch::GuardedClient;
use async_trait::async_trait;
use levqor_core::notify::{Channel, Delivered, OutboxMessage};

/// Delivers `webhook` messages (steps and job callbacks).
pub struct WebhookChannel {
    client: GuardedClient,
    secret: String,
}

impl WebhookChannel {
    /// A channel signing with `secret`; `allow_internal` lets it reach internal addresses.
    pub fn new(secret: &str, allow_internal: bool) -> Result<Self, String> {
        if secret.len() < 16 {
            return Err("the webhook signing secret must be at least 16 characters".into());
        }
        Ok(Self {
            client: GuardedClient::new(allow_internal, DELIVERY_TIMEOUT)?,
            secret: secret.to_string(),
        })
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn channel(&self) -> &str {
        "webhook"
    }

    fn deduplicates(&self) -> bool {
        true
    }

    async fn deliver(&self, m: &OutboxMessage) -> Delivered {
        let url = match self.client.check(&m.to).await {
            Ok(url) => url,
            Err(failure) if failure.retryable => {
                return Delivered::Retry {
                    error: failure.message,
                    after: None,
                };
            }
            Err(failure) => {
                return Delivered::Reject {
                    error: failure.message,
                };
            }
        };
        let body = m.body.as_bytes().to_vec();
        let signature =
            levqor_core::signature::sign(&body, &self.secret, chrono::Utc::now().timestamp());
        let sent = self
            .client
            .inner()
            .post(url)
            .header("content-type", "application/json")
            .header("levqor-signature", signature)
            .header("levqor-event", &m.subject)
            .header("levqor-webhook-id", m.id.to_string())
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return unreachable("the webhook receiver", &e),
        };
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        match classify_http(status, &text, after) {
            Ok(()) => Delivered::Sent {
                provider_message_id: None,
                answer: format!("{status}"),
            },
            Err(refused) => refused,
        }
    }
}
