//! Running one step. Built-in steps are pure except `http_request` (through the [`HttpClient`]
//! port); `email` writes its message to the outbox with the step's checkpoint, for the
//! dispatcher to deliver; anything else is a registered [`Connector`]. Every failure is a
//! failed step: nothing here succeeds silently.

use super::context::StepContext;
use super::workflow::{
    ConditionStep, EmailStep, HttpRequestStep, SlackStep, Step, TelegramStep, WebhookStep, Workflow,
};
use crate::notify::{Email, EmailKind, Notifier, OutboxMessage, Templates};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Why a step failed, and whether another attempt could succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// What went wrong.
    pub message: String,
    /// A later attempt may succeed (timeouts, 5xx); `false` for errors in the step itself.
    pub retryable: bool,
}

impl StepFailure {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

/// An outbound HTTP request made by an `http_request` step.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// Method, upper case.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// JSON body, if any.
    pub body: Option<Value>,
    /// Whole-request timeout.
    pub timeout: std::time::Duration,
}

/// The answer to an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body bytes (capped by the client).
    pub body: Vec<u8>,
}

/// Makes outbound HTTP requests for `http_request` steps. Implementations enforce the address
/// policy (no private, loopback or link-local targets unless allowed), timeouts and a size cap,
/// and report those refusals as permanent failures.
#[async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends the request.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, StepFailure>;
}

/// A step type supplied by an embedder. Errors and panics are failed steps.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The `type` of the steps it runs.
    fn step_type(&self) -> &str;
    /// JSON Schema of its step documents, added to the workflow schema (`None`: any object).
    fn schema(&self) -> Option<Value> {
        None
    }
    /// Runs one step; the output is visible to later steps.
    async fn run(&self, step: &Value, context: &StepContext) -> Result<Value, StepFailure>;
}

/// What running a step decided.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Done, with this output; go on with the next step.
    Next(Value),
    /// Done, with this output; go on from the step with this id, skipping those in between.
    Jump(Value, String),
    /// Done, with this output, having written this message: it goes to the outbox in the same
    /// write as the step's checkpoint, so a crash neither loses it nor sends it twice.
    Send(Value, Box<OutboxMessage>),
    /// Done; the job sleeps until then without holding a worker.
    Sleep(Value, DateTime<Utc>),
    /// Failed.
    Fail(StepFailure),
}

/// Default timeout of an `http_request` step.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 10_000;

/// Runs steps with the ports it was given.
pub struct StepRunner {
    http: Arc<dyn HttpClient>,
    notifier: Arc<dyn Notifier>,
    connectors: HashMap<String, Arc<dyn Connector>>,
    system: Arc<SystemTasks>,
    templates: std::sync::RwLock<Arc<Templates>>,
}

/// A recurring task of the platform itself (the retention sweep, dunning). The engine admits
/// one system job per task per period, keyed so that every node agrees on it; the job's one
/// `system` step runs the task. Users cannot submit `system` steps: the workflow schema does
/// not know the type.
#[async_trait]
pub trait SystemTask: Send + Sync {
    /// Unique name, e.g. `retention_sweep`.
    fn name(&self) -> &'static str;
    /// How often it runs.
    fn period(&self) -> std::time::Duration;
    /// Runs once; the output is the job's result.
    async fn run(&self, now: DateTime<Utc>) -> Result<Value, StepFailure>;
}

/// The registered system tasks.
#[derive(Default)]
pub struct SystemTasks {
    tasks: std::sync::RwLock<Vec<Arc<dyn SystemTask>>>,
}

impl SystemTasks {
    /// Registers a task (a task of the same name is replaced).
    pub fn register(&self, task: Arc<dyn SystemTask>) {
        let mut tasks = self.tasks.write().expect("system tasks lock");
        tasks.retain(|t| t.name() != task.name());
        tasks.push(task);
    }

    /// Every task.
    pub fn all(&self) -> Vec<Arc<dyn SystemTask>> {
        self.tasks.read().expect("system tasks lock").clone()
    }

    fn get(&self, name: &str) -> Option<Arc<dyn SystemTask>> {
        self.all().into_iter().find(|t| t.name() == name)
    }
}

impl StepRunner {
    /// A runner with these ports and connectors.
    pub fn new(
        http: Arc<dyn HttpClient>,
        notifier: Arc<dyn Notifier>,
        connectors: Vec<Arc<dyn Connector>>,
    ) -> Self {
        let connectors = connectors
            .into_iter()
            .map(|c| (c.step_type().to_string(), c))
            .collect();
        Self {
            http,
            notifier,
            connectors,
            system: Arc::new(SystemTasks::default()),
            templates: std::sync::RwLock::new(Arc::new(Templates::default())),
        }
    }

    /// Renders `email` steps with `templates` (the builder hands over the deployment's).
    pub fn set_templates(&self, templates: Arc<Templates>) {
        *self.templates.write().expect("templates lock") = templates;
    }

    /// The notifier the platform's own emails (consent, privacy, billing) are sent through.
    pub fn notifier(&self) -> &Arc<dyn Notifier> {
        &self.notifier
    }

    /// The platform's recurring tasks, run by `system` steps.
    pub fn system_tasks(&self) -> &Arc<SystemTasks> {
        &self.system
    }

    /// The registered connectors' types and schemas, for the workflow schema.
    pub fn connector_schemas(&self) -> Vec<(String, Option<Value>)> {
        let mut v: Vec<_> = self
            .connectors
            .values()
            .map(|c| (c.step_type().to_string(), c.schema()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Runs `step` of `workflow` for job `job_id` at `now`.
    pub async fn run(
        &self,
        workflow: &Workflow,
        step: &Step,
        ctx: &StepContext,
        job_id: Uuid,
        now: DateTime<Utc>,
    ) -> StepOutcome {
        let parse_failure = |e: serde_json::Error| {
            StepOutcome::Fail(StepFailure::permanent(format!("step {}: {e}", step.id)))
        };
        match step.kind.as_str() {
            "log" => match ctx.render(step.spec["message"].as_str().unwrap_or_default()) {
                Ok(message) => {
                    // The message may quote personal data from the input, and logs cannot be
                    // erased: it goes to the step's output (erasable, swept) and only its size
                    // to the log.
                    tracing::info!(job_id = %job_id, step = %step.id, chars = message.chars().count(), "workflow log");
                    StepOutcome::Next(json!({"message": message}))
                }
                Err(e) => StepOutcome::Fail(StepFailure::permanent(e)),
            },
            "delay" => {
                let ms = step.spec["ms"].as_u64().unwrap_or(0);
                let until = now + Duration::milliseconds(ms as i64);
                StepOutcome::Sleep(json!({"delayed_ms": ms, "until": until}), until)
            }
            "condition" => match serde_json::from_value::<ConditionStep>(step.spec.clone()) {
                Ok(c) => {
                    let holds = ctx.test(&c.test);
                    let target = if holds { c.then } else { c.otherwise };
                    let output = json!({"result": holds, "next": target});
                    match target {
                        Some(t) if workflow.position(&t).is_some() => StepOutcome::Jump(output, t),
                        Some(t) => StepOutcome::Fail(StepFailure::permanent(format!(
                            "no step has id {t:?}"
                        ))),
                        None => StepOutcome::Next(output),
                    }
                }
                Err(e) => parse_failure(e),
            },
            "http_request" => match serde_json::from_value::<HttpRequestStep>(step.spec.clone()) {
                Ok(h) => self.http_request(h, ctx).await,
                Err(e) => parse_failure(e),
            },
            "email" => match serde_json::from_value::<EmailStep>(step.spec.clone()) {
                Ok(e) => self.email(e, ctx, job_id, now),
                Err(e) => parse_failure(e),
            },
            kind @ ("slack" | "telegram" | "webhook") if !self.connectors.contains_key(kind) => {
                match channel_message(kind, &step.spec, ctx, job_id, now) {
                    Ok((output, message)) => StepOutcome::Send(output, Box::new(message)),
                    Err(e) => {
                        StepOutcome::Fail(StepFailure::permanent(format!("step {}: {e}", step.id)))
                    }
                }
            }
            "system" => {
                let name = step.spec["task"].as_str().unwrap_or_default();
                match self.system.get(name) {
                    Some(task) => match task.run(now).await {
                        Ok(output) => StepOutcome::Next(output),
                        Err(failure) => StepOutcome::Fail(failure),
                    },
                    None => StepOutcome::Fail(StepFailure::retryable(format!(
                        "no system task {name:?} is registered on this node"
                    ))),
                }
            }
            other => match self.connectors.get(other) {
                Some(connector) => {
                    run_connector(connector.clone(), step.spec.clone(), ctx.clone()).await
                }
                None => StepOutcome::Fail(StepFailure::retryable(format!(
                    "no connector for step type {other:?} is registered on this node"
                ))),
            },
        }
    }

    async fn http_request(&self, h: HttpRequestStep, ctx: &StepContext) -> StepOutcome {
        let rendered = (|| -> Result<HttpRequest, String> {
            let mut headers: Vec<(String, String)> = h
                .headers
                .iter()
                .map(|(k, v)| Ok((k.clone(), ctx.render(v)?)))
                .collect::<Result<_, String>>()?;
            headers.sort();
            Ok(HttpRequest {
                method: h.method.to_uppercase(),
                url: ctx.render(&h.url)?,
                headers,
                body: if h.body.is_null() {
                    None
                } else {
                    Some(ctx.render_value(&h.body)?)
                },
                timeout: std::time::Duration::from_millis(
                    h.timeout_ms.unwrap_or(DEFAULT_HTTP_TIMEOUT_MS),
                ),
            })
        })();
        let request = match rendered {
            Ok(r) => r,
            Err(e) => return StepOutcome::Fail(StepFailure::permanent(e)),
        };
        match self.http.send(request).await {
            Ok(resp) if resp.status >= 500 || resp.status == 429 => StepOutcome::Fail(
                StepFailure::retryable(format!("the server answered {}", resp.status)),
            ),
            Ok(resp) => StepOutcome::Next(response_output(resp)),
            Err(failure) => StepOutcome::Fail(failure),
        }
    }

    fn email(
        &self,
        e: EmailStep,
        ctx: &StepContext,
        job_id: Uuid,
        now: DateTime<Utc>,
    ) -> StepOutcome {
        let rendered = (|| -> Result<Email, String> {
            let (to, subject, body) = (
                ctx.render(&e.to)?,
                ctx.render(&e.subject)?,
                ctx.render(&e.body)?,
            );
            let templates = self.templates.read().expect("templates lock").clone();
            let r = templates
                .render("job_email", &json!({"subject": subject, "body": body}))
                .map_err(|e| e.message)?;
            Ok(Email {
                to,
                subject: r.subject,
                body: r.text,
                html: Some(r.html),
                job_id: Some(job_id),
                ..Email::default()
            })
        })();
        let email = match rendered {
            Ok(email) => email,
            Err(msg) => return StepOutcome::Fail(StepFailure::permanent(msg)),
        };
        if crate::users::normalize_email(&email.to).is_err() {
            return StepOutcome::Fail(StepFailure::permanent(format!(
                "{:?} is not an email address",
                email.to
            )));
        }
        let message = OutboxMessage::email(&email, EmailKind::Transactional, now);
        StepOutcome::Send(
            json!({"to": email.to, "subject": email.subject, "message_id": message.id, "queued": true}),
            Box::new(message),
        )
    }
}

/// The message a `slack`, `telegram` or `webhook` step sends, rendered, and the step's output.
fn channel_message(
    kind: &str,
    spec: &Value,
    ctx: &StepContext,
    job_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(Value, OutboxMessage), String> {
    let (to, subject, body) = match kind {
        "slack" => {
            let s: SlackStep = serde_json::from_value(spec.clone()).map_err(|e| e.to_string())?;
            (String::new(), String::new(), ctx.render(&s.text)?)
        }
        "telegram" => {
            let s: TelegramStep =
                serde_json::from_value(spec.clone()).map_err(|e| e.to_string())?;
            (ctx.render(&s.chat_id)?, String::new(), ctx.render(&s.text)?)
        }
        _ => {
            let s: WebhookStep = serde_json::from_value(spec.clone()).map_err(|e| e.to_string())?;
            let url = ctx.render(&s.url)?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!("{url:?} is not an http(s) URL"));
            }
            let body = if s.body.is_null() {
                json!({})
            } else {
                ctx.render_value(&s.body)?
            };
            let event = s.event.unwrap_or_else(|| "workflow.step".into());
            (url, event, body.to_string())
        }
    };
    let message = OutboxMessage::to_channel(kind, &to, &subject, &body, Some(job_id), now);
    let output = json!({"channel": kind, "message_id": message.id, "queued": true});
    Ok((output, message))
}

/// The signed webhook a job with a `callback_url` sends when it ends: event `job.<status>`
/// with the job's id, status, result or error.
pub fn callback_message(
    job: &crate::jobs::model::Job,
    url: &str,
    status: super::model::JobStatus,
    result: Option<&Value>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let event = format!("job.{}", status.as_str());
    let body = json!({
        "event": event,
        "job": {"id": job.id, "status": status.as_str(), "result": result, "error": error, "finished_at": now},
    });
    OutboxMessage::to_channel("webhook", url, &event, &body.to_string(), Some(job.id), now)
}

/// Aborts the task when dropped, so a connector never outlives the attempt that ran it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a connector on its own task so that a panic is a failed step, not a dead worker.
async fn run_connector(
    connector: Arc<dyn Connector>,
    spec: Value,
    ctx: StepContext,
) -> StepOutcome {
    let mut task = AbortOnDrop(tokio::spawn(
        async move { connector.run(&spec, &ctx).await },
    ));
    match (&mut task.0).await {
        Ok(Ok(output)) => StepOutcome::Next(output),
        Ok(Err(failure)) => StepOutcome::Fail(failure),
        Err(_) => StepOutcome::Fail(StepFailure::permanent("the connector panicked")),
    }
}

/// `{"status", "headers", "body"}`, the body parsed when it is JSON.
fn response_output(resp: HttpResponse) -> Value {
    let headers: serde_json::Map<String, Value> = resp
        .headers
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let body = serde_json::from_slice::<Value>(&resp.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&resp.body).into_owned()));
    json!({"status": resp.status, "headers": headers, "body": body})
}
