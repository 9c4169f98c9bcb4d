//! Credits: balances, ledger entries, admin grants and quotes.

use super::{PageQuery, admin_target, ok, with_status};
use crate::error::ApiResult;
use crate::extract::{Caller, Fields, JsonBody, path_id};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use levqor_core::credits::Grant;
use serde_json::{Value, json};

/// The routes of credits.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/credits", get(credits))
        .route("/v1/credits/entries", get(entries))
        .route("/v1/admin/users/{id}/credits", post(grant).get(credits))
        .route("/v1/quote", post(quote))
}

/// `GET /v1/credits` and `GET /v1/admin/users/{id}/credits`: `{"balance","available","held"}`.
pub async fn credits(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    ok(state.levqor.credits().balance(&who, user).await?)
}

/// `GET /v1/credits/entries?limit=&cursor=`: newest first.
pub async fn entries(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let page = state
        .levqor
        .credits()
        .entries(&who, None, q.limit()?, q.cursor.as_deref())
        .await?;
    ok(json!({"entries": page.items, "next_cursor": page.next_cursor}))
}

/// `POST /v1/admin/users/{id}/credits` `{"credits","reason","expires_at","idempotency_key",
/// "priority"}`: 201 with the entry, 200 with the first one for a replayed key.
pub async fn grant(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut f = Fields::new(
        &body,
        &[
            "credits",
            "reason",
            "expires_at",
            "idempotency_key",
            "priority",
        ],
    );
    let credits = match f.value("credits") {
        Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or_default(),
        _ => {
            f.violation("credits", "is required and must be a whole number");
            0
        }
    };
    let priority = f.value("priority").map_or(0, |v| {
        v.as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or_else(|| {
                f.violation("priority", "must be a whole number");
                0
            })
    });
    let reason = f.string("reason");
    let idempotency_key = f.required_string("idempotency_key");
    let expires_at = f.timestamp("expires_at");
    f.finish()?;
    let grant = Grant {
        credits,
        reason,
        expires_at,
        priority,
        idempotency_key,
    };
    let (entry, created) = state.levqor.credits().grant(&who, id, grant).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    with_status(status, entry)
}

/// `POST /v1/quote` `{"workflow", "discount_code"}`: the price and its components.
pub async fn quote(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body, &["workflow", "input", "discount_code"]);
    let discount = f.string("discount_code");
    let workflow = f.required_value("workflow");
    f.finish()?;
    ok(state
        .levqor
        .billing()
        .quote(&who, &workflow, discount.as_deref())
        .await?)
}
