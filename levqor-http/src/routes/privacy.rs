//! Data subject rights and retention: exports, erasure, events, legal holds, retention, the
//! compliance dashboard and the audit log.

use super::{PageQuery, admin_target, ok, with_status};
use crate::error::ApiResult;
use crate::extract::{Caller, Fields, JsonBody, path_id};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use levqor_core::{Error, Violation};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The routes of privacy.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me/export", post(export))
        .route("/v1/admin/users/{id}/export", post(export))
        .route("/v1/me/erase", post(erase))
        .route("/v1/admin/users/{id}/erase", post(erase))
        .route("/v1/events", post(record_events))
        .route(
            "/v1/admin/users/{id}/legal-hold",
            put(set_legal_hold).delete(clear_legal_hold),
        )
        .route(
            "/v1/admin/retention/policies",
            get(retention_policies).put(set_retention_policies),
        )
        .route("/v1/admin/retention/sweep", post(sweep))
        .route("/v1/admin/compliance", get(compliance))
        .route("/v1/admin/audit", get(audit))
}

/// `POST /v1/me/export` and `POST /v1/admin/users/{id}/export`: 202; the ZIP arrives by email.
pub async fn export(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    let record = state.levqor.privacy().export_user(&who, user).await?;
    with_status(StatusCode::ACCEPTED, record)
}

/// `POST /v1/me/erase` and `POST /v1/admin/users/{id}/erase`.
pub async fn erase(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    ok(state.levqor.privacy().erase_user(&who, user).await?)
}

/// One event of a `POST /v1/events` body, at `at`.
fn event(f: &mut Fields<'_>, e: &Map<String, Value>, at: &str) -> (String, Value) {
    let name = match e.get("name") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            f.violation(&format!("{at}name"), "is required and must be a string");
            String::new()
        }
    };
    (
        name,
        e.get("properties").cloned().unwrap_or_else(|| json!({})),
    )
}

/// `POST /v1/events` `{"name", "properties"}` or `{"events": [{"name", "properties"}, ...]}`.
pub async fn record_events(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body, &["name", "properties", "events"]);
    let events: Vec<(String, Value)> = match body.get("events") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, e)| match e.as_object() {
                Some(e) => event(&mut f, e, &format!("events/{i}/")),
                None => {
                    f.violation(&format!("events/{i}"), "must be an object");
                    (String::new(), json!({}))
                }
            })
            .collect(),
        Some(_) => {
            f.violation("events", "must be an array");
            Vec::new()
        }
        None => vec![event(&mut f, &body, "")],
    };
    f.finish()?;
    let recorded = state.levqor.privacy().record_events(&who, &events).await?;
    with_status(StatusCode::ACCEPTED, json!({"recorded": recorded}))
}

/// `PUT /v1/admin/users/{id}/legal-hold` `{"reason"}`.
pub async fn set_legal_hold(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut f = Fields::new(&body, &["reason"]);
    let reason = f.required_string("reason");
    f.finish()?;
    ok(state
        .levqor
        .privacy()
        .set_legal_hold(&who, id, &reason)
        .await?)
}

/// `DELETE /v1/admin/users/{id}/legal-hold`: 204.
pub async fn clear_legal_hold(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    state.levqor.privacy().clear_legal_hold(&who, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/admin/retention/policies`.
pub async fn retention_policies(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Response> {
    ok(state.levqor.privacy().retention_policies(&who).await?)
}

/// `PUT /v1/admin/retention/policies` `{"events": 30, ...}` (days).
pub async fn set_retention_policies(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ok(state
        .levqor
        .privacy()
        .set_retention_policies(&who, &body)
        .await?)
}

/// `?dry_run=`.
#[derive(Deserialize)]
pub struct DryRunQuery {
    dry_run: Option<String>,
}

/// `POST /v1/admin/retention/sweep?dry_run=true`.
pub async fn sweep(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<DryRunQuery>,
) -> ApiResult<Response> {
    let dry_run = match q.dry_run.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => {
            return Err(Error::violations(
                "validation_failed",
                "bad query parameters",
                vec![Violation::new("/dry_run", "must be true or false")],
            )
            .into());
        }
    };
    ok(state
        .levqor
        .privacy()
        .sweep_retention(&who, dry_run)
        .await?)
}

/// `GET /v1/admin/compliance`.
pub async fn compliance(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    ok(state.levqor.privacy().compliance(&who).await?)
}

/// `GET /v1/admin/audit?limit=&cursor=`.
pub async fn audit(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let page = state
        .levqor
        .privacy()
        .audit_log(&who, q.limit()?, q.cursor.as_deref())
        .await?;
    ok(json!({"records": page.items, "next_cursor": page.next_cursor}))
}
