//! Users and keys: `/v1/users`, `/v1/keys`, `/v1/me`.

use super::{ok, with_status};
use crate::error::ApiResult;
use crate::extract::{Caller, Fields, JsonBody, OptionalJsonBody, path_id};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use levqor_core::{Error, Upserted, UserPatch, Violation};
use serde::Deserialize;
use serde_json::json;

/// The routes of users and keys.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users", post(create_user).get(find_user))
        .route("/v1/users/{id}", get(get_user).patch(patch_user))
        .route("/v1/users/{id}/keys", post(create_key).get(list_keys))
        .route("/v1/keys/{id}", delete(revoke_key))
        .route("/v1/me", get(me))
}

/// `POST /v1/users`: 201 with a new user, 200 with the one that has the email.
pub async fn create_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body, &["email", "name"]);
    let email = f.required_string("email");
    let name = f.string("name");
    f.finish()?;
    Ok(
        match state
            .levqor
            .users()
            .create(&who, &email, name.as_deref())
            .await?
        {
            Upserted::Created(u) => {
                let location = format!("/v1/users/{}", u.id);
                (
                    StatusCode::CREATED,
                    [(header::LOCATION, location)],
                    axum::Json(u),
                )
                    .into_response()
            }
            Upserted::Existing(u) => axum::Json(u).into_response(),
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
    let Some(email) = q.email else {
        return Err(Error::violations(
            "validation_failed",
            "name the user",
            vec![Violation::new("/email", "query parameter is required")],
        )
        .into());
    };
    ok(state.levqor.users().find(&who, &email).await?)
}

/// `GET /v1/users/{id}`.
pub async fn get_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    ok(state.levqor.users().get(&who, id).await?)
}

/// `PATCH /v1/users/{id}` `{"email", "name"}` (a null name clears it).
pub async fn patch_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut f = Fields::new(&body, &["email", "name"]);
    let email = f.string("email");
    if f.has("email") && f.value("email").is_none() {
        f.violation("email", "cannot be removed");
    }
    let name = f.has("name").then(|| f.string("name"));
    f.finish()?;
    ok(state
        .levqor
        .users()
        .update(&who, id, UserPatch { email, name })
        .await?)
}

/// `POST /v1/users/{id}/keys` `{"scopes"}`: the secret is in this response and never again.
pub async fn create_key(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    let mut f = Fields::new(&body, &["scopes"]);
    let scopes = f.strings("scopes");
    f.finish()?;
    let issued = state.levqor.users().create_key(&who, id, scopes).await?;
    let k = issued.key;
    with_status(
        StatusCode::CREATED,
        json!({"id": k.id, "key": issued.secret, "prefix": k.prefix, "scopes": k.scopes, "user_id": k.user_id, "created_at": k.created_at}),
    )
}

/// `GET /v1/users/{id}/keys`: no secrets.
pub async fn list_keys(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "user")?;
    ok(json!({"keys": state.levqor.users().list_keys(&who, id).await?}))
}

/// `DELETE /v1/keys/{id}`.
pub async fn revoke_key(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = path_id(&id, "key")?;
    ok(state.levqor.users().revoke_key(&who, id).await?)
}

/// `GET /v1/me`.
pub async fn me(State(state): State<AppState>, Caller(who): Caller) -> ApiResult<Response> {
    ok(state.levqor.users().me(&who).await?)
}
