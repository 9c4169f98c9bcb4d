//! Terms, marketing consent and its preference center, objections and the consent ledger.

use super::{admin_target, ok, with_status};
use crate::error::ApiResult;
use crate::extract::{Caller, Client, Fields, JsonBody, UnsubscribeBody};
use crate::state::AppState;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use levqor_core::consent::{Subscription, Unsubscribe};
use levqor_core::{Error, Principal, Violation};
use serde::Deserialize;
use serde_json::json;

/// The routes of consent.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/terms", get(list_terms))
        .route("/v1/terms/accept", post(accept_terms))
        .route("/v1/terms/status", get(terms_status))
        .route("/v1/terms/history", get(terms_history))
        .route("/v1/admin/terms", post(publish_terms))
        .route("/v1/admin/users/{id}/terms", get(terms_history))
        .route("/v1/marketing/subscribe", post(subscribe))
        .route("/v1/marketing/confirm", get(confirm))
        .route(
            "/v1/marketing/unsubscribe",
            post(unsubscribe).get(unsubscribe),
        )
        .route("/v1/marketing/status", post(marketing_status))
        .route(
            "/v1/marketing/preferences",
            get(preferences).put(set_preferences),
        )
        .route("/v1/admin/marketing/send", post(send_marketing))
        .route("/v1/me/objections", get(objections).post(set_objection))
        .route(
            "/v1/admin/users/{id}/objections",
            get(objections).post(set_objection),
        )
        .route("/v1/admin/consent/verify", get(verify_ledger))
}

/// `POST /v1/admin/terms` `{"version", "effective_at", "changelog", "material"}`.
pub async fn publish_terms(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body, &["version", "effective_at", "changelog", "material"]);
    let version = f.required_string("version");
    let changelog = f.string("changelog").unwrap_or_default();
    let material = f.bool("material").unwrap_or(false);
    let effective_at = f.timestamp("effective_at");
    f.finish()?;
    let terms = state
        .levqor
        .consent()
        .publish_terms(&who, &version, effective_at, &changelog, material)
        .await?;
    with_status(StatusCode::CREATED, terms)
}

/// `GET /v1/terms`: every published version, newest first (no key needed).
pub async fn list_terms(State(state): State<AppState>) -> ApiResult<Response> {
    ok(json!({"versions": state.levqor.consent().list_terms().await?}))
}

/// `POST /v1/terms/accept` `{"version"}`.
pub async fn accept_terms(
    State(state): State<AppState>,
    Caller(who): Caller,
    Client(client, _): Client,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body, &["version"]);
    let version = f.required_string("version");
    f.finish()?;
    ok(state
        .levqor
        .consent()
        .accept_terms(&who, None, &version, client)
        .await?)
}

/// `GET /v1/terms/status`.
pub async fn terms_status(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Response> {
    ok(state.levqor.consent().terms_status(&who, None).await?)
}

/// `GET /v1/terms/history` and `GET /v1/admin/users/{id}/terms`.
pub async fn terms_history(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    let consent = state.levqor.consent();
    ok(json!({
        "status": consent.terms_status(&who, user).await?,
        "acceptances": consent.terms_history(&who, user).await?,
    }))
}

/// `POST /v1/marketing/subscribe` `{"email", "categories"}` (no key; limited per address): 202.
pub async fn subscribe(
    State(state): State<AppState>,
    Client(_, ip): Client,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    state.levqor.limit_public(ip)?;
    let mut f = Fields::new(&body, &["email", "categories"]);
    let email = f.required_string("email");
    let categories = f.strings("categories");
    f.finish()?;
    let done = state
        .levqor
        .consent()
        .subscribe(&email, categories.as_deref())
        .await?;
    with_status(StatusCode::ACCEPTED, done)
}

/// `?token=`.
#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// What the marketing routes answer: the consent's status and categories.
fn consent_view(sub: Subscription) -> ApiResult<Response> {
    ok(json!({"status": sub.status, "categories": sub.categories}))
}

/// `GET /v1/marketing/confirm?token=`.
pub async fn confirm(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Response> {
    let Some(token) = q.token.filter(|t| !t.trim().is_empty()) else {
        return Err(Error::violations(
            "validation_failed",
            "the link has no token",
            vec![Violation::new("/token", "query parameter is required")],
        )
        .into());
    };
    consent_view(state.levqor.consent().confirm_subscription(&token).await?)
}

/// `POST /v1/marketing/unsubscribe` (a link's token, in the query or the body; or the caller's
/// key; a mail client's one-click form post, RFC 8058) and `GET` for links followed from an
/// email.
pub async fn unsubscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
    UnsubscribeBody(body): UnsubscribeBody,
) -> ApiResult<Response> {
    let mut f = Fields::lenient(&body);
    let from_body = f.string("token");
    f.finish()?;
    let consent = state.levqor.consent();
    let sub = match q.token.or(from_body) {
        Some(t) => consent.unsubscribe(Unsubscribe::Token(&t)).await?,
        None => {
            let who = caller_from(&state, &headers).await?;
            consent.unsubscribe(Unsubscribe::User(&who)).await?
        }
    };
    consent_view(sub)
}

async fn caller_from(state: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    let (mut parts, ()) = axum::http::Request::new(()).into_parts();
    parts.headers = headers.clone();
    let Caller(who) = Caller::from_request_parts(&mut parts, state).await?;
    Ok(who)
}

/// `POST /v1/marketing/status` `{"email"}` (no key; limited per address).
pub async fn marketing_status(
    State(state): State<AppState>,
    Client(_, ip): Client,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    state.levqor.limit_public(ip)?;
    let mut f = Fields::new(&body, &["email"]);
    let email = f.required_string("email");
    f.finish()?;
    consent_view(state.levqor.consent().subscription_status(&email).await?)
}

/// `GET /v1/marketing/preferences`.
pub async fn preferences(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Response> {
    ok(state.levqor.consent().preferences(&who).await?)
}

/// `PUT /v1/marketing/preferences` `{"categories": [...]}`.
pub async fn set_preferences(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body, &["categories"]);
    let categories = f.required_strings("categories");
    f.finish()?;
    ok(state
        .levqor
        .consent()
        .set_preferences(&who, &categories)
        .await?)
}

/// `POST /v1/admin/marketing/send` `{"category", "subject", "body"}`.
pub async fn send_marketing(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body, &["category", "subject", "body"]);
    let category = f.required_string("category");
    let subject = f.required_string("subject");
    let text = f.required_string("body");
    f.finish()?;
    ok(state
        .levqor
        .consent()
        .send_marketing(&who, &category, &subject, &text)
        .await?)
}

/// `GET /v1/me/objections` and `GET /v1/admin/users/{id}/objections`.
pub async fn objections(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    ok(json!({"objections": state.levqor.consent().objections(&who, user).await?}))
}

/// `POST /v1/me/objections` `{"kind", "objected"}` (and the admin's route).
pub async fn set_objection(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    let mut f = Fields::new(&body, &["kind", "objected"]);
    let kind = f.required_string("kind");
    let objected = f.required_bool("objected");
    f.finish()?;
    let all = state
        .levqor
        .consent()
        .set_objection(&who, user, &kind, objected)
        .await?;
    ok(json!({"objections": all}))
}

/// `GET /v1/admin/consent/verify`.
pub async fn verify_ledger(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Response> {
    ok(state.levqor.consent().verify_ledger(&who).await?)
}
