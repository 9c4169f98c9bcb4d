//! Messages: the outbox the admin reads and retries, the email templates, the suppression list
//! and the email provider's webhook.

use super::{PageQuery, header_text, ok, webhook_reply};
use crate::error::ApiResult;
use crate::extract::{Caller, path_id};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde_json::json;

/// The routes of messages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/outbox", get(outbox))
        .route("/v1/admin/outbox/{id}", get(outbox_message))
        .route("/v1/admin/outbox/{id}/retry", post(retry_outbox_message))
        .route("/v1/admin/templates", get(templates))
        .route("/v1/admin/templates/{name}/preview", get(preview_template))
        .route("/v1/admin/suppressions", get(suppressions))
        .route("/v1/admin/suppressions/{email}", delete(remove_suppression))
        .route("/v1/webhooks/resend", post(resend_webhook))
}

/// `GET /v1/admin/outbox?limit=&cursor=`.
pub async fn outbox(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let page = state
        .levqor
        .messages()
        .list_outbox(&who, q.limit()?, q.cursor.as_deref())
        .await?;
    ok(json!({"messages": page.items, "next_cursor": page.next_cursor}))
}

/// `GET /v1/admin/outbox/{id}`: one message, where its delivery stands and every attempt.
pub async fn outbox_message(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "message")?;
    ok(state.levqor.messages().get_outbox(&who, id).await?)
}

/// `POST /v1/admin/outbox/{id}/retry`: puts a `failed` or `unknown` message back in the
/// queue (409 `not_retryable` otherwise).
pub async fn retry_outbox_message(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "message")?;
    ok(state.levqor.messages().retry_outbox(&who, id).await?)
}

/// `GET /v1/admin/suppressions?limit=&cursor=`: suppressed addresses and why, newest first.
pub async fn suppressions(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let page = state
        .levqor
        .messages()
        .list_suppressions(&who, q.limit()?, q.cursor.as_deref())
        .await?;
    ok(json!({"suppressions": page.items, "next_cursor": page.next_cursor}))
}

/// `DELETE /v1/admin/suppressions/{email}`: lifts a suppression (the suppression it was).
pub async fn remove_suppression(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(email): Path<String>,
) -> ApiResult<Response> {
    ok(state
        .levqor
        .messages()
        .remove_suppression(&who, &email)
        .await?)
}

/// `POST /v1/webhooks/resend`: Resend's delivery events, signed (`svix-id`, `svix-timestamp`,
/// `svix-signature`). Hard bounces and complaints suppress the address. A bad or stale
/// signature is a 400 and changes nothing.
pub async fn resend_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    webhook_reply(
        state
            .levqor
            .messages()
            .resend_webhook(
                &body,
                header_text(&headers, "svix-id"),
                header_text(&headers, "svix-timestamp"),
                header_text(&headers, "svix-signature"),
            )
            .await,
    )
}

/// `GET /v1/admin/templates`: the email templates and the parts the deployment overrides.
pub async fn templates(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    ok(state.levqor.messages().list_templates(&who)?)
}

/// `GET /v1/admin/templates/{name}/preview`: a template rendered with its sample data.
pub async fn preview_template(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    ok(state.levqor.messages().preview_template(&who, &name)?)
}
