//! Erasure on the real databases: a user is seeded in every area through the REST router,
//! erased, and then every text column of every table is searched for their email and name.
//! The consent ledger still verifies afterwards, and tampering with one record is named.

mod support;

use axum::http::StatusCode;
use levqor_core::{EngineConfig, Levqor, Store};
use serde_json::json;
use sqlx::Row;
use std::time::Duration;
use support::app::{App, runner};

const ADMIN: &str = "admin-secret";
const EMAIL: &str = "erasable.person@example.com";
const NAME: &str = "Ermintrude Quillfeather";

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
    let app = App::new(
        Levqor::builder(store.clone(), runner(store.clone()))
            .admin_key(Some(ADMIN))
            .signup_grant(1_000_000)
            .build()
            .unwrap(),
    )
    .with_user_agent(&format!("agent of {NAME}"));
    let engine = app.levqor.start_engine(EngineConfig {
        workers: 4,
        poll_interval: Duration::from_millis(20),
        ..EngineConfig::default()
    });

    // Someone else, who must keep everything.
    let (s, other) = app
        .call(
            "POST",
            "/v1/users",
            Some(ADMIN),
            Some(json!({"email": "bystander@example.com", "name": "Bystander"})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::CREATED);

    // The person, in every area.
    let (s, user) = app
        .call(
            "POST",
            "/v1/users",
            Some(ADMIN),
            Some(json!({"email": EMAIL, "name": NAME})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::CREATED, "{user:?}");
    let id = user["id"].as_str().unwrap().to_string();
    let (_, key) = app
        .call("POST", &format!("/v1/users/{id}/keys"), Some(ADMIN), None)
        .await
        .pair();
    let key = key["key"].as_str().unwrap().to_string();
    app.call(
        "POST",
        "/v1/admin/terms",
        Some(ADMIN),
        Some(json!({"version": "v1", "material": true})),
    )
    .await
    .pair();
    let (s, _) = app
        .call(
            "POST",
            "/v1/terms/accept",
            Some(&key),
            Some(json!({"version": "v1"})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::OK);
    let workflow = json!({"name": "greet", "steps": [
        {"id": "hello", "type": "log", "message": "hello {{input.name}} <{{input.email}}>"},
        {"id": "mail", "type": "email", "to": "{{input.email}}", "subject": "Hi {{input.name}}", "body": "about my mortgage"}
    ]});
    let (s, job) = app
        .call(
            "POST",
            "/v1/jobs",
            Some(&key),
            Some(json!({"workflow": workflow, "input": {"name": NAME, "email": EMAIL}})),
        )
        .await
        .pair();
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
            app.call("GET", &format!("/v1/jobs/{job_id}"), Some(&key), None)
                .await
                .pair()
                .1["status"]
                == "succeeded"
        }
    })
    .await;
    assert!(done, "the job ran");
    app.call("POST", "/v1/jobs", Some(&key), Some(json!({"workflow": workflow, "input": {"name": NAME}, "run_after": "2099-01-01T00:00:00Z"}))).await.pair();
    let (s, _) = app.call("POST", "/v1/jobs", Some(&key), Some(json!({"workflow": {"name": "x", "steps": [{"id": "a", "type": "log", "message": "launder money for {{input.n}}"}]}, "input": {"n": NAME}}))).await.pair();
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a refused job is recorded too"
    );
    let (s, _) = app
        .call(
            "POST",
            "/v1/events",
            Some(&key),
            Some(json!({"name": "signup", "properties": {"email": EMAIL, "name": NAME}})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::ACCEPTED);
    app.call(
        "POST",
        "/v1/marketing/subscribe",
        Some(ADMIN),
        Some(json!({"email": EMAIL, "categories": ["offers"]})),
    )
    .await
    .pair();
    app.call(
        "POST",
        "/v1/me/objections",
        Some(&key),
        Some(json!({"kind": "analytics", "objected": true})),
    )
    .await
    .pair();
    let (s, _) = app
        .call("POST", "/v1/me/export", Some(&key), None)
        .await
        .pair();
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(
        !find_everywhere(url, EMAIL).await.is_empty(),
        "the seed is findable"
    );
    assert!(!find_everywhere(url, NAME).await.is_empty());
    let ledger_before = app
        .call("GET", "/v1/admin/consent/verify", Some(ADMIN), None)
        .await
        .pair()
        .1;
    assert_eq!(ledger_before["ok"], true, "{ledger_before:?}");

    let (s, summary) = app
        .call("POST", "/v1/me/erase", Some(&key), None)
        .await
        .pair();
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
    let after = app
        .call("GET", "/v1/admin/consent/verify", Some(ADMIN), None)
        .await
        .pair()
        .1;
    assert_eq!(after["ok"], true, "{after:?}");
    assert_eq!(after["records"], ledger_before["records"]);
    let (s, again) = app
        .call(
            "POST",
            &format!("/v1/admin/users/{id}/erase"),
            Some(ADMIN),
            None,
        )
        .await
        .pair();
    assert_eq!(
        (s, &again["already_erased"]),
        (StatusCode::OK, &json!(true))
    );
    let d = app
        .call("GET", "/v1/admin/compliance", Some(ADMIN), None)
        .await
        .pair()
        .1;
    assert_eq!(d["erasures"], 1, "{d:?}");

    // Tampering with one consent record in the database is named by the check.
    tamper(url, 3).await;
    let broken = app
        .call("GET", "/v1/admin/consent/verify", Some(ADMIN), None)
        .await
        .pair()
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
