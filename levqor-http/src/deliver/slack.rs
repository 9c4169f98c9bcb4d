//! Slack through an incoming webhook (`POST <webhook URL>` with `{"text"}`). The URL is the
//! deployment's secret and comes from configuration, never from a workflow. Slack has no
//! idempotency key: a message abandoned mid-attempt is not re-sent blindly.

use super::{DELIVERY_TIMEOUT, classify_http, retry_after, unreachable};
use async_trait::async_trait;
use levqor_core::notify::{Channel, Delivered, OutboxMessage};
use serde_json::json;

/// Delivers `slack` messages to one incoming webhook.
pub struct SlackChannel {
    client: reqwest::Client,
    webhook_url: String,
}

impl SlackChannel {
    /// A channel posting to `webhook_url`.
    pub fn new(webhook_url: &str) -> Result<Self, String> {
        if !webhook_url.starts_with("https://") && !webhook_url.starts_with("http://") {
            return Err("the Slack webhook URL must be http(s)".into());
        }
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(DELIVERY_TIMEOUT)
                .build()
                .map_err(|e| format!("Slack client: {e}"))?,
            webhook_url: webhook_url.to_string(),
        })
    }
}

#[async_trait]
impl Channel for SlackChannel {
    fn channel(&self) -> &str {
        "slack"
    }

    fn deduplicates(&self) -> bool {
        false
    }

    async fn deliver(&self, m: &OutboxMessage) -> Delivered {
        let sent = self
            .client
            .post(&self.webhook_url)
            .json(&json!({"text": m.body}))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return unreachable("Slack", &e),
        };
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        match classify_http(status, &text, after) {
            Ok(()) => Delivered::Sent {
                provider_message_id: None,
                answer: format!("{status} {}", super::truncate(&text, 200)),
            },
            Err(refused) => refused,
        }
    }
}
