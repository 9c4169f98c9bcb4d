//! The billing service against its ports: checkout and discount codes (with a provider that
//! fails), the provider's webhook, billing status and the discounted quote.

use super::test_world::*;

#[tokio::test]
async fn without_configuration_checkout_and_webhooks_are_unavailable() {
    let base = Base::new();
    let billing = base.billing(None);
    let (_, who) = base.user("nobill@example.com").await;
    let order = order(Some("credits_1000"), None, None);
    let unavailable = (ErrorKind::Unavailable, "billing_not_configured");
    assert_eq!(err(billing.checkout(&who, order).await), unavailable);
    let header = sign(b"{}", SECRET, base.clock.now().timestamp());
    let webhook = billing.handle_webhook(b"{}", &header).await;
    assert_eq!(err(webhook), unavailable);
    let status = billing.status(&who, None).await.unwrap();
    assert_eq!(status.state, DunningState::Active, "status still answers");
}

#[tokio::test]
async fn checkout_sells_a_pack_with_the_metadata_its_webhook_needs() {
    let w = World::new();
    let (user, who) = w.base.user("buyer@example.com").await;
    let mut order = order(Some("credits_1000"), None, None);
    order.success_url = Some("https://app.example/ok".into());
    let r = w.billing.checkout(&who, order).await.unwrap();
    assert_eq!(
        (r.id.as_str(), r.url.as_str()),
        ("cs_1", "https://pay.example/cs_1")
    );
    assert_eq!((r.amount, r.currency.as_str()), (1_000, "usd"));
    let metadata = BTreeMap::from([
        ("levqor_credits".to_string(), "1000".to_string()),
        ("levqor_user_id".to_string(), user.id.to_string()),
    ]);
    let expected = CheckoutRequest {
        customer_id: "cus_1".into(),
        mode: CheckoutMode::Payment,
        product_name: "1000 Levqor credits".into(),
        amount_minor: 1_000,
        currency: "usd".into(),
        metadata,
        success_url: "https://app.example/ok".into(),
        cancel_url: "https://levqor.test/billing/cancel".into(),
    };
    assert_eq!(w.sent(), [expected]);
    assert!(w.customer_known(&who).await);
}

#[tokio::test]
async fn checkout_subscribes_to_a_paid_tier_with_one_customer_per_user() {
    let w = World::new();
    let (user, who) = w.base.user("subscriber@example.com").await;
    let (other, other_key) = w.base.user("second@example.com").await;
    assert_eq!(w.buy(&who, "tier:pro", None).await.unwrap(), 1_900);
    w.buy(&who, "credits_5500", None).await.unwrap();
    w.buy(&other_key, "credits_1000", None).await.unwrap();
    assert_eq!(w.customers(), [user.id, other.id], "one per user");
    let sent = w.sent();
    let s = &sent[0];
    assert_eq!(
        (s.mode, s.amount_minor),
        (CheckoutMode::Subscription, 1_900)
    );
    assert_eq!(s.product_name, "Levqor pro");
    let metadata = BTreeMap::from([
        ("levqor_tier".to_string(), "pro".to_string()),
        ("levqor_user_id".to_string(), user.id.to_string()),
    ]);
    assert_eq!(s.metadata, metadata);
    assert_eq!(s.success_url, "https://levqor.test/billing/success");
    let customers: Vec<&str> = sent.iter().map(|c| c.customer_id.as_str()).collect();
    assert_eq!(customers, ["cus_1", "cus_1", "cus_2"], "reused");
}

#[tokio::test]
async fn a_bad_checkout_is_refused_and_uses_nothing_up() {
    let w = World::new();
    w.discount("launch25", "percent", 25, None).await;
    let (_, who) = w.base.user("confused@example.com").await;
    let cases = [
        (Some("credits_7"), None, "/pack"),
        (None, Some("gold"), "/tier"),
        (None, Some("sandbox"), "/tier"),
        (Some("credits_1000"), Some("pro"), ""),
        (None, None, ""),
    ];
    for (pack, tier, pointer) in cases {
        let bad = order(pack, tier, Some("LAUNCH25"));
        let e = w.billing.checkout(&who, bad).await.unwrap_err();
        assert_eq!((e.kind, e.code), (ErrorKind::Invalid, "validation_failed"));
        assert_eq!(pointers(&e), [pointer]);
    }
    let by_admin = w.buy(ADMIN, "credits_1000", None).await;
    assert_eq!(err(by_admin).1, "user_key_required");
    assert_eq!(w.redemptions("LAUNCH25").await, 0);
    assert!(w.customers().is_empty() && w.sent().is_empty());
    assert!(!w.customer_known(&who).await);
}

#[tokio::test]
async fn the_policy_in_force_decides_what_is_for_sale() {
    let w = World::new();
    let (_, who) = w.base.user("shopper@example.com").await;
    assert_eq!(w.billing.policy(), BillingPolicy::default());
    let tiny = Pack {
        name: "tiny".into(),
        credits: 10,
        price_cents: 99,
    };
    let policy = with(BillingPolicy::default(), |p| {
        p.packs = vec![tiny];
        p.currency = "eur".into();
    });
    w.billing.set_policy(policy.clone());
    assert_eq!(w.billing.policy(), policy);
    assert_eq!(w.buy(&who, "tiny", None).await.unwrap(), 99);
    assert_eq!(w.sent()[0].currency, "eur");
    let e = w.buy(&who, "credits_1000", None).await.unwrap_err();
    assert_eq!(pointers(&e), ["/pack"], "no longer sold");
}

#[tokio::test]
async fn discounts_apply_once_per_user_and_within_their_limits() {
    let w = World::new();
    w.discount("launch25", "percent", 25, None).await;
    w.discount("FALL300", "fixed", 300, Some(1)).await;
    w.discount("FREEBIE", "fixed", 5_000, None).await;
    let (_, a) = w.base.user("a@example.com").await;
    let (_, b) = w.base.user("b@example.com").await;
    assert_eq!(w.paid(&a, " launch25 ").await.unwrap(), 750);
    let sent = w.sent();
    assert_eq!(sent[0].amount_minor, 750);
    assert_eq!(sent[0].metadata["levqor_discount_code"], "LAUNCH25");
    let again = err(w.paid(&a, "LAUNCH25").await);
    assert_eq!(again, (ErrorKind::Conflict, "discount_already_redeemed"));
    assert_eq!(w.redemptions("LAUNCH25").await, 1);
    assert_eq!(w.paid(&b, "launch25").await.unwrap(), 750, "once per user");
    assert_eq!(w.redemptions("LAUNCH25").await, 2);

    assert_eq!(w.paid(&a, "fall300").await.unwrap(), 700);
    assert_eq!(w.paid(&a, "FREEBIE").await.unwrap(), 0, "never below 0");
    let exhausted = err(w.paid(&b, "FALL300").await);
    assert_eq!(exhausted, (ErrorKind::Conflict, "discount_exhausted"));
    let unknown = err(w.paid(&b, "NOPE").await);
    assert_eq!(unknown, (ErrorKind::NotFound, "discount_unknown"));
    let tomorrow = Some(w.now() + Duration::days(1));
    let short = with(named("SHORT", "fixed", 100), |d| d.expires_at = tomorrow);
    w.discounts(ADMIN, short).await.unwrap();
    w.advance(1);
    assert_eq!(err(w.paid(&b, "short").await).1, "discount_expired");
    assert_eq!(w.redemptions("SHORT").await, 0);
    assert_eq!(w.sent().len(), 4, "refusals send nothing");
}

#[tokio::test]
async fn a_provider_failure_does_not_use_up_the_discount_code() {
    let w = World::new();
    w.discount("launch25", "percent", 25, Some(1)).await;
    let (user, who) = w.base.user("unlucky@example.com").await;
    w.down.store(true, Ordering::SeqCst);
    let failed = err(w.paid(&who, "LAUNCH25").await);
    assert_eq!(failed, (ErrorKind::Unavailable, "unavailable"));
    assert_eq!(w.redemptions("LAUNCH25").await, 0, "not used up");
    let redeemed = w.base.store.redeemed("LAUNCH25", user.id).await;
    assert!(!redeemed.unwrap());
    w.down.store(false, Ordering::SeqCst);
    assert_eq!(w.paid(&who, "LAUNCH25").await.unwrap(), 750, "a retry");
    assert_eq!(w.redemptions("LAUNCH25").await, 1);
}

#[tokio::test]
async fn discount_codes_are_made_by_name_or_generated() {
    let w = World::new();
    let one = with(named(" launch25 ", "percent", 25), |d| {
        d.max_redemptions = Some(3);
    });
    let made = w.discounts(ADMIN, one).await.unwrap();
    let m = &made[0];
    assert_eq!((made.len(), m.code.as_str(), m.value), (1, "LAUNCH25", 25));
    assert_eq!((m.max_redemptions, m.redemptions), (Some(3), 0));
    assert_eq!(m.created_at, w.now());
    assert_eq!(w.code("LAUNCH25").await.as_ref(), Some(m), "stored");
    let generate = |count: usize, prefix: Option<&str>| NewDiscounts {
        count: Some(count),
        prefix: prefix.map(Into::into),
        kind: "fixed".into(),
        value: 300,
        ..Default::default()
    };
    let batch = w
        .discounts(ADMIN, generate(50, Some("fall")))
        .await
        .unwrap();
    let codes: HashSet<&str> = batch.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes.len(), 50, "unique");
    let fall = |c: &&str| c.starts_with("FALL-") && c.len() == 15;
    assert!(codes.iter().all(fall), "{codes:?}");
    let plain = w.discounts(ADMIN, generate(1, None)).await.unwrap();
    assert!(plain[0].code.starts_with("LQ-"), "{}", plain[0].code);
    assert!(w.code(&plain[0].code).await.is_some());
    let audit = w.base.audit.store().find_audit("discounts.created", None);
    assert_eq!(audit.await.unwrap().len(), 3);
}

#[tokio::test]
async fn bad_discounts_are_refused_and_nothing_is_stored() {
    let w = World::new();
    w.discount("TAKEN", "percent", 10, None).await;
    let (_, who) = w.base.user("sneaky@example.com").await;
    let by_user = w.discounts(&who, named("MINE", "percent", 100)).await;
    assert_eq!(err(by_user), (ErrorKind::Forbidden, "admin_only"));
    let past = Some(w.now() - Duration::seconds(1));
    let good = |change: fn(&mut NewDiscounts)| with(named("GOOD", "fixed", 5), change);
    let cases: Vec<(NewDiscounts, Vec<&str>)> = vec![
        (named("x", "percent", 120), vec!["/value", "/code"]),
        (named("BAD CODE", "percent", 0), vec!["/value", "/code"]),
        (named("GOOD", "bogus", 5), vec!["/kind"]),
        (named("GOOD", "fixed", 0), vec!["/value"]),
        (
            good(|d| d.max_redemptions = Some(0)),
            vec!["/max_redemptions"],
        ),
        (
            with(good(|_| ()), |d| d.expires_at = past),
            vec!["/expires_at"],
        ),
        (good(|d| d.count = Some(2)), vec![""]),
        (good(|d| (d.code, d.count) = (None, Some(0))), vec![""]),
        (good(|d| (d.code, d.count) = (None, Some(10_001))), vec![""]),
        (good(|d| d.code = None), vec![""]),
        (good(|d| d.prefix = Some("FALL".into())), vec!["/prefix"]),
        (
            good(|d| (d.code, d.count, d.prefix) = (None, Some(2), Some("no way!".into()))),
            vec!["/prefix"],
        ),
        (
            good(|d| (d.code, d.count, d.prefix) = (None, Some(2), Some("  ".into()))),
            vec!["/prefix"],
        ),
        (
            good(|d| (d.code, d.count, d.prefix) = (None, Some(2), Some("P".repeat(21)))),
            vec!["/prefix"],
        ),
    ];
    for (bad, expected) in cases {
        let e = w.discounts(ADMIN, bad).await.unwrap_err();
        assert_eq!((e.code, pointers(&e)), ("validation_failed", expected));
    }
    let taken = err(w.discounts(ADMIN, named("taken", "fixed", 5)).await);
    assert_eq!(taken, (ErrorKind::Conflict, "discount_code_exists"));
    let kept = w.code("TAKEN").await.unwrap();
    assert_eq!((kept.kind.as_str(), kept.value), ("percent", 10));
    for code in ["MINE", "GOOD", "X"] {
        assert_eq!(w.code(code).await, None, "{code}");
    }
}

#[tokio::test]
async fn a_quote_shows_a_discount_without_redeeming_it() {
    let w = World::new();
    w.discount("launch25", "percent", 25, None).await;
    w.discount("CENTS300", "fixed", 300, None).await;
    let (_, who) = w.base.user("quoted@example.com").await;
    let wf = json!({"name": "w", "steps": [
        {"id": "a", "type": "http_request", "url": "https://example.invalid/"},
        {"id": "b", "type": "http_request", "url": "https://example.invalid/"}]});
    let quoted = |code: Option<&'static str>| w.billing.quote(&who, &wf, code);
    let credits = |code| async move { quoted(code).await.unwrap().credits };
    assert_eq!(credits(None).await, 20);
    let q = quoted(Some("launch25")).await.unwrap();
    assert_eq!(q.credits, 15);
    let line = q.components.last().unwrap();
    assert_eq!(
        (line.name.as_str(), line.credits),
        ("discount:LAUNCH25", Some(-5))
    );
    assert_eq!(line.detail, "25% off");
    // 300 cents at a cent a credit is more than the job; at a dollar a credit, 3 credits.
    assert_eq!(credits(Some("CENTS300")).await, 0);
    let dollar = with(BillingPolicy::default(), |p| {
        p.credit_micro_cents = 100_000_000
    });
    w.billing.set_policy(dollar);
    assert_eq!(credits(Some("CENTS300")).await, 17);
    assert_eq!(w.redemptions("LAUNCH25").await, 0, "nothing redeemed");

    w.paid(&who, "LAUNCH25").await.unwrap();
    let redeemed = err(quoted(Some("LAUNCH25")).await).1;
    assert_eq!(redeemed, "discount_already_redeemed");
    assert_eq!(err(quoted(Some("NOPE")).await).1, "discount_unknown");
    let by_admin = w.billing.quote(ADMIN, &wf, None).await;
    assert_eq!(err(by_admin).1, "user_key_required");
}

#[tokio::test]
async fn bad_or_stale_signatures_are_refused_and_change_nothing() {
    let w = World::new();
    let (user, _) = w.base.user("buyer@example.com").await;
    let event = pack_paid("evt_1", user.id, 1_000, 1_000);
    let body = event.to_string();
    let now = w.now().timestamp();
    for header in [
        sign(body.as_bytes(), "whsec_wrong", now),
        sign(body.as_bytes(), SECRET, now - 301),
        sign(b"{}", SECRET, now),
        String::new(),
    ] {
        let refused = w.billing.handle_webhook(body.as_bytes(), &header).await;
        assert_eq!(err(refused), (ErrorKind::Invalid, "bad_signature"));
    }
    let header = sign(b"not json", SECRET, now);
    let garbage = w.billing.handle_webhook(b"not json", &header).await;
    assert_eq!(err(garbage).1, "bad_signature");
    assert_eq!(err(w.deliver(&json!("no id")).await).1, "bad_event");
    assert_eq!(w.balance(user.id).await, 0);
    assert!(w.revenue().await.is_empty());
    assert_eq!(w.ok(event).await, (None, Some(true)), "not seen before");
    assert_eq!(w.balance(user.id).await, 1_000);
}

#[tokio::test]
async fn a_paid_pack_is_credited_and_booked_once() {
    let w = World::new();
    let (user, who) = w.base.user("buyer@example.com").await;
    let event = pack_paid("evt_1", user.id, 1_000, 1_000);
    assert_eq!(w.ok(event.clone()).await, (None, Some(true)));
    assert_eq!(w.ok(event).await, (Some(true), None), "a duplicate");
    assert_eq!(w.balance(user.id).await, 1_000);
    let entries = w.base.store.list_entries(user.id, None, 10).await.unwrap();
    let e = &entries[0];
    assert_eq!(
        (entries.len(), e.kind, e.credits),
        (1, EntryKind::Purchase, 1_000)
    );
    assert_eq!(e.reason.as_deref(), Some("checkout cs_1"));
    let booked = format!("1000 usd checkout {}", user.id);
    assert_eq!(w.revenue().await, [booked]);
    assert_eq!(w.tier(&who).await, "sandbox", "the tier stays");
}

#[tokio::test]
async fn a_paid_subscription_moves_the_tier_and_updates_keep_it_current() {
    let w = World::new();
    let (user, who) = w.customer("subscriber@example.com").await;
    let meta = json!({"levqor_tier": "pro"});
    let object = json!({"id": "cs_1", "customer": "cus_1", "metadata": meta});
    let paid = event("evt_1", "checkout.session.completed", object);
    assert_eq!(w.ok(paid).await, (None, Some(true)));
    assert_eq!(w.tier(&who).await, "pro");
    assert_eq!(w.balance(user).await, 0, "a tier grants no credits");
    let steps = [
        ("updated", "trialing", "enterprise", "enterprise"),
        ("updated", "canceled", "enterprise", "sandbox"),
        ("updated", "past_due", "pro", "pro"),
        ("updated", "active", "gold", "pro"),
        ("deleted", "active", "pro", "sandbox"),
    ];
    for (i, (change, status, sold, tier)) in steps.into_iter().enumerate() {
        let e = subscription(&format!("evt_s{i}"), change, status, sold);
        assert_eq!(w.ok(e).await, (None, Some(true)));
        assert_eq!(w.tier(&who).await, tier, "{change} {status} {sold}");
    }
}

#[tokio::test]
async fn events_for_no_known_user_or_of_other_types_are_acknowledged_and_ignored() {
    let w = World::new();
    let (user, who) = w.customer("known@example.com").await;
    let stranger = json!({"customer": "cus_404", "status": "active", "amount_paid": 1900,
        "metadata": {"levqor_tier": "pro", "levqor_credits": "10"}});
    let kinds = [
        "checkout.session.completed",
        "invoice.paid",
        "invoice.payment_failed",
    ];
    for kind in kinds.into_iter().chain(["customer.subscription.updated"]) {
        let e = event(&format!("evt_{kind}"), kind, stranger.clone());
        assert_eq!(w.ok(e).await, (None, Some(false)), "{kind}");
    }
    let other = || {
        event(
            "evt_x",
            "charge.refund.updated",
            json!({"customer": "cus_1"}),
        )
    };
    assert_eq!(w.ok(other()).await, (None, Some(false)));
    assert_eq!(w.ok(other()).await, (Some(true), None));
    assert!(w.revenue().await.is_empty());
    assert_eq!(
        (w.balance(user).await, w.tier(&who).await),
        (0, "sandbox".into())
    );
    assert_eq!(w.state(&who).await, DunningState::Active);
}

#[tokio::test]
async fn status_is_the_callers_own_and_the_admin_names_the_user() {
    let w = World::new();
    let (user, who) = w.customer("watched@example.com").await;
    let (_, other) = w.base.user("other@example.com").await;
    let mine = w.billing.status(&who, None).await.unwrap();
    assert_eq!((mine.state, mine.since), (DunningState::Active, None));
    assert!(mine.customer && !w.customer_known(&other).await);
    w.ok(invoice("evt_1", "payment_failed")).await;
    let seen = w.billing.status(ADMIN, Some(user)).await.unwrap();
    let since = Some(w.now());
    assert_eq!((seen.state, seen.since), (DunningState::PastDue, since));
    let nosy = w.billing.status(&other, Some(user)).await;
    assert_eq!(err(nosy), (ErrorKind::NotFound, "not_found"));
    let unnamed = w.billing.status(ADMIN, None).await;
    assert_eq!(err(unnamed).1, "user_key_required");
}

#[tokio::test]
async fn a_delivery_that_fails_halfway_is_applied_by_the_retry() {
    use super::store::MockBillingStore;
    let base = Base::new();
    let (user, _) = base.user("retry@example.com").await;
    let recorded = Arc::new(AtomicBool::new(false));
    let revenue_down = Arc::new(AtomicBool::new(true));
    let mut store = MockBillingStore::new();
    let seen = recorded.clone();
    store
        .expect_event_recorded()
        .returning(move |_| Ok(seen.load(Ordering::SeqCst)));
    let down = revenue_down.clone();
    store.expect_record_revenue().returning(move |_| {
        if down.load(Ordering::SeqCst) {
            return Err(Error::unavailable("database down"));
        }
        Ok(())
    });
    let mark = recorded.clone();
    store
        .expect_record_event()
        .returning(move |_, _, _| Ok(!mark.swap(true, Ordering::SeqCst)));
    let config = BillingConfig {
        provider: Arc::new(MockPaymentProvider::new()),
        webhook_secret: SECRET.into(),
    };
    let billing = Billing {
        store: Arc::new(store),
        ..base.billing(Some(config))
    };
    let body = pack_paid("evt_r", user.id, 1_000, 1_000).to_string();
    let header = sign(body.as_bytes(), SECRET, base.clock.now().timestamp());
    let failed = billing.handle_webhook(body.as_bytes(), &header).await;
    assert_eq!(err(failed), (ErrorKind::Unavailable, "unavailable"));
    assert!(!recorded.load(Ordering::SeqCst), "not recorded as applied");
    revenue_down.store(false, Ordering::SeqCst);
    let retried = billing
        .handle_webhook(body.as_bytes(), &header)
        .await
        .unwrap();
    assert_eq!((retried.duplicate, retried.handled), (None, Some(true)));
    let account = base.store.account(user.id).await.unwrap();
    assert_eq!(account.balance, 1_000, "credited once, by its event's key");
    let again = billing
        .handle_webhook(body.as_bytes(), &header)
        .await
        .unwrap();
    assert_eq!(again.duplicate, Some(true));
}
