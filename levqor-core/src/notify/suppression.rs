//! The suppression list: addresses that bounced for good or complained get no marketing email,
//! and the admin sees why. Resend reports bounces and complaints by webhook, signed the way
//! Svix signs (`svix-id`, `svix-timestamp`, `svix-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, the secret `whsec_<base64 key>`).

use crate::error::{Error, Result};
use crate::secrets::{constant_time_eq, hmac_sha256};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// The provider reported a permanent (hard) bounce.
    HardBounce,
    /// The recipient marked a message as spam.
    Complaint,
}

impl SuppressionReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::Complaint => "complaint",
        }
    }

    /// The reason of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hard_bounce" => Some(SuppressionReason::HardBounce),
            "complaint" => Some(SuppressionReason::Complaint),
            _ => None,
        }
    }
}

/// A suppressed address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// Time-ordered id (the page cursor).
    pub id: Uuid,
    /// The address, normalized.
    pub email: String,
    /// Why.
    pub reason: SuppressionReason,
    /// What the provider said (the bounce message), if anything.
    pub detail: Option<String>,
    /// The provider's event that caused it.
    pub event_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// How old a provider's webhook timestamp may be.
pub const SVIX_TOLERANCE_SECS: i64 = 300;

/// Checks a Svix-signed webhook (Resend's): `signature` holds space-separated `v1,<base64>`
/// entries, one of which must be the HMAC-SHA256 of `"<id>.<timestamp>.<payload>"` under the
/// key in `secret` (`whsec_<base64>`), and the timestamp must be within
/// [`SVIX_TOLERANCE_SECS`] of `now`. `Invalid` `bad_signature` otherwise.
pub fn verify_svix(
    payload: &[u8],
    id: &str,
    timestamp: &str,
    signature: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let bad = |why: &str| Error::invalid("bad_signature", format!("the webhook signature {why}"));
    let t: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| bad("has no valid timestamp"))?;
    if (now.timestamp() - t).abs() > SVIX_TOLERANCE_SECS {
        return Err(bad("is too old or from the future"));
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| Error::internal("the webhook secret is not base64"))?;
    let mut signed = format!("{id}.{t}.").into_bytes();
    signed.extend_from_slice(payload);
    let expected = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &signed));
    let matches = signature
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| constant_time_eq(s.as_bytes(), expected.as_bytes()));
    if matches {
        Ok(())
    } else {
        Err(bad("does not match"))
    }
}

/// Signs `payload` as Svix does (tests, and tools that replay events).
pub fn sign_svix(payload: &[u8], id: &str, timestamp: i64, secret: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap_or_default();
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(payload);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &signed))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn svix_signatures_are_checked_with_their_timestamp() {
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"type":"email.bounced"}"#;
        let t = now.timestamp();
        let sig = sign_svix(body, "msg_1", t, secret);
        let ok = |sig: &str, id: &str, ts: &str, body: &[u8]| {
            verify_svix(body, id, ts, sig, secret, now).is_ok()
        };
        assert!(ok(&sig, "msg_1", &t.to_string(), body));
        assert!(
            ok(&format!("v1,bm90IGl0 {sig}"), "msg_1", &t.to_string(), body),
            "any of several"
        );
        assert!(!ok(&sig, "msg_2", &t.to_string(), body), "the id is signed");
        assert!(
            !ok(&sig, "msg_1", &t.to_string(), b"{}"),
            "the body is signed"
        );
        let old = t - 301;
        let stale = sign_svix(body, "msg_1", old, secret);
        assert!(!ok(&stale, "msg_1", &old.to_string(), body), "too old");
        assert!(!ok(&sig, "msg_1", "soon", body));
        assert_eq!(
            verify_svix(body, "msg_1", &t.to_string(), "v1,xx", secret, now)
                .unwrap_err()
                .code,
            "bad_signature"
        );
    }
}
