//! Webhook signatures as Stripe makes them: HMAC-SHA256 over `"<unix time>.<payload>"`, in a
//! header `t=<unix time>,v1=<hex>`. Stripe's webhooks are checked with it, and Levqor's own
//! outbound webhooks are signed with it (`Levqor-Signature`), so a receiver verifies them the
//! way it verifies Stripe's.

use crate::error::{Error, Result};
use crate::secrets::{constant_time_eq, hmac_sha256};
use chrono::{DateTime, Utc};

/// How old a webhook's timestamp may be.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// Checks a `Stripe-Signature` header (`t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload">`,
/// possibly several `v1`) against `secret`: the signature must match and the timestamp be
/// within [`WEBHOOK_TOLERANCE_SECS`] of `now`. `Invalid` `bad_signature` otherwise.
pub fn verify_signature(
    payload: &[u8],
    header: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let bad = |why: &str| Error::invalid("bad_signature", format!("the webhook signature {why}"));
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| bad("has no timestamp"))?;
    if sigs.is_empty() {
        return Err(bad("has no v1 signature"));
    }
    if (now.timestamp() - t).abs() > WEBHOOK_TOLERANCE_SECS {
        return Err(bad("is too old or from the future"));
    }
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(payload);
    let expected = hex::encode(hmac_sha256(secret.as_bytes(), &signed));
    if sigs
        .iter()
        .any(|s| constant_time_eq(s.as_bytes(), expected.as_bytes()))
    {
        Ok(())
    } else {
        Err(bad("does not match"))
    }
}

/// Signs `payload` as Stripe does, for tests and for tools that replay events.
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(payload);
    format!(
        "t={t},v1={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &signed))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn signatures_are_checked_like_stripe_does() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let header = sign(body, "whsec_test", now.timestamp());
        assert!(verify_signature(body, &header, "whsec_test", now).is_ok());
        assert_eq!(
            verify_signature(body, &header, "whsec_other", now)
                .unwrap_err()
                .code,
            "bad_signature"
        );
        assert!(
            verify_signature(b"{}", &header, "whsec_test", now).is_err(),
            "another body"
        );
        let late = now + Duration::seconds(WEBHOOK_TOLERANCE_SECS + 1);
        assert!(
            verify_signature(body, &header, "whsec_test", late).is_err(),
            "stale"
        );
        assert!(verify_signature(body, "v1=abc", "whsec_test", now).is_err());
        let two = format!("{header},v1=deadbeef");
        assert!(
            verify_signature(body, &two, "whsec_test", now).is_ok(),
            "any v1 may match"
        );
    }
}
