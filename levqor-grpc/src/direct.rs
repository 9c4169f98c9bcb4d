//! Direct conversions for the messages of the hot path (a job, a quote, JSON documents as
//! `google.protobuf.Struct`/`Value`), field by field instead of through serde JSON.
//!
//! The serde bridge in [`crate::convert`] reads every integer field through pbjson's
//! string-or-number deserializer, which builds (and throws away) a formatted error per number;
//! on `Submit` that made gRPC slower than REST. In debug builds each conversion here is checked
//! against the serde bridge, so the two cannot drift apart.

use crate::pb;
use chrono::{DateTime, Utc};
use levqor_core::credits::Quote;
use levqor_core::{Error, Job, Result};
use pbjson_types::value::Kind;
use serde_json::{Map, Number, Value};

/// Integers up to this magnitude survive a trip through a proto `double` exactly.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A JSON document as a `google.protobuf.Value` (numbers become doubles, as in proto3 JSON).
pub(crate) fn value(v: &Value) -> pbjson_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(pbjson_types::ListValue {
            values: items.iter().map(value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(structure(map)),
    };
    pbjson_types::Value { kind: Some(kind) }
}

/// A JSON object as a `google.protobuf.Struct`.
pub(crate) fn structure(map: &Map<String, Value>) -> pbjson_types::Struct {
    pbjson_types::Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
    }
}

/// A `google.protobuf.Value` as JSON. A whole number that a double holds exactly reads as an
/// integer (`1`, not `1.0`), as a client that sent `{"n": 1}` meant; an unset kind is `null`.
pub(crate) fn json(v: &pbjson_types::Value) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(json).collect()),
        Some(Kind::StructValue(s)) => json_object(s),
    }
}

/// A `google.protobuf.Struct` as a JSON object.
pub(crate) fn json_object(s: &pbjson_types::Struct) -> Value {
    Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), json(v))).collect())
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
pub(crate) fn job(job: &Job) -> pb::Job {
    let message = pb::Job {
        id: job.id.to_string(),
        owner_id: job.owner_id.to_string(),
        workflow: match &job.workflow {
            Value::Object(map) => Some(structure(map)),
            _ => None,
        },
        input: Some(value(&job.input)),
        status: job.status.as_str().to_string(),
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        run_after: Some(timestamp(job.run_after)),
        result: job.result.as_ref().map(value),
        error: job.error.clone(),
        cancel_requested: job.cancel_requested,
        idempotency_key: job.idempotency_key.clone(),
        created_at: Some(timestamp(job.created_at)),
        updated_at: Some(timestamp(job.updated_at)),
        started_at: job.started_at.map(timestamp),
        finished_at: job.finished_at.map(timestamp),
    };
    #[cfg(debug_assertions)]
    same_as_bridge(job, &message);
    message
}

/// A quote (as intake reports it, JSON) as its message.
pub(crate) fn quote(quote: &Value) -> Result<pb::Quote> {
    let q: Quote = serde_json::from_value(quote.clone())
        .map_err(|e| Error::internal(format!("a quote that does not read as one: {e}")))?;
    let message = pb::Quote {
        credits: q.credits,
        components: q
            .components
            .into_iter()
            .map(|c| pb::QuoteComponent {
                name: c.name,
                credits: c.credits,
                factor: c.factor,
                detail: c.detail,
            })
            .collect(),
        step_prices: q.step_prices.into_iter().collect(),
        factor_bp: q.factor_bp,
    };
    #[cfg(debug_assertions)]
    same_as_bridge(quote, &message);
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
        assert_eq!(json(&value(&doc)), doc);
        assert_eq!(json_object(&structure(doc.as_object().unwrap())), doc);
    }

    #[test]
    fn numbers_without_a_json_form_read_as_null() {
        let nan = pbjson_types::Value {
            kind: Some(Kind::NumberValue(f64::NAN)),
        };
        assert_eq!(json(&nan), Value::Null);
        assert_eq!(json(&pbjson_types::Value { kind: None }), Value::Null);
    }

    #[test]
    fn a_large_whole_number_stays_a_double() {
        assert_eq!(number(1e300), json!(1e300));
        assert_eq!(number(-2.0), json!(-2));
    }
}
