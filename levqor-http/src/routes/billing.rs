//! Billing: checkout, the provider's webhook, billing status, discounts, the profitability
//! ledger and the profit guard.

use super::{admin_target, header_text, ok, webhook_reply, with_status};
use crate::error::ApiResult;
use crate::extract::{Caller, Fields, JsonBody, refuse};
use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use levqor_core::Violation;
use levqor_core::billing::{CheckoutOrder, NewDiscounts};
use serde::Deserialize;
use serde_json::json;

/// The routes of billing.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/billing/checkout", post(checkout))
        .route("/v1/billing/webhook", post(webhook))
        .route("/v1/billing/status", get(billing_status))
        .route("/v1/admin/users/{id}/billing", get(billing_status))
        .route("/v1/admin/discounts", post(create_discounts))
        .route("/v1/admin/ledger", get(ledger))
        .route("/v1/admin/autoscale", get(autoscale))
}

/// `POST /v1/billing/checkout` `{"pack" | "tier", "discount_code", "success_url", "cancel_url"}`:
/// 201 with the payment page's `url`.
pub async fn checkout(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(
        &body,
        &["pack", "tier", "discount_code", "success_url", "cancel_url"],
    );
    let order = CheckoutOrder {
        pack: f.string("pack"),
        tier: f.string("tier"),
        discount_code: f.string("discount_code"),
        success_url: f.string("success_url"),
        cancel_url: f.string("cancel_url"),
    };
    f.finish()?;
    let session = state.levqor.billing().checkout(&who, order).await?;
    with_status(StatusCode::CREATED, session)
}

/// `POST /v1/billing/webhook`: the provider's events, signed (`Stripe-Signature`). A bad or
/// stale signature is a 400 and changes nothing; a replayed event is acknowledged and ignored.
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let signature = header_text(&headers, "stripe-signature");
    webhook_reply(
        state
            .levqor
            .billing()
            .handle_webhook(&body, signature)
            .await,
    )
}

/// `GET /v1/billing/status` (and the admin's `GET /v1/admin/users/{id}/billing`).
pub async fn billing_status(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    ok(state.levqor.billing().status(&who, user).await?)
}

/// `POST /v1/admin/discounts` `{"code" | "count", "prefix", "kind", "value", "expires_at",
/// "max_redemptions"}`: 201 with the codes.
pub async fn create_discounts(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(
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
    );
    let new = NewDiscounts {
        code: f.string("code"),
        prefix: f.string("prefix"),
        kind: f.string("kind").unwrap_or_default(),
        value: f.int("value").unwrap_or_default(),
        count: f.int("count").map(|n| n.max(0) as usize),
        max_redemptions: f.int("max_redemptions"),
        expires_at: f.timestamp("expires_at"),
    };
    f.finish()?;
    let codes = state.levqor.billing().create_discounts(&who, new).await?;
    with_status(StatusCode::CREATED, json!({"codes": codes}))
}

/// `?from=&to=&group_by=`.
#[derive(Deserialize)]
pub struct LedgerQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

/// A date (`2026-11-01`, midnight UTC) or an RFC 3339 timestamp.
fn date_or_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// `GET /v1/admin/ledger?from=&to=&group_by=day|week|month` (default: the last 30 days by day).
pub async fn ledger(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    let mut parse = |raw: Option<&str>, name: &str| {
        raw.and_then(|s| {
            let t = date_or_time(s);
            if t.is_none() {
                bad.push(Violation::new(
                    format!("/{name}"),
                    "must be a date or an RFC 3339 timestamp",
                ));
            }
            t
        })
    };
    let to = parse(q.to.as_deref(), "to");
    let from = parse(q.from.as_deref(), "from");
    refuse(bad)?;
    let billing = state.levqor.billing();
    let (from, to, group_by) = billing.ledger_range(from, to, q.group_by.as_deref());
    ok(billing.profit_ledger(&who, from, to, group_by).await?)
}

/// `GET /v1/admin/autoscale`: whether scaling up is allowed, with the figures.
pub async fn autoscale(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    ok(state.levqor.billing().autoscale(&who).await?)
}
