//! The core's engine and intake on each backend: jobs submitted concurrently (so admits share
//! group-committed batches, some replaying an idempotency key) all run to success through a
//! `delay` (a checkpoint and a requeue) and an `email` step, with every step recorded.

use async_trait::async_trait;
use levqor_core::{
    EngineConfig, HttpClient, HttpRequest, HttpResponse, JobStatus, Levqor, OutboxNotifier,
    StepFailure, StepRunner, Store, SubmitRequest, SystemClock, Upserted,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

mod support;

const JOBS: usize = 200;

struct Offline;

#[async_trait]
impl HttpClient for Offline {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, StepFailure> {
        Err(StepFailure::permanent("offline"))
    }
}

async fn every_job_runs_to_success(store: Arc<dyn Store>) {
    let notifier = Arc::new(OutboxNotifier::new(store.clone()));
    let runner = Arc::new(StepRunner::new(Arc::new(Offline), notifier, Vec::new()));
    let levqor = Arc::new(
        Levqor::builder(store.clone(), runner)
            .clock(Arc::new(SystemClock))
            .admin_key(Some("admin"))
            .signup_grant(1_000_000)
            .build()
            .unwrap(),
    );
    let admin = levqor.users().authenticate("admin").await.unwrap();
    let (Upserted::Created(user) | Upserted::Existing(user)) = levqor
        .users()
        .create(&admin, "engine@example.com", None)
        .await
        .unwrap();
    let key = levqor
        .users()
        .create_key(&admin, user.id, None)
        .await
        .unwrap();
    let me = levqor.users().authenticate(&key.secret).await.unwrap();

    let engine = levqor.start_engine(EngineConfig {
        poll_interval: Duration::from_millis(10),
        ..EngineConfig::default()
    });
    // Every tenth request is sent twice under its idempotency key: one job, not two.
    let requests = (0..JOBS).chain((0..JOBS).step_by(10));
    let submits: Vec<_> = requests
        .map(|i| {
            let (levqor, me) = (levqor.clone(), me.clone());
            tokio::spawn(async move {
                let request = SubmitRequest {
                    workflow: json!({"name": "smoke", "steps": [
                        {"id": "hello", "type": "log", "message": "job {{input.n}}"},
                        {"id": "pause", "type": "delay", "ms": 20},
                        {"id": "mail", "type": "email", "to": "ops@example.com", "subject": "done", "body": "{{input.n}}"},
                    ]}),
                    input: json!({"n": i}),
                    max_attempts: None,
                    run_after: None,
                    idempotency_key: Some(format!("k{i}")),
                };
                levqor.jobs().submit(&me, request).await.unwrap().admission.job().id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for s in submits {
        ids.push(s.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), JOBS, "a replayed key admits no second job");

    for _ in 0..1000 {
        if store.count_jobs(JobStatus::Succeeded).await.unwrap() == ids.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown().await;
    for id in &ids {
        let job = levqor.jobs().get(&me, *id).await.unwrap();
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
        assert_eq!(job.attempts, 1, "a delay is not another attempt");
        let steps = levqor.jobs().steps(&me, *id).await.unwrap();
        assert!(steps.iter().all(|s| s.status == "succeeded"), "{steps:?}");
    }
    let outbox = levqor
        .messages()
        .list_outbox(&admin, Some(100), None)
        .await
        .unwrap();
    assert_eq!(outbox.items.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runs_every_job() {
    every_job_runs_to_success(support::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_runs_every_job() {
    every_job_runs_to_success(support::postgres().await).await;
}
