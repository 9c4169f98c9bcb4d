//! Handlers for credits and quotes: balances, ledger entries, admin grants.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, JsonBody, path_id};
use crate::routes::{PageQuery, parse_limit, refuse_unknown_fields, string_field, violations_or};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use levqor_core::{Error, Violation};
use serde_json::{Value, json};

/// `GET /v1/credits` and `GET /v1/admin/users/{id}/credits`: `{"balance","available","held"}`.
pub async fn credits(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = user.map(|Path(id)| path_id(&id, "user")).transpose()?;
    Ok(Json(state.levqor.credits(&who, user).await?).into_response())
}

/// `GET /v1/credits/entries?limit=&cursor=`: newest first.
pub async fn entries(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let limit = parse_limit(q.limit.as_deref())?;
    let page = state
        .levqor
        .credit_entries(&who, None, limit, q.cursor.as_deref())
        .await?;
    Ok(Json(json!({"entries": page.items, "next_cursor": page.next_cursor})).into_response())
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
    let mut bad = Vec::new();
    refuse_unknown_fields(
        &body,
        &[
            "credits",
            "reason",
            "expires_at",
            "idempotency_key",
            "priority",
        ],
        &mut bad,
    );
    let credits = match body.get("credits") {
        Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or_default(),
        _ => {
            bad.push(Violation::new(
                "/credits",
                "is required and must be a whole number",
            ));
            0
        }
    };
    let priority = match body.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(p) => p,
            None => {
                bad.push(Violation::new("/priority", "must be a whole number"));
                0
            }
        },
    };
    let reason = string_field(&body, "reason", &mut bad);
    let key = string_field(&body, "idempotency_key", &mut bad);
    if key.is_none() && !bad.iter().any(|b| b.pointer == "/idempotency_key") {
        bad.push(Violation::new("/idempotency_key", "is required"));
    }
    let expires_at = match string_field(&body, "expires_at", &mut bad) {
        None => None,
        Some(s) => match chrono::DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => {
                bad.push(Violation::new(
                    "/expires_at",
                    "must be an RFC 3339 timestamp",
                ));
                None
            }
        },
    };
    violations_or(bad, ())?;
    let (entry, created) = state
        .levqor
        .grant_credits(
            &who,
            id,
            credits,
            reason.as_deref(),
            expires_at,
            priority,
            &key.unwrap_or_default(),
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(entry))).into_response())
}

/// `POST /v1/quote` `{"workflow"}`: the price and its components.
pub async fn quote(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["workflow", "input"], &mut bad);
    let workflow = body.get("workflow").cloned().unwrap_or_else(|| {
        bad.push(Violation::new("/workflow", "is required"));
        Value::Null
    });
    violations_or(bad, ())?;
    let q = state.levqor.quote(&who, &workflow).await?;
    Ok(
        Json(serde_json::to_value(q).map_err(|e| ApiError::from(Error::internal(e.to_string())))?)
            .into_response(),
    )
}

/// `GET /v1/usage` (and `GET /v1/admin/users/{id}/usage`): the month's calls, by day.
pub async fn usage(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = user.map(|Path(id)| path_id(&id, "user")).transpose()?;
    Ok(Json(state.levqor.usage(&who, user).await?).into_response())
}

/// `GET /v1/tiers`: the developer tiers (no key needed).
pub async fn tiers(State(state): State<AppState>) -> Response {
    Json(json!({"tiers": state.levqor.tiers()})).into_response()
}

/// `PATCH /v1/admin/users/{id}` `{"tier"}`.
pub async fn patch_account(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["tier"], &mut bad);
    let tier = string_field(&body, "tier", &mut bad);
    if tier.is_none() && bad.is_empty() {
        bad.push(Violation::new("/tier", "is required"));
    }
    violations_or(bad, ())?;
    let tier = state
        .levqor
        .set_tier(&who, id, &tier.unwrap_or_default())
        .await?;
    Ok(Json(json!({"id": id, "tier": tier})).into_response())
}
