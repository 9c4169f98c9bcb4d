//! The dispatcher over the in-memory outbox with a scripted channel and a clock that moves only
//! when told.

use super::*;
use crate::audit::AuditStore;
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::ErrorKind;
use crate::testing::{Base, t0};
use chrono::Duration as ChronoDuration;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// A channel that answers from a script (then accepts everything) and records every attempt.
struct Scripted {
    name: &'static str,
    dedupe: bool,
    script: Mutex<VecDeque<Delivered>>,
    seen: Mutex<Vec<Uuid>>,
}

impl Scripted {
    fn new(name: &'static str, dedupe: bool, script: Vec<Delivered>) -> Arc<Self> {
        Arc::new(Self {
            name,
            dedupe,
            script: Mutex::new(script.into()),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn seen(&self) -> Vec<Uuid> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl Channel for Scripted {
    fn channel(&self) -> &str {
        self.name
    }

    fn deduplicates(&self) -> bool {
        self.dedupe
    }

    async fn deliver(&self, m: &OutboxMessage) -> Delivered {
        self.seen.lock().unwrap().push(m.id);
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Delivered::Sent {
                provider_message_id: Some(format!("p-{}", m.id)),
                answer: "250 ok".into(),
            })
    }
}

fn retry(e: &str) -> Delivered {
    Delivered::Retry {
        error: e.into(),
        after: None,
    }
}

fn config() -> DispatchConfig {
    DispatchConfig {
        node: "n1".into(),
        retry_base: Duration::from_secs(10),
        retry_cap: Duration::from_secs(60),
        max_attempts: 3,
        ..DispatchConfig::default()
    }
}

fn dispatcher(base: &Base, channels: Vec<Arc<dyn Channel>>, config: DispatchConfig) -> Dispatcher {
    Dispatcher::new(base.store.clone(), channels, base.clock.clone(), config)
}

async fn send(base: &Base, to: &str) -> Uuid {
    base.messages
        .send_transactional(Email {
            to: to.into(),
            subject: "Hello".into(),
            body: "Body".into(),
            job_id: None,
            attachments: Vec::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    base.store.list_outbox(None, 1).await.unwrap()[0].id
}

#[tokio::test]
async fn a_pending_message_is_sent_once_and_its_attempt_recorded() {
    let base = Base::new();
    let id = send(&base, "a@example.com").await;
    let email = Scripted::new("email", false, vec![]);
    let d = dispatcher(&base, vec![email.clone()], config());
    let tick = d.tick().await.unwrap();
    assert_eq!((tick.claimed, tick.sent), (1, 1));
    assert_eq!(
        d.tick().await.unwrap(),
        DispatchTick::default(),
        "nothing left"
    );
    assert_eq!(email.seen(), vec![id]);
    let entry = base
        .messages
        .get_outbox(&Principal::Admin, id)
        .await
        .unwrap();
    let m = entry.message.delivery;
    assert_eq!(m.status, DeliveryStatus::Sent);
    assert_eq!(m.attempts, 1);
    assert_eq!(m.sent_at, Some(t0()));
    assert_eq!(m.provider_message_id, Some(format!("p-{id}")));
    assert_eq!(entry.attempts.len(), 1);
    assert_eq!(
        (
            entry.attempts[0].node.as_str(),
            entry.attempts[0].outcome.as_str()
        ),
        ("n1", "sent")
    );
}

#[tokio::test]
async fn temporary_failures_back_off_then_deliver() {
    let base = Base::new();
    let id = send(&base, "b@example.com").await;
    let email = Scripted::new("email", false, vec![retry("503 down"), retry("503 down")]);
    let d = dispatcher(&base, vec![email.clone()], config());
    assert_eq!(d.tick().await.unwrap().retried, 1);
    let after_one = base.store.get_outbox(id).await.unwrap().unwrap().delivery;
    assert_eq!(after_one.status, DeliveryStatus::Pending);
    assert_eq!(after_one.last_error.as_deref(), Some("503 down"));
    let wait = after_one.next_attempt_at - t0();
    assert!(
        wait >= ChronoDuration::seconds(5) && wait <= ChronoDuration::seconds(10),
        "first backoff is the base with jitter: {wait}"
    );
    assert_eq!(d.tick().await.unwrap().claimed, 0, "not due yet");
    base.clock.set(after_one.next_attempt_at);
    assert_eq!(d.tick().await.unwrap().retried, 1);
    let after_two = base.store.get_outbox(id).await.unwrap().unwrap().delivery;
    let wait = after_two.next_attempt_at - after_one.next_attempt_at;
    assert!(
        wait >= ChronoDuration::seconds(10) && wait <= ChronoDuration::seconds(20),
        "the backoff doubles: {wait}"
    );
    base.clock.set(after_two.next_attempt_at);
    assert_eq!(d.tick().await.unwrap().sent, 1);
    assert_eq!(email.seen(), vec![id, id, id]);
    let log = base.store.list_attempts(id).await.unwrap();
    assert_eq!(
        log.iter()
            .map(|a| (a.number, a.outcome.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "retry"), (2, "retry"), (3, "sent")]
    );
}

#[tokio::test]
async fn a_provider_that_asks_for_a_wait_gets_it_up_to_the_longest_backoff() {
    let base = Base::new();
    let id = send(&base, "b@example.com").await;
    let busy = |secs| Delivered::Retry {
        error: "429 slow down".into(),
        after: Some(Duration::from_secs(secs)),
    };
    // The first backoff is 5-10 s; the provider asks for 45 s, then for two hours (the
    // longest backoff, 60 s, is as long as a message waits).
    let email = Scripted::new("email", false, vec![busy(45), busy(7200)]);
    let d = dispatcher(&base, vec![email.clone()], config());
    assert_eq!(d.tick().await.unwrap().retried, 1);
    let after_one = base.store.get_outbox(id).await.unwrap().unwrap().delivery;
    assert_eq!(
        after_one.next_attempt_at - t0(),
        ChronoDuration::seconds(45)
    );
    base.clock.set(after_one.next_attempt_at);
    assert_eq!(d.tick().await.unwrap().retried, 1);
    let after_two = base.store.get_outbox(id).await.unwrap().unwrap().delivery;
    let wait = after_two.next_attempt_at - after_one.next_attempt_at;
    assert_eq!(wait, ChronoDuration::seconds(60));
    assert_eq!(after_two.last_error.as_deref(), Some("429 slow down"));
}

#[tokio::test]
async fn refusals_and_exhausted_retries_fail_and_the_admin_can_retry() {
    let base = Base::new();
    let refused = send(&base, "refused@example.com").await;
    let email = Scripted::new(
        "email",
        false,
        vec![Delivered::Reject {
            error: "422 invalid to".into(),
        }],
    );
    let d = dispatcher(&base, vec![email.clone()], config());
    assert_eq!(d.tick().await.unwrap().failed, 1);
    let m = base
        .store
        .get_outbox(refused)
        .await
        .unwrap()
        .unwrap()
        .delivery;
    assert_eq!((m.status, m.attempts), (DeliveryStatus::Failed, 1));
    assert_eq!(m.last_error.as_deref(), Some("422 invalid to"));

    let tired = send(&base, "tired@example.com").await;
    let down = Scripted::new(
        "email",
        false,
        vec![retry("down"), retry("down"), retry("down")],
    );
    let d = dispatcher(&base, vec![down.clone()], config());
    for _ in 0..3 {
        d.tick().await.unwrap();
        base.clock.advance(ChronoDuration::minutes(5));
    }
    let m = base
        .store
        .get_outbox(tired)
        .await
        .unwrap()
        .unwrap()
        .delivery;
    assert_eq!(
        (m.status, m.attempts),
        (DeliveryStatus::Failed, 3),
        "max_attempts is 3"
    );
    assert_eq!(d.tick().await.unwrap().claimed, 0);

    let (_, user) = base.user("nosy@example.com").await;
    let err = base.messages.retry_outbox(&user, tired).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    let back = base
        .messages
        .retry_outbox(&Principal::Admin, tired)
        .await
        .unwrap();
    assert_eq!(back.message.delivery.status, DeliveryStatus::Pending);
    assert_eq!(back.attempts.len(), 3);
    let err = base
        .messages
        .retry_outbox(&Principal::Admin, tired)
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Conflict, "not_retryable"));
    let err = base
        .messages
        .get_outbox(&Principal::Admin, Uuid::now_v7())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(
        d.tick().await.unwrap().sent,
        1,
        "the admin's retry is delivered"
    );
    let audit = base.store.list_audit(None, 10).await.unwrap();
    assert!(audit.iter().any(|r| r.action == "outbox.retried"));
}

#[tokio::test]
async fn an_abandoned_attempt_is_resent_only_where_the_provider_deduplicates() {
    let base = Base::new();
    let id = send(&base, "crash@example.com").await;
    // A node claims the message and dies before recording the attempt.
    let claim = OutboxClaim {
        token: Uuid::new_v4(),
        node: "dead".into(),
        now: t0(),
        lease_until: t0() + ChronoDuration::seconds(120),
        not_before: t0() - ChronoDuration::days(3),
        channels: vec!["email".into()],
        reclaim: vec![],
        limit: 10,
    };
    assert_eq!(base.store.claim_outbox(&claim).await.unwrap().len(), 1);
    let smtp = Scripted::new("email", false, vec![]);
    let d = dispatcher(&base, vec![smtp.clone()], config());
    assert_eq!(d.tick().await.unwrap().claimed, 0, "the lease still holds");
    base.clock.advance(ChronoDuration::seconds(121));
    let tick = d.tick().await.unwrap();
    assert_eq!((tick.claimed, tick.unknown), (0, 1));
    assert!(
        smtp.seen().is_empty(),
        "SMTP cannot deduplicate: not re-sent blindly"
    );
    let m = base.store.get_outbox(id).await.unwrap().unwrap().delivery;
    assert_eq!(m.status, DeliveryStatus::Unknown);

    // The same crash through a provider that deduplicates: sent again with the same key.
    let id2 = send(&base, "crash2@example.com").await;
    assert_eq!(
        base.store
            .claim_outbox(&OutboxClaim {
                now: base.clock.now(),
                lease_until: base.clock.now() + ChronoDuration::seconds(120),
                ..claim.clone()
            })
            .await
            .unwrap()
            .len(),
        1
    );
    base.clock.advance(ChronoDuration::seconds(121));
    let resend = Scripted::new("email", true, vec![]);
    let d = dispatcher(&base, vec![resend.clone()], config());
    let tick = d.tick().await.unwrap();
    assert_eq!((tick.sent, tick.unknown), (1, 0));
    assert_eq!(resend.seen(), vec![id2]);
    assert_eq!(
        base.store
            .get_outbox(id2)
            .await
            .unwrap()
            .unwrap()
            .delivery
            .attempts,
        2
    );
}

#[tokio::test]
async fn messages_go_to_their_own_channel_and_old_ones_expire() {
    let base = Base::new();
    let email_id = send(&base, "e@example.com").await;
    let mut slack_msg = OutboxMessage::email(
        &Email {
            to: "#ops".into(),
            subject: "".into(),
            body: "deploy done".into(),
            job_id: None,
            attachments: Vec::new(),
            ..Default::default()
        },
        EmailKind::Transactional,
        t0(),
    );
    slack_msg.channel = "slack".into();
    base.store.push_outbox(&slack_msg).await.unwrap();
    let email = Scripted::new("email", false, vec![]);
    let d = dispatcher(&base, vec![email.clone()], config());
    assert_eq!(d.tick().await.unwrap().sent, 1);
    assert_eq!(
        email.seen(),
        vec![email_id],
        "no slack channel here: the slack message waits"
    );
    assert_eq!(
        base.store
            .get_outbox(slack_msg.id)
            .await
            .unwrap()
            .unwrap()
            .delivery
            .status,
        DeliveryStatus::Pending
    );
    base.clock.advance(ChronoDuration::days(4));
    let slack = Scripted::new("slack", false, vec![]);
    let d = dispatcher(&base, vec![email.clone(), slack.clone()], config());
    let tick = d.tick().await.unwrap();
    assert_eq!((tick.claimed, tick.expired), (0, 1));
    assert!(slack.seen().is_empty(), "too old to send");
    assert_eq!(d.channels(), vec!["email".to_string(), "slack".to_string()]);
}

#[tokio::test]
async fn a_running_dispatcher_delivers_and_stops_cleanly() {
    let base = Base::new();
    let email = Scripted::new("email", false, vec![]);
    let d = Arc::new(Dispatcher::new(
        base.store.clone(),
        vec![email.clone()],
        base.clock.clone(),
        DispatchConfig {
            poll_interval: Duration::from_millis(10),
            ..config()
        },
    ));
    let handle = d.clone().start();
    let id = send(&base, "live@example.com").await;
    d.wake();
    for _ in 0..200 {
        if !email.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(email.seen(), vec![id]);
}

#[tokio::test]
async fn marketing_queued_before_a_suppression_is_not_delivered() {
    let base = Base::new();
    let email = |to: &str| Email {
        to: to.into(),
        subject: "Deal".into(),
        body: "Half price".into(),
        ..Email::default()
    };
    base.messages
        .send(email("gone@example.com"), EmailKind::Marketing)
        .await
        .unwrap();
    base.messages
        .send_transactional(email("gone@example.com"))
        .await
        .unwrap();
    base.messages
        .send(email("here@example.com"), EmailKind::Marketing)
        .await
        .unwrap();
    base.store
        .suppress(&Suppression {
            id: Uuid::now_v7(),
            email: "gone@example.com".into(),
            reason: SuppressionReason::Complaint,
            detail: None,
            event_id: Some("msg_1".into()),
            created_at: t0(),
        })
        .await
        .unwrap();
    let channel = Scripted::new("email", false, vec![]);
    let d = dispatcher(&base, vec![channel.clone()], config());
    let tick = d.tick().await.unwrap();
    assert_eq!((tick.sent, tick.failed), (2, 1));
    let delivered: Vec<String> = base
        .store
        .list_outbox(None, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| channel.seen().contains(&m.id))
        .map(|m| format!("{} {}", m.to, m.kind.as_str()))
        .collect();
    assert_eq!(
        delivered,
        [
            "here@example.com marketing",
            "gone@example.com transactional"
        ],
        "transactional mail still reaches a suppressed address"
    );
    let refused = base
        .store
        .list_outbox(None, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.delivery.status == DeliveryStatus::Failed)
        .unwrap();
    assert_eq!(
        refused.delivery.last_error.as_deref(),
        Some("the address is suppressed (complaint)")
    );
}
