//! The billing service against its ports: dunning and suspension (each reminder written with
//! its state), the profit ledger and the profit guard.

use super::test_world::*;

#[tokio::test]
async fn dunning_reminds_on_the_configured_days_then_suspends_until_paid() {
    let w = World::new();
    let to = "late@example.com";
    let (user, who) = w.customer(to).await;
    w.ok(invoice("evt_f1", "payment_failed")).await;
    assert_eq!(w.state(&who).await, DunningState::PastDue);
    assert_eq!(w.reminders(to).await, 1, "day 0");
    // A second failure neither restarts the clock nor repeats the reminder.
    w.advance(2);
    w.ok(invoice("evt_f2", "payment_failed")).await;
    assert_eq!(w.tick().await, 1, "one account past due");
    assert_eq!(w.reminders(to).await, 1, "none due before day 3");
    w.advance(1);
    w.tick().await;
    w.tick().await;
    assert_eq!(w.reminders(to).await, 2, "day 3, once");
    assert!(w.intake(user).await.is_ok(), "past due still runs jobs");
    w.advance(10);
    w.tick().await;
    let reminders = w.mail(to, FAILED).await;
    assert_eq!(reminders.len(), 3);
    assert!(reminders[2].contains("(day 7)"), "{}", reminders[2]);
    assert_eq!(w.state(&who).await, DunningState::PastDue, "day 13");
    w.advance(1);
    w.tick().await;
    assert_eq!(w.state(&who).await, DunningState::Suspended);
    let notice = w.mail(to, "Your account is suspended").await;
    assert_eq!(notice.len(), 1);
    let refused = err(w.intake(user).await);
    assert_eq!(refused, (ErrorKind::Forbidden, "account_suspended"));
    assert_eq!(w.tick().await, 0, "no longer past due");

    // Paying restores the account at once, and books the payment.
    w.ok(invoice("evt_p", "paid")).await;
    let status = w.billing.status(&who, None).await.unwrap();
    assert_eq!((status.state, status.since), (DunningState::Active, None));
    assert!(w.intake(user).await.is_ok());
    assert_eq!(w.mail(to, "Your payment was received").await.len(), 1);
    assert_eq!(w.revenue().await, [format!("1900 eur invoice {user}")]);
    w.advance(30);
    assert_eq!(w.tick().await, 0);
    assert_eq!(w.reminders(to).await, 3, "the ladder ended");
}

#[tokio::test]
async fn the_ladder_follows_the_policy_in_force() {
    let w = World::new();
    let policy = with(BillingPolicy::default(), |p| {
        (p.reminder_days, p.grace_days) = (vec![1], 2);
    });
    w.billing.set_policy(policy);
    let to = "brief@example.com";
    let (_, who) = w.customer(to).await;
    w.ok(invoice("evt_f", "payment_failed")).await;
    assert_eq!(w.reminders(to).await, 0, "no day-0 reminder");
    w.advance(1);
    w.tick().await;
    assert_eq!(w.reminders(to).await, 1);
    assert_eq!(w.state(&who).await, DunningState::PastDue);
    w.advance(1);
    w.tick().await;
    assert_eq!(w.state(&who).await, DunningState::Suspended);
}

#[tokio::test]
async fn each_reminder_is_written_with_the_count_that_records_it() {
    let w = World::new();
    let to = "counted@example.com";
    let (_, who) = w.customer(to).await;
    w.ok(invoice("evt_f", "payment_failed")).await;
    assert_eq!(w.reminders(to).await, 1, "day 0");
    for day in 1..=13 {
        w.advance(1);
        w.tick().await;
        w.tick().await;
        let due = BillingPolicy::default()
            .reminder_days
            .iter()
            .filter(|&&d| d <= day)
            .count();
        assert_eq!(
            w.reminders(to).await,
            due,
            "day {day}: each due reminder once"
        );
        assert_eq!(w.state(&who).await, DunningState::PastDue);
    }
    w.advance(1);
    w.tick().await;
    w.tick().await;
    assert_eq!(w.state(&who).await, DunningState::Suspended);
    assert_eq!(
        w.mail(to, "Your account is suspended").await.len(),
        1,
        "written once"
    );
}

#[tokio::test]
async fn missed_ticks_catch_up_each_reminder_once_in_order() {
    let w = World::new();
    let to = "catching-up@example.com";
    w.customer(to).await;
    w.ok(invoice("evt_f", "payment_failed")).await;
    // The ticks of days 3 to 7 were missed: day 3's and day 7's reminders are both due.
    w.advance(7);
    w.tick().await;
    w.tick().await;
    let sent = w.mail(to, FAILED).await;
    let days: Vec<bool> = sent.iter().map(|b| b.contains("(day 3)")).collect();
    assert_eq!(days, [false, true, false], "days 0, 3 and 7, each once");
    assert!(sent[2].contains("(day 7)"));
}

/// Pays a referral reward of `credits` now.
async fn referral(w: &World, user_id: Uuid, credits: i64, key: &str) {
    let entry = NewEntry {
        user_id,
        kind: EntryKind::Referral,
        credits,
        idempotency_key: key.into(),
        reason: None,
        priority: 0,
        expires_at: None,
        now: w.now(),
    };
    w.base.store.post_entry(&entry).await.unwrap();
}

/// A job of `owner` that starts now and dies ten seconds later, when its worker is lost.
async fn ran_ten_seconds(w: &World, owner: Uuid) {
    let now = w.now();
    let job: Job = serde_json::from_value(json!({"id": Uuid::now_v7(), "owner_id": owner,
        "workflow": {"name": "w", "steps": []}, "input": {}, "status": "queued", "attempts": 0,
        "max_attempts": 1, "run_after": now, "result": null, "error": null,
        "cancel_requested": false, "idempotency_key": null, "created_at": now,
        "updated_at": now, "started_at": null, "finished_at": null}))
    .unwrap();
    let store = &w.base.store;
    let new = vec![NewJob {
        job,
        request_hash: "h".into(),
        hold: None,
    }];
    store.admit_batch(new).await.unwrap();
    let lease_until = now + Duration::seconds(10);
    let claim = Claim {
        token: Uuid::new_v4(),
        worker: "w".into(),
        now,
        lease_until,
        limit: 1,
    };
    assert_eq!(store.claim_due(&claim).await.unwrap().len(), 1);
    let reaped = store.reap_expired(lease_until + Duration::microseconds(1));
    assert_eq!(reaped.await.unwrap().dead, 1);
}

fn nov(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap()
}

/// `(period start, revenue)` of each period.
fn shape(l: &ProfitLedger) -> Vec<(DateTime<Utc>, f64)> {
    l.periods
        .iter()
        .map(|p| (p.period, p.figures.revenue_cents))
        .collect()
}

#[tokio::test]
async fn the_profit_ledger_groups_money_in_and_out_by_period() {
    let w = World::new();
    let (user, _) = w.base.user("earner@example.com").await;
    referral(&w, user.id, 100, "ref-1").await; // 100 cents, at a cent a credit
    ran_ten_seconds(&w, user.id).await; // 10 s at 1,400 millionths of a cent a second
    let sales = [(2, 9, 1_000), (4, 12, 500), (10, 8, 2_000)];
    for (i, (day, hour, cents)) in sales.into_iter().enumerate() {
        w.base.clock.set(nov(day) + Duration::hours(hour));
        w.ok(pack_paid(&format!("evt_{i}"), user.id, 10, cents))
            .await;
    }
    let to = nov(30) + Duration::days(1);
    let ledger = |from, by: &'static str| w.billing.profit_ledger(ADMIN, from, to, by);
    let by_day = ledger(nov(1), "day").await.unwrap();
    let days = [(nov(2), 1_000.0), (nov(4), 500.0), (nov(10), 2_000.0)];
    assert_eq!(shape(&by_day), days);
    let first = by_day.periods[0].figures;
    assert_eq!(first.payouts_cents, 100.0);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(first.cost_cents, 0.014), "{}", first.cost_cents);
    assert!(close(first.margin_cents, 899.986), "{}", first.margin_cents);
    let by_week = ledger(nov(1), "week").await.unwrap();
    assert_eq!(shape(&by_week), [(nov(2), 1_500.0), (nov(9), 2_000.0)]);
    let by_month = ledger(nov(1), "month").await.unwrap();
    assert_eq!(shape(&by_month), [(nov(1), 3_500.0)]);
    let m = &by_month;
    assert_eq!((m.group_by.as_str(), m.from, m.to), ("month", nov(1), to));
    let t = by_month.total;
    assert_eq!((t.revenue_cents, t.payouts_cents), (3_500.0, 100.0));
    assert!(close(t.margin_pct.unwrap(), 3_399.986 / 35.0));
    let later = ledger(nov(3), "day").await.unwrap();
    assert_eq!(shape(&later), [(nov(4), 500.0), (nov(10), 2_000.0)]);
    assert_eq!(later.total.payouts_cents, 0.0, "[from, to)");
}

#[tokio::test]
async fn the_profit_ledger_is_the_admins_and_checks_its_range() {
    let w = World::new();
    let (_, who) = w.base.user("curious@example.com").await;
    let (from, to) = (nov(1), nov(30));
    let by_user = w.billing.profit_ledger(&who, from, to, "day").await;
    assert_eq!(err(by_user), (ErrorKind::Forbidden, "admin_only"));
    let ten_years = from + Duration::days(3_660);
    let too_long = ten_years + Duration::days(1);
    let cases = [
        (from, to, "year", vec!["/group_by"]),
        (to, to, "day", vec!["/to"]),
        (to, from, "week", vec!["/to"]),
        (from, too_long, "month", vec!["/from"]),
        (to, from, "year", vec!["/group_by", "/to"]),
    ];
    for (from, to, by, bad) in cases {
        let e = w.billing.profit_ledger(ADMIN, from, to, by).await;
        let e = e.unwrap_err();
        assert_eq!((e.code, pointers(&e)), ("validation_failed", bad));
    }
    let longest = w.billing.profit_ledger(ADMIN, from, ten_years, "month");
    assert!(longest.await.is_ok());
}

#[tokio::test]
async fn autoscaling_is_allowed_only_while_the_trailing_margin_holds() {
    let w = World::new();
    let (user, who) = w.base.user("paying@example.com").await;
    let guard = || async { w.billing.autoscale(ADMIN).await.unwrap() };
    let d = guard().await;
    assert_eq!((d.allowed, d.margin_pct), (false, None));
    assert!(d.reason.contains("no revenue"), "{}", d.reason);

    w.ok(pack_paid("evt_1", user.id, 1_000, 1_000)).await;
    referral(&w, user.id, 100, "ref-1").await;
    let d = guard().await;
    assert_eq!((d.allowed, d.margin_pct), (true, Some(90.0)));
    assert_eq!((d.threshold_pct, d.window_days), (10.0, 30));
    let figures = (d.revenue_cents, d.cost_cents, d.payouts_cents);
    assert_eq!(figures, (1_000.0, 0.0, 100.0));
    referral(&w, user.id, 850, "ref-2").await;
    let d = guard().await;
    assert_eq!((d.allowed, d.margin_pct), (false, Some(5.0)));
    assert!(d.reason.contains("below 10.0%"), "{}", d.reason);
    let lenient = with(BillingPolicy::default(), |p| p.min_margin_pct = 5.0);
    w.billing.set_policy(lenient);
    assert!(guard().await.allowed, "at the threshold");
    w.advance(31);
    let d = guard().await;
    assert_eq!(
        (d.allowed, d.margin_pct),
        (false, None),
        "out of the window"
    );
    assert_eq!(err(w.billing.autoscale(&who).await).1, "admin_only");
}

#[tokio::test]
async fn an_account_that_fails_does_not_hold_up_the_others() {
    use super::Dunning;
    use super::store::MockBillingStore;
    let base = Base::new();
    let (first, _) = base.user("first@example.com").await;
    let (second, _) = base.user("second@example.com").await;
    let now = base.clock.now_micros();
    let past_due = |user_id| Dunning {
        user_id,
        state: DunningState::PastDue,
        since: now,
        reminders_sent: 0,
        updated_at: now,
    };
    let due = vec![past_due(first.id), past_due(second.id)];
    let saved = Arc::new(Mutex::new(Vec::new()));
    let mut store = MockBillingStore::new();
    store.expect_past_due().returning(move || Ok(due.clone()));
    let seen = saved.clone();
    store.expect_put_dunning().returning(move |d, _, messages| {
        if d.user_id == first.id {
            return Err(Error::unavailable("the first account's row is locked"));
        }
        seen.lock()
            .unwrap()
            .push((d.user_id, d.reminders_sent, messages.len()));
        Ok(true)
    });
    let billing = Billing {
        store: Arc::new(store),
        ..base.billing(None)
    };
    let e = billing.dunning_tick().await.unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::Unavailable, "unavailable"));
    assert!(
        e.message.starts_with("1 of 2 past-due accounts failed"),
        "{}",
        e.message
    );
    let reminded = saved.lock().unwrap().clone();
    assert_eq!(
        reminded,
        [(second.id, 1, 1)],
        "the second account still got its reminder"
    );
}

/// Counts the reads of a dunning record, and lets a writer wait (up to five seconds, so that a
/// test that lost its race some other way only proves less, never hangs) for the second.
#[derive(Default)]
struct Reads(Mutex<usize>, std::sync::Condvar);

impl Reads {
    fn one(&self) {
        *self.0.lock().unwrap() += 1;
        self.1.notify_all();
    }

    fn wait_for_two(&self) {
        let n = self.0.lock().unwrap();
        let five = std::time::Duration::from_secs(5);
        let _ = self.1.wait_timeout_while(n, five, |n| *n < 2).unwrap();
    }
}

/// Two deliveries of one failed payment that race (each reads the account's dunning record
/// before either writes it) move the account once and send one notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deliveries_of_a_failed_payment_send_one_notice() {
    use super::store::MockBillingStore;
    use futures::executor::block_on;
    let mut w = World::new();
    let to = "raced@example.com";
    let (user_id, _) = w.customer(to).await;
    // The world's store, where a dunning record is written only once both deliveries read it.
    let inner = w.billing.store.clone();
    let reads = Arc::new(Reads::default());
    let mut store = MockBillingStore::new();
    let s = inner.clone();
    store
        .expect_event_recorded()
        .returning(move |id| block_on(s.event_recorded(id)));
    let s = inner.clone();
    store
        .expect_user_of_customer()
        .returning(move |c| block_on(s.user_of_customer(c)));
    let s = inner.clone();
    let r = reads.clone();
    store.expect_dunning().returning(move |user_id| {
        let read = block_on(s.dunning(user_id));
        r.one();
        read
    });
    let s = inner.clone();
    store
        .expect_put_dunning()
        .returning(move |d, previous, messages| {
            reads.wait_for_two();
            block_on(s.put_dunning(d, previous, messages))
        });
    let s = inner.clone();
    store
        .expect_record_event()
        .returning(move |id, kind, now| block_on(s.record_event(id, kind, now)));
    w.billing.store = Arc::new(store);

    // Each delivery on a thread of its own, so that one can wait for the other.
    let w = Arc::new(w);
    let event = invoice("evt_raced", "payment_failed");
    let deliveries = [w.clone(), w.clone()].map(|w| {
        let event = event.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(w.deliver(&event))
        })
    });
    for delivery in deliveries {
        delivery.join().unwrap().unwrap();
    }
    let d = inner.dunning(user_id).await.unwrap().unwrap();
    assert_eq!(d.state, DunningState::PastDue);
    assert_eq!(w.reminders(to).await, 1, "one notice for one failure");
}
