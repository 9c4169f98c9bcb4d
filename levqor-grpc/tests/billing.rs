//! `levqor.v1.BillingService` through the generated client: checkout through an in-test
//! payment provider, billing status, discount codes, the profitability ledger and the profit
//! guard.

mod support;

use chrono::{Datelike, Duration, Utc};
use levqor_core::billing::{
    BillingConfig, CheckoutMode, CheckoutRequest, CheckoutSession, PaymentProvider,
};
use levqor_grpc::pb;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use support::*;
use tonic::Code;

const WEBHOOK_SECRET: &str = "whsec_test";

/// A payment provider that records what it is asked and answers with numbered sessions.
#[derive(Default)]
struct FakeProvider {
    customers: Mutex<Vec<(uuid::Uuid, String)>>,
    checkouts: Mutex<Vec<CheckoutRequest>>,
}

#[async_trait::async_trait]
impl PaymentProvider for FakeProvider {
    async fn create_customer(
        &self,
        user_id: uuid::Uuid,
        email: &str,
    ) -> levqor_core::Result<String> {
        let mut customers = self.customers.lock().unwrap();
        customers.push((user_id, email.to_string()));
        Ok(format!("cus_{}", customers.len()))
    }

    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> levqor_core::Result<CheckoutSession> {
        let mut checkouts = self.checkouts.lock().unwrap();
        checkouts.push(request.clone());
        Ok(CheckoutSession {
            id: format!("cs_{}", checkouts.len()),
            url: format!("https://pay.example/cs_{}", checkouts.len()),
        })
    }
}

/// The server with billing through `provider`.
async fn billed(provider: Arc<FakeProvider>) -> Server {
    Server::over(levqor(|b| {
        b.billing(BillingConfig {
            provider,
            webhook_secret: WEBHOOK_SECRET.into(),
        })
    }))
    .await
}

fn pack(name: &str) -> pb::CheckoutRequest {
    pb::CheckoutRequest {
        pack: Some(name.into()),
        ..Default::default()
    }
}

fn with_code(name: &str, code: &str) -> pb::CheckoutRequest {
    pb::CheckoutRequest {
        discount_code: Some(code.into()),
        ..pack(name)
    }
}

fn status_of(user_id: Option<&str>) -> pb::GetBillingStatusRequest {
    pb::GetBillingStatusRequest {
        user_id: user_id.map(str::to_string),
    }
}

fn discount(code: &str, kind: &str, value: i64) -> pb::CreateDiscountsRequest {
    pb::CreateDiscountsRequest {
        code: Some(code.into()),
        kind: kind.into(),
        value,
        ..Default::default()
    }
}

fn timestamp(t: chrono::DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

/// Delivers a signed `checkout.session.completed` for `user_id` to the core (the webhook is
/// HTTP only): `amount` cents of revenue.
async fn paid(server: &Server, event: &str, user_id: &str, amount: i64) {
    let body = json!({"id": event, "type": "checkout.session.completed", "data": {"object": {
        "id": "cs_1", "customer": "cus_1", "amount_total": amount, "currency": "usd",
        "metadata": {"levqor_user_id": user_id, "levqor_credits": "1000"}}}})
    .to_string();
    let signature =
        levqor_core::billing::sign(body.as_bytes(), WEBHOOK_SECRET, Utc::now().timestamp());
    let outcome = server
        .levqor
        .billing()
        .handle_webhook(body.as_bytes(), &signature)
        .await
        .unwrap();
    assert_eq!(outcome.handled, Some(true));
}

#[tokio::test]
async fn without_a_provider_checkout_is_unavailable_and_the_rest_works() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut billing = server.billing();
    let r = billing.checkout(as_(&key, pack("credits_1000"))).await;
    assert_eq!(
        refusal(r),
        (Code::Unavailable, "billing_not_configured".into())
    );
    let status = billing
        .get_billing_status(as_(&key, status_of(None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status,
        pb::BillingStatus {
            state: "active".into(),
            since: None,
            customer: false
        }
    );
    let made = billing
        .create_discounts(as_(ADMIN, discount("spring", "percent", 10)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(made.codes[0].code, "SPRING");
}

#[tokio::test]
async fn checkout_sells_packs_and_tiers_through_the_provider() {
    let provider = Arc::new(FakeProvider::default());
    let server = billed(provider.clone()).await;
    let (id, key) = server.user("buyer@example.com").await;
    let mut billing = server.billing();
    let before = billing
        .get_billing_status(as_(&key, status_of(None)))
        .await
        .unwrap()
        .into_inner();
    assert!(!before.customer);

    let session = billing
        .checkout(as_(
            &key,
            pb::CheckoutRequest {
                success_url: Some("https://app.example/ok".into()),
                ..pack("credits_1000")
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        session,
        pb::CheckoutResult {
            id: "cs_1".into(),
            url: "https://pay.example/cs_1".into(),
            amount: 1_000,
            currency: "usd".into()
        }
    );
    let tier = billing
        .checkout(as_(
            &key,
            pb::CheckoutRequest {
                tier: Some("pro".into()),
                cancel_url: Some("https://app.example/back".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (tier.id.as_str(), tier.amount, tier.currency.as_str()),
        ("cs_2", 1_900, "usd")
    );
    {
        let customers = provider.customers.lock().unwrap();
        assert_eq!(
            customers.as_slice(),
            [(
                uuid::Uuid::parse_str(&id).unwrap(),
                "buyer@example.com".to_string()
            )],
            "one customer per user"
        );
        let c = provider.checkouts.lock().unwrap();
        assert_eq!(
            (
                c[0].customer_id.as_str(),
                c[0].mode,
                c[0].amount_minor,
                c[0].success_url.as_str()
            ),
            (
                "cus_1",
                CheckoutMode::Payment,
                1_000,
                "https://app.example/ok"
            )
        );
        assert_eq!(c[0].metadata["levqor_user_id"], id);
        assert_eq!(c[0].metadata["levqor_credits"], "1000");
        assert_eq!(
            (c[1].mode, c[1].cancel_url.as_str()),
            (CheckoutMode::Subscription, "https://app.example/back")
        );
        assert_eq!(c[1].metadata["levqor_tier"], "pro");
    }
    let after = billing
        .get_billing_status(as_(&key, status_of(None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (after.state.as_str(), after.since, after.customer),
        ("active", None, true)
    );
    let theirs = billing
        .get_billing_status(as_(ADMIN, status_of(Some(&id))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs, after);

    // What cannot be sold names its field; nothing reaches the provider.
    let r = billing.checkout(as_(&key, pack("credits_7"))).await;
    assert_eq!(bad_fields(r), ["pack"]);
    let r = billing
        .checkout(as_(
            &key,
            pb::CheckoutRequest {
                tier: Some("sandbox".into()),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["tier"], "a free tier is not sold");
    let r = billing
        .checkout(as_(&key, pb::CheckoutRequest::default()))
        .await;
    assert_eq!(
        bad_fields(r),
        [""],
        "the whole request: name a pack or a tier"
    );
    let r = billing
        .checkout(as_(
            &key,
            pb::CheckoutRequest {
                tier: Some("pro".into()),
                ..pack("credits_1000")
            },
        ))
        .await;
    assert_eq!(bad_fields(r), [""]);
    assert_eq!(provider.checkouts.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn billing_refuses_strangers_the_admin_and_callers_without_a_key() {
    let provider = Arc::new(FakeProvider::default());
    let server = billed(provider.clone()).await;
    let (ada, _) = server.user("ada@example.com").await;
    let (_, bob) = server.user("bob@example.com").await;
    let mut billing = server.billing();
    let r = billing.checkout(pack("credits_1000")).await;
    assert_eq!(
        refusal(r),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    let r = billing.get_billing_status(status_of(None)).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = billing
        .create_discounts(discount("spring", "percent", 10))
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = billing
        .get_profit_ledger(pb::GetProfitLedgerRequest::default())
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = billing.get_autoscale(pb::GetAutoscaleRequest {}).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);

    let r = billing
        .get_billing_status(as_(&bob, status_of(Some(&ada))))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let r = billing
        .get_billing_status(as_(ADMIN, status_of(None)))
        .await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );
    let r = billing.checkout(as_(ADMIN, pack("credits_1000"))).await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );

    let admin_only = (Code::PermissionDenied, "admin_only".to_string());
    let r = billing
        .create_discounts(as_(&bob, discount("spring", "percent", 10)))
        .await;
    assert_eq!(refusal(r), admin_only);
    let r = billing
        .get_profit_ledger(as_(&bob, pb::GetProfitLedgerRequest::default()))
        .await;
    assert_eq!(refusal(r), admin_only);
    let r = billing
        .get_autoscale(as_(&bob, pb::GetAutoscaleRequest {}))
        .await;
    assert_eq!(refusal(r), admin_only);
    assert!(provider.checkouts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn discount_codes_are_created_previewed_and_redeemed_once() {
    let provider = Arc::new(FakeProvider::default());
    let server = billed(provider.clone()).await;
    let (_, a) = server.user("a@example.com").await;
    let (_, b) = server.user("b@example.com").await;
    let mut billing = server.billing();
    let expires = Utc::now() + Duration::days(7);
    let made = billing
        .create_discounts(as_(
            ADMIN,
            pb::CreateDiscountsRequest {
                max_redemptions: Some(1),
                expires_at: Some(timestamp(expires)),
                ..discount(" launch25 ", "percent", 25)
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(made.codes.len(), 1);
    let launch = &made.codes[0];
    assert_eq!(
        (
            launch.code.as_str(),
            launch.kind.as_str(),
            launch.value,
            launch.max_redemptions,
            launch.redemptions
        ),
        ("LAUNCH25", "percent", 25, Some(1), 0)
    );
    assert_eq!(launch.expires_at.unwrap().seconds, expires.timestamp());
    assert!(launch.created_at.is_some());
    let r = billing
        .create_discounts(as_(ADMIN, discount("LAUNCH25", "fixed", 5)))
        .await;
    assert_eq!(
        refusal(r),
        (Code::AlreadyExists, "discount_code_exists".into())
    );
    let batch = billing
        .create_discounts(as_(
            ADMIN,
            pb::CreateDiscountsRequest {
                code: None,
                count: Some(20),
                prefix: Some("fall".into()),
                ..discount("", "fixed", 300)
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let codes: HashSet<&str> = batch.codes.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes.len(), 20, "unique codes");
    assert!(codes.iter().all(|c| c.starts_with("FALL-")), "{codes:?}");
    assert!(
        batch
            .codes
            .iter()
            .all(|c| c.kind == "fixed" && c.value == 300)
    );

    // Bad requests name every bad field at once.
    let r = billing
        .create_discounts(as_(ADMIN, discount("x", "percent", 120)))
        .await;
    assert_eq!(bad_fields(r), ["value", "code"]);
    let r = billing
        .create_discounts(as_(
            ADMIN,
            pb::CreateDiscountsRequest {
                max_redemptions: Some(0),
                expires_at: Some(timestamp(Utc::now() - Duration::days(1))),
                ..discount("WINTER", "bogus", 1)
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["kind", "max_redemptions", "expires_at"]);
    let r = billing
        .create_discounts(as_(
            ADMIN,
            pb::CreateDiscountsRequest {
                code: None,
                ..discount("", "fixed", 100)
            },
        ))
        .await;
    assert_eq!(bad_fields(r), [""], "a code or a count");
    let r = billing
        .create_discounts(as_(
            ADMIN,
            pb::CreateDiscountsRequest {
                expires_at: Some(pbjson_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                ..discount("WINTER", "fixed", 100)
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["expires_at"]);

    // Checkout redeems: 25% off the $10 pack, once, for everyone.
    let r = billing
        .checkout(as_(&a, with_code("credits_1000", "launch25")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.amount, 750);
    assert_eq!(
        provider.checkouts.lock().unwrap()[0].metadata["levqor_discount_code"],
        "LAUNCH25"
    );
    for key in [&a, &b] {
        let r = billing
            .checkout(as_(key, with_code("credits_1000", "LAUNCH25")))
            .await;
        assert_eq!(refusal(r), (Code::Aborted, "discount_exhausted".into()));
    }
    let fall = batch.codes[0].code.clone();
    let r = billing
        .checkout(as_(&b, with_code("credits_1000", &fall)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.amount, 700, "$3 off");
    let r = billing
        .checkout(as_(&b, with_code("credits_1000", &fall)))
        .await;
    assert_eq!(
        refusal(r),
        (Code::Aborted, "discount_already_redeemed".into())
    );
    let r = billing
        .checkout(as_(&b, with_code("credits_1000", "NOPE")))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "discount_unknown".into()));
    assert_eq!(provider.checkouts.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn the_profit_ledger_and_the_guard_report_the_margin() {
    let server = billed(Arc::new(FakeProvider::default())).await;
    let (id, _) = server.user("paying@example.com").await;
    let mut billing = server.billing();

    // No revenue yet: an empty ledger, and scaling up is refused.
    let empty = billing
        .get_profit_ledger(as_(ADMIN, pb::GetProfitLedgerRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.group_by, "day");
    assert!(empty.periods.is_empty());
    assert_eq!(
        empty.to.unwrap().seconds - empty.from.unwrap().seconds,
        30 * 86_400,
        "30 days to now by default"
    );
    let total = empty.total.unwrap();
    assert_eq!(
        (total.revenue_cents, total.margin_cents, total.margin_pct),
        (0.0, 0.0, None)
    );
    let guard = billing
        .get_autoscale(as_(ADMIN, pb::GetAutoscaleRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(!guard.allowed, "{guard:?}");
    assert_eq!(
        (
            guard.margin_pct,
            guard.threshold_pct,
            guard.window_days,
            guard.revenue_cents
        ),
        (None, 10.0, 30, 0.0)
    );
    assert!(!guard.reason.is_empty());

    // $10 of revenue.
    paid(&server, "evt_1", &id, 1_000).await;
    let now = Utc::now();
    let ledger = billing
        .get_profit_ledger(as_(
            ADMIN,
            pb::GetProfitLedgerRequest {
                from: Some(timestamp(now - Duration::days(60))),
                to: Some(timestamp(now + Duration::days(1))),
                group_by: Some("month".into()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ledger.group_by, "month");
    assert_eq!(ledger.periods.len(), 1, "{ledger:?}");
    let period = &ledger.periods[0];
    assert_eq!(
        (period.revenue_cents, period.margin_pct),
        (1_000.0, Some(100.0))
    );
    let start = now.date_naive().with_day0(0).unwrap();
    assert_eq!(
        period.period.unwrap().seconds,
        start.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp(),
        "a month starts on its first day"
    );
    let total = ledger.total.unwrap();
    assert_eq!(
        (
            total.revenue_cents,
            total.cost_cents,
            total.payouts_cents,
            total.margin_cents
        ),
        (1_000.0, 0.0, 0.0, 1_000.0)
    );
    let guard = billing
        .get_autoscale(as_(ADMIN, pb::GetAutoscaleRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(guard.allowed, "{guard:?}");
    assert_eq!(
        (guard.margin_pct, guard.revenue_cents),
        (Some(100.0), 1_000.0)
    );

    // A bad grouping or range, or a bad timestamp, names its field.
    let r = billing
        .get_profit_ledger(as_(
            ADMIN,
            pb::GetProfitLedgerRequest {
                group_by: Some("year".into()),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["group_by"]);
    let r = billing
        .get_profit_ledger(as_(
            ADMIN,
            pb::GetProfitLedgerRequest {
                from: Some(timestamp(now)),
                to: Some(timestamp(now - Duration::days(1))),
                group_by: None,
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["to"], "from must be before to");
    let r = billing
        .get_profit_ledger(as_(
            ADMIN,
            pb::GetProfitLedgerRequest {
                from: Some(pbjson_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                to: Some(pbjson_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                group_by: None,
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["from", "to"]);
}
