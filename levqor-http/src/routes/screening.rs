//! Content screening: free-text screening, the rule set, appeals and their decisions.

use super::{ok, with_status};
use crate::error::ApiResult;
use crate::extract::{Caller, Fields, JsonBody, path_id};
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use levqor_core::screening::MAX_RULES_DOCUMENT_BYTES;
use serde_json::{Value, json};

/// The routes of screening.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/screen", post(screen))
        .route(
            "/v1/admin/screening/rules",
            get(screening_rules)
                .put(set_screening_rules)
                .layer(DefaultBodyLimit::max(MAX_RULES_DOCUMENT_BYTES)),
        )
        .route("/v1/jobs/{id}/appeal", post(appeal))
        .route("/v1/admin/appeals", get(appeals))
        .route("/v1/admin/appeals/{id}", post(decide_appeal))
}

/// `POST /v1/screen` `{"text"}`.
pub async fn screen(
    State(state): State<AppState>,
    Caller(_who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body, &["text"]);
    let text = f.required_string("text");
    f.finish()?;
    ok(state.levqor.screenings().screen_text(&text).await?)
}

/// `GET /v1/admin/screening/rules`.
pub async fn screening_rules(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Response> {
    ok(state.levqor.screenings().rules(&who).await?)
}

/// `PUT /v1/admin/screening/rules` `{"rules": [{"term", "category", "severity"}]}`.
pub async fn set_screening_rules(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ok(state
        .levqor
        .screenings()
        .set_rules(&who, Value::Object(body))
        .await?)
}

/// `POST /v1/jobs/{id}/appeal` `{"reason"}`: 202.
pub async fn appeal(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "refused job")?;
    let mut f = Fields::new(&body, &["reason"]);
    let reason = f.required_string("reason");
    f.finish()?;
    let record = state.levqor.screenings().appeal(&who, id, &reason).await?;
    with_status(StatusCode::ACCEPTED, record)
}

/// `GET /v1/admin/appeals`: pending appeals.
pub async fn appeals(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    ok(json!({"appeals": state.levqor.screenings().pending_appeals(&who).await?}))
}

/// `POST /v1/admin/appeals/{id}` `{"approve", "note"}`.
pub async fn decide_appeal(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "appeal")?;
    let mut f = Fields::new(&body, &["approve", "note"]);
    let approve = f.required_bool("approve");
    let note = f.string("note");
    f.finish()?;
    ok(state
        .levqor
        .screenings()
        .decide_appeal(&who, id, approve, note.as_deref())
        .await?)
}
