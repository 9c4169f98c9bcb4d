//! Local stand-ins for the delivery providers, recording exactly what they are sent: a Resend
//! API (`POST /emails`, deduplicating by `Idempotency-Key` as Resend does, refusing recipients
//! that contain `invalid` with 422) that can be taken down and slowed, an SMTP server that
//! speaks enough of the protocol for `lettre`, and a [`Recorder`] for Slack, Telegram and
//! webhook receivers.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One request the fake Resend received.
#[derive(Debug, Clone)]
pub struct ResendRequest {
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
    /// Whether it was answered 200 (not down).
    pub accepted: bool,
}

#[derive(Default)]
struct ResendState {
    requests: Mutex<Vec<ResendRequest>>,
    /// Idempotency key → the id first given, and how many times that key was delivered
    /// (accepted while not yet seen).
    keys: Mutex<HashMap<String, String>>,
    down: AtomicBool,
    delay_ms: AtomicU64,
    next: AtomicU64,
    started: AtomicU64,
}

/// A local Resend API.
#[derive(Clone)]
pub struct FakeResend {
    pub base: String,
    pub port: u16,
    state: Arc<ResendState>,
}

impl FakeResend {
    pub async fn start() -> FakeResend {
        Self::start_on(0).await
    }

    /// On `port` (0: any free one).
    pub async fn start_on(port: u16) -> FakeResend {
        let state = Arc::new(ResendState::default());
        let app = axum::Router::new()
            .route("/emails", post(emails))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeResend {
            base: format!("http://127.0.0.1:{port}"),
            port,
            state,
        }
    }

    /// While down, every request is answered 503.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Each accepted request takes this long.
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Requests that arrived, including those still being answered.
    pub fn started(&self) -> u64 {
        self.state.started.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<ResendRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Messages delivered: requests accepted whose idempotency key was new (what reached an
    /// inbox).
    pub fn deliveries(&self) -> Vec<ResendRequest> {
        let mut seen = std::collections::HashSet::new();
        self.requests()
            .into_iter()
            .filter(|r| r.accepted)
            .filter(|r| seen.insert(r.idempotency_key.clone()))
            .collect()
    }

    /// Accepted requests, copies included (what a provider without deduplication would have
    /// delivered).
    pub fn accepted(&self) -> usize {
        self.requests().iter().filter(|r| r.accepted).count()
    }
}

async fn emails(
    State(state): State<Arc<ResendState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    state.started.fetch_add(1, Ordering::SeqCst);
    let down = state.down.load(Ordering::SeqCst);
    let mut request = ResendRequest {
        authorization: header("authorization"),
        idempotency_key: header("idempotency-key"),
        content_type: header("content-type"),
        body,
        accepted: false,
    };
    if down {
        state.requests.lock().unwrap().push(request);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"name": "internal_server_error", "message": "down"})),
        );
    }
    if request.body["to"][0]
        .as_str()
        .is_some_and(|to| to.contains("invalid"))
    {
        state.requests.lock().unwrap().push(request);
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"name": "validation_error", "message": "Invalid `to` field."})),
        );
    }
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    request.accepted = true;
    let key = request.idempotency_key.clone().unwrap_or_default();
    let id = state
        .keys
        .lock()
        .unwrap()
        .entry(key)
        .or_insert_with(|| format!("re_{}", state.next.fetch_add(1, Ordering::SeqCst)))
        .clone();
    state.requests.lock().unwrap().push(request);
    (StatusCode::OK, Json(json!({"id": id})))
}

/// One message the fake SMTP server accepted.
#[derive(Debug, Clone)]
pub struct SmtpMessage {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The DATA, dot-unstuffed, lines joined with CRLF.
    pub data: String,
}

/// A local SMTP server (no TLS, no auth). Recipients containing `reject` get a permanent 550;
/// while `busy`, every RCPT gets a temporary 451.
#[derive(Clone)]
pub struct FakeSmtp {
    pub port: u16,
    messages: Arc<Mutex<Vec<SmtpMessage>>>,
    busy: Arc<AtomicBool>,
}

impl FakeSmtp {
    pub async fn start() -> FakeSmtp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = FakeSmtp {
            port,
            messages: Arc::default(),
            busy: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.session(socket).await;
                });
            }
        });
        server
    }

    pub fn messages(&self) -> Vec<SmtpMessage> {
        self.messages.lock().unwrap().clone()
    }

    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::SeqCst);
    }

    async fn session(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 fake ESMTP ready\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        while let Some(line) = lines.next_line().await? {
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                b"250-fake\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                from = line[10..].trim().to_string();
                to.clear();
                b"250 2.1.0 ok\r\n"
            } else if upper.starts_with("RCPT TO:") {
                let rcpt = line[8..].trim().to_string();
                if rcpt.contains("reject") {
                    b"550 5.1.1 no such user\r\n"
                } else if self.busy.load(Ordering::SeqCst) {
                    b"451 4.3.0 try again later\r\n"
                } else {
                    to.push(rcpt);
                    b"250 2.1.5 ok\r\n"
                }
            } else if upper == "DATA" {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = Vec::new();
                while let Some(l) = lines.next_line().await? {
                    if l == "." {
                        break;
                    }
                    data.push(l.strip_prefix('.').map(str::to_string).unwrap_or(l));
                }
                let n = {
                    let mut messages = self.messages.lock().unwrap();
                    messages.push(SmtpMessage {
                        mail_from: from.clone(),
                        rcpt_to: to.clone(),
                        data: data.join("\r\n"),
                    });
                    messages.len()
                };
                write
                    .write_all(format!("250 2.0.0 queued as Q{n}\r\n").as_bytes())
                    .await?;
                continue;
            } else if upper == "QUIT" {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            } else {
                b"250 ok\r\n"
            };
            write.write_all(reply).await?;
        }
        Ok(())
    }
}

/// One request an HTTP provider stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A local HTTP server standing in for Slack's incoming webhook (`/slack`), Telegram's bot API
/// (`/bot<token>/sendMessage`) and a user's webhook receiver (anything else), recording every
/// request. Each path answers as its provider does, unless a status is set for it.
#[derive(Clone, Default)]
pub struct Recorder {
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    statuses: Arc<Mutex<HashMap<String, Answer>>>,
}

/// How a path answers: its status, body and `Retry-After` header.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
    retry_after: Option<String>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let recorder = Recorder {
            base: format!("http://{}", listener.local_addr().unwrap()),
            ..Recorder::default()
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(recorder.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        recorder
    }

    /// Answers `path` with `status` and `body` from now on.
    pub fn answer(&self, path: &str, status: u16, body: &str) {
        self.statuses.lock().unwrap().insert(
            path.into(),
            Answer {
                status,
                body: body.into(),
                retry_after: None,
            },
        );
    }

    /// Answers `path` with `status`, `body` and a `Retry-After` header from now on.
    pub fn answer_retry_after(&self, path: &str, status: u16, body: &str, retry_after: &str) {
        self.statuses.lock().unwrap().insert(
            path.into(),
            Answer {
                status,
                body: body.into(),
                retry_after: Some(retry_after.into()),
            },
        );
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

async fn record(
    State(r): State<Recorder>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap, String) {
    let path = uri.path().to_string();
    let n = {
        let mut requests = r.requests.lock().unwrap();
        requests.push(Recorded {
            path: path.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect(),
            body: body.to_vec(),
        });
        requests.len()
    };
    if let Some(answer) = r.statuses.lock().unwrap().get(&path) {
        let mut headers = HeaderMap::new();
        if let Some(wait) = &answer.retry_after {
            headers.insert(axum::http::header::RETRY_AFTER, wait.parse().unwrap());
        }
        let status = StatusCode::from_u16(answer.status).unwrap();
        return (status, headers, answer.body.clone());
    }
    let body = if path == "/slack" {
        "ok".to_string()
    } else if path.ends_with("/sendMessage") {
        json!({"ok": true, "result": {"message_id": n}}).to_string()
    } else {
        "{}".to_string()
    };
    (StatusCode::OK, HeaderMap::new(), body)
}
