//! Email through Resend's HTTP API (`POST /emails`). Every attempt of one message carries the
//! same `Idempotency-Key`, so Resend drops a copy of a message it already accepted (its keys
//! last 24 hours, longer than the dispatcher retries): the channel deduplicates, and a message
//! abandoned mid-attempt by a crashed node is safely sent again.

use super::{DELIVERY_TIMEOUT, classify_http, retry_after, unreachable};
use async_trait::async_trait;
use levqor_core::notify::{Channel, Delivered, OutboxMessage};
use serde_json::{Value, json};

/// Resend's API.
pub const RESEND_API: &str = "https://api.resend.com";

/// Delivers `email` messages through Resend.
pub struct ResendChannel {
    client: reqwest::Client,
    base_url: String,
    api_key: String,
    from: String,
}

impl ResendChannel {
    /// A channel sending as `from` with `api_key` to the API at `base_url` ([`RESEND_API`]).
    pub fn new(base_url: &str, api_key: &str, from: &str) -> Result<Self, String> {
        if api_key.is_empty() {
            return Err("Resend needs an API key (--resend-api-key)".into());
        }
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .build()
            .map_err(|e| format!("Resend client: {e}"))?;
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            from: from.to_string(),
        })
    }

    /// The request body for `m`.
    pub fn body(&self, m: &OutboxMessage) -> Value {
        let mut headers = json!({"X-Levqor-Message-Id": m.id.to_string()});
        for (name, value) in &m.headers {
            headers[name] = json!(value);
        }
        let mut body = json!({
            "from": self.from,
            "to": [m.to],
            "subject": m.subject,
            "text": m.body,
            "headers": headers,
        });
        if let Some(html) = &m.html {
            body["html"] = json!(html);
        }
        if !m.attachments.is_empty() {
            body["attachments"] = m
                .attachments
                .iter()
                .map(|a| {
                    json!({
                        "filename": a.filename,
                        "content": a.content_base64,
                        "content_type": a.content_type,
                    })
                })
                .collect();
        }
        body
    }
}

#[async_trait]
impl Channel for ResendChannel {
    fn channel(&self) -> &str {
        "email"
    }

    fn deduplicates(&self) -> bool {
        true
    }

    async fn deliver(&self, m: &OutboxMessage) -> Delivered {
        let sent = self
            .client
            .post(format!("{}/emails", self.base_url))
            .bearer_auth(&self.api_key)
            .header("Idempotency-Key", m.idempotency_key())
            .json(&self.body(m))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return unreachable("Resend", &e),
        };
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if let Err(refused) = classify_http(status, &text, after) {
            return refused;
        }
        let id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
        Delivered::Sent {
            answer: format!("{status} {}", id.as_deref().unwrap_or("accepted")),
            provider_message_id: id,
        }
    }
}
