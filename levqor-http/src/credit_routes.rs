//! Handlers for credits and quotes: balances, ledger entries, admin grants.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, JsonBody, path_id};
use crate::routes::{
    PageQuery, parse_limit, refuse_unknown_fields, required_string, string_field, timestamp_field,
    violations_or,
};
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
    let key = required_string(&body, "idempotency_key", &mut bad);
    let expires_at = timestamp_field(&body, "expires_at", &mut bad);
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
            &key,
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
    refuse_unknown_fields(&body, &["workflow", "input", "discount_code"], &mut bad);
    let discount = string_field(&body, "discount_code", &mut bad);
    let workflow = body.get("workflow").cloned().unwrap_or_else(|| {
        bad.push(Violation::new("/workflow", "is required"));
        Value::Null
    });
    violations_or(bad, ())?;
    let q = state
        .levqor
        .quote(&who, &workflow, discount.as_deref())
        .await?;
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

/// `POST /v1/billing/checkout` `{"pack" | "tier", "discount_code", "success_url", "cancel_url"}`:
/// 201 with the payment page's `url`.
pub async fn checkout(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(
        &body,
        &["pack", "tier", "discount_code", "success_url", "cancel_url"],
        &mut bad,
    );
    let pack = string_field(&body, "pack", &mut bad);
    let tier = string_field(&body, "tier", &mut bad);
    let code = string_field(&body, "discount_code", &mut bad);
    let success = string_field(&body, "success_url", &mut bad);
    let cancel = string_field(&body, "cancel_url", &mut bad);
    violations_or(bad, ())?;
    let base = state.levqor.public_url().to_string();
    let session = state
        .levqor
        .checkout(
            &who,
            pack.as_deref(),
            tier.as_deref(),
            code.as_deref(),
            &success.unwrap_or_else(|| format!("{base}/billing/success")),
            &cancel.unwrap_or_else(|| format!("{base}/billing/cancel")),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

/// `POST /v1/billing/webhook`: the provider's events, signed (`Stripe-Signature`). A bad or
/// stale signature is a 400 and changes nothing; a replayed event is acknowledged and ignored.
pub async fn webhook(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match state.levqor.handle_webhook(&body, signature).await {
        Ok(v) => Ok(Json(v).into_response()),
        Err(e) if matches!(e.code, "bad_signature" | "bad_event") => {
            Err(ApiError::http(StatusCode::BAD_REQUEST, e.code, e.message))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /v1/billing/status` (and the admin's `GET /v1/admin/users/{id}/billing`).
pub async fn billing_status(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = user.map(|Path(id)| path_id(&id, "user")).transpose()?;
    Ok(Json(state.levqor.billing_status(&who, user).await?).into_response())
}

/// `POST /v1/admin/discounts` `{"code" | "count", "prefix", "kind", "value", "expires_at",
/// "max_redemptions"}`: 201 with the codes.
pub async fn create_discounts(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(
        &body,
        &[
            "code",
            "count",
            "prefix",
            "kind",
            "value",
            "expires_at",
            "max_redemptions",
        ],
        &mut bad,
    );
    let int = |name: &str, bad: &mut Vec<Violation>| match body.get(name) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) => Some(n),
            None => {
                bad.push(Violation::new(format!("/{name}"), "must be a whole number"));
                None
            }
        },
    };
    let code = string_field(&body, "code", &mut bad);
    let prefix = string_field(&body, "prefix", &mut bad);
    let kind = string_field(&body, "kind", &mut bad).unwrap_or_default();
    let value = int("value", &mut bad).unwrap_or_default();
    let count = int("count", &mut bad).map(|n| n.max(0) as usize);
    let max = int("max_redemptions", &mut bad);
    let expires_at = timestamp_field(&body, "expires_at", &mut bad);
    violations_or(bad, ())?;
    let codes = state
        .levqor
        .create_discounts(
            &who,
            code.as_deref(),
            count,
            prefix.as_deref(),
            &kind,
            value,
            expires_at,
            max,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"codes": codes}))).into_response())
}

/// `?from=&to=&group_by=`.
#[derive(serde::Deserialize)]
pub struct LedgerQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

/// `GET /v1/admin/ledger?from=&to=&group_by=day|week|month` (default: the last 30 days by day).
pub async fn ledger(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    let parse = |raw: Option<&str>, name: &str, bad: &mut Vec<Violation>| {
        raw.and_then(|s| match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) => Some(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()),
                Err(_) => {
                    bad.push(Violation::new(
                        format!("/{name}"),
                        "must be a date or an RFC 3339 timestamp",
                    ));
                    None
                }
            },
        })
    };
    let to = parse(q.to.as_deref(), "to", &mut bad).unwrap_or_else(chrono::Utc::now);
    let from =
        parse(q.from.as_deref(), "from", &mut bad).unwrap_or(to - chrono::Duration::days(30));
    violations_or(bad, ())?;
    let group_by = q.group_by.as_deref().unwrap_or("day");
    Ok(Json(state.levqor.profit_ledger(&who, from, to, group_by).await?).into_response())
}

/// `GET /v1/admin/autoscale`: whether scaling up is allowed, with the figures.
pub async fn autoscale(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    Ok(Json(state.levqor.autoscale(&who).await?).into_response())
}
