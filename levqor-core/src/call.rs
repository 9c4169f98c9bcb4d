//! What every adapter reads from an incoming call the same way: its API key and its request id.

use uuid::Uuid;

/// The API key a call carries: `Authorization: Bearer <key>` (the scheme in any case), else
/// `X-Api-Key: <key>`; blank is none.
pub fn key_from<'a>(authorization: Option<&'a str>, api_key: Option<&'a str>) -> Option<&'a str> {
    let bearer = authorization.and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(rest)
    });
    bearer.or(api_key).map(str::trim).filter(|k| !k.is_empty())
}

/// The request id a call sent, when it is sane (1 to 128 printable ASCII characters), else a
/// new one. The answer echoes it; logs and error bodies carry it.
pub fn request_id(sent: Option<&str>) -> String {
    sent.filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_read_from_bearer_then_x_api_key() {
        assert_eq!(key_from(Some("Bearer abc"), None), Some("abc"));
        assert_eq!(key_from(Some("bearer abc "), Some("xyz")), Some("abc"));
        assert_eq!(key_from(Some("BEARER abc"), None), Some("abc"));
        assert_eq!(key_from(Some("Basic abc"), Some("xyz")), Some("xyz"));
        assert_eq!(key_from(None, Some(" xyz ")), Some("xyz"));
        assert_eq!(key_from(Some("Bearer  "), None), None);
        assert_eq!(key_from(None, Some("")), None);
        assert_eq!(key_from(None, None), None);
    }

    #[test]
    fn a_sane_request_id_is_kept_and_anything_else_replaced() {
        assert_eq!(request_id(Some("abc-123")), "abc-123");
        for bad in [None, Some(""), Some("has space"), Some("é")] {
            let made = request_id(bad);
            assert!(Uuid::parse_str(&made).is_ok(), "{bad:?} → {made}");
        }
        assert_ne!(request_id(Some(&"x".repeat(129))), "x".repeat(129));
    }
}
