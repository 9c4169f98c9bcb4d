//! Conformance cases for billing and quotas.

use super::{t0, user};
use crate::billing::{DiscountCode, Dunning, DunningState, Revenue};
use crate::credits::{EntryKind, NewEntry};
use crate::error::ErrorKind;
use crate::quotas::CallCount;
use crate::store::Store;
use chrono::Duration;
use std::sync::Arc;
use uuid::Uuid;

fn code(name: &str, max: Option<i64>) -> DiscountCode {
    DiscountCode {
        code: name.into(),
        kind: "percent".into(),
        value: 10,
        expires_at: Some(t0() + Duration::days(1)),
        max_redemptions: max,
        redemptions: 0,
        created_at: t0(),
    }
}

pub async fn billing_records_round_trip(store: Arc<dyn Store>) {
    let u = user(&store, "billing@example.com").await;
    assert_eq!(store.customer_of(u.id).await.unwrap(), None);
    assert_eq!(store.set_customer(u.id, "cus_1").await.unwrap(), "cus_1");
    assert_eq!(
        store.set_customer(u.id, "cus_2").await.unwrap(),
        "cus_1",
        "the first customer stays"
    );
    assert_eq!(store.user_of_customer("cus_1").await.unwrap(), Some(u.id));
    assert!(!store.event_recorded("evt_1").await.unwrap());
    assert!(
        store
            .record_event("evt_1", "invoice.paid", t0())
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_event("evt_1", "invoice.paid", t0())
            .await
            .unwrap()
    );
    assert!(store.event_recorded("evt_1").await.unwrap());
    assert!(!store.event_recorded("evt_2").await.unwrap());

    let d = Dunning {
        user_id: u.id,
        state: DunningState::PastDue,
        since: t0(),
        reminders_sent: 1,
        updated_at: t0(),
    };
    let email = |subject: &str| {
        crate::notify::OutboxMessage::email(
            &crate::notify::Email {
                to: "billing@example.com".into(),
                subject: subject.into(),
                ..Default::default()
            },
            crate::notify::EmailKind::Transactional,
            t0(),
        )
    };
    let reminder = email("Your payment failed");
    assert!(
        store
            .put_dunning(&d, None, std::slice::from_ref(&reminder))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_outbox(reminder.id).await.unwrap(),
        Some(reminder),
        "the reminder lands with the state"
    );
    assert_eq!(store.dunning(u.id).await.unwrap(), Some(d.clone()));
    assert_eq!(store.past_due().await.unwrap(), vec![d.clone()]);
    // A write from a stale read changes nothing and sends nothing: a record already there, or
    // one that moved since it was read.
    let late = email("A second reminder");
    let moved = Dunning {
        reminders_sent: 2,
        updated_at: t0() + chrono::Duration::seconds(1),
        ..d.clone()
    };
    let stale = Dunning {
        reminders_sent: 0,
        ..d.clone()
    };
    for previous in [None, Some(&stale)] {
        let saved = store
            .put_dunning(&moved, previous, std::slice::from_ref(&late))
            .await
            .unwrap();
        assert!(!saved, "{previous:?}");
    }
    assert_eq!(store.dunning(u.id).await.unwrap(), Some(d.clone()));
    assert_eq!(store.get_outbox(late.id).await.unwrap(), None);
    assert!(
        store
            .put_dunning(
                &Dunning {
                    state: DunningState::Suspended,
                    ..d.clone()
                },
                Some(&d),
                &[],
            )
            .await
            .unwrap()
    );
    assert!(store.past_due().await.unwrap().is_empty());

    let r = Revenue {
        id: "evt_r".into(),
        user_id: Some(u.id),
        amount_minor: 1_900,
        currency: "usd".into(),
        source: "invoice".into(),
        at: t0(),
    };
    store.record_revenue(&r).await.unwrap();
    store
        .record_revenue(&Revenue {
            amount_minor: 1,
            ..r.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .revenue_between(t0(), t0() + Duration::seconds(1))
            .await
            .unwrap(),
        vec![r]
    );
    assert!(
        store
            .revenue_between(t0() + Duration::seconds(1), t0() + Duration::days(1))
            .await
            .unwrap()
            .is_empty()
    );
    store
        .post_entry(&NewEntry {
            user_id: u.id,
            kind: EntryKind::Referral,
            credits: 40,
            idempotency_key: "ref".into(),
            reason: None,
            priority: 0,
            expires_at: None,
            now: t0(),
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .entries_between(EntryKind::Referral, t0(), t0() + Duration::seconds(1))
            .await
            .unwrap(),
        vec![(t0(), 40)]
    );

    store
        .create_codes(&[code("ONE", Some(1)), code("MANY", None)])
        .await
        .unwrap();
    let clash = store
        .create_codes(&[code("NEW", None), code("ONE", None)])
        .await
        .unwrap_err();
    assert_eq!(
        (clash.kind, clash.code),
        (ErrorKind::Conflict, "discount_code_exists")
    );
    assert!(
        store.get_code("NEW").await.unwrap().is_none(),
        "a refused batch stores nothing"
    );
    let other = user(&store, "other-billing@example.com").await;
    assert_eq!(
        store.redeem("ONE", u.id, t0()).await.unwrap().redemptions,
        1
    );
    assert!(store.redeemed("ONE", u.id).await.unwrap());
    assert_eq!(
        store.redeem("ONE", other.id, t0()).await.unwrap_err().code,
        "discount_exhausted"
    );
    store.redeem("MANY", u.id, t0()).await.unwrap();
    assert_eq!(
        store.redeem("MANY", u.id, t0()).await.unwrap_err().code,
        "discount_already_redeemed"
    );
    store.redeem("MANY", other.id, t0()).await.unwrap();
    assert_eq!(
        store.get_code("MANY").await.unwrap().unwrap().redemptions,
        2
    );
    assert_eq!(
        store
            .redeem("MANY", Uuid::new_v4(), t0() + Duration::days(2))
            .await
            .unwrap_err()
            .code,
        "discount_expired"
    );
    assert_eq!(
        store.redeem("NONE", u.id, t0()).await.unwrap_err().code,
        "discount_unknown"
    );

    let tombstone = Uuid::new_v4();
    assert_eq!(store.erase_billing(u.id, tombstone).await.unwrap(), 2);
    assert_eq!(store.customer_of(u.id).await.unwrap(), None);
    assert_eq!(store.dunning(u.id).await.unwrap(), None);
    let kept = store
        .revenue_between(t0(), t0() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        kept[0].user_id,
        Some(tombstone),
        "revenue stays, under the tombstone"
    );
}

pub async fn api_calls_are_counted_per_month_and_day(store: Arc<dyn Store>) {
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let call = |user_id, day: &str, calls| CallCount {
        user_id,
        month: day[..7].to_string(),
        day: day.to_string(),
        calls,
    };
    let totals = store
        .add_calls(&[
            call(a, "2026-11-01", 1),
            call(b, "2026-11-01", 1),
            call(a, "2026-11-01", 1),
            call(a, "2026-11-02", 2),
        ])
        .await
        .unwrap();
    assert_eq!(
        totals,
        vec![1, 1, 2, 2],
        "each call sees its day's total after it"
    );
    let totals = store
        .add_calls(&[
            call(a, "2026-11-02", 1),
            call(a, "2026-11-03", 1),
            call(a, "2026-12-01", 1),
        ])
        .await
        .unwrap();
    assert_eq!(totals, vec![3, 1, 1], "a new day starts from zero");
    assert_eq!(
        store.usage_days(a, "2026-11").await.unwrap(),
        vec![
            ("2026-11-01".to_string(), 2),
            ("2026-11-02".to_string(), 3),
            ("2026-11-03".to_string(), 1)
        ]
    );
    assert_eq!(store.tier_of(a).await.unwrap(), None);
    store.set_tier(a, "pro", t0()).await.unwrap();
    store.set_tier(a, "enterprise", t0()).await.unwrap();
    assert_eq!(
        store.tier_of(a).await.unwrap().as_deref(),
        Some("enterprise")
    );
    assert!(store.erase_usage(a).await.unwrap() >= 5);
    assert!(store.usage_days(a, "2026-11").await.unwrap().is_empty());
    assert_eq!(store.tier_of(a).await.unwrap(), None);
    assert_eq!(
        store.usage_days(b, "2026-11").await.unwrap().len(),
        1,
        "others keep theirs"
    );
}
