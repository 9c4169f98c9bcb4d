//! Erasure on the real databases: a user is seeded in every area through the REST router,
//! erased, and then every text column of every table is searched for their email and name.
//! The consent ledger still verifies afterwards, and tampering with one record is named.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use levqor_core::{EngineConfig, Levqor, OutboxNotifier, StepRunner, Store, SystemClock};
use levqor_http::fetch::ReqwestHttp;
use levqor_http::{AppState, router};
use serde_json::{Value, json};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const ADMIN: &str = "admin-secret";
const EMAIL: &str = "erasable.person@example.com";
const NAME: &str = "Ermintrude Quillfeather";

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::USER_AGENT, format!("agent of {NAME}"));
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    };
    let resp = app.clone().oneshot(req.unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Every (table, column) holding text, and how to search it, per backend.
async fn text_columns(url: &str) -> Vec<(String, String)> {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query(
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        rows.iter().map(|r| (r.get("t"), r.get("c"))).collect()
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query(
            "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
             WHERE table_schema = 'public' AND data_type IN ('text', 'jsonb', 'json', 'character varying')",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        rows.iter().map(|r| (r.get("t"), r.get("c"))).collect()
    }
}

/// The (table, column) pairs where `needle` appears, ignoring case.
async fn find_everywhere(url: &str, needle: &str) -> Vec<(String, String)> {
    let mut hits = Vec::new();
    let pattern = format!("%{}%", needle.to_lowercase());
    for (t, c) in text_columns(url).await {
        let n: i64 = if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let sql =
                format!("SELECT COUNT(*) FROM \"{t}\" WHERE lower(CAST(\"{c}\" AS TEXT)) LIKE $1");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(&pattern)
                .fetch_one(&pool)
                .await
                .unwrap()
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let sql = format!("SELECT COUNT(*) FROM \"{t}\" WHERE lower(\"{c}\"::text) LIKE $1");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(&pattern)
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        if n > 0 {
            hits.push((t, c));
        }
    }
    hits
}

async fn scenario(url: &str) {
    let store = levqor_store::connect(url).await.unwrap();
    let runner = Arc::new(StepRunner::new(
        Arc::new(ReqwestHttp::new(true, 1 << 20)),
        Arc::new(OutboxNotifier::new(store.clone())),
        Vec::new(),
    ));
    let mut levqor = Levqor::new(store.clone(), Arc::new(SystemClock), runner, Some(ADMIN));
    levqor.set_signup_grant(1_000_000);
    let levqor = Arc::new(levqor);
    let engine = levqor.start_engine(EngineConfig {
        workers: 4,
        poll_interval: Duration::from_millis(20),
        ..EngineConfig::default()
    });
    let app = router(AppState::new(levqor.clone()));

    // Someone else, who must keep everything.
    let (s, other) = call(
        &app,
        "POST",
        "/v1/users",
        ADMIN,
        Some(json!({"email": "bystander@example.com", "name": "Bystander"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    // The person, in every area.
    let (s, user) = call(
        &app,
        "POST",
        "/v1/users",
        ADMIN,
        Some(json!({"email": EMAIL, "name": NAME})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{user:?}");
    let id = user["id"].as_str().unwrap().to_string();
    let (_, key) = call(&app, "POST", &format!("/v1/users/{id}/keys"), ADMIN, None).await;
    let key = key["key"].as_str().unwrap().to_string();
    call(
        &app,
        "POST",
        "/v1/admin/terms",
        ADMIN,
        Some(json!({"version": "v1", "material": true})),
    )
    .await;
    let (s, _) = call(
        &app,
        "POST",
        "/v1/terms/accept",
        &key,
        Some(json!({"version": "v1"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let workflow = json!({"name": "greet", "steps": [
        {"id": "hello", "type": "log", "message": "hello {{input.name}} <{{input.email}}>"},
        {"id": "mail", "type": "email", "to": "{{input.email}}", "subject": "Hi {{input.name}}", "body": "about my mortgage"}
    ]});
    let (s, job) = call(
        &app,
        "POST",
        "/v1/jobs",
        &key,
        Some(json!({"workflow": workflow, "input": {"name": NAME, "email": EMAIL}})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job:?}");
    assert_eq!(
        job["screening"]["verdict"], "warn",
        "a screening record too"
    );
    let job_id = job["id"].as_str().unwrap().to_string();
    let done = support::wait_for(Duration::from_secs(20), || {
        let app = app.clone();
        let (key, job_id) = (key.clone(), job_id.clone());
        async move {
            call(&app, "GET", &format!("/v1/jobs/{job_id}"), &key, None)
                .await
                .1["status"]
                == "succeeded"
        }
    })
    .await;
    assert!(done, "the job ran");
    call(&app, "POST", "/v1/jobs", &key, Some(json!({"workflow": workflow, "input": {"name": NAME}, "run_after": "2099-01-01T00:00:00Z"}))).await;
    let (s, _) = call(&app, "POST", "/v1/jobs", &key, Some(json!({"workflow": {"name": "x", "steps": [{"id": "a", "type": "log", "message": "launder money for {{input.n}}"}]}, "input": {"n": NAME}}))).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a refused job is recorded too"
    );
    let (s, _) = call(
        &app,
        "POST",
        "/v1/events",
        &key,
        Some(json!({"name": "signup", "properties": {"email": EMAIL, "name": NAME}})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    call(
        &app,
        "POST",
        "/v1/marketing/subscribe",
        ADMIN,
        Some(json!({"email": EMAIL, "categories": ["offers"]})),
    )
    .await;
    call(
        &app,
        "POST",
        "/v1/me/objections",
        &key,
        Some(json!({"kind": "analytics", "objected": true})),
    )
    .await;
    let (s, _) = call(&app, "POST", "/v1/me/export", &key, None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(
        !find_everywhere(url, EMAIL).await.is_empty(),
        "the seed is findable"
    );
    assert!(!find_everywhere(url, NAME).await.is_empty());
    let ledger_before = call(&app, "GET", "/v1/admin/consent/verify", ADMIN, None)
        .await
        .1;
    assert_eq!(ledger_before["ok"], true, "{ledger_before:?}");

    let (s, summary) = call(&app, "POST", "/v1/me/erase", &key, None).await;
    assert_eq!(s, StatusCode::OK, "{summary:?}");
    for area in [
        "profile",
        "keys",
        "jobs",
        "consents",
        "events",
        "screenings",
        "messages",
        "exports",
    ] {
        assert!(summary["areas"][area].is_object(), "{area} in {summary:?}");
    }
    assert_eq!(
        summary["areas"]["consents"]["pseudonymized"], 1,
        "the acceptance is kept"
    );
    engine.shutdown().await;

    assert_eq!(
        find_everywhere(url, EMAIL).await,
        Vec::<(String, String)>::new(),
        "the email is gone"
    );
    assert_eq!(
        find_everywhere(url, NAME).await,
        Vec::<(String, String)>::new(),
        "the name is gone"
    );
    assert!(
        !find_everywhere(url, "bystander@example.com")
            .await
            .is_empty(),
        "others are untouched"
    );
    assert_eq!(other["email"], "bystander@example.com");

    // The ledger keeps its records and still verifies; the acceptance stays, without a person.
    let after = call(&app, "GET", "/v1/admin/consent/verify", ADMIN, None)
        .await
        .1;
    assert_eq!(after["ok"], true, "{after:?}");
    assert_eq!(after["records"], ledger_before["records"]);
    let (s, again) = call(
        &app,
        "POST",
        &format!("/v1/admin/users/{id}/erase"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(
        (s, &again["already_erased"]),
        (StatusCode::OK, &json!(true))
    );
    let d = call(&app, "GET", "/v1/admin/compliance", ADMIN, None)
        .await
        .1;
    assert_eq!(d["erasures"], 1, "{d:?}");

    // Tampering with one consent record in the database is named by the check.
    tamper(url, 3).await;
    let broken = call(&app, "GET", "/v1/admin/consent/verify", ADMIN, None)
        .await
        .1;
    assert_eq!(broken["ok"], false, "{broken:?}");
    assert_eq!(broken["broken"]["seq"], 3, "{broken:?}");
    let _: &dyn Store = store.as_ref();
}

async fn tamper(url: &str, seq: i64) {
    let sql = "UPDATE consent_ledger SET detail = '{\"version\":\"v0\"}' WHERE seq = $1";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).bind(seq).execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sql).bind(seq).execute(&pool).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_personal_data_on_sqlite() {
    scenario(&support::fresh_sqlite_db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_personal_data_on_postgres() {
    scenario(&support::fresh_pg_db().await).await;
}
