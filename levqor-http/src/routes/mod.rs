//! Handlers, one module per core domain, each with the routes it serves. A handler reads the
//! request (through [`extract`](crate::extract)), makes one call on a domain service and writes
//! the result; no rule lives here.

pub mod billing;
pub mod consent;
pub mod credits;
pub mod jobs;
pub mod messages;
pub mod privacy;
pub mod quotas;
pub mod screening;
pub mod users;

use crate::error::{ApiError, ApiResult};
use crate::extract::path_id;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use levqor_core::{Error, Violation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// Health, readiness and the workflow schema.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/v1/schemas/workflow", get(workflow_schema))
}

/// `GET /health`: the process is alive.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: the database answers.
pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.levqor.ready().await?;
    Ok(Json(
        json!({"status": "ready", "store": state.levqor.store().backend()}),
    ))
}

/// `GET /v1/schemas/workflow`.
pub async fn workflow_schema(State(state): State<AppState>) -> Response {
    let mut r = Json(state.levqor.jobs().workflow_schema().clone()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/schema+json"),
    );
    r
}

/// Any route that does not exist.
pub async fn not_found() -> ApiError {
    ApiError::http(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// A route that exists, with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::http(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// `value` as a 200 JSON response.
pub(crate) fn ok<T: Serialize>(value: T) -> ApiResult<Response> {
    Ok(Json(value).into_response())
}

/// A provider's webhook answered: its outcome, or a 400 for a bad signature or body (the
/// provider sent something wrong and retrying it will not help), or the error's own status.
pub(crate) fn webhook_reply<T: Serialize>(result: levqor_core::Result<T>) -> ApiResult<Response> {
    match result {
        Ok(outcome) => ok(outcome),
        Err(e) if matches!(e.code, "bad_signature" | "bad_event") => {
            Err(ApiError::http(StatusCode::BAD_REQUEST, e.code, e.message))
        }
        Err(e) => Err(e.into()),
    }
}

/// A request header as text (empty when absent or not text).
pub(crate) fn header_text<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// `value` as a JSON response with `status`.
pub(crate) fn with_status<T: Serialize>(status: StatusCode, value: T) -> ApiResult<Response> {
    Ok((status, Json(value)).into_response())
}

/// `?status=&limit=&cursor=`.
#[derive(Deserialize)]
pub struct PageQuery {
    pub(crate) status: Option<String>,
    pub(crate) limit: Option<String>,
    pub(crate) cursor: Option<String>,
}

impl PageQuery {
    /// `limit` as a number; anything else is a violation at `/limit`.
    pub(crate) fn limit(&self) -> ApiResult<Option<usize>> {
        self.limit
            .as_deref()
            .map(|l| {
                l.parse::<usize>().map_err(|_| {
                    Error::violations(
                        "validation_failed",
                        "bad query parameters",
                        vec![Violation::new("/limit", "must be a whole number")],
                    )
                    .into()
                })
            })
            .transpose()
    }
}

/// The user an admin route names (`/v1/admin/users/{id}/…`), or `None` on the caller's own
/// route.
pub(crate) fn admin_target(path: Option<Path<String>>) -> ApiResult<Option<Uuid>> {
    path.map(|Path(id)| path_id(&id, "user")).transpose()
}
