//! Email templates over REST: the list, the admin's preview, and overrides from
//! `--templates-dir` in the real binary (a bad override stops the start and names the file).

mod support;

use axum::http::StatusCode;
use levqor_core::{Levqor, MemoryStore};
use std::sync::Arc;
use support::app::{App, runner};
use support::{ADMIN, Client, Node, fresh_sqlite_db};

fn app() -> App {
    let store = Arc::new(MemoryStore::new());
    App::new(
        Levqor::builder(store.clone(), runner(store))
            .admin_key(Some(ADMIN))
            .signup_grant(100)
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn the_admin_lists_and_previews_every_template() {
    let app = app();
    let r = app
        .call("GET", "/v1/admin/templates", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let names: Vec<&str> = r.body["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for expected in [
        "job_email",
        "terms_changed",
        "marketing_confirm",
        "marketing",
        "marketing_unsubscribed",
        "objection_recorded",
        "data_export",
        "appeal_decided",
        "payment_failed",
        "account_suspended",
        "payment_received",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert_eq!(r.body["overridden"], serde_json::json!([]));
    for name in &names {
        let r = app
            .call(
                "GET",
                &format!("/v1/admin/templates/{name}/preview"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {:?}", r.body);
        assert_eq!(r.body["name"], *name);
        for part in ["subject", "text", "html"] {
            assert!(!r.body[part].as_str().unwrap().is_empty(), "{name}.{part}");
        }
    }
    let r = app
        .call(
            "GET",
            "/v1/admin/templates/payment_failed/preview",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.body["subject"], "Your payment failed");
    assert!(
        r.body["text"]
            .as_str()
            .unwrap()
            .contains("suspended 14 days")
    );
    assert!(
        r.body["html"]
            .as_str()
            .unwrap()
            .contains("<p>We could not collect")
    );

    let r = app
        .call("GET", "/v1/admin/templates/nope/preview", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call("GET", "/v1/admin/templates", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(
            "POST",
            "/v1/users",
            Some(ADMIN),
            Some(serde_json::json!({"email": "u@example.com"})),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let key = app
        .call("POST", &format!("/v1/users/{id}/keys"), Some(ADMIN), None)
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .call(
            "GET",
            "/v1/admin/templates/job_email/preview",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_templates_directory_overrides_parts_and_a_bad_one_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("levqor-templates-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("job_email.html"),
        "<html><body><h1>Acme</h1><p>{{ body }}</p></body></html>",
    )
    .unwrap();
    std::fs::write(
        dir.join("payment_received.subject"),
        "Acme: payment received",
    )
    .unwrap();
    let dir_arg = dir.to_str().unwrap().to_string();
    let node = Node::start(&fresh_sqlite_db(), &["--templates-dir", &dir_arg]);
    let client = Client::new(&node.base);
    let (s, list) = client.call("GET", "/v1/admin/templates", ADMIN, None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(
        list["overridden"],
        serde_json::json!(["job_email.html", "payment_received.subject"])
    );
    let (_, preview) = client
        .call(
            "GET",
            "/v1/admin/templates/payment_received/preview",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(preview["subject"], "Acme: payment received");

    // A job's email step goes out in the deployment's layout.
    let key = client.user_key("ada@example.com").await;
    let (s, job) = client
        .call(
            "POST",
            "/v1/jobs",
            &key,
            Some(serde_json::json!({"workflow": {"name": "w", "steps": [
                {"id": "m", "type": "email", "to": "bob@example.com", "subject": "Hi", "body": "Tom & Jerry"}
            ]}})),
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let (done, _) = client
        .wait_for_status(
            &key,
            job["id"].as_str().unwrap(),
            "succeeded",
            std::time::Duration::from_secs(20),
        )
        .await;
    assert!(done);
    let (_, outbox) = client.call("GET", "/v1/admin/outbox", ADMIN, None).await;
    let m = &outbox["messages"][0];
    assert_eq!(m["subject"], "Hi");
    assert_eq!(m["body"], "Tom & Jerry");
    assert_eq!(
        m["html"],
        "<html><body><h1>Acme</h1><p>Tom &amp; Jerry</p></body></html>"
    );
    drop(node);

    std::fs::write(dir.join("payment_failed.txt"), "{{ no_such_thing }}").unwrap();
    std::fs::write(dir.join("welcome.txt"), "hello").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_levqor"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--database-url",
            &fresh_sqlite_db(),
            "--templates-dir",
            &dir_arg,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("welcome.txt"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
