//! Jobs: `/v1/jobs` and held-job approval.

use super::{PageQuery, ok};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Fields, JsonBody, path_id};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use levqor_core::{Admission, SubmitRequest};
use serde_json::json;

/// The routes of jobs.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", post(submit_job).get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/steps", get(job_steps))
        .route("/v1/jobs/{id}/watch", get(watch_job))
        .route("/v1/admin/jobs/{id}/approve", post(approve_job))
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
