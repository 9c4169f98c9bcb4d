//! Direct conversions for the messages of the hot path (a job, a quote, JSON documents as
//! `google.protobuf.Struct`/`Value`), field by field instead of through serde JSON.
//!
//! The serde bridge in [`crate::convert`] reads every integer field through pbjson's
//! string-or-number deserializer, which builds (and throws away) a formatted error per number;
//! on `Submit` that made gRPC slower than REST. In debug builds each conversion here is checked
//! against the serde bridge, so the two cannot drift apart.

use crate::pb;
use chrono::{DateTime, Utc};
use levqor_core::{Error, Job, Result};
use pbjson_types::value::Kind;
use serde_json::{Map, Number, Value};

/// Integers up to this magnitude survive a trip through a proto `double` exactly.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

// The conversions take their input by value: its strings move into the output.

/// A JSON document as a `google.protobuf.Value` (numbers become doubles, as in proto3 JSON).
pub(crate) fn value(v: Value) -> pbjson_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(pbjson_types::ListValue {
            values: items.into_iter().map(value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(structure(map)),
    };
    pbjson_types::Value { kind: Some(kind) }
}

/// A JSON object as a `google.protobuf.Struct`.
pub(crate) fn structure(map: Map<String, Value>) -> pbjson_types::Struct {
    pbjson_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, value(v))).collect(),
    }
}

/// A `google.protobuf.Value` as JSON. A whole number that a double holds exactly reads as an
/// integer (`1`, not `1.0`), as a client that sent `{"n": 1}` meant; an unset kind is `null`.
pub(crate) fn json(v: pbjson_types::Value) -> Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => number(n),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(list)) => Value::Array(list.values.into_iter().map(json).collect()),
        Some(Kind::StructValue(s)) => json_object(s),
    }
}

/// A `google.protobuf.Struct` as a JSON object.
pub(crate) fn json_object(s: pbjson_types::Struct) -> Value {
    Value::Object(s.fields.into_iter().map(|(k, v)| (k, json(v))).collect())
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < EXACT_INTEGER {
        Value::Number(Number::from(n as i64))
    } else {
        // NaN and infinities have no JSON form.
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// An instant as a `google.protobuf.Timestamp`.
pub(crate) fn timestamp(at: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// A job as its message.
pub(crate) fn job(job: Job) -> pb::Job {
    #[cfg(debug_assertions)]
    let core = job.clone();
    let message = pb::Job {
        id: job.id.to_string(),
        owner_id: job.owner_id.to_string(),
        workflow: match job.workflow {
            Value::Object(map) => Some(structure(map)),
            _ => None,
        },
        input: Some(value(job.input)),
        status: job.status.as_str().to_string(),
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        run_after: Some(timestamp(job.run_after)),
        result: job.result.map(value),
        error: job.error,
        cancel_requested: job.cancel_requested,
        idempotency_key: job.idempotency_key,
        created_at: Some(timestamp(job.created_at)),
        updated_at: Some(timestamp(job.updated_at)),
        started_at: job.started_at.map(timestamp),
        finished_at: job.finished_at.map(timestamp),
    };
    #[cfg(debug_assertions)]
    same_as_bridge(&core, &message);
    message
}

/// A quote (as intake reports it, JSON) as its message, read field by field.
pub(crate) fn quote(quote: Value) -> Result<pb::Quote> {
    #[cfg(debug_assertions)]
    let core = quote.clone();
    let bad = |what: &str| Error::internal(format!("a quote whose {what} does not read"));
    let Value::Object(mut q) = quote else {
        return Err(bad("document"));
    };
    let int = |v: Option<&Value>, what: &str| v.and_then(Value::as_i64).ok_or_else(|| bad(what));
    let present = |v: Option<Value>| v.filter(|v| !v.is_null());
    let components = match q.remove("components") {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|c| {
                let Value::Object(mut c) = c else {
                    return Err(bad("component"));
                };
                let text = |v: Option<Value>, what: &str| match v {
                    Some(Value::String(s)) => Ok(s),
                    _ => Err(bad(what)),
                };
                Ok(pb::QuoteComponent {
                    name: text(c.remove("name"), "component name")?,
                    credits: present(c.remove("credits"))
                        .map(|v| int(Some(&v), "component credits"))
                        .transpose()?,
                    factor: present(c.remove("factor"))
                        .map(|v| v.as_f64().ok_or_else(|| bad("component factor")))
                        .transpose()?,
                    detail: text(c.remove("detail"), "component detail")?,
                })
            })
            .collect::<Result<_>>()?,
        _ => return Err(bad("components")),
    };
    let step_prices = match q.remove("step_prices") {
        Some(Value::Object(prices)) => prices
            .into_iter()
            .map(|(step, price)| Ok((step, int(Some(&price), "step price")?)))
            .collect::<Result<_>>()?,
        _ => return Err(bad("step prices")),
    };
    let message = pb::Quote {
        credits: int(q.get("credits"), "credits")?,
        components,
        step_prices,
        factor_bp: int(q.get("factor_bp"), "factor")?,
    };
    #[cfg(debug_assertions)]
    same_as_bridge(
        &serde_json::from_value::<levqor_core::credits::Quote>(core).expect("a quote"),
        &message,
    );
    Ok(message)
}

/// Panics when the serde bridge reads `core` as a different message than the direct
/// conversion did.
#[cfg(debug_assertions)]
fn same_as_bridge<T, P>(core: &T, direct: &P)
where
    T: serde::Serialize,
    P: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bridged: P = crate::convert::message(core).expect("the bridge reads it");
    assert_eq!(
        &bridged, direct,
        "the direct conversion and the bridge differ"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_documents_survive_the_trip_through_proto_values() {
        let doc = json!({"n": 1, "big": 9007199254740991i64, "half": 0.5, "neg": -3,
            "s": "x", "b": true, "none": null, "list": [1, "two", {"three": [3.25]}], "empty": {}});
        assert_eq!(json(value(doc.clone())), doc);
        assert_eq!(
            json_object(structure(doc.as_object().unwrap().clone())),
            doc
        );
    }

    #[test]
    fn numbers_without_a_json_form_read_as_null() {
        let nan = pbjson_types::Value {
            kind: Some(Kind::NumberValue(f64::NAN)),
        };
        assert_eq!(json(nan), Value::Null);
        assert_eq!(json(pbjson_types::Value { kind: None }), Value::Null);
    }

    #[test]
    fn a_large_whole_number_stays_a_double() {
        assert_eq!(number(1e300), json!(1e300));
        assert_eq!(number(-2.0), json!(-2));
    }
}
