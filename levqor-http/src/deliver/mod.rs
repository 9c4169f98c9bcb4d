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
/// concurrent request with the same idempotency key), 429 and 5xx temporary, to be tried again
/// no sooner than `after` when the provider said so; any other 4xx a refusal.
pub(crate) fn classify_http(
    status: u16,
    body: &str,
    after: Option<Duration>,
) -> Result<(), Delivered> {
    let answer = format!("{status} {}", truncate(body, 500));
    match status {
        200..=299 => Ok(()),
        408 | 409 | 429 | 500..=599 => Err(Delivered::Retry {
            error: answer,
            after,
        }),
        _ => Err(Delivered::Reject { error: answer }),
    }
}

/// The wait a `Retry-After` header asks for: a number of seconds, or an HTTP date (a date
/// already past asks for none).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
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
        after: None,
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
        assert_eq!(classify_http(200, "{}", None), Ok(()));
        for retry in [408, 409, 429, 500, 502, 503] {
            assert!(
                matches!(
                    classify_http(retry, "x", None),
                    Err(Delivered::Retry { .. })
                ),
                "{retry}"
            );
        }
        let wait = Some(Duration::from_secs(9));
        assert!(matches!(
            classify_http(429, "x", wait),
            Err(Delivered::Retry { after, .. }) if after == wait
        ));
        for refused in [400, 401, 403, 404, 422] {
            assert!(
                matches!(
                    classify_http(refused, "x", None),
                    Err(Delivered::Reject { .. })
                ),
                "{refused}"
            );
        }
        assert_eq!(truncate("héllo", 2), "h");
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let header = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            h
        };
        assert_eq!(retry_after(&header("120")), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&header(" 0 ")), Some(Duration::ZERO));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let wait = retry_after(&header(&soon.replace("+0000", "GMT"))).unwrap();
        assert!(
            wait > Duration::from_secs(80) && wait <= Duration::from_secs(90),
            "{wait:?}"
        );
        assert_eq!(
            retry_after(&header("Sun, 06 Nov 1994 08:49:37 GMT")),
            None,
            "past"
        );
        assert_eq!(retry_after(&header("soon")), None);
        assert_eq!(retry_after(&header("-5")), None);
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), None);
    }
}
