//! Conformance cases for the outbox as the dispatcher's queue.

use super::{admit, claim, job, step, t0, user};
use crate::jobs::model::StepStatus;
use crate::jobs::store::{Lease, Write};
use crate::notify::{
    Attempt, DeliveryStatus, Email, EmailKind, OutboxClaim, OutboxMessage, Settle,
};
use crate::store::Store;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

fn message(channel: &str, to: &str, at: DateTime<Utc>) -> OutboxMessage {
    let email = Email {
        to: to.into(),
        subject: "s".into(),
        body: "b".into(),
        job_id: None,
        attachments: Vec::new(),
        ..Default::default()
    };
    OutboxMessage {
        channel: channel.into(),
        ..OutboxMessage::email(&email, EmailKind::Transactional, at)
    }
}

fn outbox_claim(
    now: DateTime<Utc>,
    channels: &[&str],
    reclaim: &[&str],
    limit: usize,
) -> OutboxClaim {
    OutboxClaim {
        token: Uuid::new_v4(),
        node: "n1".into(),
        now,
        lease_until: now + Duration::seconds(60),
        not_before: now - Duration::days(3),
        channels: channels.iter().map(|c| c.to_string()).collect(),
        reclaim: reclaim.iter().map(|c| c.to_string()).collect(),
        limit,
    }
}

fn settle(m: &OutboxMessage, token: Uuid, status: DeliveryStatus, at: DateTime<Utc>) -> Settle {
    Settle {
        message_id: m.id,
        token,
        status,
        next_attempt_at: (status == DeliveryStatus::Pending).then(|| at + Duration::seconds(10)),
        provider_message_id: (status == DeliveryStatus::Sent).then(|| "prov-1".to_string()),
        attempt: Attempt {
            number: m.delivery.attempts,
            node: "n1".into(),
            started_at: at,
            finished_at: at + Duration::milliseconds(5),
            outcome: if status == DeliveryStatus::Sent {
                "sent"
            } else {
                "retry"
            }
            .into(),
            answer: if status == DeliveryStatus::Sent {
                "250 ok"
            } else {
                "503 down"
            }
            .into(),
        },
    }
}

pub async fn outbox_claims_due_messages_and_fences_settles(store: Arc<dyn Store>) {
    let now = t0();
    let a = message("email", "a@example.com", now);
    let b = message("email", "b@example.com", now - Duration::seconds(1));
    let later = OutboxMessage {
        delivery: crate::notify::Delivery::pending(now + Duration::hours(1)),
        ..message("email", "later@example.com", now)
    };
    let slack = message("slack", "#ops", now);
    for m in [&a, &b, &later, &slack] {
        store.push_outbox(m).await.unwrap();
    }
    let c = outbox_claim(now, &["email"], &[], 10);
    let claimed = store.claim_outbox(&c).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![b.id, a.id],
        "due email only, oldest due first"
    );
    assert!(
        claimed
            .iter()
            .all(|m| m.delivery.status == DeliveryStatus::Sending)
    );
    assert!(claimed.iter().all(|m| m.delivery.attempts == 1));
    assert!(
        store
            .claim_outbox(&outbox_claim(now, &["email"], &["email"], 10))
            .await
            .unwrap()
            .is_empty(),
        "a leased message is not claimed again while its lease holds"
    );

    let (cb, ca) = (&claimed[0], &claimed[1]);
    let stale = settle(cb, Uuid::new_v4(), DeliveryStatus::Sent, now);
    let sent = settle(cb, c.token, DeliveryStatus::Sent, now);
    let retry = settle(ca, c.token, DeliveryStatus::Pending, now);
    assert_eq!(
        store
            .settle_outbox(&[stale, sent.clone(), retry])
            .await
            .unwrap(),
        vec![false, true, true]
    );
    assert_eq!(
        store.settle_outbox(&[sent]).await.unwrap(),
        vec![false],
        "settled once"
    );
    let got = store.get_outbox(b.id).await.unwrap().unwrap();
    assert_eq!(got.delivery.status, DeliveryStatus::Sent);
    assert_eq!(got.delivery.provider_message_id.as_deref(), Some("prov-1"));
    assert_eq!(got.delivery.sent_at, Some(now + Duration::milliseconds(5)));
    assert_eq!(got.delivery.last_error, None);
    let log = store.list_attempts(b.id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (
            log[0].number,
            log[0].outcome.as_str(),
            log[0].answer.as_str()
        ),
        (1, "sent", "250 ok")
    );

    let pending = store.get_outbox(a.id).await.unwrap().unwrap();
    assert_eq!(pending.delivery.status, DeliveryStatus::Pending);
    assert_eq!(
        pending.delivery.next_attempt_at,
        now + Duration::seconds(10)
    );
    assert_eq!(pending.delivery.last_error.as_deref(), Some("503 down"));
    assert!(
        store
            .claim_outbox(&outbox_claim(
                now + Duration::seconds(9),
                &["email"],
                &[],
                10
            ))
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_outbox(&outbox_claim(
            now + Duration::seconds(10),
            &["email"],
            &[],
            10,
        ))
        .await
        .unwrap();
    assert_eq!(
        again
            .iter()
            .map(|m| (m.id, m.delivery.attempts))
            .collect::<Vec<_>>(),
        vec![(a.id, 2)]
    );
    assert_eq!(store.get_outbox(Uuid::now_v7()).await.unwrap(), None);
}

pub async fn concurrent_outbox_claims_never_share_a_message(store: Arc<dyn Store>) {
    let now = t0();
    let mut ids = HashSet::new();
    for i in 0..120 {
        let m = message("email", &format!("c{i}@example.com"), now);
        ids.insert(m.id);
        store.push_outbox(&m).await.unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_outbox(&outbox_claim(now, &["email"], &["email"], 7))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.extend(t.await.unwrap());
    }
    assert_eq!(seen.len(), 120, "every message claimed exactly once");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);
}

pub async fn abandoned_and_stale_messages_are_settled_by_the_sweep(store: Arc<dyn Store>) {
    let now = t0();
    let smtp = message("email", "smtp@example.com", now);
    let hook = message("webhook", "https://example.com/hook", now);
    let old = OutboxMessage {
        delivery: crate::notify::Delivery::pending(now - Duration::days(4)),
        ..message("email", "old@example.com", now - Duration::days(4))
    };
    for m in [&smtp, &hook, &old] {
        store.push_outbox(m).await.unwrap();
    }
    let mut first = outbox_claim(now, &["email", "webhook"], &[], 10);
    first.not_before = now - Duration::days(5);
    first.lease_until = now + Duration::seconds(1);
    assert_eq!(store.claim_outbox(&first).await.unwrap().len(), 3);
    // The other ones were abandoned; put `old` back to pending and due long ago.
    let settled = store
        .settle_outbox(&[Settle {
            next_attempt_at: Some(now - Duration::days(4)),
            ..settle(
                &store.get_outbox(old.id).await.unwrap().unwrap(),
                first.token,
                DeliveryStatus::Pending,
                now,
            )
        }])
        .await
        .unwrap();
    assert_eq!(settled, vec![true]);

    let later = now + Duration::seconds(2);
    let c = outbox_claim(later, &["email", "webhook"], &["webhook"], 10);
    let swept = store.sweep_outbox(&c).await.unwrap();
    assert_eq!((swept.unknown, swept.expired), (1, 1));
    let s = store.get_outbox(smtp.id).await.unwrap().unwrap();
    assert_eq!(
        s.delivery.status,
        DeliveryStatus::Unknown,
        "not re-sent blindly"
    );
    assert_eq!(
        s.delivery.last_error.as_deref(),
        Some(crate::notify::ABANDONED)
    );
    let o = store.get_outbox(old.id).await.unwrap().unwrap();
    assert_eq!(o.delivery.status, DeliveryStatus::Failed);
    assert_eq!(
        o.delivery.last_error.as_deref(),
        Some(crate::notify::EXPIRED)
    );
    let reclaimed = store.claim_outbox(&c).await.unwrap();
    assert_eq!(
        reclaimed
            .iter()
            .map(|m| (m.id, m.delivery.attempts))
            .collect::<Vec<_>>(),
        vec![(hook.id, 2)],
        "a deduplicating channel's abandoned message is claimed again"
    );
    assert_eq!(
        store
            .settle_outbox(&[settle(
                &reclaimed[0],
                first.token,
                DeliveryStatus::Sent,
                later
            )])
            .await
            .unwrap(),
        vec![false],
        "the abandoned claim cannot settle once the message is reclaimed"
    );

    assert!(store.retry_outbox(smtp.id, later).await.unwrap());
    assert!(
        !store.retry_outbox(smtp.id, later).await.unwrap(),
        "pending is not retried"
    );
    assert!(
        !store.retry_outbox(hook.id, later).await.unwrap(),
        "sending is not retried"
    );
    assert!(!store.retry_outbox(Uuid::now_v7(), later).await.unwrap());
    let back = store
        .claim_outbox(&outbox_claim(later, &["email"], &[], 10))
        .await
        .unwrap();
    assert_eq!(
        back.iter()
            .map(|m| (m.id, m.delivery.attempts))
            .collect::<Vec<_>>(),
        vec![(smtp.id, 2)]
    );
}

pub async fn step_messages_land_with_their_checkpoint_only(store: Arc<dyn Store>) {
    let u = user(&store, "steps-mail@example.com").await;
    let j = admit(&store, job(u.id, None, t0())).await;
    let c = claim(t0(), 1);
    store.claim_due(&c).await.unwrap();
    let lease = Lease {
        job_id: j.id,
        token: c.token,
    };
    let stale = Lease {
        job_id: j.id,
        token: Uuid::new_v4(),
    };
    let held = message("email", "held@example.com", t0());
    let lost = message("email", "lost@example.com", t0());
    let writes = [
        Write::Checkpoint {
            lease,
            steps: vec![step(j.id, "a", 0, StepStatus::Succeeded, 1)],
            messages: vec![held.clone()],
        },
        Write::Checkpoint {
            lease: stale,
            steps: vec![step(j.id, "b", 1, StepStatus::Succeeded, 1)],
            messages: vec![lost.clone()],
        },
    ];
    assert_eq!(store.commit(&writes).await.unwrap(), vec![true, false]);
    assert_eq!(store.get_outbox(held.id).await.unwrap(), Some(held));
    assert_eq!(
        store.get_outbox(lost.id).await.unwrap(),
        None,
        "a write without its lease sends nothing"
    );
}

pub async fn suppressions_keep_the_first_reason_and_go_with_erasure(store: Arc<dyn Store>) {
    use crate::notify::{Suppression, SuppressionReason};
    let s = |email: &str, reason, at: i64| Suppression {
        id: Uuid::now_v7(),
        email: email.into(),
        reason,
        detail: Some("550 mailbox unavailable".into()),
        event_id: Some(format!("msg_{at}")),
        created_at: t0() + Duration::seconds(at),
    };
    let first = s("gone@example.com", SuppressionReason::HardBounce, 1);
    assert!(store.suppress(&first).await.unwrap());
    assert!(
        !store
            .suppress(&s("gone@example.com", SuppressionReason::Complaint, 2))
            .await
            .unwrap(),
        "the first reason stays"
    );
    let other = s("spam@example.com", SuppressionReason::Complaint, 3);
    assert!(store.suppress(&other).await.unwrap());
    assert_eq!(
        store.suppression("gone@example.com").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.suppression("nobody@example.com").await.unwrap(), None);
    assert_eq!(
        store.list_suppressions(None, 10).await.unwrap(),
        vec![other.clone(), first.clone()]
    );
    assert_eq!(
        store.list_suppressions(Some(other.id), 10).await.unwrap(),
        vec![first.clone()]
    );
    assert!(store.unsuppress("spam@example.com").await.unwrap());
    assert!(!store.unsuppress("spam@example.com").await.unwrap());
    store
        .push_outbox(&message("email", "gone@example.com", t0()))
        .await
        .unwrap();
    assert_eq!(
        store.erase_outbox("gone@example.com").await.unwrap(),
        2,
        "the message and the suppression"
    );
    assert_eq!(store.suppression("gone@example.com").await.unwrap(), None);
}
