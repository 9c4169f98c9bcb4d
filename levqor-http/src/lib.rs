//! Levqor's REST adapter: [`router`] builds the whole axum app over a
//! [`Levqor`](levqor_core::Levqor) service; [`fetch`] is the outbound HTTP client that
//! `http_request` steps use.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod deliver;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod routes;
pub mod state;
#[cfg(feature = "stripe")]
pub mod stripe;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
pub use state::AppState;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

/// The largest request body accepted (512 KB).
pub const MAX_BODY_BYTES: usize = 512 * 1024;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole REST app.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::routes())
        .merge(routes::users::routes())
        .merge(routes::jobs::routes())
        .merge(routes::messages::routes())
        .merge(routes::screening::routes())
        .merge(routes::consent::routes())
        .merge(routes::privacy::routes())
        .merge(routes::credits::routes())
        .merge(routes::quotas::routes())
        .merge(routes::billing::routes())
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

/// `X-RateLimit-Limit`, `-Remaining` (`unlimited` for a tier without a quota) and `-Reset`
/// (seconds until the monthly quota resets).
fn quota_headers(h: &mut axum::http::HeaderMap, q: &levqor_core::quotas::QuotaStatus) {
    for (name, value) in q.rate_limit_fields() {
        h.insert(
            name,
            HeaderValue::from_str(&value).expect("numbers and words"),
        );
    }
}

/// Echoes a sane `X-Request-Id` or makes one, serves the request with it in scope (so problem
/// bodies and every log line of the request carry it), and sets it on the response.
async fn request_id(req: Request, next: Next) -> Response {
    let id = levqor_core::call::request_id(
        req.headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok()),
    );
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
