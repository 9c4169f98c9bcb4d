//! Extractors that turn bad requests into our problem+json: the caller's credentials, JSON
//! bodies, and ids in paths.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use levqor_core::{Error, Principal};
use serde_json::Value;
use uuid::Uuid;

/// The authenticated caller: `Authorization: Bearer <key>` or `X-Api-Key: <key>`.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        let key = bearer.or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()));
        match key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => {
                let who = state.levqor.authenticate(key).await?;
                // Every call with a user's key counts against their monthly quota; the
                // response carries where they stand (see `crate::quota_headers`).
                if let Some(status) = state.levqor.meter(&who).await? {
                    let _ = crate::error::QUOTA.try_with(|q| {
                        *q.lock().expect("quota slot") = Some(status.clone());
                    });
                    status.check()?;
                }
                Ok(Caller(who))
            }
            None => Err(Error::unauthenticated(
                "send an API key as `Authorization: Bearer <key>` or `X-Api-Key: <key>`",
            )
            .into()),
        }
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
            vec![levqor_core::Violation::new("", "must be a JSON object")],
        )
        .into()),
        Err(e) => {
            Err(Error::invalid("malformed_json", format!("the body is not valid JSON: {e}")).into())
        }
    }
}

/// Parses an id from a path; anything that is not an id names nothing, so it is a 404.
pub fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| Error::not_found(what).into())
}
