//! Handlers: each translates a request into one call on [`Levqor`](levqor_core::Levqor) and
//! its result into a response. No rule lives here.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, JsonBody, OptionalJsonBody, path_id};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use levqor_core::{Admission, Error, SubmitRequest, Upserted, UserPatch, Violation};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// `GET /health`: the process is alive.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: the database answers.
pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.levqor.ready().await?;
    Ok(Json(
        json!({"status": "ready", "store": state.levqor.store().backend()}),
    ))
}

/// `GET /v1/schemas/workflow`.
pub async fn workflow_schema(State(state): State<AppState>) -> Response {
    let mut r = Json(state.levqor.workflow_schema().clone()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/schema+json"),
    );
    r
}

/// Reads an optional string field; a value of another type is a violation.
pub(crate) fn string_field(
    body: &Map<String, Value>,
    name: &str,
    bad: &mut Vec<Violation>,
) -> Option<String> {
    match body.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            bad.push(Violation::new(format!("/{name}"), "must be a string"));
            None
        }
    }
}

/// Reads an optional array of strings; anything else is a violation at its pointer.
pub(crate) fn string_list(
    body: &Map<String, Value>,
    name: &str,
    bad: &mut Vec<Violation>,
) -> Option<Vec<String>> {
    match body.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v.as_str() {
                    Some(s) => Some(s.to_string()),
                    None => {
                        bad.push(Violation::new(format!("/{name}/{i}"), "must be a string"));
                        None
                    }
                })
                .collect(),
        ),
        Some(_) => {
            bad.push(Violation::new(
                format!("/{name}"),
                "must be an array of strings",
            ));
            None
        }
    }
}

/// Reads an optional RFC 3339 timestamp; anything else is a violation at its pointer.
pub(crate) fn timestamp_field(
    body: &serde_json::Map<String, Value>,
    name: &str,
    bad: &mut Vec<Violation>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let raw = string_field(body, name, bad)?;
    match chrono::DateTime::parse_from_rfc3339(&raw) {
        Ok(t) => Some(t.with_timezone(&chrono::Utc)),
        Err(_) => {
            bad.push(Violation::new(
                format!("/{name}"),
                "must be an RFC 3339 timestamp",
            ));
            None
        }
    }
}

/// Reads a string field that must be there; its absence is a violation at its pointer.
pub(crate) fn required_string(
    body: &Map<String, Value>,
    name: &str,
    bad: &mut Vec<Violation>,
) -> String {
    let v = string_field(body, name, bad);
    if v.is_none() && !bad.iter().any(|b| b.pointer == format!("/{name}")) {
        bad.push(Violation::new(format!("/{name}"), "is required"));
    }
    v.unwrap_or_default()
}

pub(crate) fn refuse_unknown_fields(
    body: &Map<String, Value>,
    known: &[&str],
    bad: &mut Vec<Violation>,
) {
    for k in body.keys().filter(|k| !known.contains(&k.as_str())) {
        bad.push(Violation::new(format!("/{k}"), "is not a known field"));
    }
}

pub(crate) fn violations_or<T>(bad: Vec<Violation>, ok: T) -> ApiResult<T> {
    if bad.is_empty() {
        Ok(ok)
    } else {
        Err(Error::violations("validation_failed", "the request has problems", bad).into())
    }
}

/// `POST /v1/users`: 201 with a new user, 200 with the one that has the email.
pub async fn create_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["email", "name"], &mut bad);
    let email = string_field(&body, "email", &mut bad);
    let name = string_field(&body, "name", &mut bad);
    if email.is_none() && bad.is_empty() {
        bad.push(Violation::new("/email", "is required"));
    }
    let email = violations_or(bad, email.unwrap_or_default())?;
    Ok(
        match state
            .levqor
            .create_user(&who, &email, name.as_deref())
            .await?
        {
            Upserted::Created(u) => {
                let location = format!("/v1/users/{}", u.id);
                (StatusCode::CREATED, [(header::LOCATION, location)], Json(u)).into_response()
            }
            Upserted::Existing(u) => (StatusCode::OK, Json(u)).into_response(),
        },
    )
}

/// `?email=`.
#[derive(Deserialize)]
pub struct EmailQuery {
    email: Option<String>,
}

/// `GET /v1/users?email=`.
pub async fn find_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<EmailQuery>,
) -> ApiResult<Response> {
    match q.email {
        Some(email) => Ok(Json(state.levqor.find_user(&who, &email).await?).into_response()),
        None => Err(Error::violations(
            "validation_failed",
            "name the user",
            vec![Violation::new("/email", "query parameter is required")],
        )
        .into()),
    }
}

/// `GET /v1/users/{id}`.
pub async fn get_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    Ok(Json(state.levqor.get_user(&who, id).await?).into_response())
}

/// `PATCH /v1/users/{id}`.
pub async fn patch_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["email", "name"], &mut bad);
    let email = string_field(&body, "email", &mut bad);
    if body.get("email").is_some_and(Value::is_null) {
        bad.push(Violation::new("/email", "cannot be removed"));
    }
    let name = body
        .contains_key("name")
        .then(|| string_field(&body, "name", &mut bad));
    let patch = violations_or(bad, UserPatch { email, name })?;
    Ok(Json(state.levqor.update_user(&who, id, patch).await?).into_response())
}

/// `POST /v1/users/{id}/keys`: the secret is in this response and never again.
pub async fn create_key(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["scopes"], &mut bad);
    let scopes = string_list(&body, "scopes", &mut bad);
    let scopes = violations_or(bad, scopes)?;
    let issued = state.levqor.create_key(&who, id, scopes).await?;
    let k = issued.key;
    let body = json!({"id": k.id, "key": issued.secret, "prefix": k.prefix, "scopes": k.scopes, "user_id": k.user_id, "created_at": k.created_at});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/users/{id}/keys`: no secrets.
pub async fn list_keys(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    Ok(Json(json!({"keys": state.levqor.list_keys(&who, id).await?})).into_response())
}

/// `DELETE /v1/keys/{id}`.
pub async fn revoke_key(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "key")?;
    Ok(Json(state.levqor.revoke_key(&who, id).await?).into_response())
}

/// `POST /v1/jobs`: 202 with the job and its `Location`. A replayed `Idempotency-Key` returns
/// the first job with `Idempotent-Replayed: true`.
pub async fn submit_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(
        &body,
        &["workflow", "input", "max_attempts", "run_after"],
        &mut bad,
    );
    let workflow = body.get("workflow").cloned().unwrap_or_else(|| {
        bad.push(Violation::new("/workflow", "is required"));
        Value::Null
    });
    let input = match body.get("input") {
        None | Some(Value::Null) => json!({}),
        Some(v) => v.clone(),
    };
    let max_attempts = match body.get("max_attempts") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                bad.push(Violation::new("/max_attempts", "must be an integer"));
                None
            }
        },
    };
    let run_after = match body.get("run_after") {
        None | Some(Value::Null) => None,
        Some(v) => match v
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        {
            Some(t) => Some(t.with_timezone(&chrono::Utc)),
            None => {
                bad.push(Violation::new(
                    "/run_after",
                    "must be an RFC 3339 timestamp",
                ));
                None
            }
        },
    };
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s) => Some(s.to_string()),
            Err(_) => {
                bad.push(Violation::new(
                    "/idempotency_key",
                    "the Idempotency-Key header must be printable ASCII",
                ));
                None
            }
        },
    };
    let request = violations_or(
        bad,
        SubmitRequest {
            workflow,
            input,
            max_attempts,
            run_after,
            idempotency_key,
        },
    )?;
    let submitted = state.levqor.submit_job(&who, request).await?;
    let replayed = matches!(submitted.admission, Admission::Replayed(_));
    let job = submitted.admission.job();
    let mut body =
        serde_json::to_value(job).map_err(|e| ApiError::from(Error::internal(e.to_string())))?;
    body["warnings"] = json!(submitted.warnings);
    if let Some(screening) = submitted.screening {
        body["screening"] = screening;
    }
    if let Some(quote) = submitted.quote {
        body["quote"] = quote;
    }
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
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

/// `?status=&limit=&cursor=`.
#[derive(Deserialize)]
pub struct PageQuery {
    pub(crate) status: Option<String>,
    pub(crate) limit: Option<String>,
    pub(crate) cursor: Option<String>,
}

pub(crate) fn parse_limit(raw: Option<&str>) -> ApiResult<Option<usize>> {
    raw.map(|l| {
        l.parse::<usize>().map_err(|_| {
            Error::violations(
                "validation_failed",
                "bad query parameters",
                vec![Violation::new("/limit", "must be a whole number")],
            )
            .into()
        })
    })
    .transpose()
}

/// `GET /v1/jobs`: the caller's jobs, newest first, with a cursor.
pub async fn list_jobs(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let limit = parse_limit(q.limit.as_deref())?;
    let page = state
        .levqor
        .list_jobs(&who, q.status.as_deref(), limit, q.cursor.as_deref())
        .await?;
    Ok(Json(json!({"jobs": page.items, "next_cursor": page.next_cursor})).into_response())
}

/// `GET /v1/jobs/{id}`.
pub async fn get_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "job")?;
    Ok(Json(state.levqor.get_job(&who, id).await?).into_response())
}

/// `POST /v1/jobs/{id}/cancel`.
pub async fn cancel_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "job")?;
    Ok(Json(state.levqor.cancel_job(&who, id).await?).into_response())
}

/// `GET /v1/jobs/{id}/steps`.
pub async fn job_steps(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "job")?;
    Ok(Json(json!({"steps": state.levqor.job_steps(&who, id).await?})).into_response())
}

/// `GET /v1/admin/outbox`.
pub async fn outbox(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let limit = parse_limit(q.limit.as_deref())?;
    let page = state
        .levqor
        .list_outbox(&who, limit, q.cursor.as_deref())
        .await?;
    Ok(Json(json!({"messages": page.items, "next_cursor": page.next_cursor})).into_response())
}

/// Any route that does not exist.
pub async fn not_found() -> ApiError {
    ApiError::http(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// A route that exists, with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::http(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
