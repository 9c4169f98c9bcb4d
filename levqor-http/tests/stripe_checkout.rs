#![cfg(feature = "stripe")]
//! `StripeProvider` against a fake of Stripe's API served on a local port: the fake reads the
//! form-encoded bodies and the bearer key as Stripe does, answers with Stripe-shaped objects,
//! and records what it received, so these tests check the parameters that reach Stripe and
//! that its failures become `unavailable` without leaking its messages.

mod support;

use std::collections::BTreeMap;

use levqor_core::billing::{CheckoutMode, CheckoutRequest, PaymentProvider};
use levqor_http::stripe::StripeProvider;
use support::fake_stripe::{Behaviour, KEY, start};

fn provider(base: &str) -> StripeProvider {
    StripeProvider::new(KEY, Some(base)).expect("provider")
}

fn checkout_request(
    customer_id: &str,
    mode: CheckoutMode,
    metadata: &[(&str, &str)],
) -> CheckoutRequest {
    let (product_name, amount_minor) = match mode {
        CheckoutMode::Payment => ("Levqor credits: 1,000", 1_000),
        CheckoutMode::Subscription => ("Levqor Pro (monthly)", 4_900),
    };
    CheckoutRequest {
        customer_id: customer_id.to_string(),
        mode,
        product_name: product_name.to_string(),
        amount_minor,
        currency: "usd".to_string(),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        success_url: "https://app.levqor.example/billing/success?session={CHECKOUT_SESSION_ID}"
            .to_string(),
        cancel_url: "https://app.levqor.example/billing/cancelled".to_string(),
    }
}

#[tokio::test]
async fn customer_and_checkouts_reach_stripe_with_the_right_parameters() {
    let (base, fake) = start(Behaviour::Succeed).await;
    let stripe = provider(&base);
    let user_id = uuid::Uuid::now_v7();
    let user = user_id.to_string();

    let customer_id = stripe
        .create_customer(user_id, "ada@example.com")
        .await
        .expect("customer");
    let payment = stripe
        .create_checkout(&checkout_request(
            &customer_id,
            CheckoutMode::Payment,
            &[("levqor_user_id", &user), ("levqor_credits", "1000")],
        ))
        .await
        .expect("payment checkout");
    let subscription = stripe
        .create_checkout(&checkout_request(
            &customer_id,
            CheckoutMode::Subscription,
            &[("levqor_user_id", &user), ("levqor_tier", "pro")],
        ))
        .await
        .expect("subscription checkout");

    let seen = fake.seen.lock().unwrap().clone();
    let answered = fake.answered.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {KEY}").as_str())
        );
    }

    // The customer: the email and the user it belongs to; its id is the fake's.
    let customer = &seen[0];
    assert_eq!(customer.path, "/v1/customers");
    assert_eq!(customer.field("email"), Some("ada@example.com"));
    assert_eq!(
        customer.field("metadata[levqor_user_id]"),
        Some(user.as_str())
    );
    assert_eq!(customer_id, answered[0]["id"]);
    assert!(customer_id.starts_with("cus_Fake"));

    // A credit pack: a one-off payment with an inline price and the metadata on the session.
    let pay = &seen[1];
    assert_eq!(pay.path, "/v1/checkout/sessions");
    assert_eq!(pay.field("mode"), Some("payment"));
    assert_eq!(pay.field("customer"), Some(customer_id.as_str()));
    assert_eq!(
        pay.field("line_items[0][price_data][unit_amount]"),
        Some("1000")
    );
    assert_eq!(
        pay.field("line_items[0][price_data][currency]"),
        Some("usd")
    );
    assert_eq!(
        pay.field("line_items[0][price_data][product_data][name]"),
        Some("Levqor credits: 1,000")
    );
    assert_eq!(pay.field("line_items[0][quantity]"), Some("1"));
    assert_eq!(
        pay.fields_under("line_items[0][price_data][recurring]"),
        BTreeMap::new()
    );
    assert_eq!(
        pay.fields_under("metadata["),
        BTreeMap::from([
            ("metadata[levqor_credits]".to_string(), "1000".to_string()),
            ("metadata[levqor_user_id]".to_string(), user.clone()),
        ])
    );
    assert_eq!(pay.fields_under("subscription_data"), BTreeMap::new());
    assert_eq!(
        pay.field("success_url"),
        Some("https://app.levqor.example/billing/success?session={CHECKOUT_SESSION_ID}")
    );
    assert_eq!(
        pay.field("cancel_url"),
        Some("https://app.levqor.example/billing/cancelled")
    );
    assert_eq!(payment.id, answered[1]["id"]);
    assert_eq!(payment.url, answered[1]["url"]);
    assert!(
        payment
            .url
            .starts_with("https://checkout.stripe.com/c/pay/cs_test_")
    );

    // A tier: a monthly subscription whose metadata is also on the subscription it creates.
    let sub = &seen[2];
    assert_eq!(sub.field("mode"), Some("subscription"));
    assert_eq!(sub.field("customer"), Some(customer_id.as_str()));
    assert_eq!(
        sub.field("line_items[0][price_data][unit_amount]"),
        Some("4900")
    );
    assert_eq!(
        sub.field("line_items[0][price_data][recurring][interval]"),
        Some("month")
    );
    assert_eq!(
        sub.field("line_items[0][price_data][product_data][name]"),
        Some("Levqor Pro (monthly)")
    );
    assert_eq!(sub.field("metadata[levqor_tier]"), Some("pro"));
    assert_eq!(sub.field("metadata[levqor_user_id]"), Some(user.as_str()));
    assert_eq!(
        sub.field("subscription_data[metadata][levqor_tier]"),
        Some("pro")
    );
    assert_eq!(
        sub.field("subscription_data[metadata][levqor_user_id]"),
        Some(user.as_str())
    );
    assert_eq!(subscription.id, answered[2]["id"]);
    assert_eq!(subscription.url, answered[2]["url"]);
    assert_ne!(subscription.id, payment.id);
}

#[tokio::test]
async fn stripe_failures_are_unavailable_without_stripes_message() {
    for behaviour in [Behaviour::ServerError, Behaviour::StripeError] {
        let (base, fake) = start(behaviour).await;
        let stripe = provider(&base);

        let err = stripe
            .create_customer(uuid::Uuid::now_v7(), "ada@example.com")
            .await
            .expect_err("customer must fail");
        assert_eq!(err.code, "unavailable", "{behaviour:?}");
        let err = stripe
            .create_checkout(&checkout_request(
                "cus_missing",
                CheckoutMode::Payment,
                &[("levqor_credits", "1000")],
            ))
            .await
            .expect_err("checkout must fail");
        assert_eq!(err.code, "unavailable", "{behaviour:?}");
        for leak in ["exploded", "No such customer", "ada@example.com"] {
            assert!(
                !err.message.contains(leak),
                "{behaviour:?}: {}",
                err.message
            );
        }
        // Sent once each: a refused call is not retried behind the caller's back.
        assert_eq!(fake.seen.lock().unwrap().len(), 2, "{behaviour:?}");
    }
}

#[tokio::test]
async fn a_wrong_key_is_refused_as_unavailable() {
    let (base, fake) = start(Behaviour::Succeed).await;
    let stripe = StripeProvider::new("sk_test_wrong", Some(&base)).expect("provider");
    let err = stripe
        .create_customer(uuid::Uuid::now_v7(), "ada@example.com")
        .await
        .expect_err("a wrong key must fail");
    assert_eq!(err.code, "unavailable");
    assert_eq!(
        fake.seen.lock().unwrap()[0].authorization.as_deref(),
        Some("Bearer sk_test_wrong")
    );
}

#[tokio::test]
async fn a_session_without_a_payment_page_is_unavailable() {
    let (base, _fake) = start(Behaviour::NoUrl).await;
    let err = provider(&base)
        .create_checkout(&checkout_request(
            "cus_Fake0001",
            CheckoutMode::Payment,
            &[("levqor_credits", "1000")],
        ))
        .await
        .expect_err("no url must fail");
    assert_eq!(err.code, "unavailable");
    // Refused for the missing page, not because the answer could not be read.
    assert!(
        err.message.contains("without a payment page"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn an_unreachable_stripe_is_unavailable() {
    // Bind and drop a listener so the port is (almost certainly) closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/", listener.local_addr().expect("addr"));
    drop(listener);
    let err = provider(&base)
        .create_customer(uuid::Uuid::now_v7(), "ada@example.com")
        .await
        .expect_err("a closed port must fail");
    assert_eq!(err.code, "unavailable");
}

#[test]
fn the_constructor_refuses_an_empty_key_or_a_base_without_a_scheme() {
    assert!(StripeProvider::new("", None).is_err());
    assert!(StripeProvider::new("  ", None).is_err());
    let err = StripeProvider::new(KEY, Some("127.0.0.1:12111")).expect_err("no scheme");
    assert!(!err.contains(KEY), "{err}");
    assert!(StripeProvider::new(KEY, None).is_ok());
    assert!(StripeProvider::new(KEY, Some("https://api.stripe.com")).is_ok());
}
