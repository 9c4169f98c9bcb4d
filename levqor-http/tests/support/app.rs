//! The REST app in process: the router over a service, called through `oneshot` (no sockets).

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use levqor_core::{Levqor, OutboxNotifier, StepRunner, Store};
use levqor_http::fetch::ReqwestHttp;
use levqor_http::{AppState, router};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

/// The router over a service.
#[derive(Clone)]
pub struct App {
    pub router: axum::Router,
    pub levqor: Arc<Levqor>,
    user_agent: Option<String>,
}

/// What a call answered.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The JSON body; `Null` when empty, a string when it is not JSON.
    pub body: Value,
}

/// A step runner whose `http_request` steps may reach loopback (the tests' own servers) and
/// whose email lands in the outbox.
pub fn runner(store: Arc<dyn Store>) -> Arc<StepRunner> {
    Arc::new(StepRunner::new(
        Arc::new(ReqwestHttp::new(true, 1 << 20)),
        Arc::new(OutboxNotifier::new(store)),
        Vec::new(),
    ))
}

impl Reply {
    /// The status and the body.
    pub fn pair(self) -> (StatusCode, Value) {
        (self.status, self.body)
    }

    /// The pointers of a problem's `errors`, in order (empty when it has none).
    pub fn pointers(&self) -> Vec<&str> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["pointer"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl App {
    /// The app over `levqor`.
    pub fn new(levqor: Levqor) -> App {
        Self::over(Arc::new(levqor))
    }

    /// The app over a shared `levqor`.
    pub fn over(levqor: Arc<Levqor>) -> App {
        App {
            router: router(AppState::new(levqor.clone())),
            levqor,
            user_agent: None,
        }
    }

    /// Sends `User-Agent: agent` with every call.
    pub fn with_user_agent(mut self, agent: &str) -> App {
        self.user_agent = Some(agent.into());
        self
    }

    /// Sends a request as built.
    pub async fn raw(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `method uri` with the bearer `key` and the JSON `body`, if any.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        if let Some(agent) = &self.user_agent {
            req = req.header(header::USER_AGENT, agent);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.raw(req.unwrap()).await
    }
}
