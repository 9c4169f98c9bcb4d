//! Conformance cases for the consent and privacy ports.

use super::{admit, claim, finish, job, step, t0, user};
use crate::audit::{Actor, AuditRecord};
use crate::consent::{
    Category, GENESIS_HASH, LedgerEntry, Objection, ObjectionKind, Subscription,
    SubscriptionStatus, TermsAcceptance, TermsVersion, verify_records,
};
use crate::error::ErrorKind;
use crate::jobs::model::{JobStatus, StepStatus};
use crate::jobs::store::Lease;
use crate::notify::{EmailKind, OutboxMessage};
use crate::privacy::{DataClass, Event, ExportRecord, Held, LegalHold};
use crate::screening::{AppealStatus, Screening, ScreeningRecord, Verdict};
use crate::store::Store;
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

fn entry(subject: Uuid, action: &str) -> LedgerEntry {
    LedgerEntry {
        id: Uuid::now_v7(),
        at: t0(),
        subject,
        action: action.into(),
        detail: json!({"b": 1, "a": [true, "x"]}),
    }
}

fn subscription(
    email: &str,
    status: SubscriptionStatus,
    categories: Vec<Category>,
) -> Subscription {
    Subscription {
        id: Uuid::new_v4(),
        email: email.into(),
        status,
        categories,
        token_hash: Some(format!("hash-{email}")),
        token_expires_at: Some(t0() + Duration::days(7)),
        token_used_at: None,
        last_sent_at: Some(t0()),
        confirmed_at: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

async fn whole_ledger(store: &Arc<dyn Store>) -> Vec<crate::consent::LedgerRecord> {
    let mut out = Vec::new();
    loop {
        let page = store
            .ledger_after(
                out.last()
                    .map_or(0, |r: &crate::consent::LedgerRecord| r.seq),
                7,
            )
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

pub async fn consent_records_round_trip_and_chain(store: Arc<dyn Store>) {
    let u = user(&store, "consent@example.com").await;
    let subject = store.subject_of(u.id).await.unwrap();
    assert_eq!(
        store.subject_of(u.id).await.unwrap(),
        subject,
        "one subject per user"
    );
    assert_ne!(subject, u.id, "the subject is not the user id");

    let terms = TermsVersion {
        version: "v1".into(),
        effective_at: t0(),
        changelog: "first".into(),
        material: true,
        published_at: t0(),
    };
    store
        .publish_terms(&terms, &entry(Uuid::nil(), "terms.published"), &[])
        .await
        .unwrap();
    let dup = store
        .publish_terms(&terms, &entry(Uuid::nil(), "terms.published"), &[])
        .await
        .unwrap_err();
    assert_eq!(
        (dup.kind, dup.code),
        (ErrorKind::Conflict, "terms_version_exists")
    );
    assert_eq!(store.list_terms().await.unwrap(), vec![terms]);
    let a = TermsAcceptance {
        id: Uuid::now_v7(),
        user_id: u.id,
        version: "v1".into(),
        accepted_at: t0(),
        ip: Some("192.0.2.1".into()),
        user_agent: Some("curl".into()),
    };
    store
        .accept_terms(&a, &entry(subject, "terms.accepted"))
        .await
        .unwrap();
    assert_eq!(store.list_acceptances(u.id).await.unwrap(), vec![a]);

    let pending = subscription(
        "consent@example.com",
        SubscriptionStatus::Pending,
        vec![Category::Offers],
    );
    store
        .put_subscription(
            &pending,
            Some(&entry(pending.id, "marketing.requested")),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .subscription_by_email("consent@example.com")
            .await
            .unwrap(),
        Some(pending.clone())
    );
    assert_eq!(
        store
            .subscription_by_token("hash-consent@example.com")
            .await
            .unwrap(),
        Some(pending.clone())
    );
    let clash = subscription("consent@example.com", SubscriptionStatus::Pending, vec![]);
    assert_eq!(
        store
            .put_subscription(&clash, None, &[])
            .await
            .unwrap_err()
            .code,
        "subscription_exists"
    );
    let confirmed = Subscription {
        status: SubscriptionStatus::Subscribed,
        categories: vec![Category::Offers, Category::Technical],
        token_used_at: Some(t0()),
        ..pending.clone()
    };
    store.put_subscription(&confirmed, None, &[]).await.unwrap();
    assert_eq!(
        store.get_subscription(pending.id).await.unwrap(),
        Some(confirmed.clone())
    );
    let other = subscription(
        "b@example.com",
        SubscriptionStatus::Subscribed,
        vec![Category::Events],
    );
    store.put_subscription(&other, None, &[]).await.unwrap();
    let technical = store
        .list_subscribed(Category::Technical, None, 10)
        .await
        .unwrap();
    assert_eq!(technical, vec![confirmed.clone()]);
    assert!(
        store
            .list_subscribed(Category::Educational, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let o = Objection {
        kind: ObjectionKind::Marketing,
        objected: true,
        updated_at: t0(),
    };
    store
        .set_objection(u.id, &o, &entry(subject, "objection.set"), &[])
        .await
        .unwrap();
    assert!(
        store
            .objects_by_email("consent@example.com", ObjectionKind::Marketing)
            .await
            .unwrap()
    );
    assert!(
        !store
            .objects_by_email("consent@example.com", ObjectionKind::Analytics)
            .await
            .unwrap()
    );
    let withdrawn = Objection {
        objected: false,
        ..o
    };
    store
        .set_objection(u.id, &withdrawn, &entry(subject, "objection.set"), &[])
        .await
        .unwrap();
    assert_eq!(store.list_objections(u.id).await.unwrap(), vec![withdrawn]);

    // Appends from many tasks at once still form one unbroken chain.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let o = Objection {
                kind: ObjectionKind::ALL[i % 4],
                objected: i % 2 == 0,
                updated_at: t0(),
            };
            store
                .set_objection(u.id, &o, &entry(subject, "objection.set"), &[])
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ledger = whole_ledger(&store).await;
    assert_eq!(ledger.len(), 21);
    assert_eq!(
        ledger[0].entry.detail,
        json!({"b": 1, "a": [true, "x"]}),
        "details read back as written"
    );
    assert_eq!(
        verify_records((0, GENESIS_HASH.into()), &ledger).unwrap().0,
        21
    );

    let stats = store.consent_stats(Some("v1")).await.unwrap();
    assert_eq!((stats.users, stats.accepted_current), (1, 1));
    assert!(
        stats
            .subscribed_by_category
            .contains(&(Category::Offers, 1))
    );
    assert!(
        stats
            .subscriptions_by_status
            .contains(&(SubscriptionStatus::Subscribed, 2))
    );

    // Erasure deletes the consents and the subject link, and keeps the acceptance anonymously.
    let tombstone = Uuid::new_v4();
    let e = store
        .erase_consents(u.id, "consent@example.com", tombstone)
        .await
        .unwrap();
    assert_eq!(e.pseudonymized, 1);
    assert!(e.deleted >= 3, "{e:?}");
    assert!(
        store
            .subscription_by_email("consent@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.list_objections(u.id).await.unwrap().is_empty());
    assert!(store.list_acceptances(u.id).await.unwrap().is_empty());
    let kept = store.list_acceptances(tombstone).await.unwrap();
    assert_eq!(
        (kept.len(), &kept[0].ip, &kept[0].user_agent),
        (1, &None, &None)
    );
    assert_ne!(
        store.subject_of(u.id).await.unwrap(),
        subject,
        "the old link is gone"
    );
    assert_eq!(
        verify_records((0, GENESIS_HASH.into()), &whole_ledger(&store).await)
            .unwrap()
            .0,
        21
    );
}

fn screening(user_id: Uuid, verdict: Verdict, at: chrono::DateTime<Utc>) -> ScreeningRecord {
    ScreeningRecord {
        id: Uuid::now_v7(),
        user_id,
        screening: Screening {
            verdict,
            matches: Vec::new(),
        },
        request: Some(json!({"workflow": {"steps": []}})),
        appeal_status: None,
        appeal_reason: None,
        decision_note: None,
        created_at: at,
        updated_at: at,
    }
}

pub async fn privacy_records_round_trip(store: Arc<dyn Store>) {
    assert_eq!(store.get_setting("k").await.unwrap(), None);
    store
        .put_setting_if_absent("k", &json!({"a": 1}))
        .await
        .unwrap();
    store
        .put_setting_if_absent("k", &json!({"a": 2}))
        .await
        .unwrap();
    assert_eq!(store.get_setting("k").await.unwrap(), Some(json!({"a": 1})));
    store.put_setting("k", &json!([3])).await.unwrap();
    assert_eq!(store.get_setting("k").await.unwrap(), Some(json!([3])));

    let audit = |action: &str, subject: Option<&str>| AuditRecord {
        id: Uuid::now_v7(),
        at: t0(),
        actor: Actor::Admin,
        action: action.into(),
        subject: subject.map(str::to_string),
        detail: json!({"n": 1}),
    };
    let (a1, a2, a3) = (
        audit("x", Some("s1")),
        audit("y", None),
        audit("x", Some("s2")),
    );
    for a in [&a1, &a2, &a3] {
        store.append_audit(a).await.unwrap();
    }
    assert_eq!(
        store.list_audit(None, 2).await.unwrap(),
        vec![a3.clone(), a2.clone()]
    );
    assert_eq!(
        store.list_audit(Some(a2.id), 5).await.unwrap(),
        vec![a1.clone()]
    );
    assert_eq!(
        store.find_audit("x", None).await.unwrap(),
        vec![a3, a1.clone()]
    );
    assert_eq!(store.find_audit("x", Some("s1")).await.unwrap(), vec![a1]);

    let u = Uuid::now_v7();
    let events: Vec<Event> = (0..1200)
        .map(|i| Event {
            id: Uuid::now_v7(),
            user_id: if i % 2 == 0 { u } else { Uuid::now_v7() },
            name: format!("e{i}"),
            properties: json!({"i": i}),
            created_at: t0(),
        })
        .collect();
    store.record_events(&events).await.unwrap();
    let first = store.list_events(u, None, 500).await.unwrap();
    let rest = store
        .list_events(u, Some(first.last().unwrap().id), 500)
        .await
        .unwrap();
    assert_eq!((first.len(), rest.len()), (500, 100));
    assert_eq!(first[0], events[0]);

    assert_eq!(store.last_export(u).await.unwrap(), None);
    let export = |at| ExportRecord {
        id: Uuid::now_v7(),
        user_id: u,
        created_at: at,
        bytes: 123,
        areas: vec!["profile".into()],
    };
    let (e1, e2) = (export(t0()), export(t0() + Duration::hours(1)));
    store.record_export(&e1, &[]).await.unwrap();
    store.record_export(&e2, &[]).await.unwrap();
    assert_eq!(store.last_export(u).await.unwrap(), Some(e2));

    let hold = LegalHold {
        user_id: u,
        reason: "case 1".into(),
        created_at: t0(),
    };
    store.set_legal_hold(&hold).await.unwrap();
    assert_eq!(store.legal_holds().await.unwrap(), vec![hold]);
    assert!(store.clear_legal_hold(u).await.unwrap());
    assert!(!store.clear_legal_hold(u).await.unwrap());

    let mut r = screening(u, Verdict::Block, t0());
    store.put_screening(&r).await.unwrap();
    r.appeal_status = Some(AppealStatus::Pending);
    r.appeal_reason = Some("why".into());
    r.updated_at = t0() + Duration::minutes(1);
    store.put_screening(&r).await.unwrap();
    assert_eq!(store.get_screening(r.id).await.unwrap(), Some(r.clone()));
    let other = screening(Uuid::now_v7(), Verdict::Warn, t0());
    store.put_screening(&other).await.unwrap();
    assert_eq!(
        store.list_screenings(Some(u), None, 10).await.unwrap(),
        vec![r.clone()]
    );
    assert_eq!(
        store.list_screenings(None, None, 10).await.unwrap(),
        vec![other, r]
    );
}

pub async fn an_appeal_is_decided_once(store: Arc<dyn Store>) {
    let mut pending = screening(Uuid::now_v7(), Verdict::Block, t0());
    pending.appeal_status = Some(AppealStatus::Pending);
    pending.appeal_reason = Some("why".into());
    store.put_screening(&pending).await.unwrap();
    let decide = |status, note: &str, minutes| ScreeningRecord {
        appeal_status: Some(status),
        decision_note: Some(note.into()),
        updated_at: t0() + Duration::minutes(minutes),
        ..pending.clone()
    };
    let denied = decide(AppealStatus::Denied, "no", 1);
    let approved = decide(AppealStatus::Approved, "yes", 2);
    // Two decisions from pending: the first moves it, the second finds it decided.
    assert!(moves(&store, &denied, AppealStatus::Pending).await);
    assert!(!moves(&store, &approved, AppealStatus::Pending).await);
    assert_eq!(
        store.get_screening(pending.id).await.unwrap(),
        Some(denied.clone())
    );
    // A decision moves back to pending only from what it is.
    assert!(!moves(&store, &pending, AppealStatus::Approved).await);
    assert!(moves(&store, &pending, AppealStatus::Denied).await);
    assert_eq!(
        store.get_screening(pending.id).await.unwrap(),
        Some(pending.clone())
    );
    // No record: nothing moves.
    let absent = ScreeningRecord {
        id: Uuid::now_v7(),
        ..denied
    };
    assert!(!moves(&store, &absent, AppealStatus::Pending).await);
    assert_eq!(store.get_screening(absent.id).await.unwrap(), None);
}

/// Whether `store` moves `record`'s appeal from `from`.
async fn moves(store: &Arc<dyn Store>, record: &ScreeningRecord, from: AppealStatus) -> bool {
    store.move_appeal(record, from).await.unwrap()
}

pub async fn sweeps_keep_recent_and_held_data(store: Arc<dyn Store>) {
    let old = t0();
    let now = t0() + Duration::days(100);
    let cutoff = now - Duration::days(30);
    let free = user(&store, "free@example.com").await;
    let held = user(&store, "held@example.com").await;
    let hold = Held {
        user_ids: vec![held.id],
        emails: vec![held.email.clone()],
    };
    for owner in [free.id, held.id] {
        store
            .record_events(&[
                Event {
                    id: Uuid::now_v7(),
                    user_id: owner,
                    name: "old".into(),
                    properties: json!({}),
                    created_at: old,
                },
                Event {
                    id: Uuid::now_v7(),
                    user_id: owner,
                    name: "new".into(),
                    properties: json!({}),
                    created_at: now,
                },
            ])
            .await
            .unwrap();
        let email = if owner == free.id {
            &free.email
        } else {
            &held.email
        };
        for at in [old, now] {
            store
                .push_outbox(&OutboxMessage {
                    id: Uuid::now_v7(),
                    channel: "email".into(),
                    to: email.clone(),
                    subject: "s".into(),
                    body: "b".into(),
                    job_id: None,
                    kind: EmailKind::Transactional,
                    attachments: Vec::new(),
                    html: None,
                    headers: Default::default(),
                    created_at: at,
                    delivery: crate::notify::Delivery::pending(at),
                })
                .await
                .unwrap();
        }
        let mut s = subscription(email, SubscriptionStatus::Pending, vec![Category::Offers]);
        s.token_expires_at = Some(old + Duration::days(7));
        store.put_subscription(&s, None, &[]).await.unwrap();
        store
            .put_screening(&screening(owner, Verdict::Warn, old))
            .await
            .unwrap();
        let mut appealed = screening(owner, Verdict::Block, old);
        appealed.appeal_status = Some(AppealStatus::Pending);
        store.put_screening(&appealed).await.unwrap();
    }
    store
        .append_audit(&AuditRecord {
            id: Uuid::now_v7(),
            at: old,
            actor: Actor::System,
            action: "a".into(),
            subject: None,
            detail: json!({}),
        })
        .await
        .unwrap();

    let expected = [
        (DataClass::Events, 1),
        (DataClass::Outbox, 1),
        (DataClass::Tokens, 1),
        (DataClass::Screenings, 1),
        (DataClass::Audit, 1),
        (DataClass::Exports, 0),
    ];
    for (class, n) in expected {
        let dry = store.sweep(class, cutoff, &hold, true).await.unwrap();
        assert_eq!(dry, n, "dry run of {class:?}");
        assert_eq!(
            store.sweep(class, cutoff, &hold, true).await.unwrap(),
            n,
            "a dry run changes nothing"
        );
        assert_eq!(
            store.sweep(class, cutoff, &hold, false).await.unwrap(),
            n,
            "{class:?}"
        );
        assert_eq!(
            store.sweep(class, cutoff, &hold, true).await.unwrap(),
            0,
            "{class:?} again"
        );
    }
    assert_eq!(
        store.list_events(held.id, None, 10).await.unwrap().len(),
        2,
        "held events stay"
    );
    assert_eq!(store.list_events(free.id, None, 10).await.unwrap().len(), 1);
    assert!(
        store
            .subscription_by_email(&held.email)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .subscription_by_email(&free.email)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn finished_jobs_and_step_outputs_are_swept(store: Arc<dyn Store>) {
    let old = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let cutoff = old + Duration::days(30);
    let free = user(&store, "jobs-free@example.com").await;
    let held = user(&store, "jobs-held@example.com").await;
    let hold = Held {
        user_ids: vec![held.id],
        emails: vec![held.email.clone()],
    };
    for owner in [free.id, held.id] {
        let j = admit(&store, job(owner, None, old)).await;
        let c = claim(old, 1);
        let claimed = store.claim_due(&c).await.unwrap();
        assert_eq!(claimed[0].job.id, j.id);
        let lease = Lease {
            job_id: j.id,
            token: c.token,
        };
        let mut s = step(j.id, "a", 0, StepStatus::Succeeded, 1);
        s.output = json!({"secret": "payload"});
        s.finished_at = old;
        let mut w = finish(lease, JobStatus::Succeeded, vec![s]);
        if let crate::jobs::store::Write::Finish(f) = &mut w {
            f.now = old;
        }
        assert_eq!(store.commit(&[w]).await.unwrap(), vec![true]);
        admit(&store, job(owner, None, cutoff)).await; // queued: never swept
    }
    let outputs = store
        .sweep(DataClass::StepOutputs, cutoff, &hold, true)
        .await
        .unwrap();
    assert_eq!(outputs, 1);
    assert_eq!(
        store
            .sweep(DataClass::StepOutputs, cutoff, &hold, false)
            .await
            .unwrap(),
        1
    );
    let free_jobs = store
        .list_jobs(&crate::jobs::store::JobFilter {
            owner_id: Some(free.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let done = free_jobs
        .iter()
        .find(|j| j.status == JobStatus::Succeeded)
        .unwrap();
    assert_eq!(
        store.list_steps(done.id).await.unwrap()[0].output,
        serde_json::Value::Null
    );
    assert_eq!(
        store
            .sweep(DataClass::Jobs, cutoff, &hold, true)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .sweep(DataClass::Jobs, cutoff, &hold, false)
            .await
            .unwrap(),
        1
    );
    assert!(store.get_job(done.id).await.unwrap().is_none());
    assert!(store.list_steps(done.id).await.unwrap().is_empty());
    assert_eq!(
        store.queue_depth(cutoff).await.unwrap(),
        2,
        "queued jobs stay queued"
    );

    // Erasing a user's areas leaves nothing of theirs and nothing of anyone else's touched.
    assert_eq!(store.erase_jobs(held.id).await.unwrap(), 2);
    assert_eq!(store.queue_depth(cutoff).await.unwrap(), 1);
    let claimed = store.claim_due(&claim(cutoff, 10)).await.unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "the erased user's queued job is gone from the queue"
    );
    assert_eq!(claimed[0].job.owner_id, free.id);
    assert!(store.delete_user(held.id).await.unwrap());
    assert!(!store.delete_user(held.id).await.unwrap());
    assert!(store.get_user(held.id).await.unwrap().is_none());
    assert_eq!(store.list_users(None, 10).await.unwrap(), vec![free]);
    let approved = store.approve_job(Uuid::now_v7(), cutoff).await.unwrap();
    assert!(approved.is_none());
}

/// Each domain's erasure deletes the person's rows of its own table and nobody else's.
pub async fn areas_erase_only_their_persons_rows(store: Arc<dyn Store>) {
    let (gone, kept) = (Uuid::now_v7(), Uuid::now_v7());
    let message = |to: &str| OutboxMessage {
        id: Uuid::now_v7(),
        channel: "email".into(),
        to: to.into(),
        subject: "s".into(),
        body: "b".into(),
        job_id: None,
        kind: EmailKind::Transactional,
        attachments: Vec::new(),
        html: None,
        headers: Default::default(),
        created_at: t0(),
        delivery: crate::notify::Delivery::pending(t0()),
    };
    for (u, to) in [(gone, "gone@example.com"), (kept, "kept@example.com")] {
        for n in 0..2 {
            store
                .record_events(&[Event {
                    id: Uuid::now_v7(),
                    user_id: u,
                    name: format!("e{n}"),
                    properties: json!({}),
                    created_at: t0(),
                }])
                .await
                .unwrap();
            store
                .record_export(
                    &ExportRecord {
                        id: Uuid::now_v7(),
                        user_id: u,
                        created_at: t0(),
                        bytes: 1,
                        areas: Vec::new(),
                    },
                    &[],
                )
                .await
                .unwrap();
            store
                .put_screening(&screening(u, Verdict::Warn, t0()))
                .await
                .unwrap();
            store.push_outbox(&message(to)).await.unwrap();
        }
    }
    assert_eq!(store.erase_events(gone).await.unwrap(), 2);
    assert_eq!(store.erase_exports(gone).await.unwrap(), 2);
    assert_eq!(store.erase_screenings(gone).await.unwrap(), 2);
    assert_eq!(store.erase_outbox("gone@example.com").await.unwrap(), 2);
    assert_eq!(store.erase_events(gone).await.unwrap(), 0, "nothing left");
    assert!(store.list_events(gone, None, 10).await.unwrap().is_empty());
    assert_eq!(store.last_export(gone).await.unwrap(), None);
    assert!(
        store
            .list_screenings(Some(gone), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_events(kept, None, 10).await.unwrap().len(), 2);
    assert!(store.last_export(kept).await.unwrap().is_some());
    assert_eq!(
        store
            .list_screenings(Some(kept), None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    let left: Vec<String> = store
        .list_outbox(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.to)
        .collect();
    assert_eq!(left, ["kept@example.com", "kept@example.com"]);
}
