//! Slack, Telegram and signed webhooks as workflow steps and as a job's callback, delivered by
//! the engine's dispatcher to a local server that records the exact requests; steps of a
//! channel the deployment did not configure are refused at intake.

mod support;

use levqor_core::notify::{Channel, DeliveryStatus, Email, EmailKind, OutboxMessage, OutboxStore};
use levqor_core::{EngineConfig, Levqor, MemoryStore, Principal, SubmitRequest};
use levqor_http::deliver::slack::SlackChannel;
use levqor_http::deliver::telegram::TelegramChannel;
use levqor_http::deliver::webhook::WebhookChannel;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::app::runner;
use support::fake_delivery::Recorder;
use support::wait_for;

const SECRET: &str = "whsec_levqor_test_secret";

fn levqor(channels: Vec<Arc<dyn Channel>>) -> Arc<Levqor> {
    let store = Arc::new(MemoryStore::new());
    let builder = Levqor::builder(store.clone(), runner(store))
        .admin_key(Some(support::ADMIN))
        .signup_grant(1_000_000)
        .dispatch(levqor_core::notify::DispatchConfig {
            poll_interval: Duration::from_millis(10),
            retry_base: Duration::from_millis(20),
            ..Default::default()
        });
    Arc::new(
        channels
            .into_iter()
            .fold(builder, |b, c| b.channel(c))
            .build()
            .unwrap(),
    )
}

fn all_channels(r: &Recorder) -> Vec<Arc<dyn Channel>> {
    vec![
        Arc::new(SlackChannel::new(&format!("{}/slack", r.base)).unwrap()),
        Arc::new(TelegramChannel::new(&r.base, "123:abc").unwrap()),
        Arc::new(WebhookChannel::new(SECRET, true).unwrap()),
    ]
}

async fn user(levqor: &Levqor) -> Principal {
    let admin = levqor.users().authenticate(support::ADMIN).await.unwrap();
    let u = match levqor
        .users()
        .create(&admin, "ops@example.com", None)
        .await
        .unwrap()
    {
        levqor_core::Upserted::Created(u) | levqor_core::Upserted::Existing(u) => u,
    };
    let key = levqor.users().create_key(&admin, u.id, None).await.unwrap();
    levqor.users().authenticate(&key.secret).await.unwrap()
}

fn submit(workflow: Value, input: Value) -> SubmitRequest {
    SubmitRequest {
        workflow,
        input,
        max_attempts: None,
        run_after: None,
        idempotency_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_and_the_callback_reach_slack_telegram_and_the_receiver_exactly() {
    let r = Recorder::start().await;
    let levqor = levqor(all_channels(&r));
    let engine = levqor.start_engine(EngineConfig {
        workers: 4,
        poll_interval: Duration::from_millis(10),
        ..EngineConfig::default()
    });
    let me = user(&levqor).await;
    let workflow = json!({"name": "alerts", "callback_url": format!("{}/callback", r.base), "steps": [
        {"id": "s", "type": "slack", "text": "Deploy of {{input.service}} done"},
        {"id": "t", "type": "telegram", "chat_id": "{{input.chat}}", "text": "Deploy of {{input.service}} done"},
        {"id": "w", "type": "webhook", "url": format!("{}/hook", r.base), "event": "deploy.done",
         "body": {"service": "{{input.service}}", "ok": true}},
    ]});
    let submitted = levqor
        .jobs()
        .submit(
            &me,
            submit(workflow, json!({"service": "billing", "chat": "-1001"})),
        )
        .await
        .unwrap();
    let job_id = submitted.admission.job().id;
    assert!(
        wait_for(Duration::from_secs(15), || async {
            r.requests().len() >= 4
        })
        .await,
        "{:?}",
        r.requests()
    );

    let slack = r.to("/slack");
    assert_eq!(slack.len(), 1);
    assert_eq!(slack[0].json(), json!({"text": "Deploy of billing done"}));
    assert_eq!(slack[0].headers["content-type"], "application/json");

    let telegram = r.to("/bot123:abc/sendMessage");
    assert_eq!(telegram.len(), 1);
    assert_eq!(
        telegram[0].json(),
        json!({"chat_id": "-1001", "text": "Deploy of billing done"})
    );

    let hook = r.to("/hook");
    assert_eq!(hook.len(), 1);
    let h = &hook[0];
    assert_eq!(h.json(), json!({"service": "billing", "ok": true}));
    assert_eq!(h.headers["levqor-event"], "deploy.done");
    assert_eq!(h.headers["content-type"], "application/json");
    levqor_core::signature::verify_signature(
        &h.body,
        &h.headers["levqor-signature"],
        SECRET,
        chrono::Utc::now(),
    )
    .expect("the receiver can verify the signature with the shared secret");
    assert!(
        levqor_core::signature::verify_signature(
            &h.body,
            &h.headers["levqor-signature"],
            "another secret",
            chrono::Utc::now()
        )
        .is_err()
    );

    let callback = r.to("/callback");
    assert_eq!(callback.len(), 1);
    let c = &callback[0];
    assert_eq!(c.headers["levqor-event"], "job.succeeded");
    let body = c.json();
    assert_eq!(body["event"], "job.succeeded");
    assert_eq!(body["job"]["id"], json!(job_id));
    assert_eq!(body["job"]["status"], "succeeded");
    assert_eq!(body["job"]["result"]["s"]["channel"], "slack");
    levqor_core::signature::verify_signature(
        &c.body,
        &c.headers["levqor-signature"],
        SECRET,
        chrono::Utc::now(),
    )
    .unwrap();

    // The outbox names each message with its job; the webhook's id is the message's.
    let outbox = levqor.store().list_outbox(None, 10).await.unwrap();
    assert_eq!(outbox.len(), 4);
    assert!(outbox.iter().all(|m| m.job_id == Some(job_id)));
    let hook_message = outbox.iter().find(|m| m.subject == "deploy.done").unwrap();
    assert_eq!(h.headers["levqor-webhook-id"], hook_message.id.to_string());
    assert!(
        wait_for(Duration::from_secs(5), || async {
            levqor
                .store()
                .list_outbox(None, 10)
                .await
                .unwrap()
                .iter()
                .all(|m| m.delivery.status == DeliveryStatus::Sent)
        })
        .await
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_canceled_job_calls_back_and_unconfigured_channels_are_refused_at_intake() {
    let r = Recorder::start().await;
    let with = levqor(all_channels(&r));
    let me = user(&with).await;
    let job = with
        .jobs()
        .submit(
            &me,
            submit(
                json!({"name": "later", "callback_url": format!("{}/callback", r.base),
                       "steps": [{"id": "a", "type": "log", "message": "x"}]}),
                json!({}),
            ),
        )
        .await
        .unwrap()
        .admission
        .job()
        .clone();
    let canceled = with.jobs().cancel(&me, job.id).await.unwrap();
    assert_eq!(canceled.status.as_str(), "canceled");
    let outbox = with.store().list_outbox(None, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        (outbox[0].channel.as_str(), outbox[0].subject.as_str()),
        ("webhook", "job.canceled")
    );

    let without = levqor(Vec::new());
    let me = user(&without).await;
    for (workflow, pointer) in [
        (
            json!({"name": "w", "steps": [{"id": "a", "type": "slack", "text": "x"}]}),
            "/workflow/steps/0/type",
        ),
        (
            json!({"name": "w", "steps": [{"id": "a", "type": "webhook", "url": "https://example.com"}]}),
            "/workflow/steps/0/type",
        ),
        (
            json!({"name": "w", "callback_url": "https://example.com", "steps": [{"id": "a", "type": "log", "message": "x"}]}),
            "/workflow",
        ),
    ] {
        let err = without
            .jobs()
            .submit(&me, submit(workflow.clone(), json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.code, "validation_failed", "{workflow}");
        assert!(
            err.violations.iter().any(|v| v.pointer == pointer),
            "{workflow}: {:?}",
            err.violations
        );
    }
    let err = with
        .jobs()
        .submit(
            &user(&with).await,
            submit(
                json!({"name": "w", "steps": [{"id": "a", "type": "telegram", "text": "no chat"}]}),
                json!({}),
            ),
        )
        .await
        .unwrap_err();
    assert!(
        err.violations
            .iter()
            .any(|v| v.pointer == "/workflow/steps/0"),
        "{:?}",
        err.violations
    );
}

async fn deliver_one(channel: Arc<dyn Channel>, to: &str, body: &str) -> OutboxMessage {
    let store = Arc::new(MemoryStore::new());
    let name = channel.channel().to_string();
    let d = levqor_core::notify::Dispatcher::new(
        store.clone(),
        vec![channel],
        Arc::new(levqor_core::SystemClock),
        Default::default(),
    );
    let m = OutboxMessage {
        channel: name.clone(),
        ..OutboxMessage::email(
            &Email {
                to: to.into(),
                subject: "evt".into(),
                body: body.into(),
                job_id: None,
                attachments: Vec::new(),
                ..Default::default()
            },
            EmailKind::Transactional,
            chrono::Utc::now(),
        )
    };
    store.push_outbox(&m).await.unwrap();
    d.tick().await.unwrap();
    store.get_outbox(m.id).await.unwrap().unwrap()
}

#[tokio::test]
async fn providers_answers_are_retried_or_refused_and_internal_targets_are_refused() {
    let r = Recorder::start().await;
    let telegram = || {
        deliver_one(
            Arc::new(TelegramChannel::new(&r.base, "1:x").unwrap()),
            "5",
            "hi",
        )
    };
    let slack = || {
        deliver_one(
            Arc::new(SlackChannel::new(&format!("{}/slack", r.base)).unwrap()),
            "",
            "hi",
        )
    };
    // A provider that asks for a wait gets it (the first backoff is 1-2 s): Telegram in its
    // answer, Slack and the others in `Retry-After`.
    let waits_at_least = |m: &OutboxMessage, secs: i64| {
        let wait = m.delivery.next_attempt_at - chrono::Utc::now();
        assert!(
            wait > chrono::Duration::seconds(secs - 5) && wait <= chrono::Duration::seconds(secs),
            "{wait}"
        );
    };
    r.answer(
        "/bot1:x/sendMessage",
        429,
        r#"{"ok":false,"error_code":429,"parameters":{"retry_after":30}}"#,
    );
    let m = telegram().await;
    assert_eq!(m.delivery.status, DeliveryStatus::Pending, "429 is retried");
    waits_at_least(&m, 30);
    r.answer_retry_after("/slack", 429, "rate_limited", "45");
    let m = slack().await;
    assert_eq!(m.delivery.status, DeliveryStatus::Pending);
    waits_at_least(&m, 45);
    r.answer(
        "/bot1:x/sendMessage",
        400,
        r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
    );
    let m = telegram().await;
    assert_eq!(m.delivery.status, DeliveryStatus::Failed);
    assert!(m.delivery.last_error.unwrap().contains("chat not found"));

    r.answer("/slack", 404, "no_service");
    let m = slack().await;
    assert_eq!(m.delivery.status, DeliveryStatus::Failed);
    r.answer("/slack", 503, "down");
    let m = slack().await;
    assert_eq!(m.delivery.status, DeliveryStatus::Pending);

    // Without --http-allow-private a webhook may not reach loopback.
    let before = r.requests().len();
    let m = deliver_one(
        Arc::new(WebhookChannel::new(SECRET, false).unwrap()),
        &format!("{}/hook", r.base),
        "{}",
    )
    .await;
    assert_eq!(m.delivery.status, DeliveryStatus::Failed);
    assert!(m.delivery.last_error.unwrap().contains("internal address"));
    assert_eq!(r.requests().len(), before, "nothing was sent");
    assert!(WebhookChannel::new("short", true).is_err());
    assert!(TelegramChannel::new(&r.base, "").is_err());
    assert!(SlackChannel::new("ftp://x").is_err());
}
