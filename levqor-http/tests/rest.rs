//! The REST API through the router (no sockets), on the in-memory store.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use levqor_core::{EngineConfig, Levqor, MemoryStore};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::app::{App, Reply, runner};

const ADMIN: &str = "admin-secret";

fn api() -> App {
    let store = Arc::new(MemoryStore::new());
    App::new(
        Levqor::builder(store.clone(), runner(store))
            .admin_key(Some(ADMIN))
            .signup_grant(1_000_000_000)
            .build()
            .unwrap(),
    )
}

impl App {
    /// A new user and a key with `*` scope.
    async fn user_with_key(&self, email: &str) -> (String, String) {
        let u = self
            .call(
                "POST",
                "/v1/users",
                Some(ADMIN),
                Some(json!({"email": email, "name": "Ada"})),
            )
            .await;
        assert_eq!(u.status, StatusCode::CREATED, "{:?}", u.body);
        let id = u.body["id"].as_str().unwrap().to_string();
        let k = self
            .call("POST", &format!("/v1/users/{id}/keys"), Some(ADMIN), None)
            .await;
        assert_eq!(k.status, StatusCode::CREATED, "{:?}", k.body);
        (id, k.body["key"].as_str().unwrap().to_string())
    }
}

fn log_job() -> Value {
    json!({"workflow": {"name": "t", "steps": [{"id": "a", "type": "log", "message": "hi {{input.who}}"}]}, "input": {"who": "you"}})
}

fn assert_problem(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(r.body["code"], code, "{:?}", r.body);
    assert_eq!(r.body["status"], status.as_u16());
    assert_eq!(
        r.body["request_id"].as_str(),
        r.headers["x-request-id"].to_str().ok()
    );
}

#[tokio::test]
async fn health_ready_and_request_ids() {
    let api = api();
    let r = api.call("GET", "/health", None, None).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    assert!(r.headers.contains_key("x-request-id"));
    let r = api.call("GET", "/ready", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let req = Request::get("/health")
        .header("x-request-id", "trace-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.raw(req).await.headers["x-request-id"], "trace-123");
    let r = api.call("GET", "/nowhere", None, None).await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api.call("DELETE", "/v1/jobs", Some(ADMIN), None).await;
    assert_problem(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn the_workflow_schema_is_published() {
    let r = api().call("GET", "/v1/schemas/workflow", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["$id"], "urn:levqor:schema:workflow");
    assert!(r.body["$defs"]["http_request"].is_object());
}

#[tokio::test]
async fn users_are_upserted_by_normalized_email() {
    let api = api();
    let first = api
        .call(
            "POST",
            "/v1/users",
            Some(ADMIN),
            Some(json!({"email": " Ada@Example.com ", "name": "Ada"})),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body["email"], "ada@example.com");
    let again = api
        .call(
            "POST",
            "/v1/users",
            Some(ADMIN),
            Some(json!({"email": "ada@example.com"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["id"], first.body["id"]);
    let id = first.body["id"].as_str().unwrap();
    let found = api
        .call("GET", "/v1/users?email=ADA@example.com", Some(ADMIN), None)
        .await;
    assert_eq!(found.body["id"], id);
    let got = api
        .call("GET", &format!("/v1/users/{id}"), Some(ADMIN), None)
        .await;
    assert_eq!(got.body["name"], "Ada");
    let bad = api
        .call(
            "POST",
            "/v1/users",
            Some(ADMIN),
            Some(json!({"email": "nope", "extra": 1})),
        )
        .await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let pointers = bad.pointers();
    assert_eq!(pointers, vec!["/extra"]);
    let bad = api
        .call(
            "POST",
            "/v1/users",
            Some(ADMIN),
            Some(json!({"email": "nope"})),
        )
        .await;
    assert_eq!(bad.body["errors"][0]["pointer"], "/email");
}

#[tokio::test]
async fn patching_a_user_keeps_emails_unique() {
    let api = api();
    let (a, key_a) = api.user_with_key("a@example.com").await;
    let (b, _) = api.user_with_key("b@example.com").await;
    let r = api
        .call(
            "PATCH",
            &format!("/v1/users/{b}"),
            Some(ADMIN),
            Some(json!({"email": "A@example.com"})),
        )
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "email_taken");
    let r = api
        .call(
            "PATCH",
            &format!("/v1/users/{a}"),
            Some(&key_a),
            Some(json!({"name": "Ada L", "email": "ada@example.com"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["email"].as_str(), r.body["name"].as_str()),
        (StatusCode::OK, Some("ada@example.com"), Some("Ada L"))
    );
    let r = api
        .call(
            "PATCH",
            &format!("/v1/users/{b}"),
            Some(&key_a),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api
        .call("GET", &format!("/v1/users/{b}"), Some(&key_a), None)
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api
        .call(
            "POST",
            "/v1/users",
            Some(&key_a),
            Some(json!({"email": "c@example.com"})),
        )
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "admin_only");
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secrets_and_revocable() {
    let api = api();
    let (id, key) = api.user_with_key("k@example.com").await;
    let list = api
        .call("GET", &format!("/v1/users/{id}/keys"), Some(&key), None)
        .await;
    let keys = list.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        !list.body.to_string().contains(&key[3..]),
        "a listed key never carries its secret"
    );
    assert!(key.starts_with(keys[0]["prefix"].as_str().unwrap()));
    // X-Api-Key works as well as Bearer.
    let req = Request::get("/v1/jobs")
        .header("x-api-key", &key)
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.raw(req).await.status, StatusCode::OK);
    let key_id = keys[0]["id"].as_str().unwrap();
    let revoked = api
        .call("DELETE", &format!("/v1/keys/{key_id}"), Some(ADMIN), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    let r = api.call("GET", "/v1/jobs", Some(&key), None).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let bad_scope = api
        .call(
            "POST",
            &format!("/v1/users/{id}/keys"),
            Some(ADMIN),
            Some(json!({"scopes": ["root"]})),
        )
        .await;
    assert_eq!(bad_scope.body["errors"][0]["pointer"], "/scopes/0");
}

#[tokio::test]
async fn missing_unknown_and_other_users_keys() {
    let api = api();
    let (_, key_a) = api.user_with_key("a@example.com").await;
    let (_, key_b) = api.user_with_key("b@example.com").await;
    let r = api.call("GET", "/v1/jobs", None, None).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    let r = api
        .call("GET", "/v1/jobs", Some("lq_not_a_key"), None)
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let job = api
        .call("POST", "/v1/jobs", Some(&key_a), Some(log_job()))
        .await;
    let id = job.body["id"].as_str().unwrap();
    for (method, path) in [
        ("GET", format!("/v1/jobs/{id}")),
        ("GET", format!("/v1/jobs/{id}/steps")),
        ("POST", format!("/v1/jobs/{id}/cancel")),
    ] {
        let r = api.call(method, &path, Some(&key_b), None).await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not_found");
    }
    let listed = api.call("GET", "/v1/jobs", Some(&key_b), None).await;
    assert_eq!(listed.body["jobs"], json!([]));
    for path in [
        "/v1/jobs/not-an-id",
        "/v1/jobs/0190a000-0000-7000-8000-000000000000",
    ] {
        assert_problem(
            &api.call("GET", path, Some(&key_a), None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let r = api
        .call("GET", "/v1/admin/outbox", Some(&key_a), None)
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "admin_only");
}

#[tokio::test]
async fn submitting_a_job_returns_202_and_its_location() {
    let api = api();
    let (owner, key) = api.user_with_key("j@example.com").await;
    let r = api
        .call("POST", "/v1/jobs", Some(&key), Some(log_job()))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(
        r.headers[header::LOCATION],
        format!("/v1/jobs/{id}").as_str()
    );
    assert_eq!(
        (r.body["status"].as_str(), r.body["owner_id"].as_str()),
        (Some("queued"), Some(owner.as_str()))
    );
    assert_eq!(r.body["max_attempts"], 3);
    let got = api
        .call("GET", &format!("/v1/jobs/{id}"), Some(&key), None)
        .await;
    assert_eq!(got.body["id"], id);
    let steps = api
        .call("GET", &format!("/v1/jobs/{id}/steps"), Some(&key), None)
        .await;
    assert_eq!(steps.body["steps"][0]["status"], "pending");
    let r = api
        .call("POST", "/v1/jobs", Some(ADMIN), Some(log_job()))
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "user_key_required");
}

#[tokio::test]
async fn bad_job_submissions_report_every_problem_and_write_nothing() {
    let api = api();
    let (_, key) = api.user_with_key("bad@example.com").await;
    let req = Request::post("/v1/jobs")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"workflow\": "))
        .unwrap();
    assert_problem(
        &api.raw(req).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "malformed_json",
    );
    let body = json!({"workflow": {"name": "t", "steps": [
        {"id": "a", "type": "teleport"},
        {"id": "b", "type": "delay"},
        {"id": "c", "type": "http_request", "url": "https://x", "timeout_ms": 0}
    ]}, "input": [1], "max_attempts": 99});
    let r = api.call("POST", "/v1/jobs", Some(&key), Some(body)).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let pointers = r.pointers();
    for p in [
        "/workflow/steps/0/type",
        "/workflow/steps/1",
        "/workflow/steps/2/timeout_ms",
        "/input",
        "/max_attempts",
    ] {
        assert!(pointers.contains(&p), "{p} missing from {pointers:?}");
    }
    let r = api
        .call("POST", "/v1/jobs", Some(&key), Some(json!({"input": {}})))
        .await;
    assert_eq!(r.body["errors"][0]["pointer"], "/workflow");
    let big = json!({"workflow": {"name": "x".repeat(600 * 1024), "steps": []}});
    let r = api.call("POST", "/v1/jobs", Some(&key), Some(big)).await;
    assert_problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let req = Request::post("/v1/jobs")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("hi"))
        .unwrap();
    assert_problem(
        &api.raw(req).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let listed = api.call("GET", "/v1/jobs", Some(&key), None).await;
    assert_eq!(listed.body["jobs"], json!([]), "nothing was written");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_job_or_conflicts() {
    let api = api();
    let (_, key) = api.user_with_key("idem@example.com").await;
    let submit = |body: Value| {
        Request::post("/v1/jobs")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", "order-42")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let first = api.raw(submit(log_job())).await;
    let again = api.raw(submit(log_job())).await;
    assert_eq!(
        (first.status, again.status),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let mut other = log_job();
    other["input"]["who"] = json!("someone else");
    assert_problem(
        &api.raw(submit(other)).await,
        StatusCode::CONFLICT,
        "idempotency_key_reused",
    );
    let listed = api.call("GET", "/v1/jobs", Some(&key), None).await;
    assert_eq!(listed.body["jobs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn jobs_page_with_a_cursor_and_filter_by_status() {
    let api = api();
    let (_, key) = api.user_with_key("page@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            api.call("POST", "/v1/jobs", Some(&key), Some(log_job()))
                .await
                .body["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let p1 = api.call("GET", "/v1/jobs?limit=2", Some(&key), None).await;
    let got: Vec<&str> = p1.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()]);
    let cursor = p1.body["next_cursor"].as_str().unwrap();
    let p2 = api
        .call(
            "GET",
            &format!("/v1/jobs?limit=2&cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    let got: Vec<&str> = p2.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let p3 = api
        .call(
            "GET",
            &format!(
                "/v1/jobs?limit=2&cursor={}",
                p2.body["next_cursor"].as_str().unwrap()
            ),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(p3.body["jobs"].as_array().unwrap().len(), 1);
    assert!(p3.body["next_cursor"].is_null());
    api.call(
        "POST",
        &format!("/v1/jobs/{}/cancel", ids[0]),
        Some(&key),
        None,
    )
    .await;
    let canceled = api
        .call("GET", "/v1/jobs?status=canceled", Some(&key), None)
        .await;
    assert_eq!(canceled.body["jobs"][0]["id"], ids[0].as_str());
    for q in [
        "limit=101",
        "limit=0",
        "limit=x",
        "status=exploded",
        "cursor=zzz",
    ] {
        let r = api
            .call("GET", &format!("/v1/jobs?{q}"), Some(&key), None)
            .await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
}

#[tokio::test]
async fn canceling_a_queued_job_is_final() {
    let api = api();
    let (_, key) = api.user_with_key("cancel@example.com").await;
    let id = api
        .call("POST", "/v1/jobs", Some(&key), Some(log_job()))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .call("POST", &format!("/v1/jobs/{id}/cancel"), Some(&key), None)
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("canceled"))
    );
    let r = api
        .call("POST", &format!("/v1/jobs/{id}/cancel"), Some(&key), None)
        .await;
    assert_problem(&r, StatusCode::CONFLICT, "invalid_transition");
}

#[tokio::test]
async fn read_only_keys_cannot_submit() {
    let api = api();
    let (id, _) = api.user_with_key("ro@example.com").await;
    let k = api
        .call(
            "POST",
            &format!("/v1/users/{id}/keys"),
            Some(ADMIN),
            Some(json!({"scopes": ["jobs:read"]})),
        )
        .await;
    let ro = k.body["key"].as_str().unwrap();
    let r = api
        .call("POST", "/v1/jobs", Some(ro), Some(log_job()))
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN, "insufficient_scope");
    assert_eq!(
        api.call("GET", "/v1/jobs", Some(ro), None).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_conditions_and_emails_to_the_outbox() {
    let api = api();
    let engine = api.levqor.start_engine(EngineConfig {
        poll_interval: Duration::from_millis(10),
        ..EngineConfig::default()
    });
    let (_, key) = api.user_with_key("run@example.com").await;
    let wf = json!({"workflow": {"name": "branch", "steps": [
        {"id": "a", "type": "log", "message": "start"},
        {"id": "d", "type": "condition", "if": {"path": "/input/vip", "op": "eq", "value": true}, "then": "e", "else": "f"},
        {"id": "skipped", "type": "log", "message": "never"},
        {"id": "e", "type": "email", "to": "{{input.to}}", "subject": "Hi {{input.name}}", "body": "started at {{steps.a.output.message}}"},
        {"id": "f", "type": "log", "message": "done"}
    ]}, "input": {"vip": true, "to": "vip@example.com", "name": "Vip"}});
    let id = api
        .call("POST", "/v1/jobs", Some(&key), Some(wf))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut job = Value::Null;
    for _ in 0..200 {
        job = api
            .call("GET", &format!("/v1/jobs/{id}"), Some(&key), None)
            .await
            .body;
        if job["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["d"]["result"], true);
    let steps = api
        .call("GET", &format!("/v1/jobs/{id}/steps"), Some(&key), None)
        .await
        .body;
    let statuses: Vec<&str> = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        vec![
            "succeeded",
            "succeeded",
            "skipped",
            "succeeded",
            "succeeded"
        ]
    );
    let outbox = api
        .call("GET", "/v1/admin/outbox", Some(ADMIN), None)
        .await
        .body;
    assert_eq!(outbox["messages"][0]["to"], "vip@example.com");
    assert_eq!(outbox["messages"][0]["subject"], "Hi Vip");
    assert_eq!(outbox["messages"][0]["body"], "started at start");
    engine.shutdown().await;
}

#[tokio::test]
async fn ready_is_503_when_the_database_is_gone() {
    let path =
        std::env::temp_dir().join(format!("levqor-test-{}.db", uuid::Uuid::now_v7().simple()));
    let sqlite = Arc::new(
        levqor_store::SqliteStore::connect(&format!("sqlite:{}", path.display()))
            .await
            .unwrap(),
    );
    let api = App::new(
        Levqor::builder(sqlite.clone(), runner(sqlite.clone()))
            .admin_key(Some(ADMIN))
            .signup_grant(1_000_000_000)
            .build()
            .unwrap(),
    );
    assert_eq!(
        api.call("GET", "/ready", None, None).await.status,
        StatusCode::OK
    );
    sqlite.close().await;
    let r = api.call("GET", "/ready", None, None).await;
    assert_problem(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(
        !r.body.to_string().to_lowercase().contains("sqlite"),
        "no internal detail leaks: {}",
        r.body
    );
    assert_eq!(
        api.call("GET", "/health", None, None).await.status,
        StatusCode::OK,
        "the process is still alive"
    );
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_a_jobs_changes_as_server_sent_events_until_it_ends() {
    let api = api();
    let (_, ada) = api.user_with_key("watch@example.com").await;
    let (_, bob) = api.user_with_key("other@example.com").await;
    let id = api
        .call("POST", "/v1/jobs", Some(&ada), Some(log_job()))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let theirs = api
        .call("GET", &format!("/v1/jobs/{id}/watch"), Some(&bob), None)
        .await;
    assert_problem(&theirs, StatusCode::NOT_FOUND, "not_found");
    let engine = api.levqor.start_engine(EngineConfig {
        poll_interval: Duration::from_millis(10),
        ..EngineConfig::default()
    });
    let req = Request::builder()
        .uri(format!("/v1/jobs/{id}/watch"))
        .header(header::AUTHORIZATION, format!("Bearer {ada}"))
        .body(Body::empty())
        .unwrap();
    let watched = api.raw(req).await;
    assert_eq!(watched.status, StatusCode::OK);
    assert_eq!(watched.headers[header::CONTENT_TYPE], "text/event-stream");
    let text = watched.body.as_str().unwrap().to_string();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        text.lines()
            .filter(|l| l.starts_with("event: "))
            .all(|l| l == "event: job"),
        "{text}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["job"]["status"], "succeeded", "{text}");
    assert_eq!(last["steps"][0]["status"], "succeeded");
    assert_eq!(last["job"]["result"], json!({"a": {"message": "hi you"}}));
    for pair in events.windows(2) {
        assert_ne!(pair[0], pair[1], "every event is a change");
    }
    engine.shutdown().await;
}
