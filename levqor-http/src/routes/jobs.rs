//! Jobs: `/v1/jobs`, held-job approval, and the outbox the admin reads and retries.

use super::{PageQuery, ok};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Fields, JsonBody, path_id};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use levqor_core::{Admission, SubmitRequest};
use serde_json::json;

/// The routes of jobs and the outbox.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", post(submit_job).get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/steps", get(job_steps))
        .route("/v1/jobs/{id}/watch", get(watch_job))
        .route("/v1/admin/jobs/{id}/approve", post(approve_job))
        .route("/v1/admin/outbox", get(outbox))
        .route("/v1/admin/outbox/{id}", get(outbox_message))
        .route("/v1/admin/outbox/{id}/retry", post(retry_outbox_message))
        .route("/v1/admin/templates", get(templates))
        .route("/v1/admin/suppressions", get(suppressions))
        .route("/v1/admin/suppressions/{email}", delete(remove_suppression))
        .route("/v1/webhooks/resend", post(resend_webhook))
        .route("/v1/admin/templates/{name}/preview", get(preview_template))
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
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    match state
        .levqor
        .messages()
        .resend_webhook(
            &body,
            &header("svix-id"),
            &header("svix-timestamp"),
            &header("svix-signature"),
        )
        .await
    {
        Ok(outcome) => ok(outcome),
        Err(e) if matches!(e.code, "bad_signature" | "bad_event") => Err(
            crate::error::ApiError::http(StatusCode::BAD_REQUEST, e.code, e.message),
        ),
        Err(e) => Err(e.into()),
    }
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

/// `POST /v1/jobs`: 202 with the job and its `Location`. A replayed `Idempotency-Key` returns
/// the first job with `Idempotent-Replayed: true`.
pub async fn submit_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body, SUBMISSION_FIELDS);
    let submission = read_submission(&mut f);
    let idempotency_key = headers.get("idempotency-key").and_then(|v| {
        let key = v.to_str().ok().map(str::to_string);
        if key.is_none() {
            f.violation(
                "idempotency_key",
                "the Idempotency-Key header must be printable ASCII",
            );
        }
        key
    });
    f.finish()?;
    let request = SubmitRequest {
        idempotency_key,
        ..submission
    };
    let submitted = state.levqor.jobs().submit(&who, request).await?;
    let replayed = matches!(submitted.admission, Admission::Replayed(_));
    let job = submitted.admission.job();
    let mut response = (StatusCode::ACCEPTED, Json(&submitted)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)).expect("ids are ASCII"),
    );
    if replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The fields of a submission's body.
pub const SUBMISSION_FIELDS: &[&str] = &["workflow", "input", "max_attempts", "run_after"];

/// Reads a submission's body (`workflow`, `input`, `max_attempts`, `run_after`) into the core's
/// request, leaving each bad field's violation in `f`; the idempotency key is the caller's to
/// add (REST reads it from a header).
pub fn read_submission(f: &mut Fields<'_>) -> SubmitRequest {
    let workflow = f.required_value("workflow");
    let input = f.value("input").cloned().unwrap_or_else(|| json!({}));
    let max_attempts = f.value("max_attempts").and_then(|v| {
        let n = v.as_i64().and_then(|n| i32::try_from(n).ok());
        if n.is_none() {
            f.violation("max_attempts", "must be an integer");
        }
        n
    });
    let run_after = f.value("run_after").and_then(|v| {
        let t = v
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        if t.is_none() {
            f.violation("run_after", "must be an RFC 3339 timestamp");
        }
        t.map(|t| t.with_timezone(&chrono::Utc))
    });
    SubmitRequest {
        workflow,
        input,
        max_attempts,
        run_after,
        idempotency_key: None,
    }
}

/// `GET /v1/jobs?status=&limit=&cursor=`: the caller's jobs, newest first.
pub async fn list_jobs(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let page = state
        .levqor
        .jobs()
        .list(&who, q.status.as_deref(), q.limit()?, q.cursor.as_deref())
        .await?;
    ok(json!({"jobs": page.items, "next_cursor": page.next_cursor}))
}

/// `GET /v1/jobs/{id}`.
pub async fn get_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "job")?;
    ok(state.levqor.jobs().get(&who, id).await?)
}

/// `POST /v1/jobs/{id}/cancel`.
pub async fn cancel_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "job")?;
    ok(state.levqor.jobs().cancel(&who, id).await?)
}

/// `GET /v1/jobs/{id}/steps`.
pub async fn job_steps(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "job")?;
    ok(json!({"steps": state.levqor.jobs().steps(&who, id).await?}))
}

/// `GET /v1/jobs/{id}/watch`: a `text/event-stream` of `job` events, each the job and its
/// steps (`{"job", "steps"}`): the job as it is now, then every change of its status and
/// steps, until it ends. A failure while watching is an `error` event with a problem body.
pub async fn watch_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "job")?;
    let watch = state.levqor.jobs().watch(&who, id).await?;
    let events = futures::stream::unfold(watch, |mut watch| async move {
        let event = match watch.next().await? {
            Ok(snapshot) => Event::default().event("job").json_data(&snapshot),
            Err(e) => Event::default()
                .event("error")
                .json_data(ApiError::from(e).body()),
        };
        Some((event, watch))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `POST /v1/admin/jobs/{id}/approve`: lets a held job run.
pub async fn approve_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "job")?;
    ok(state.levqor.jobs().approve(&who, id).await?)
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
