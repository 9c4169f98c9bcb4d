//! Outbound email, durable and sent once: the SMTP and Resend channels against local servers
//! that record the exact requests, a provider that is down for a minute, a `kill -9` of the
//! node between a job's checkpoint and the dispatch (and in the middle of a delivery), and two
//! nodes on one PostgreSQL database.

mod support;

use base64::Engine as _;
use chrono::Duration as ChronoDuration;
use levqor_core::notify::{
    Attachment, Channel, DeliveryStatus, DispatchConfig, Dispatcher, Email, EmailKind,
    OutboxMessage, OutboxStore,
};
use levqor_core::{Clock, ManualClock, MemoryStore};
use levqor_http::deliver::resend::ResendChannel;
use levqor_http::deliver::smtp::{SmtpChannel, SmtpConfig, SmtpTls};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use support::fake_delivery::{FakeResend, FakeSmtp};
use support::{ADMIN, Client, Node, fresh_pg_db, fresh_sqlite_db, wait_for};

const FROM: &str = "Levqor <noreply@levqor.test>";

fn email(to: &str, attachments: Vec<Attachment>) -> Email {
    Email {
        to: to.into(),
        subject: "Your export is ready".into(),
        body: "Hello,\n\nyour export is attached.\n.\nA line that starts with a dot.".into(),
        job_id: None,
        attachments,
        ..Default::default()
    }
}

struct World {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
}

fn world(channel: Arc<dyn Channel>) -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let dispatcher = Dispatcher::new(
        store.clone(),
        vec![channel],
        clock.clone(),
        DispatchConfig {
            node: "test".into(),
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(20),
            ..DispatchConfig::default()
        },
    );
    World {
        store,
        clock,
        dispatcher,
    }
}

impl World {
    async fn push(&self, email: &Email) -> OutboxMessage {
        let m = OutboxMessage::email(email, EmailKind::Transactional, self.clock.now_micros());
        self.store.push_outbox(&m).await.unwrap();
        m
    }

    async fn status(&self, m: &OutboxMessage) -> DeliveryStatus {
        self.store
            .get_outbox(m.id)
            .await
            .unwrap()
            .unwrap()
            .delivery
            .status
    }
}

#[tokio::test]
async fn resend_gets_the_exact_request_with_the_messages_idempotency_key() {
    let fake = FakeResend::start().await;
    let w = world(Arc::new(
        ResendChannel::new(&fake.base, "re_test_key", FROM).unwrap(),
    ));
    let m = w
        .push(&email(
            "ada@example.com",
            vec![Attachment {
                filename: "export.zip".into(),
                content_type: "application/zip".into(),
                content: vec![0, 1, 2, 250],
            }],
        ))
        .await;
    assert_eq!(w.dispatcher.tick().await.unwrap().sent, 1);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.authorization.as_deref(), Some("Bearer re_test_key"));
    assert_eq!(
        r.idempotency_key.as_deref(),
        Some(format!("levqor-{}", m.id).as_str())
    );
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        r.body,
        json!({
            "from": FROM,
            "to": ["ada@example.com"],
            "subject": "Your export is ready",
            "text": "Hello,\n\nyour export is attached.\n.\nA line that starts with a dot.",
            "headers": {"X-Levqor-Message-Id": m.id.to_string()},
            "attachments": [{
                "filename": "export.zip",
                "content": base64::engine::general_purpose::STANDARD.encode([0u8, 1, 2, 250]),
                "content_type": "application/zip",
            }],
        })
    );
    let stored = w.store.get_outbox(m.id).await.unwrap().unwrap().delivery;
    assert_eq!(stored.status, DeliveryStatus::Sent);
    assert_eq!(stored.provider_message_id.as_deref(), Some("re_0"));
}

#[tokio::test]
async fn resend_refusals_fail_at_once_and_an_unreachable_api_is_retried() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = world(Arc::new(
        ResendChannel::new(&format!("http://127.0.0.1:{port}"), "k", FROM).unwrap(),
    ));
    let m = w.push(&email("x@example.com", vec![])).await;
    assert_eq!(w.dispatcher.tick().await.unwrap().retried, 1);
    let d = w.store.get_outbox(m.id).await.unwrap().unwrap().delivery;
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert!(
        d.last_error
            .as_deref()
            .unwrap()
            .contains("could not be reached"),
        "{d:?}"
    );
    assert!(
        ResendChannel::new("http://x", "", FROM).is_err(),
        "a key is required"
    );

    // A 422 is a refusal: failed at once, with Resend's answer.
    let fake = FakeResend::start().await;
    let w = world(Arc::new(ResendChannel::new(&fake.base, "k", FROM).unwrap()));
    let m = w.push(&email("invalid@example.com", vec![])).await;
    assert_eq!(w.dispatcher.tick().await.unwrap().failed, 1);
    let d = w.store.get_outbox(m.id).await.unwrap().unwrap().delivery;
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, 1));
    assert!(d.last_error.unwrap().starts_with("422 "));
    w.clock.advance(ChronoDuration::hours(1));
    assert_eq!(w.dispatcher.tick().await.unwrap().claimed, 0);
    assert_eq!(fake.requests().len(), 1, "a refusal is not retried");
}

fn smtp(server: &FakeSmtp) -> SmtpChannel {
    SmtpChannel::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: server.port,
        tls: SmtpTls::None,
        credentials: None,
        pool_size: 2,
        from: FROM.into(),
    })
    .unwrap()
}

#[tokio::test]
async fn the_smtp_server_gets_the_message_with_its_stable_id_and_parts() {
    let server = FakeSmtp::start().await;
    let w = world(Arc::new(smtp(&server)));
    let m = w
        .push(&email(
            "ada@example.com",
            vec![Attachment {
                filename: "export.zip".into(),
                content_type: "application/zip".into(),
                content: vec![0x50, 0x4b, 0x03, 0x04, 0xff, 0xfe, 0x00, 0x80],
            }],
        ))
        .await;
    let plain = w.push(&email("bob@example.com", vec![])).await;
    assert_eq!(w.dispatcher.tick().await.unwrap().sent, 2);
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    let with_file = messages
        .iter()
        .find(|s| s.rcpt_to == ["<ada@example.com>"])
        .unwrap();
    assert_eq!(with_file.mail_from, "<noreply@levqor.test>");
    let data = &with_file.data;
    assert!(
        data.contains("From: Levqor <noreply@levqor.test>\r\n"),
        "{data}"
    );
    assert!(data.contains("To: ada@example.com\r\n"), "{data}");
    assert!(data.contains("Subject: Your export is ready\r\n"), "{data}");
    assert!(
        data.contains(&format!("Message-ID: <{}@levqor.test>\r\n", m.id)),
        "{data}"
    );
    assert!(data.contains("Content-Type: multipart/mixed"), "{data}");
    assert!(
        data.contains("Content-Type: text/plain; charset=utf-8"),
        "{data}"
    );
    assert!(
        data.contains("Content-Disposition: attachment; filename=\"export.zip\""),
        "{data}"
    );
    assert!(
        data.contains(
            &base64::engine::general_purpose::STANDARD
                .encode([0x50u8, 0x4b, 0x03, 0x04, 0xff, 0xfe, 0x00, 0x80])
        ),
        "{data}"
    );
    assert!(
        data.contains("A line that starts with a dot."),
        "dot-stuffing round-trips: {data}"
    );
    let stored = w.store.get_outbox(m.id).await.unwrap().unwrap().delivery;
    assert_eq!(
        stored.provider_message_id,
        Some(format!("<{}@levqor.test>", m.id))
    );
    let log = w.store.list_attempts(plain.id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].answer.starts_with("250 "), "{:?}", log[0]);
}

#[tokio::test]
async fn smtp_refusals_fail_and_temporary_errors_are_retried() {
    let server = FakeSmtp::start().await;
    let w = world(Arc::new(smtp(&server)));
    let refused = w.push(&email("reject@example.com", vec![])).await;
    let bad = w.push(&email("not an address", vec![])).await;
    assert_eq!(w.dispatcher.tick().await.unwrap().failed, 2);
    assert_eq!(w.status(&refused).await, DeliveryStatus::Failed);
    let d = w
        .store
        .get_outbox(refused.id)
        .await
        .unwrap()
        .unwrap()
        .delivery;
    assert!(d.last_error.unwrap().contains("550"));
    assert_eq!(w.status(&bad).await, DeliveryStatus::Failed);

    server.set_busy(true);
    let later = w.push(&email("later@example.com", vec![])).await;
    assert_eq!(w.dispatcher.tick().await.unwrap().retried, 1);
    assert_eq!(w.status(&later).await, DeliveryStatus::Pending);
    server.set_busy(false);
    w.clock.advance(ChronoDuration::seconds(6));
    assert_eq!(w.dispatcher.tick().await.unwrap().sent, 1);
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_provider_down_for_a_minute_gets_every_message_afterwards_once() {
    let fake = FakeResend::start().await;
    let w = world(Arc::new(ResendChannel::new(&fake.base, "k", FROM).unwrap()));
    let mut ids = HashSet::new();
    for i in 0..20 {
        ids.insert(
            w.push(&email(&format!("u{i}@example.com"), vec![]))
                .await
                .id,
        );
    }
    fake.set_down(true);
    // A minute of the dispatcher's passes, a second apart, while the provider is down.
    for _ in 0..60 {
        w.dispatcher.tick().await.unwrap();
        w.clock.advance(ChronoDuration::seconds(1));
    }
    assert!(fake.deliveries().is_empty());
    assert!(fake.requests().len() >= 20, "every message was tried");
    fake.set_down(false);
    for _ in 0..60 {
        w.dispatcher.tick().await.unwrap();
        w.clock.advance(ChronoDuration::seconds(1));
    }
    let delivered = fake.deliveries();
    assert_eq!(delivered.len(), 20);
    assert_eq!(fake.accepted(), 20, "no message was accepted twice");
    let keys: HashSet<String> = delivered
        .iter()
        .map(|r| r.idempotency_key.clone().unwrap())
        .collect();
    let expected: HashSet<String> = ids.iter().map(|id| format!("levqor-{id}")).collect();
    assert_eq!(keys, expected);
    for m in w.store.list_outbox(None, 100).await.unwrap() {
        assert_eq!(m.delivery.status, DeliveryStatus::Sent);
        assert!(m.delivery.attempts >= 2, "{:?}", m.delivery);
    }
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn resend_flags(port: u16) -> Vec<String> {
    [
        "--email-provider",
        "resend",
        "--email-from",
        FROM,
        "--resend-api-key",
        "re_test_key",
        "--resend-base-url",
        &format!("http://127.0.0.1:{port}"),
        "--dispatch-retry-base-ms",
        "50",
        "--dispatch-poll-ms",
        "20",
        "--dispatch-lease-secs",
        "2",
    ]
    .map(str::to_string)
    .to_vec()
}

fn start(db: &str, flags: &[String], extra: &[&str]) -> Node {
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    Node::start(db, &all)
}

async fn outbox(client: &Client) -> Vec<Value> {
    let (s, page) = client
        .call("GET", "/v1/admin/outbox?limit=100", ADMIN, None)
        .await;
    assert_eq!(s, 200, "{page}");
    page["messages"].as_array().unwrap().clone()
}

fn email_job(to: &str) -> Value {
    json!({"workflow": {"name": "notify", "steps": [
        {"id": "mail", "type": "email", "to": to, "subject": "Done", "body": "Your job ran."},
        {"id": "log", "type": "log", "message": "mailed"},
    ]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_the_checkpoint_and_the_dispatch_loses_nothing_and_sends_once() {
    let db = fresh_sqlite_db();
    let port = free_port();
    let flags = resend_flags(port);
    let node = start(&db, &flags, &[]);
    let client = Client::new(&node.base);
    let key = client.user_key("owner@example.com").await;
    let (s, job) = client
        .call("POST", "/v1/jobs", &key, Some(email_job("ada@example.com")))
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    let (done, job) = client
        .wait_for_status(&key, id, "succeeded", Duration::from_secs(20))
        .await;
    assert!(done, "{job}");
    let message_id = job["result"]["mail"]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The provider is unreachable: the message waits in the outbox, tried and pending.
    assert!(
        wait_for(Duration::from_secs(10), || async {
            let out = outbox(&client).await;
            out.len() == 1
                && out[0]["status"] == "pending"
                && out[0]["attempts"].as_u64() >= Some(1)
        })
        .await,
        "{:?}",
        outbox(&client).await
    );
    node.kill();

    let fake = FakeResend::start_on(port).await;
    let node = start(&db, &flags, &[]);
    let client = Client::new(&node.base);
    assert!(
        wait_for(Duration::from_secs(20), || async {
            outbox(&client).await[0]["status"] == "sent"
        })
        .await,
        "{:?}",
        outbox(&client).await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.accepted(), 1, "sent once: {:?}", fake.requests());
    let r = &fake.deliveries()[0];
    assert_eq!(
        r.idempotency_key.as_deref(),
        Some(format!("levqor-{message_id}").as_str())
    );
    assert_eq!(r.body["to"], json!(["ada@example.com"]));
    let (s, entry) = client
        .call(
            "GET",
            &format!("/v1/admin/outbox/{message_id}"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(s, 200, "{entry}");
    let attempts = entry["attempts"].as_array().unwrap();
    assert_eq!(attempts.last().unwrap()["outcome"], "sent");
    assert!(attempts.len() >= 2, "{entry}");
    let (s, problem) = client
        .call(
            "POST",
            &format!("/v1/admin/outbox/{message_id}/retry"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!((s, problem["code"].as_str()), (409, Some("not_retryable")));
    let (s, _) = client
        .call("GET", &format!("/v1/admin/outbox/{message_id}"), &key, None)
        .await;
    assert_eq!(s, 403, "the outbox is the admin's");
    let (s, problem) = client
        .call("GET", "/v1/admin/outbox/not-an-id", ADMIN, None)
        .await;
    assert_eq!(s, 404, "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_resends_with_the_same_key_and_the_provider_drops_the_copy() {
    let db = fresh_sqlite_db();
    let fake = FakeResend::start().await;
    fake.set_delay(Duration::from_secs(3));
    let flags = resend_flags(fake.port);
    let node = start(&db, &flags, &[]);
    let client = Client::new(&node.base);
    let key = client.user_key("owner@example.com").await;
    let (s, _) = client
        .call("POST", "/v1/jobs", &key, Some(email_job("bob@example.com")))
        .await;
    assert_eq!(s, 202);
    // The node is killed while the provider is still answering.
    assert!(wait_for(Duration::from_secs(20), || async { fake.started() > 0 }).await);
    let before = outbox(&client).await;
    assert_eq!(before[0]["status"], "sending", "{before:?}");
    node.kill();
    fake.set_delay(Duration::ZERO);
    let node = start(&db, &flags, &[]);
    let client = Client::new(&node.base);
    assert!(
        wait_for(Duration::from_secs(20), || async {
            outbox(&client).await[0]["status"] == "sent"
        })
        .await,
        "{:?}",
        outbox(&client).await
    );
    // The first request died with the node; the message was sent again, with the same key.
    assert!(fake.started() >= 2, "{}", fake.started());
    let keys: HashSet<_> = fake
        .requests()
        .iter()
        .map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(keys.len(), 1, "one key for every attempt: {keys:?}");
    assert_eq!(fake.deliveries().len(), 1, "the provider delivered it once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_deliver_each_message_once() {
    const JOBS: usize = 60;
    let db = fresh_pg_db().await;
    let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_levqor"))
        .args(["migrate", "--database-url", &db])
        .output()
        .unwrap();
    assert!(migrate.status.success());
    let fake = FakeResend::start().await;
    fake.set_delay(Duration::from_millis(5));
    let flags = resend_flags(fake.port);
    let nodes: Vec<Node> = (1..=2)
        .map(|i| start(&db, &flags, &["--node-name", &format!("node-{i}")]))
        .collect();
    let client = Client::new(&nodes[0].base);
    let key = client.user_key("owner@example.com").await;
    for i in 0..JOBS {
        let (s, job) = client
            .call(
                "POST",
                "/v1/jobs",
                &key,
                Some(email_job(&format!("u{i}@example.com"))),
            )
            .await;
        assert_eq!(s, 202, "{job}");
    }
    assert!(
        wait_for(Duration::from_secs(60), || async {
            let out = outbox(&client).await;
            out.len() == JOBS && out.iter().all(|m| m["status"] == "sent")
        })
        .await,
        "{:?}",
        outbox(&client).await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.accepted(), JOBS, "no message went twice");
    assert_eq!(fake.deliveries().len(), JOBS);
    let mut by_node = std::collections::HashMap::<String, usize>::new();
    for m in outbox(&client).await {
        let (s, entry) = client
            .call(
                "GET",
                &format!("/v1/admin/outbox/{}", m["id"].as_str().unwrap()),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(s, 200);
        let attempts = entry["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{entry}");
        *by_node
            .entry(attempts[0]["node"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(by_node.values().sum::<usize>(), JOBS);
}

#[tokio::test]
async fn the_html_part_and_the_unsubscribe_headers_reach_both_providers() {
    let mut marketing = email("ada@example.com", vec![]);
    marketing.html = Some("<p>Half <b>price</b></p>".into());
    marketing.headers = [
        (
            "List-Unsubscribe".to_string(),
            "<https://levqor.example/v1/marketing/unsubscribe?token=t1>".to_string(),
        ),
        (
            "List-Unsubscribe-Post".to_string(),
            "List-Unsubscribe=One-Click".to_string(),
        ),
    ]
    .into();

    let fake = FakeResend::start().await;
    let w = world(Arc::new(ResendChannel::new(&fake.base, "k", FROM).unwrap()));
    let m = w.push(&marketing).await;
    assert_eq!(w.dispatcher.tick().await.unwrap().sent, 1);
    let body = &fake.requests()[0].body;
    assert_eq!(body["html"], "<p>Half <b>price</b></p>");
    assert_eq!(
        body["headers"],
        json!({
            "X-Levqor-Message-Id": m.id.to_string(),
            "List-Unsubscribe": "<https://levqor.example/v1/marketing/unsubscribe?token=t1>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        })
    );

    let server = FakeSmtp::start().await;
    let w = world(Arc::new(smtp(&server)));
    w.push(&marketing).await;
    assert_eq!(w.dispatcher.tick().await.unwrap().sent, 1);
    let data = &server.messages()[0].data;
    assert!(
        data.contains(
            "List-Unsubscribe: <https://levqor.example/v1/marketing/unsubscribe?token=t1>\r\n"
        ),
        "{data}"
    );
    assert!(
        data.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: multipart/alternative"),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: text/html; charset=utf-8"),
        "{data}"
    );
    assert!(data.contains("<p>Half <b>price</b></p>"), "{data}");
    assert!(data.contains("A line that starts with a dot."), "{data}");
}
