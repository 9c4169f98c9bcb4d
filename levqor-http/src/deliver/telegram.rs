//! Telegram through the bot API (`POST <base>/bot<token>/sendMessage` with `{"chat_id",
//! "text"}`). The token comes from configuration. The bot API has no idempotency key: a
//! message abandoned mid-attempt is not re-sent blindly.

use super::{DELIVERY_TIMEOUT, classify_http, retry_after, unreachable};
use async_trait::async_trait;
use levqor_core::notify::{Channel, Delivered, OutboxMessage};
use serde_json::{Value, json};
use std::time::Duration;

/// Telegram's bot API.
pub const TELEGRAM_API: &str = "https://api.telegram.org";

/// Delivers `telegram` messages from one bot.
pub struct TelegramChannel {
    client: reqwest::Client,
    endpoint: String,
}

impl TelegramChannel {
    /// A channel for the bot with `token`, at the API at `base_url` ([`TELEGRAM_API`]).
    pub fn new(base_url: &str, token: &str) -> Result<Self, String> {
        if token.is_empty() {
            return Err("Telegram needs a bot token (--telegram-bot-token)".into());
        }
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(DELIVERY_TIMEOUT)
                .build()
                .map_err(|e| format!("Telegram client: {e}"))?,
            endpoint: format!("{}/bot{token}/sendMessage", base_url.trim_end_matches('/')),
        })
    }
}

#[async_trait]
impl Channel for TelegramChannel {
    fn channel(&self) -> &str {
        "telegram"
    }

    fn deduplicates(&self) -> bool {
        false
    }

    async fn deliver(&self, m: &OutboxMessage) -> Delivered {
        let sent = self
            .client
            .post(&self.endpoint)
            .json(&json!({"chat_id": m.to, "text": m.body}))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // The error would print the URL, which holds the token.
            Err(e) => return unreachable("Telegram", &e.without_url()),
        };
        let status = response.status().as_u16();
        let header = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        // Telegram says how long to wait in its answer (`parameters.retry_after`, seconds).
        let asked = answer["parameters"]["retry_after"]
            .as_u64()
            .map(Duration::from_secs);
        if let Err(refused) = classify_http(status, &text, asked.or(header)) {
            return refused;
        }
        if answer["ok"] != true {
            return Delivered::Reject {
                error: format!("{status} {}", super::truncate(&text, 500)),
            };
        }
        let id = answer["result"]["message_id"]
            .as_i64()
            .map(|n| n.to_string());
        Delivered::Sent {
            answer: format!("{status} message {}", id.as_deref().unwrap_or("?")),
            provider_message_id: id,
        }
    }
}
