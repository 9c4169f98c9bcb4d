//! Delivery channels: the providers the outbox dispatcher hands messages to. Email goes through
//! SMTP ([`smtp::SmtpChannel`], on `lettre`) or Resend's HTTP API ([`resend::ResendChannel`]);
//! operators' alerts through Slack ([`slack::SlackChannel`]) and Telegram
//! ([`telegram::TelegramChannel`]); users' systems are called back by signed webhooks
//! ([`webhook::WebhookChannel`]). Each provider's base URL or host is configurable, so tests
//! run them against local servers.
//! Every failure is classified: a temporary one is retried by the dispatcher, a refusal is not.

pub mod resend;
pub mod slack;
pub mod smtp;
pub mod telegram;
pub mod webhook;

use levqor_core::notify::Delivered;
use std::time::Duration;

/// How long one delivery may take before it is abandoned and retried; well under the
/// dispatcher's lease, so a slow provider never leaves a message `sending` past its lease.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The dispatcher's reading of an HTTP provider's answer: 2xx accepted; 408, 409 (a
/// concurrent request with the same idempotency key), 429 and 5xx temporary; any other 4xx a
/// refusal.
pub(crate) fn classify_http(status: u16, body: &str) -> Result<(), Delivered> {
    let answer = format!("{status} {}", truncate(body, 500));
    match status {
        200..=299 => Ok(()),
        408 | 409 | 429 | 500..=599 => Err(Delivered::Retry { error: answer }),
        _ => Err(Delivered::Reject { error: answer }),
    }
}

/// A transport failure before any answer (connection refused, timeout): temporary.
pub(crate) fn unreachable(provider: &str, error: &reqwest::Error) -> Delivered {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not be reached"
    } else {
        "failed"
    };
    Delivered::Retry {
        error: format!("{provider} {what}: {error}"),
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_are_accepted_retried_or_refused() {
        assert_eq!(classify_http(200, "{}"), Ok(()));
        for retry in [408, 409, 429, 500, 502, 503] {
            assert!(
                matches!(classify_http(retry, "x"), Err(Delivered::Retry { .. })),
                "{retry}"
            );
        }
        for refused in [400, 401, 403, 404, 422] {
            assert!(
                matches!(classify_http(refused, "x"), Err(Delivered::Reject { .. })),
                "{refused}"
            );
        }
        assert_eq!(truncate("héllo", 2), "h");
    }
}
