//! Tiers and API usage.

use super::{admin_target, ok};
use crate::error::ApiResult;
use crate::extract::{Caller, Fields, JsonBody, path_id};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, patch};
use serde_json::json;

/// The routes of quotas.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/usage", get(usage))
        .route("/v1/admin/users/{id}/usage", get(usage))
        .route("/v1/tiers", get(tiers))
        .route("/v1/admin/users/{id}", patch(patch_account))
}

/// `GET /v1/usage` (and `GET /v1/admin/users/{id}/usage`): the month's calls, by day.
pub async fn usage(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    ok(state.levqor.quotas().usage(&who, user).await?)
}

/// `GET /v1/tiers`: the developer tiers (no key needed).
pub async fn tiers(State(state): State<AppState>) -> ApiResult<Response> {
    ok(json!({"tiers": state.levqor.quotas().tiers()}))
}

/// `PATCH /v1/admin/users/{id}` `{"tier"}`.
pub async fn patch_account(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut f = Fields::new(&body, &["tier"]);
    let tier = f.required_string("tier");
    f.finish()?;
    let tier = state.levqor.quotas().set_tier(&who, id, &tier).await?;
    ok(json!({"id": id, "tier": tier}))
}
