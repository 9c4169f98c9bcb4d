//! Core values as proto messages and proto fields as core values.
//!
//! Every core type that REST serializes has a proto message with the same field names; the
//! message is read from the core value's serde JSON by its generated proto3-JSON deserializer
//! (`pbjson`). REST and gRPC thus answer the same fields from one serialization, and the
//! mapping test checks that no field of a core value is lost on the way.

use chrono::{DateTime, Utc};
use levqor_core::{Error, Result, Violation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

/// A core value as its proto message.
pub(crate) fn message<T: Serialize, P: Serialize + DeserializeOwned>(value: &T) -> Result<P> {
    let json = serde_json::to_value(value).map_err(|e| {
        Error::internal(format!(
            "cannot serialize {}: {e}",
            std::any::type_name::<T>()
        ))
    })?;
    from_json(json)
}

/// A JSON value as a proto message. In debug builds (every test) it checks that the message
/// holds every field of the JSON, so a field the core adds and the proto lacks fails the
/// tests of the RPCs that carry it.
pub(crate) fn from_json<P: Serialize + DeserializeOwned>(json: Value) -> Result<P> {
    #[cfg(debug_assertions)]
    let expected = json.clone();
    let message = P::deserialize(json).map_err(|e| {
        Error::internal(format!(
            "cannot express as {}: {e}",
            std::any::type_name::<P>()
        ))
    })?;
    #[cfg(debug_assertions)]
    if let Err(lost) = covers(
        &expected,
        &serde_json::to_value(&message).unwrap_or(Value::Null),
    ) {
        panic!("{} loses {lost} of {expected}", std::any::type_name::<P>());
    }
    Ok(message)
}

/// Whether `proto` (a message's proto3 JSON, which leaves out default values and writes
/// 64-bit numbers as strings) holds everything in `core`; the path of what it lacks if not.
#[cfg(any(test, debug_assertions))]
fn covers(core: &Value, proto: &Value) -> std::result::Result<(), String> {
    let is_default = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    };
    match (core, proto) {
        (Value::Object(c), Value::Object(p)) => {
            for (k, v) in c {
                match p.get(k) {
                    Some(pv) => covers(v, pv).map_err(|lost| format!("/{k}{lost}"))?,
                    None if is_default(v) => {}
                    None => return Err(format!("/{k}")),
                }
            }
            Ok(())
        }
        (Value::Array(c), Value::Array(p)) if c.len() == p.len() => {
            for (i, (cv, pv)) in c.iter().zip(p).enumerate() {
                covers(cv, pv).map_err(|lost| format!("/{i}{lost}"))?;
            }
            Ok(())
        }
        (Value::Number(c), Value::String(p)) if p.parse::<f64>().ok() == c.as_f64() => Ok(()),
        (Value::Number(c), Value::Number(p)) if c.as_f64() == p.as_f64() => Ok(()),
        (Value::String(c), Value::String(p)) if c == p || same_instant(c, p) => Ok(()),
        (c, p) if c == p => Ok(()),
        _ => Err(String::new()),
    }
}

#[cfg(any(test, debug_assertions))]
fn same_instant(a: &str, b: &str) -> bool {
    match (
        DateTime::parse_from_rfc3339(a),
        DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Each core value as its proto message.
pub(crate) fn messages<T: Serialize, P: Serialize + DeserializeOwned>(
    values: &[T],
) -> Result<Vec<P>> {
    values.iter().map(message).collect()
}

/// A proto message (or well-known value) as the JSON the core reads.
pub(crate) fn json<P: Serialize>(message: &P) -> Value {
    serde_json::to_value(message).unwrap_or(Value::Null)
}

/// An optional `google.protobuf.Struct` or `Value` as JSON (`null` when unset).
pub(crate) fn json_or_null<P: Serialize>(message: Option<&P>) -> Value {
    message.map_or(Value::Null, json)
}

/// The id a request names; anything that is not an id names nothing (`NotFound`, as a bad
/// path id in REST).
pub(crate) fn id(raw: &str, what: &str) -> Result<Uuid> {
    Uuid::parse_str(raw).map_err(|_| Error::not_found(what))
}

/// A page size as the core reads it.
pub(crate) fn limit(limit: Option<u32>) -> Option<usize> {
    limit.map(|l| l as usize)
}

/// The user an admin's request names (`user_id`), or `None` for the caller.
pub(crate) fn target(user_id: Option<&str>) -> Result<Option<Uuid>> {
    user_id.map(|raw| id(raw, "user")).transpose()
}

/// Reads the fields of a request that the proto types cannot check, collecting every
/// violation so that a client sees all of its bad fields at once.
#[derive(Default)]
pub(crate) struct Checks {
    bad: Vec<Violation>,
}

impl Checks {
    /// A timestamp field as a UTC instant (`None` when unset).
    pub(crate) fn time(
        &mut self,
        t: Option<&pbjson_types::Timestamp>,
        field: &str,
    ) -> Option<DateTime<Utc>> {
        let t = t?;
        let at = u32::try_from(t.nanos)
            .ok()
            .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos));
        if at.is_none() {
            self.bad.push(Violation::new(
                format!("/{field}"),
                "must be a valid timestamp",
            ));
        }
        at
    }

    /// Every violation as one `Invalid` `validation_failed`, or nothing.
    pub(crate) fn finish(self) -> Result<()> {
        if self.bad.is_empty() {
            Ok(())
        } else {
            Err(Error::violations(
                "validation_failed",
                "the request has problems",
                self.bad,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_covers_its_core_value_modulo_proto3_json() {
        let core = json!({"id": "x", "n": 5, "big": 9007199254740993u64, "at": "2026-11-02T09:00:00.000000Z", "zero": 0, "none": null, "list": [{"a": 1}]});
        let proto = json!({"id": "x", "n": 5, "big": "9007199254740993", "at": "2026-11-02T09:00:00Z", "list": [{"a": "1"}]});
        assert_eq!(covers(&core, &proto), Ok(()));
        let lost = json!({"id": "x", "big": "9007199254740993", "at": "2026-11-02T09:00:00Z", "list": [{"a": "1"}]});
        assert_eq!(covers(&core, &lost), Err("/n".into()));
        let changed = json!({"id": "x", "n": 5, "big": "1", "at": "2026-11-02T09:00:00Z", "list": [{"a": 1}]});
        assert_eq!(covers(&core, &changed), Err("/big".into()));
    }

    #[test]
    fn a_proto_that_lacks_a_field_fails_in_debug_builds() {
        let user = json!({"id": "u", "email": "a@example.com", "name": null, "created_at": "2026-11-02T09:00:00Z", "updated_at": "2026-11-02T09:00:00Z", "nickname": "ada"});
        let lossy = std::panic::catch_unwind(|| from_json::<crate::pb::User>(user));
        assert!(lossy.is_err(), "a field the proto lacks is caught");
    }
}
