//! Billing through the REST router with an injected clock: checkout (with a recording
//! payment provider), webhooks signed as Stripe signs them, dunning through its whole ladder,
//! discount codes, the profitability ledger and the profit guard.

use async_trait::async_trait;
mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{Duration, TimeZone, Utc};
use levqor_core::billing::{
    self, BillingConfig, CheckoutRequest, CheckoutSession, PaymentProvider,
};
use levqor_core::credits::{EntryKind, NewEntry};
use levqor_core::{CreditStore, Levqor, ManualClock, MemoryStore};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use support::app::{App, runner};

const ADMIN: &str = "admin-secret";
const SECRET: &str = "whsec_test_secret";

#[derive(Default)]
struct RecordingProvider {
    customers: Mutex<Vec<String>>,
    checkouts: Mutex<Vec<CheckoutRequest>>,
}

#[async_trait]
impl PaymentProvider for RecordingProvider {
    async fn create_customer(
        &self,
        user_id: uuid::Uuid,
        _email: &str,
    ) -> levqor_core::Result<String> {
        let mut c = self.customers.lock().unwrap();
        c.push(user_id.to_string());
        Ok(format!("cus_{}", c.len()))
    }

    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> levqor_core::Result<CheckoutSession> {
        let mut c = self.checkouts.lock().unwrap();
        c.push(request.clone());
        Ok(CheckoutSession {
            id: format!("cs_{}", c.len()),
            url: format!("https://pay.example/cs_{}", c.len()),
        })
    }
}

/// The app, the clock its service reads, the provider it pays through and its store.
struct World {
    app: App,
    clock: Arc<ManualClock>,
    provider: Arc<RecordingProvider>,
    store: Arc<MemoryStore>,
}

impl std::ops::Deref for World {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

fn world(configured: bool) -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap(),
    ));
    let provider = Arc::new(RecordingProvider::default());
    let mut builder = Levqor::builder(store.clone(), runner(store.clone()))
        .clock(clock.clone())
        .admin_key(Some(ADMIN));
    if configured {
        builder = builder.billing(BillingConfig {
            provider: provider.clone(),
            webhook_secret: SECRET.into(),
        });
    }
    World {
        app: App::new(builder.build().unwrap()),
        clock,
        provider,
        store,
    }
}

impl World {
    /// `POST /v1/billing/checkout` for the 1,000-credit pack with a discount code.
    async fn checkout_with_code(&self, key: &str, code: &str) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/v1/billing/checkout",
            Some(key),
            Some(json!({"pack": "credits_1000", "discount_code": code})),
        )
        .await
        .pair()
    }

    async fn user(&self, email: &str) -> (String, String) {
        let (_, u) = self
            .call(
                "POST",
                "/v1/users",
                Some(ADMIN),
                Some(json!({"email": email})),
            )
            .await
            .pair();
        let id = u["id"].as_str().unwrap().to_string();
        let (_, k) = self
            .call("POST", &format!("/v1/users/{id}/keys"), Some(ADMIN), None)
            .await
            .pair();
        (id, k["key"].as_str().unwrap().to_string())
    }

    /// Delivers `event` signed as Stripe signs it, `age` seconds ago, with `secret`.
    async fn deliver(&self, event: &Value, secret: &str, age: i64) -> (StatusCode, Value) {
        let body = event.to_string();
        let t = self.clock_now().timestamp() - age;
        let req = Request::post("/v1/billing/webhook")
            .header(
                "stripe-signature",
                billing::sign(body.as_bytes(), secret, t),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        self.raw(req).await.pair()
    }

    fn clock_now(&self) -> chrono::DateTime<Utc> {
        use levqor_core::Clock;
        self.clock.now()
    }

    async fn outbox_to(&self, to: &str) -> Vec<Value> {
        let (_, r) = self
            .call("GET", "/v1/admin/outbox?limit=100", Some(ADMIN), None)
            .await
            .pair();
        r["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["to"] == to)
            .cloned()
            .collect()
    }
}

fn completed(id: &str, user: &str, credits: i64, amount: i64) -> Value {
    json!({"id": id, "type": "checkout.session.completed", "data": {"object": {
        "id": "cs_1", "object": "checkout.session", "customer": "cus_1", "amount_total": amount, "currency": "usd",
        "metadata": {"levqor_user_id": user, "levqor_credits": credits.to_string()}}}})
}

fn log_job() -> Value {
    json!({"workflow": {"name": "w", "steps": [{"id": "a", "type": "log", "message": "x"}]}})
}

#[tokio::test]
async fn billing_routes_answer_503_when_billing_is_not_configured() {
    let w = world(false);
    let (_, key) = w.user("nobill@example.com").await;
    let (s, r) = w
        .call(
            "POST",
            "/v1/billing/checkout",
            Some(&key),
            Some(json!({"pack": "credits_1000"})),
        )
        .await
        .pair();
    assert_eq!(
        (s, r["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("billing_not_configured")
        )
    );
    let (s, r) = w.deliver(&completed("evt_0", "x", 1, 1), SECRET, 0).await;
    assert_eq!(
        (s, r["code"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("billing_not_configured")
        )
    );
    let (s, _) = w.call("GET", "/v1/credits", Some(&key), None).await.pair();
    assert_eq!(s, StatusCode::OK, "everything else works");
}

#[tokio::test]
async fn checkout_then_a_signed_event_grants_the_pack_once() {
    let w = world(true);
    let (id, key) = w.user("buyer@example.com").await;
    let (s, r) = w
        .call(
            "POST",
            "/v1/billing/checkout",
            Some(&key),
            Some(json!({"pack": "credits_1000", "success_url": "https://app.example/ok"})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["url"], "https://pay.example/cs_1");
    // A second checkout reuses the customer.
    w.call(
        "POST",
        "/v1/billing/checkout",
        Some(&key),
        Some(json!({"tier": "pro"})),
    )
    .await
    .pair();
    assert_eq!(
        w.provider.customers.lock().unwrap().len(),
        1,
        "one customer per user"
    );
    {
        let c = w.provider.checkouts.lock().unwrap();
        assert_eq!(c[0].metadata["levqor_user_id"], id);
        assert_eq!(c[0].metadata["levqor_credits"], "1000");
        assert_eq!(
            (c[0].amount_minor, c[0].success_url.as_str()),
            (1_000, "https://app.example/ok")
        );
        assert_eq!(c[1].metadata["levqor_tier"], "pro");
        assert_eq!(c[1].mode, levqor_core::billing::CheckoutMode::Subscription);
    }
    let (s, r) = w
        .call(
            "POST",
            "/v1/billing/checkout",
            Some(&key),
            Some(json!({"pack": "credits_7"})),
        )
        .await
        .pair();
    assert_eq!(
        (s, r["errors"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/pack"))
    );

    // Bad signatures (wrong secret, stale, missing) are 400 and change nothing.
    let event = completed("evt_1", &id, 1_000, 1_000);
    let (s, r) = w.deliver(&event, "whsec_wrong", 0).await;
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_signature"))
    );
    let (s, _) = w.deliver(&event, SECRET, 301).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "older than 5 minutes");
    let req = Request::post("/v1/billing/webhook")
        .body(Body::from(event.to_string()))
        .unwrap();
    assert_eq!(w.raw(req).await.status, StatusCode::BAD_REQUEST);
    let (_, c) = w.call("GET", "/v1/credits", Some(&key), None).await.pair();
    assert_eq!(c["balance"], 0);

    // A good one grants the pack; replaying it grants nothing more.
    let (s, r) = w.deliver(&event, SECRET, 10).await;
    assert_eq!((s, &r["handled"]), (StatusCode::OK, &json!(true)), "{r}");
    let (s, r) = w.deliver(&event, SECRET, 0).await;
    assert_eq!((s, &r["duplicate"]), (StatusCode::OK, &json!(true)));
    let (_, c) = w.call("GET", "/v1/credits", Some(&key), None).await.pair();
    assert_eq!(c["balance"], 1_000);
    let (_, e) = w
        .call("GET", "/v1/credits/entries", Some(&key), None)
        .await
        .pair();
    assert_eq!(e["entries"][0]["kind"], "purchase");

    // Unknown event types are acknowledged and ignored.
    let (s, r) = w
        .deliver(
            &json!({"id": "evt_x", "type": "charge.refund.updated", "data": {"object": {}}}),
            SECRET,
            0,
        )
        .await;
    assert_eq!((s, &r["handled"]), (StatusCode::OK, &json!(false)));

    // Subscriptions move tiers.
    let sub = |id: &str, kind: &str, status: &str| {
        json!({"id": id, "type": kind, "data": {"object": {
        "id": "sub_1", "customer": "cus_1", "status": status, "metadata": {"levqor_tier": "pro"}}}})
    };
    w.deliver(
        &sub("evt_s1", "customer.subscription.updated", "active"),
        SECRET,
        0,
    )
    .await;
    let (_, u) = w.call("GET", "/v1/usage", Some(&key), None).await.pair();
    assert_eq!(u["tier"], "pro");
    w.deliver(
        &sub("evt_s2", "customer.subscription.deleted", "canceled"),
        SECRET,
        0,
    )
    .await;
    let (_, u) = w.call("GET", "/v1/usage", Some(&key), None).await.pair();
    assert_eq!(u["tier"], "sandbox");
}

#[tokio::test]
async fn dunning_walks_the_ladder_and_suspension_blocks_intake() {
    let w = world(true);
    let (id, key) = w.user("late-payer@example.com").await;
    w.call(
        "POST",
        &format!("/v1/admin/users/{id}/credits"),
        Some(ADMIN),
        Some(json!({"credits": 100, "idempotency_key": "g"})),
    )
    .await
    .pair();
    w.call(
        "POST",
        "/v1/billing/checkout",
        Some(&key),
        Some(json!({"tier": "pro"})),
    )
    .await
    .pair(); // makes cus_1
    let failed = |n: u32| json!({"id": format!("evt_f{n}"), "type": "invoice.payment_failed", "data": {"object": {"customer": "cus_1", "amount_due": 1900}}});
    let (s, _) = w.deliver(&failed(1), SECRET, 0).await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = w
        .call("GET", "/v1/billing/status", Some(&key), None)
        .await
        .pair();
    assert_eq!(b["state"], "past_due");
    async fn reminders(w: &World) -> usize {
        w.outbox_to("late-payer@example.com")
            .await
            .iter()
            .filter(|m| m["subject"] == "Your payment failed")
            .count()
    }
    assert_eq!(reminders(&w).await, 1, "day 0");
    // A second failure does not restart the clock or the reminders.
    w.deliver(&failed(2), SECRET, 0).await;
    assert_eq!(reminders(&w).await, 1);
    w.clock.advance(Duration::days(2));
    w.levqor.billing().dunning_tick().await.unwrap();
    assert_eq!(reminders(&w).await, 1, "nothing due before day 3");
    w.clock.advance(Duration::days(1));
    w.levqor.billing().dunning_tick().await.unwrap();
    w.levqor.billing().dunning_tick().await.unwrap();
    assert_eq!(reminders(&w).await, 2, "day 3, once");
    assert_eq!(
        w.call("POST", "/v1/jobs", Some(&key), Some(log_job()))
            .await
            .pair()
            .0,
        StatusCode::ACCEPTED,
        "past due still runs"
    );
    w.clock.advance(Duration::days(4));
    w.levqor.billing().dunning_tick().await.unwrap();
    assert_eq!(reminders(&w).await, 3, "day 7");
    w.clock.advance(Duration::days(7));
    w.levqor.billing().dunning_tick().await.unwrap();
    let (_, b) = w
        .call("GET", "/v1/billing/status", Some(&key), None)
        .await
        .pair();
    assert_eq!(b["state"], "suspended");
    assert!(
        w.outbox_to("late-payer@example.com")
            .await
            .iter()
            .any(|m| m["subject"] == "Your account is suspended")
    );
    let (s, r) = w
        .call("POST", "/v1/jobs", Some(&key), Some(log_job()))
        .await
        .pair();
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_suspended"))
    );
    assert_eq!(
        w.call("GET", "/v1/jobs", Some(&key), None).await.pair().0,
        StatusCode::OK,
        "reads still work"
    );
    assert_eq!(
        w.call("POST", "/v1/me/export", Some(&key), None)
            .await
            .pair()
            .0,
        StatusCode::ACCEPTED,
        "exports still work"
    );

    // Paying restores the account at once.
    let paid = json!({"id": "evt_p", "type": "invoice.paid", "data": {"object": {"customer": "cus_1", "amount_paid": 1900, "currency": "usd"}}});
    w.deliver(&paid, SECRET, 0).await;
    let (_, b) = w
        .call("GET", "/v1/billing/status", Some(&key), None)
        .await
        .pair();
    assert_eq!(b["state"], "active");
    assert_eq!(
        w.call("POST", "/v1/jobs", Some(&key), Some(log_job()))
            .await
            .pair()
            .0,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn discount_codes_apply_once_per_user_and_within_their_limits() {
    let w = world(true);
    let (_, a) = w.user("a@example.com").await;
    let (_, b) = w.user("b@example.com").await;
    let (s, r) = w
        .call(
            "POST",
            "/v1/admin/discounts",
            Some(ADMIN),
            Some(json!({"code": "launch25", "kind": "percent", "value": 25, "max_redemptions": 1})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["codes"][0]["code"], "LAUNCH25");
    let (s, r) = w
        .call(
            "POST",
            "/v1/admin/discounts",
            Some(ADMIN),
            Some(json!({"code": "LAUNCH25", "kind": "fixed", "value": 5})),
        )
        .await
        .pair();
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::CONFLICT, Some("discount_code_exists"))
    );
    let (s, r) = w
        .call(
            "POST",
            "/v1/admin/discounts",
            Some(ADMIN),
            Some(json!({"count": 50, "prefix": "fall", "kind": "fixed", "value": 300})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::CREATED);
    let batch: std::collections::HashSet<&str> = r["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(batch.len(), 50, "unique codes");
    assert!(batch.iter().all(|c| c.starts_with("FALL-")));
    let (s, r) = w
        .call(
            "POST",
            "/v1/admin/discounts",
            Some(ADMIN),
            Some(json!({"code": "x", "kind": "percent", "value": 120})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r["errors"].as_array().unwrap().len(), 2, "{r}");

    // A quote previews a code without redeeming it.
    let (s, q) = w.call("POST", "/v1/quote", Some(&a), Some(json!({"workflow": {"name": "w", "steps": [{"id": "a", "type": "http_request", "url": "https://example.com"}, {"id": "b", "type": "http_request", "url": "https://example.com"}]}, "discount_code": "launch25"}))).await.pair();
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(q["credits"], 15);
    assert_eq!(
        q["components"].as_array().unwrap().last().unwrap()["name"],
        "discount:LAUNCH25"
    );

    // Checkout redeems it: 25% off a $10 pack; it is then used up for everyone.
    let (s, r) = w.checkout_with_code(&a, "LAUNCH25").await;
    assert_eq!((s, &r["amount"]), (StatusCode::CREATED, &json!(750)), "{r}");
    let (s, r) = w.checkout_with_code(&a, "LAUNCH25").await;
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::CONFLICT, Some("discount_exhausted"))
    );
    let (s, r) = w.checkout_with_code(&b, "LAUNCH25").await;
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::CONFLICT, Some("discount_exhausted"))
    );
    let fall = *batch.iter().next().unwrap();
    let (_, r) = w.checkout_with_code(&b, fall).await;
    assert_eq!(r["amount"], 700);
    let (s, r) = w.checkout_with_code(&b, fall).await;
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::CONFLICT, Some("discount_already_redeemed"))
    );
    let (s, r) = w.checkout_with_code(&b, "NOPE").await;
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("discount_unknown"))
    );
    w.call("POST", "/v1/admin/discounts", Some(ADMIN), Some(json!({"code": "SHORT", "kind": "fixed", "value": 100, "expires_at": "2026-11-03T00:00:00Z"}))).await.pair();
    w.clock.advance(Duration::days(2));
    let (s, r) = w.checkout_with_code(&b, "short").await;
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::CONFLICT, Some("discount_expired"))
    );
}

#[tokio::test]
async fn the_profit_ledger_and_the_guard_report_margin() {
    let w = world(true);
    let (id, key) = w.user("paying@example.com").await;
    // No revenue yet: scaling up is refused.
    let (_, g) = w
        .call("GET", "/v1/admin/autoscale", Some(ADMIN), None)
        .await
        .pair();
    assert_eq!(g["allowed"], false, "{g}");
    // $10 of revenue, and a referral payout of 100 credits (1 cent each by default).
    w.deliver(&completed("evt_r1", &id, 1_000, 1_000), SECRET, 0)
        .await;
    let user_id = uuid::Uuid::parse_str(&id).unwrap();
    w.store
        .post_entry(&NewEntry {
            user_id,
            kind: EntryKind::Referral,
            credits: 100,
            idempotency_key: "ref-1".into(),
            reason: None,
            priority: 0,
            expires_at: None,
            now: w.clock_now(),
        })
        .await
        .unwrap();
    let (s, l) = w
        .call(
            "GET",
            "/v1/admin/ledger?from=2026-11-01&to=2026-12-01&group_by=week",
            Some(ADMIN),
            None,
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::OK, "{l}");
    assert_eq!(l["periods"].as_array().unwrap().len(), 1);
    assert_eq!(l["total"]["revenue_cents"], 1_000.0);
    assert_eq!(l["total"]["payouts_cents"], 100.0);
    assert_eq!(l["total"]["margin_pct"], 90.0);
    assert_eq!(
        l["periods"][0]["period"], "2026-11-02T00:00:00Z",
        "weeks start on Monday (the 2nd is one)"
    );
    let (_, g) = w
        .call("GET", "/v1/admin/autoscale", Some(ADMIN), None)
        .await
        .pair();
    assert_eq!(
        (g["allowed"].as_bool(), g["threshold_pct"].as_f64()),
        (Some(true), Some(10.0)),
        "{g}"
    );
    // Payouts that eat the margin close the guard.
    w.store
        .post_entry(&NewEntry {
            user_id,
            kind: EntryKind::Referral,
            credits: 850,
            idempotency_key: "ref-2".into(),
            reason: None,
            priority: 0,
            expires_at: None,
            now: w.clock_now(),
        })
        .await
        .unwrap();
    let (_, g) = w
        .call("GET", "/v1/admin/autoscale", Some(ADMIN), None)
        .await
        .pair();
    assert_eq!(g["allowed"], false, "{g}");
    assert_eq!(g["margin_pct"], 5.0);
    let (s, _) = w
        .call("GET", "/v1/admin/ledger?group_by=year", Some(ADMIN), None)
        .await
        .pair();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = w
        .call("GET", "/v1/admin/ledger", Some(&key), None)
        .await
        .pair();
    assert_eq!(s, StatusCode::FORBIDDEN);
}
