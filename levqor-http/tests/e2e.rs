//! End to end through the real binary: a job that uses every step type reaches `succeeded`,
//! and SIGTERM shuts the node down cleanly.

mod support;

use serde_json::json;
use std::time::Duration;
use support::{ADMIN, Client, Node, Target, fresh_sqlite_db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_every_step_type_through_the_binary() {
    let target = Target::start().await;
    let node = Node::start(&fresh_sqlite_db(), &[]);
    let api = Client::new(&node.base);
    let (s, health) = api.call("GET", "/health", "", None).await;
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(api.call("GET", "/ready", "", None).await.0, 200);
    let key = api.user_key("tour@example.com").await;
    let workflow = json!({"name": "tour", "steps": [
        {"id": "a", "type": "log", "message": "start {{input.name}}"},
        {"id": "b", "type": "delay", "ms": 200},
        target.step("c", 0),
        {"id": "d", "type": "condition", "if": {"path": "/steps/c/output/status", "op": "eq", "value": 200}, "then": "e", "else": "f"},
        {"id": "e", "type": "email", "to": "{{input.email}}", "subject": "Done", "body": "the target said {{steps.c.output.body.greeting}}"},
        {"id": "f", "type": "log", "message": "end"}
    ]});
    let (s, job) = api
        .call("POST", "/v1/jobs", &key, Some(json!({"workflow": workflow, "input": {"name": "Ada", "email": "ada@example.com"}, "max_attempts": 3})))
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let (done, job) = api
        .wait_for_status(&key, &id, "succeeded", Duration::from_secs(30))
        .await;
    assert!(done, "{job}");
    assert_eq!(job["attempts"], 1, "a delay is not a new attempt");
    assert_eq!(job["result"]["c"]["status"], 200);
    assert_eq!(
        job["result"]["c"]["body"]["greeting"], "hello",
        "JSON bodies are parsed"
    );
    let (_, steps) = api
        .call("GET", &format!("/v1/jobs/{id}/steps"), &key, None)
        .await;
    let got: Vec<(&str, &str)> = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", "succeeded"),
            ("b", "succeeded"),
            ("c", "succeeded"),
            ("d", "succeeded"),
            ("e", "succeeded"),
            ("f", "succeeded")
        ]
    );
    let b = &steps["steps"][1];
    let c = &steps["steps"][2];
    let waited = chrono::DateTime::parse_from_rfc3339(c["started_at"].as_str().unwrap()).unwrap()
        - chrono::DateTime::parse_from_rfc3339(b["finished_at"].as_str().unwrap()).unwrap();
    assert!(
        waited >= chrono::Duration::milliseconds(190),
        "the delay held the job back ({waited})"
    );
    assert_eq!(target.count(), 1);
    let (_, outbox) = api.call("GET", "/v1/admin/outbox", ADMIN, None).await;
    assert_eq!(outbox["messages"][0]["to"], "ada@example.com");
    assert_eq!(outbox["messages"][0]["body"], "the target said hello");
    assert_eq!(outbox["messages"][0]["job_id"], id.as_str());
    assert!(node.terminate(), "SIGTERM ends the node cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_steps_retry_with_backoff_then_die() {
    let node = Node::start(&fresh_sqlite_db(), &["--retry-base-ms", "50"]);
    let api = Client::new(&node.base);
    let key = api.user_key("retry@example.com").await;
    // Nothing listens on port 9: every attempt fails to connect, which is worth retrying.
    let wf = json!({"name": "down", "steps": [{"id": "x", "type": "http_request", "url": "http://127.0.0.1:9/", "timeout_ms": 500}]});
    let (_, job) = api
        .call(
            "POST",
            "/v1/jobs",
            &key,
            Some(json!({"workflow": wf, "max_attempts": 3})),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    let (dead, job) = api
        .wait_for_status(&key, &id, "dead", Duration::from_secs(30))
        .await;
    assert!(dead, "{job}");
    assert_eq!(job["attempts"], 3);
    assert!(job["error"].as_str().unwrap().contains("step x failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_unless_allowed() {
    let target = Target::start().await;
    let node = Node::start_guarded(&fresh_sqlite_db(), &[]);
    let api = Client::new(&node.base);
    let key = api.user_key("ssrf@example.com").await;
    let wf = json!({"name": "ssrf", "steps": [target.step("c", 0)]});
    let (_, job) = api
        .call("POST", "/v1/jobs", &key, Some(json!({"workflow": wf})))
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    let (dead, job) = api
        .wait_for_status(&key, &id, "dead", Duration::from_secs(20))
        .await;
    assert!(dead, "{job}");
    assert_eq!(job["attempts"], 1, "a refused address is not retried");
    assert!(
        job["error"].as_str().unwrap().contains("internal address"),
        "{job}"
    );
    assert_eq!(target.count(), 0, "the request never left");
}

/// The privacy flows through the binary: the confirmation link in the outbox uses the
/// configured public URL and works, terms acceptances record the client's address, an export
/// arrives as an attachment, and erasure leaves the user unable to authenticate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_flows_through_the_binary() {
    let node = Node::start(
        &fresh_sqlite_db(),
        &["--public-url", "https://levqor.example/", "--workers", "0"],
    );
    let api = Client::new(&node.base);
    let (s, r) = api
        .call(
            "POST",
            "/v1/marketing/subscribe",
            "",
            Some(json!({"email": "fan@example.com", "categories": ["events"]})),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let (_, outbox) = api.call("GET", "/v1/admin/outbox", ADMIN, None).await;
    let body = outbox["messages"][0]["body"].as_str().unwrap().to_string();
    let link = body
        .split_whitespace()
        .find(|w| w.starts_with("https://levqor.example/v1/marketing/confirm?token="))
        .unwrap_or_else(|| panic!("no link in {body}"));
    let path = link.trim_start_matches("https://levqor.example");
    let (s, r) = api.call("GET", path, "", None).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("subscribed")), "{r}");

    let key = api.user_key("fan@example.com").await;
    api.call(
        "POST",
        "/v1/admin/terms",
        ADMIN,
        Some(json!({"version": "v1", "material": true})),
    )
    .await;
    let (s, job) = api
        .call("POST", "/v1/jobs", &key, Some(json!({"workflow": {"name": "x", "steps": [{"id": "a", "type": "log", "message": "x"}]}})))
        .await;
    assert_eq!((s, job["code"].as_str()), (403, Some("terms_not_accepted")));
    let (s, _) = api
        .call(
            "POST",
            "/v1/terms/accept",
            &key,
            Some(json!({"version": "v1"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, history) = api.call("GET", "/v1/terms/history", &key, None).await;
    assert_eq!(history["acceptances"][0]["ip"], "127.0.0.1", "{history}");

    let (s, export) = api.call("POST", "/v1/me/export", &key, None).await;
    assert_eq!(s, 202, "{export}");
    let (_, outbox) = api.call("GET", "/v1/admin/outbox", ADMIN, None).await;
    assert_eq!(
        outbox["messages"][0]["attachments"][0]["content_type"],
        "application/zip"
    );
    let (s, erased) = api.call("POST", "/v1/me/erase", &key, None).await;
    assert_eq!(s, 200, "{erased}");
    assert_eq!(api.call("GET", "/v1/me", &key, None).await.0, 401);
    let (_, verify) = api
        .call("GET", "/v1/admin/consent/verify", ADMIN, None)
        .await;
    assert_eq!(verify["ok"], true, "{verify}");
}

/// Billing through the binary against a local fake Stripe: checkout creates the customer and a
/// session at the configured API base, and a webhook signed with the configured secret grants
/// the pack once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_through_the_binary_with_a_fake_stripe() {
    use support::fake_stripe::{Behaviour, KEY, start};
    let (stripe, fake) = start(Behaviour::Succeed).await;
    let secret = "whsec_e2e";
    let node = Node::start(
        &fresh_sqlite_db(),
        &[
            "--workers",
            "0",
            "--stripe-secret-key",
            KEY,
            "--stripe-webhook-secret",
            secret,
            "--stripe-api-base",
            &stripe,
        ],
    );
    let api = Client::new(&node.base);
    let key = api.user_key("buyer@example.com").await;
    let (s, session) = api
        .call(
            "POST",
            "/v1/billing/checkout",
            &key,
            Some(json!({"pack": "credits_1000"})),
        )
        .await;
    assert_eq!(s, 201, "{session}");
    assert!(
        session["url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/"),
        "{session}"
    );
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|s| s.path).collect::<Vec<_>>(),
        ["/v1/customers", "/v1/checkout/sessions"]
    );
    let user_id = seen[1]
        .field("metadata[levqor_user_id]")
        .unwrap()
        .to_string();
    assert_eq!(seen[1].field("metadata[levqor_credits]"), Some("1000"));

    let event = json!({"id": "evt_e2e", "type": "checkout.session.completed", "data": {"object": {
        "id": session["id"], "amount_total": 1000, "currency": "usd",
        "metadata": {"levqor_user_id": user_id, "levqor_credits": "1000"}}}})
    .to_string();
    let now = chrono::Utc::now().timestamp();
    let http = reqwest::Client::new();
    let deliver = |signature: String| {
        http.post(format!("{}/v1/billing/webhook", node.base))
            .header("stripe-signature", signature)
            .body(event.clone())
            .send()
    };
    let bad = deliver(levqor_core::billing::sign(
        event.as_bytes(),
        "whsec_other",
        now,
    ))
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    for _ in 0..2 {
        let ok = deliver(levqor_core::billing::sign(event.as_bytes(), secret, now))
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    let (_, credits) = api.call("GET", "/v1/credits", &key, None).await;
    // The test nodes grant every new user a large sign-up balance: the pack comes on top, once.
    assert_eq!(credits["balance"], 1_000_001_000i64, "granted once");
}
