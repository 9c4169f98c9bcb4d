//! Suppression: Resend's signed webhooks report hard bounces and complaints, the address gets
//! no more marketing, and the admin sees why and can lift it.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use levqor_core::notify::sign_svix;
use levqor_core::{Levqor, MemoryStore};
use serde_json::{Value, json};
use std::sync::Arc;
use support::ADMIN;
use support::app::{App, Reply, runner};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn app(secret: Option<&str>) -> App {
    let store = Arc::new(MemoryStore::new());
    App::new(
        Levqor::builder(store.clone(), runner(store))
            .admin_key(Some(ADMIN))
            .resend_webhook_secret(secret)
            .build()
            .unwrap(),
    )
}

async fn webhook(app: &App, id: &str, event: &Value, secret: &str) -> Reply {
    let body = event.to_string();
    let t = chrono::Utc::now().timestamp();
    app.raw(
        Request::builder()
            .method("POST")
            .uri("/v1/webhooks/resend")
            .header("content-type", "application/json")
            .header("svix-id", id)
            .header("svix-timestamp", t.to_string())
            .header("svix-signature", sign_svix(body.as_bytes(), id, t, secret))
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

fn bounced(to: &str, kind: &str) -> Value {
    json!({"type": "email.bounced", "created_at": "2026-12-06T10:00:00Z", "data": {
        "email_id": "4ef9a417", "from": "Levqor <noreply@levqor.test>", "to": [to],
        "subject": "Deal",
        "bounce": {"message": "550 5.1.1 The email account does not exist.", "subType": "General", "type": kind}
    }})
}

async fn subscribed(app: &App, email: &str) {
    let r = app
        .call(
            "POST",
            "/v1/marketing/subscribe",
            None,
            Some(json!({"email": email, "categories": ["offers"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let outbox = app
        .call("GET", "/v1/admin/outbox?limit=100", Some(ADMIN), None)
        .await;
    let body = outbox.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["to"] == email)
        .unwrap()["body"]
        .as_str()
        .unwrap()
        .to_string();
    let token = body
        .split("token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let r = app
        .call(
            "GET",
            &format!("/v1/marketing/confirm?token={token}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn send_offers(app: &App) -> Value {
    app.call(
        "POST",
        "/v1/admin/marketing/send",
        Some(ADMIN),
        Some(json!({"category": "offers", "subject": "Deal", "body": "Half price"})),
    )
    .await
    .body
}

#[tokio::test]
async fn hard_bounces_and_complaints_suppress_marketing_and_the_admin_sees_why() {
    let app = app(Some(SECRET));
    for email in ["ada@example.com", "bob@example.com", "cy@example.com"] {
        subscribed(&app, email).await;
    }
    assert_eq!(send_offers(&app).await["sent"], 3);

    // A soft bounce changes nothing; a hard one and a complaint suppress.
    let r = webhook(
        &app,
        "msg_soft",
        &bounced("ada@example.com", "Transient"),
        SECRET,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({"event": "email.bounced", "suppressed": 0}));
    let r = webhook(
        &app,
        "msg_hard",
        &bounced("Ada@Example.com", "Permanent"),
        SECRET,
    )
    .await;
    assert_eq!(r.body, json!({"event": "email.bounced", "suppressed": 1}));
    let complaint =
        json!({"type": "email.complained", "data": {"to": ["bob@example.com"], "email_id": "x"}});
    let r = webhook(&app, "msg_spam", &complaint, SECRET).await;
    assert_eq!(r.body["suppressed"], 1);
    let r = webhook(
        &app,
        "msg_hard",
        &bounced("ada@example.com", "Permanent"),
        SECRET,
    )
    .await;
    assert_eq!(r.body["suppressed"], 0, "a replay changes nothing");
    let r = webhook(
        &app,
        "msg_other",
        &json!({"type": "email.delivered", "data": {}}),
        SECRET,
    )
    .await;
    assert_eq!(r.body, json!({"event": "email.delivered", "suppressed": 0}));

    let sent = send_offers(&app).await;
    assert_eq!(
        (&sent["sent"], &sent["skipped"]),
        (&json!(1), &json!(2)),
        "{sent}"
    );

    let r = app
        .call("GET", "/v1/admin/suppressions", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let list = r.body["suppressions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (&list[0]["email"], &list[0]["reason"], &list[0]["event_id"]),
        (
            &json!("bob@example.com"),
            &json!("complaint"),
            &json!("msg_spam")
        )
    );
    assert_eq!(
        (&list[1]["email"], &list[1]["reason"], &list[1]["detail"]),
        (
            &json!("ada@example.com"),
            &json!("hard_bounce"),
            &json!("550 5.1.1 The email account does not exist.")
        )
    );
    let audit = app
        .call("GET", "/v1/admin/audit?limit=100", Some(ADMIN), None)
        .await;
    let actions: Vec<&str> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "suppression.added")
            .count(),
        2
    );
    assert!(
        !audit.body.to_string().contains("ada@example.com"),
        "no address in the audit"
    );

    // The admin lifts one; marketing reaches it again.
    let r = app
        .call(
            "DELETE",
            "/v1/admin/suppressions/ADA@example.com",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (r.status, &r.body["reason"]),
        (StatusCode::OK, &json!("hard_bounce"))
    );
    let r = app
        .call(
            "DELETE",
            "/v1/admin/suppressions/ada@example.com",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(send_offers(&app).await["sent"], 2);
}

#[tokio::test]
async fn bad_signatures_change_nothing_and_the_routes_are_guarded() {
    let app = app(Some(SECRET));
    let r = webhook(
        &app,
        "msg_1",
        &bounced("ada@example.com", "Permanent"),
        "whsec_bm90IHRoZSBzZWNyZXQgYXQgYWxs",
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_signature"))
    );
    let r = app
        .raw(
            Request::builder()
                .method("POST")
                .uri("/v1/webhooks/resend")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no signature headers");
    let r = app
        .call("GET", "/v1/admin/suppressions", Some(ADMIN), None)
        .await;
    assert_eq!(r.body["suppressions"], json!([]));
    let r = app.call("GET", "/v1/admin/suppressions", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(
            "DELETE",
            "/v1/admin/suppressions/not-an-address",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);

    let unconfigured = app_without_secret();
    let r = webhook(
        &unconfigured,
        "msg_1",
        &bounced("a@example.com", "Permanent"),
        SECRET,
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("webhook_not_configured")
        )
    );
}

fn app_without_secret() -> App {
    app(None)
}
