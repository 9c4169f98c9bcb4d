//! Embedding Levqor: build the service over a store (in memory, or a database through
//! `levqor_store::connect`), register a connector of your own (`shout`), submit a job as a
//! user, let the engine run it, read the result.

use async_trait::async_trait;
use levqor_core::jobs::context::StepContext;
use levqor_core::{
    Connector, EngineConfig, HttpClient, HttpRequest, HttpResponse, Job, Levqor, MemoryStore,
    OutboxNotifier, Principal, StepFailure, StepRunner, Store, SubmitRequest, SystemClock,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A connector: upper-cases its `text` field (which may use templates).
pub struct Shout;

#[async_trait]
impl Connector for Shout {
    fn step_type(&self) -> &str {
        "shout"
    }

    fn schema(&self) -> Option<Value> {
        Some(
            json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}),
        )
    }

    async fn run(&self, step: &Value, ctx: &StepContext) -> Result<Value, StepFailure> {
        let text = ctx
            .render(step["text"].as_str().unwrap_or_default())
            .map_err(StepFailure::permanent)?;
        Ok(json!({"text": text.to_uppercase()}))
    }
}

/// This service makes no outbound HTTP requests.
pub struct Offline;

#[async_trait]
impl HttpClient for Offline {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, StepFailure> {
        Err(StepFailure::permanent("offline"))
    }
}

/// The store at `database_url` (`sqlite:PATH`, `postgres://…`), or in memory when `None`.
pub async fn store(database_url: Option<&str>) -> levqor_core::Result<Arc<dyn Store>> {
    match database_url {
        None => Ok(Arc::new(MemoryStore::new())),
        Some(url) => levqor_store::connect(url).await,
    }
}

/// Runs one job that greets `name` on `store` and returns it when it is done.
pub async fn run(store: Arc<dyn Store>, name: &str) -> levqor_core::Result<Job> {
    let runner = Arc::new(StepRunner::new(
        Arc::new(Offline),
        Arc::new(OutboxNotifier::new(store.clone())),
        vec![Arc::new(Shout)],
    ));
    // Jobs cost credits; this deployment gives every new user some.
    let levqor = Levqor::builder(store, runner)
        .clock(Arc::new(SystemClock))
        .admin_key(Some("admin"))
        .signup_grant(10_000)
        .build()?;
    let engine = levqor.start_engine(EngineConfig {
        poll_interval: Duration::from_millis(10),
        ..EngineConfig::default()
    });

    let admin = levqor.users().authenticate("admin").await?;
    let user = levqor
        .users()
        .create(&admin, "embedder@example.com", None)
        .await?
        .user()
        .clone();
    let key = levqor.users().create_key(&admin, user.id, None).await?;
    let me: Principal = levqor.users().authenticate(&key.secret).await?;
    let request = SubmitRequest {
        workflow: json!({"name": "greet", "steps": [
            {"id": "greet", "type": "shout", "text": "hello {{input.name}}"},
            {"id": "log", "type": "log", "message": "{{steps.greet.output.text}}"}
        ]}),
        input: json!({"name": name}),
        max_attempts: None,
        run_after: None,
        idempotency_key: None,
    };
    let id = levqor.jobs().submit(&me, request).await?.admission.job().id;
    let job = loop {
        let job = levqor.jobs().get(&me, id).await?;
        if job.status.is_terminal() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    engine.shutdown().await;
    Ok(job)
}

#[cfg(test)]
mod tests {
    async fn greets_on(database_url: Option<&str>) {
        let store = super::store(database_url).await.unwrap();
        let job = super::run(store, "ada").await.unwrap();
        assert_eq!(job.status, levqor_core::JobStatus::Succeeded);
        assert_eq!(job.result.unwrap()["log"]["message"], "HELLO ADA");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_embedded_job_runs_the_custom_connector_in_memory() {
        greets_on(None).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_embedded_job_runs_the_custom_connector_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("levqor-embed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("embed.db").display());
        greets_on(Some(&url)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
