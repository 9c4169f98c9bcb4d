//! Levqor's REST adapter: [`router`] builds the whole axum app over a
//! [`Levqor`](levqor_core::Levqor) service; [`fetch`] is the outbound HTTP client that
//! `http_request` steps use.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod credit_routes;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod privacy_routes;
pub mod routes;
pub mod state;
#[cfg(feature = "stripe")]
pub mod stripe;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
pub use state::AppState;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

/// The largest request body accepted (512 KB).
pub const MAX_BODY_BYTES: usize = 512 * 1024;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole REST app.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/v1/schemas/workflow", get(routes::workflow_schema))
        .route(
            "/v1/users",
            post(routes::create_user).get(routes::find_user),
        )
        .route(
            "/v1/users/{id}",
            get(routes::get_user).patch(routes::patch_user),
        )
        .route(
            "/v1/users/{id}/keys",
            post(routes::create_key).get(routes::list_keys),
        )
        .route("/v1/keys/{id}", delete(routes::revoke_key))
        .route("/v1/jobs", post(routes::submit_job).get(routes::list_jobs))
        .route("/v1/jobs/{id}", get(routes::get_job))
        .route("/v1/jobs/{id}/cancel", post(routes::cancel_job))
        .route("/v1/jobs/{id}/steps", get(routes::job_steps))
        .route("/v1/admin/outbox", get(routes::outbox))
        .merge(privacy_router())
        .route("/v1/credits", get(credit_routes::credits))
        .route("/v1/credits/entries", get(credit_routes::entries))
        .route(
            "/v1/admin/users/{id}/credits",
            post(credit_routes::grant).get(credit_routes::credits),
        )
        .route("/v1/quote", post(credit_routes::quote))
        .route("/v1/usage", get(credit_routes::usage))
        .route("/v1/admin/users/{id}/usage", get(credit_routes::usage))
        .route("/v1/tiers", get(credit_routes::tiers))
        .route("/v1/billing/checkout", post(credit_routes::checkout))
        .route("/v1/billing/webhook", post(credit_routes::webhook))
        .route("/v1/billing/status", get(credit_routes::billing_status))
        .route(
            "/v1/admin/users/{id}/billing",
            get(credit_routes::billing_status),
        )
        .route("/v1/admin/discounts", post(credit_routes::create_discounts))
        .route("/v1/admin/ledger", get(credit_routes::ledger))
        .route("/v1/admin/autoscale", get(credit_routes::autoscale))
        .route(
            "/v1/admin/users/{id}",
            axum::routing::patch(credit_routes::patch_account),
        )
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("a handler panicked");
                error::ApiError::from(levqor_core::Error::internal("handler panicked"))
                    .into_response()
            },
        ))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Terms, consent, objections, screening, exports, erasure and retention.
fn privacy_router() -> Router<AppState> {
    use privacy_routes as p;
    Router::new()
        .route("/v1/me", get(p::me))
        .route("/v1/terms", get(p::list_terms))
        .route("/v1/terms/accept", post(p::accept_terms))
        .route("/v1/terms/status", get(p::terms_status))
        .route("/v1/terms/history", get(p::terms_history))
        .route("/v1/admin/terms", post(p::publish_terms))
        .route("/v1/marketing/subscribe", post(p::subscribe))
        .route("/v1/marketing/confirm", get(p::confirm))
        .route(
            "/v1/marketing/unsubscribe",
            post(p::unsubscribe).get(p::unsubscribe),
        )
        .route("/v1/marketing/status", post(p::marketing_status))
        .route(
            "/v1/marketing/preferences",
            get(p::preferences).put(p::set_preferences),
        )
        .route("/v1/admin/marketing/send", post(p::send_marketing))
        .route(
            "/v1/me/objections",
            get(p::objections).post(p::set_objection),
        )
        .route(
            "/v1/admin/users/{id}/objections",
            get(p::objections).post(p::set_objection),
        )
        .route("/v1/admin/users/{id}/terms", get(p::terms_history))
        .route("/v1/admin/consent/verify", get(p::verify_ledger))
        .route("/v1/screen", post(p::screen))
        .route(
            "/v1/admin/screening/rules",
            get(p::screening_rules).put(p::set_screening_rules),
        )
        .route("/v1/jobs/{id}/appeal", post(p::appeal))
        .route("/v1/admin/appeals", get(p::appeals))
        .route("/v1/admin/appeals/{id}", post(p::decide_appeal))
        .route("/v1/admin/jobs/{id}/approve", post(p::approve_job))
        .route("/v1/me/export", post(p::export))
        .route("/v1/admin/users/{id}/export", post(p::export))
        .route("/v1/me/erase", post(p::erase))
        .route("/v1/admin/users/{id}/erase", post(p::erase))
        .route("/v1/events", post(p::record_events))
        .route(
            "/v1/admin/users/{id}/legal-hold",
            put(p::set_legal_hold).delete(p::clear_legal_hold),
        )
        .route(
            "/v1/admin/retention/policies",
            get(p::retention_policies).put(p::set_retention_policies),
        )
        .route("/v1/admin/retention/sweep", post(p::sweep))
        .route("/v1/admin/compliance", get(p::compliance))
        .route("/v1/admin/audit", get(p::audit))
}

/// `X-RateLimit-Limit`, `-Remaining` (`unlimited` for a tier without a quota) and `-Reset`
/// (seconds until the monthly quota resets).
fn quota_headers(h: &mut axum::http::HeaderMap, q: &levqor_core::quotas::QuotaStatus) {
    let number = |n: Option<u64>| match n {
        Some(n) => HeaderValue::from(n),
        None => HeaderValue::from_static("unlimited"),
    };
    h.insert("x-ratelimit-limit", number(q.limit));
    h.insert("x-ratelimit-remaining", number(q.remaining()));
    h.insert("x-ratelimit-reset", HeaderValue::from(q.reset_in_secs));
}

/// Echoes a sane `X-Request-Id` or makes one, serves the request with it in scope (so problem
/// bodies and every log line of the request carry it), and sets it on the response.
async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let started = std::time::Instant::now();
    let quota = std::sync::Mutex::new(None);
    let (mut response, quota) = error::REQUEST_ID
        .scope(
            id.clone(),
            error::QUOTA.scope(quota, async {
                let response = next.run(req).await;
                let status = error::QUOTA.with(|q| q.lock().expect("quota slot").take());
                (response, status)
            }),
        )
        .instrument(span.clone())
        .await;
    if let Some(q) = quota {
        quota_headers(response.headers_mut(), &q);
    }
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "served"
        );
    });
    response.headers_mut().insert(
        X_REQUEST_ID.clone(),
        HeaderValue::from_str(&id).expect("checked ASCII"),
    );
    response
}
