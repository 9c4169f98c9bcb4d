//! Handlers for terms, marketing consent, objections, screening, exports, erasure, retention
//! and the compliance dashboard. Like every handler, each translates one request into one call
//! on the core; the rules live there.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, JsonBody, OptionalJsonBody, path_id};
use crate::routes::{
    PageQuery, parse_limit, refuse_unknown_fields, required_string, string_field, string_list,
    timestamp_field, violations_or,
};
use crate::state::AppState;
use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use levqor_core::consent::{ClientInfo, Unsubscribe};
use levqor_core::{Error, Principal, Violation};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use uuid::Uuid;

/// Where the request came from: the peer address (when the server records it) and the
/// `User-Agent`.
pub struct Client(pub ClientInfo, pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(500).collect());
        Ok(Client(
            ClientInfo {
                ip: ip.map(|i| i.to_string()),
                user_agent,
            },
            ip,
        ))
    }
}

fn ok<T: serde::Serialize>(value: T) -> ApiResult<Response> {
    Ok(Json(
        serde_json::to_value(value).map_err(|e| ApiError::from(Error::internal(e.to_string())))?,
    )
    .into_response())
}

fn bool_field(body: &Map<String, Value>, name: &str, bad: &mut Vec<Violation>) -> Option<bool> {
    match body.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            bad.push(Violation::new(format!("/{name}"), "must be true or false"));
            None
        }
    }
}

/// `POST /v1/admin/terms`.
pub async fn publish_terms(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(
        &body,
        &["version", "effective_at", "changelog", "material"],
        &mut bad,
    );
    let version = required_string(&body, "version", &mut bad);
    let changelog = string_field(&body, "changelog", &mut bad).unwrap_or_default();
    let material = bool_field(&body, "material", &mut bad).unwrap_or(false);
    let effective_at = timestamp_field(&body, "effective_at", &mut bad);
    violations_or(bad, ())?;
    let terms = state
        .levqor
        .publish_terms(&who, &version, effective_at, &changelog, material)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(terms))).into_response())
}

/// `GET /v1/terms`: every published version, newest first (no key needed).
pub async fn list_terms(State(state): State<AppState>) -> ApiResult<Response> {
    ok(json!({"versions": state.levqor.list_terms().await?}))
}

/// `POST /v1/terms/accept`.
pub async fn accept_terms(
    State(state): State<AppState>,
    Caller(who): Caller,
    Client(client, _): Client,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["version"], &mut bad);
    let version = required_string(&body, "version", &mut bad);
    violations_or(bad, ())?;
    ok(state
        .levqor
        .accept_terms(&who, None, &version, client)
        .await?)
}

/// `GET /v1/terms/status`.
pub async fn terms_status(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Response> {
    ok(state.levqor.terms_status(&who, None).await?)
}

/// `GET /v1/terms/history` and `GET /v1/admin/users/{id}/terms`.
pub async fn terms_history(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    ok(json!({
        "status": state.levqor.terms_status(&who, user).await?,
        "acceptances": state.levqor.terms_history(&who, user).await?,
    }))
}

fn admin_target(path: Option<Path<String>>) -> ApiResult<Option<Uuid>> {
    path.map(|Path(id)| path_id(&id, "user")).transpose()
}

/// `POST /v1/marketing/subscribe` (no key; limited per address): 202.
pub async fn subscribe(
    State(state): State<AppState>,
    Client(_, ip): Client,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    state.public_limit.check(ip)?;
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["email", "categories"], &mut bad);
    let email = required_string(&body, "email", &mut bad);
    let categories = string_list(&body, "categories", &mut bad);
    violations_or(bad, ())?;
    let done = state
        .levqor
        .subscribe(&email, categories.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!(done))).into_response())
}

/// `?token=`.
#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn token_of(q: Option<String>, body: &Map<String, Value>) -> ApiResult<Option<String>> {
    let mut bad = Vec::new();
    let from_body = string_field(body, "token", &mut bad);
    violations_or(bad, q.or(from_body))
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
    let sub = state.levqor.confirm_subscription(&token).await?;
    ok(json!({"status": sub.status, "categories": sub.categories}))
}

/// `POST /v1/marketing/unsubscribe` (a link's token, in the query or the body; or the caller's
/// key) and `GET` for links followed from an email.
pub async fn unsubscribe(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<TokenQuery>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Response> {
    let token = token_of(q.token, &body)?;
    let sub = match token {
        Some(t) => state.levqor.unsubscribe(Unsubscribe::Token(&t)).await?,
        None => {
            let who = caller_from(&state, &headers).await?;
            state.levqor.unsubscribe(Unsubscribe::User(&who)).await?
        }
    };
    ok(json!({"status": sub.status, "categories": sub.categories}))
}

async fn caller_from(state: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<Principal> {
    let (mut parts, ()) = axum::http::Request::new(()).into_parts();
    parts.headers = headers.clone();
    let Caller(who) = Caller::from_request_parts(&mut parts, state).await?;
    Ok(who)
}

/// `POST /v1/marketing/status` (no key; limited per address).
pub async fn marketing_status(
    State(state): State<AppState>,
    Client(_, ip): Client,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    state.public_limit.check(ip)?;
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["email"], &mut bad);
    let email = required_string(&body, "email", &mut bad);
    violations_or(bad, ())?;
    let sub = state.levqor.subscription_status(&email).await?;
    ok(json!({"status": sub.status, "categories": sub.categories}))
}

/// `GET /v1/marketing/preferences`.
pub async fn preferences(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Response> {
    ok(state.levqor.preferences(&who).await?)
}

/// `PUT /v1/marketing/preferences` `{"categories": [...]}`.
pub async fn set_preferences(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["categories"], &mut bad);
    let categories = string_list(&body, "categories", &mut bad);
    if categories.is_none() && bad.is_empty() {
        bad.push(Violation::new("/categories", "is required"));
    }
    let categories = violations_or(bad, categories.unwrap_or_default())?;
    ok(state.levqor.set_preferences(&who, &categories).await?)
}

/// `POST /v1/admin/marketing/send` `{"category", "subject", "body"}`.
pub async fn send_marketing(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["category", "subject", "body"], &mut bad);
    let category = required_string(&body, "category", &mut bad);
    let subject = required_string(&body, "subject", &mut bad);
    let text = required_string(&body, "body", &mut bad);
    violations_or(bad, ())?;
    ok(state
        .levqor
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
    ok(json!({"objections": state.levqor.objections(&who, user).await?}))
}

/// `POST /v1/me/objections` `{"kind", "objected"}` (and the admin's route).
pub async fn set_objection(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["kind", "objected"], &mut bad);
    let kind = required_string(&body, "kind", &mut bad);
    let objected = bool_field(&body, "objected", &mut bad);
    if objected.is_none() && !bad.iter().any(|b| b.pointer == "/objected") {
        bad.push(Violation::new("/objected", "is required"));
    }
    violations_or(bad, ())?;
    let all = state
        .levqor
        .set_objection(&who, user, &kind, objected.unwrap_or(true))
        .await?;
    ok(json!({"objections": all}))
}

/// `GET /v1/admin/consent/verify`.
pub async fn verify_ledger(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Response> {
    ok(state.levqor.verify_ledger(&who).await?)
}

/// `POST /v1/screen` `{"text"}`.
pub async fn screen(
    State(state): State<AppState>,
    Caller(_who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["text"], &mut bad);
    let text = required_string(&body, "text", &mut bad);
    violations_or(bad, ())?;
    ok(state.levqor.screen_text(&text).await?)
}

/// `GET /v1/admin/screening/rules`.
pub async fn screening_rules(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Response> {
    ok(state.levqor.screening_rules(&who).await?)
}

/// `PUT /v1/admin/screening/rules` `{"rules": [{"term", "category", "severity"}]}`.
pub async fn set_screening_rules(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ok(state
        .levqor
        .set_screening_rules(&who, Value::Object(body))
        .await?)
}

/// `POST /v1/jobs/{id}/appeal` `{"reason"}`.
pub async fn appeal(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "refused job")?;
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["reason"], &mut bad);
    let reason = required_string(&body, "reason", &mut bad);
    violations_or(bad, ())?;
    let record = state.levqor.appeal(&who, id, &reason).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(record))).into_response())
}

/// `GET /v1/admin/appeals`: pending appeals.
pub async fn appeals(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    ok(json!({"appeals": state.levqor.pending_appeals(&who).await?}))
}

/// `POST /v1/admin/appeals/{id}` `{"approve": true, "note"}`.
pub async fn decide_appeal(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "appeal")?;
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["approve", "note"], &mut bad);
    let approve = bool_field(&body, "approve", &mut bad);
    if approve.is_none() && !bad.iter().any(|b| b.pointer == "/approve") {
        bad.push(Violation::new("/approve", "is required"));
    }
    let note = string_field(&body, "note", &mut bad);
    violations_or(bad, ())?;
    ok(state
        .levqor
        .decide_appeal(&who, id, approve.unwrap_or(false), note.as_deref())
        .await?)
}

/// `POST /v1/admin/jobs/{id}/approve`: lets a held job run.
pub async fn approve_job(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "job")?;
    ok(state.levqor.approve_job(&who, id).await?)
}

/// `POST /v1/me/export` and `POST /v1/admin/users/{id}/export`: 202; the ZIP arrives by email.
pub async fn export(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    let record = state.levqor.export_user(&who, user).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(record))).into_response())
}

/// `POST /v1/me/erase` and `POST /v1/admin/users/{id}/erase`.
pub async fn erase(
    State(state): State<AppState>,
    Caller(who): Caller,
    user: Option<Path<String>>,
) -> ApiResult<Response> {
    let user = admin_target(user)?;
    ok(state.levqor.erase_user(&who, user).await?)
}

/// `GET /v1/me`.
pub async fn me(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    ok(state.levqor.me(&who).await?)
}

/// `POST /v1/events` `{"name", "properties"}` or `{"events": [{"name", "properties"}, ...]}`.
pub async fn record_events(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["name", "properties", "events"], &mut bad);
    let one = |e: &Map<String, Value>, at: &str, bad: &mut Vec<Violation>| -> (String, Value) {
        let name = match e.get("name") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                bad.push(Violation::new(
                    format!("{at}/name"),
                    "is required and must be a string",
                ));
                String::new()
            }
        };
        (
            name,
            e.get("properties").cloned().unwrap_or_else(|| json!({})),
        )
    };
    let events: Vec<(String, Value)> = match body.get("events") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, e)| match e.as_object() {
                Some(e) => one(e, &format!("/events/{i}"), &mut bad),
                None => {
                    bad.push(Violation::new(format!("/events/{i}"), "must be an object"));
                    (String::new(), json!({}))
                }
            })
            .collect(),
        Some(_) => {
            bad.push(Violation::new("/events", "must be an array"));
            Vec::new()
        }
        None => vec![one(&body, "", &mut bad)],
    };
    violations_or(bad, ())?;
    let recorded = state.levqor.record_events(&who, &events).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"recorded": recorded}))).into_response())
}

/// `PUT /v1/admin/users/{id}/legal-hold` `{"reason"}`.
pub async fn set_legal_hold(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut bad = Vec::new();
    refuse_unknown_fields(&body, &["reason"], &mut bad);
    let reason = required_string(&body, "reason", &mut bad);
    violations_or(bad, ())?;
    ok(state.levqor.set_legal_hold(&who, id, &reason).await?)
}

/// `DELETE /v1/admin/users/{id}/legal-hold`.
pub async fn clear_legal_hold(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    state.levqor.clear_legal_hold(&who, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/admin/retention/policies`.
pub async fn retention_policies(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<Response> {
    ok(state.levqor.retention_policies(&who).await?)
}

/// `PUT /v1/admin/retention/policies` `{"events": 30, ...}` (days).
pub async fn set_retention_policies(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ok(state.levqor.set_retention_policies(&who, &body).await?)
}

/// `?dry_run=`.
#[derive(Deserialize)]
pub struct DryRunQuery {
    dry_run: Option<String>,
}

/// `POST /v1/admin/retention/sweep?dry_run=true`.
pub async fn sweep(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<DryRunQuery>,
) -> ApiResult<Response> {
    let dry_run = match q.dry_run.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => {
            return Err(Error::violations(
                "validation_failed",
                "bad query parameters",
                vec![Violation::new("/dry_run", "must be true or false")],
            )
            .into());
        }
    };
    ok(state.levqor.sweep_retention(&who, dry_run).await?)
}

/// `GET /v1/admin/compliance`.
pub async fn compliance(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    ok(state.levqor.compliance(&who).await?)
}

/// `GET /v1/admin/audit`.
pub async fn audit(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let limit = parse_limit(q.limit.as_deref())?;
    let page = state
        .levqor
        .audit_log(&who, limit, q.cursor.as_deref())
        .await?;
    ok(json!({"records": page.items, "next_cursor": page.next_cursor}))
}
