//! Extractors that turn bad requests into our problem+json: the caller's credentials, JSON
//! bodies, and ids in paths.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use chrono::{DateTime, Utc};
use levqor_core::call::key_from;
use levqor_core::consent::ClientInfo;
use levqor_core::{Error, Principal, Violation};
use serde_json::{Map, Value};
use std::net::{IpAddr, SocketAddr};
use uuid::Uuid;

/// The authenticated caller: `Authorization: Bearer <key>` or `X-Api-Key: <key>`.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let key = key_from(header(header::AUTHORIZATION.as_str()), header("x-api-key"));
        let authorized = state.levqor.authorize(key).await;
        // The response carries where the caller stands (see `crate::quota_headers`).
        if let Some(status) = authorized.quota {
            let _ = crate::error::QUOTA.try_with(|q| {
                *q.lock().expect("quota slot") = Some(status);
            });
        }
        Ok(Caller(authorized.caller?))
    }
}

/// A JSON object body. Malformed JSON is a 422 `malformed_json`, a body over the limit a 413,
/// another content type a 415.
pub struct JsonBody(pub serde_json::Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_bytes(req, state).await?;
        parse_object(&bytes).map(JsonBody)
    }
}

/// Like [`JsonBody`], but an empty body is an empty object.
pub struct OptionalJsonBody(pub serde_json::Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(serde_json::Map::new()));
        }
        parse_object(&bytes).map(OptionalJsonBody)
    }
}

/// The body of a one-click unsubscribe (RFC 8058): a mail client `POST`s
/// `List-Unsubscribe=One-Click` as a form to the link, whose query holds the token. A form
/// body reads as an empty object; anything else as [`OptionalJsonBody`].
pub struct UnsubscribeBody(pub serde_json::Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for UnsubscribeBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .is_some_and(|ct| {
                ct.starts_with("application/x-www-form-urlencoded")
                    || ct.starts_with("multipart/form-data")
            });
        if form {
            return Ok(UnsubscribeBody(serde_json::Map::new()));
        }
        let OptionalJsonBody(body) = OptionalJsonBody::from_request(req, state).await?;
        Ok(UnsubscribeBody(body))
    }
}

async fn read_json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    if let Some(ct) = content_type
        && !(ct.starts_with("application/json") || ct.contains("+json"))
    {
        return Err(ApiError::http(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::http(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is larger than 512 KB",
            )
        } else {
            ApiError::http(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the body could not be read",
            )
        }
    })
}

fn parse_object(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::violations(
            "validation_failed",
            "the body must be a JSON object",
            vec![Violation::new("", "must be a JSON object")],
        )
        .into()),
        Err(e) => {
            Err(Error::invalid("malformed_json", format!("the body is not valid JSON: {e}")).into())
        }
    }
}

/// Where the request came from: the peer address (when the server records it) and the
/// `User-Agent`.
pub struct Client(pub ClientInfo, pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        Ok(Client(ClientInfo::new(ip, user_agent), ip))
    }
}

/// Parses an id from a path; anything that is not an id names nothing, so it is a 404.
pub fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| Error::not_found(what).into())
}

/// Reads the fields of a JSON object body and collects every violation, so that a client sees
/// all of its bad fields at once: fields it does not know, fields of the wrong type, missing
/// required ones. [`Fields::finish`] turns them into one 422 `validation_failed`.
pub struct Fields<'a> {
    body: &'a Map<String, Value>,
    bad: Vec<Violation>,
}

impl<'a> Fields<'a> {
    /// Reads `body`; a field not in `known` is a violation.
    pub fn new(body: &'a Map<String, Value>, known: &[&str]) -> Self {
        let bad = body
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| Violation::new(format!("/{k}"), "is not a known field"))
            .collect();
        Self { body, bad }
    }

    /// Reads `body`, ignoring fields it does not ask for (for bodies that are optional extras,
    /// such as the token of an unsubscribe link).
    pub fn lenient(body: &'a Map<String, Value>) -> Self {
        Self {
            body,
            bad: Vec::new(),
        }
    }

    /// The field as sent (`None` when absent or null).
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        self.body.get(name).filter(|v| !v.is_null())
    }

    /// Whether the body has the field, null included.
    pub fn has(&self, name: &str) -> bool {
        self.body.contains_key(name)
    }

    /// Records a violation at `/name`.
    pub fn violation(&mut self, name: &str, message: impl Into<String>) {
        self.bad.push(Violation::new(format!("/{name}"), message));
    }

    /// A field that must be there, as sent.
    pub fn required_value(&mut self, name: &str) -> Value {
        match self.value(name) {
            Some(v) => v.clone(),
            None => {
                self.violation(name, "is required");
                Value::Null
            }
        }
    }

    /// An optional string.
    pub fn string(&mut self, name: &str) -> Option<String> {
        match self.value(name)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.violation(name, "must be a string");
                None
            }
        }
    }

    /// A string that must be there.
    pub fn required_string(&mut self, name: &str) -> String {
        let v = self.string(name);
        self.require(name, v).unwrap_or_default()
    }

    /// An optional array of strings; a bad item is a violation at its own pointer.
    pub fn strings(&mut self, name: &str) -> Option<Vec<String>> {
        match self.value(name)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v.as_str() {
                        Some(s) => Some(s.to_string()),
                        None => {
                            self.violation(&format!("{name}/{i}"), "must be a string");
                            None
                        }
                    })
                    .collect(),
            ),
            _ => {
                self.violation(name, "must be an array of strings");
                None
            }
        }
    }

    /// An array of strings that must be there.
    pub fn required_strings(&mut self, name: &str) -> Vec<String> {
        let v = self.strings(name);
        self.require(name, v).unwrap_or_default()
    }

    /// An optional boolean.
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        match self.value(name)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.violation(name, "must be true or false");
                None
            }
        }
    }

    /// A boolean that must be there.
    pub fn required_bool(&mut self, name: &str) -> bool {
        let v = self.bool(name);
        self.require(name, v).unwrap_or_default()
    }

    /// An optional whole number.
    pub fn int(&mut self, name: &str) -> Option<i64> {
        match self.value(name)?.as_i64() {
            Some(n) => Some(n),
            None => {
                self.violation(name, "must be a whole number");
                None
            }
        }
    }

    /// An optional RFC 3339 timestamp.
    pub fn timestamp(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let raw = self.string(name)?;
        match DateTime::parse_from_rfc3339(&raw) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                self.violation(name, "must be an RFC 3339 timestamp");
                None
            }
        }
    }

    /// `value`, or a violation "is required" unless the field already has one.
    fn require<T>(&mut self, name: &str, value: Option<T>) -> Option<T> {
        let pointer = format!("/{name}");
        if value.is_none() && !self.bad.iter().any(|b| b.pointer == pointer) {
            self.bad.push(Violation::new(pointer, "is required"));
        }
        value
    }

    /// Every violation as one 422 `validation_failed`, or nothing.
    pub fn finish(self) -> Result<(), ApiError> {
        refuse(self.bad)
    }

    /// Every violation as one core `validation_failed` error, or nothing (for an adapter that
    /// is not HTTP).
    pub fn check(self) -> levqor_core::Result<()> {
        refused(self.bad)
    }
}

/// `violations` as one 422 `validation_failed`, or nothing when there are none.
pub fn refuse(violations: Vec<Violation>) -> Result<(), ApiError> {
    refused(violations).map_err(Into::into)
}

/// `violations` as one core `validation_failed` error, or nothing when there are none.
fn refused(violations: Vec<Violation>) -> levqor_core::Result<()> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::violations(
            "validation_failed",
            "the request has problems",
            violations,
        ))
    }
}
