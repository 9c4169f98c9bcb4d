//! The engine through the service, on the in-memory store, with a connector the test holds
//! open to observe cancels, shutdowns and panics at step boundaries.

use async_trait::async_trait;
use levqor_core::jobs::context::StepContext;
use levqor_core::{
    Connector, EngineConfig, HttpClient, HttpRequest, HttpResponse, Job, JobStatus, Levqor,
    MemoryStore, OutboxNotifier, Principal, StepFailure, StepRunner, SubmitRequest, SystemClock,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// `gate` steps wait until the test opens the gate; `boom` panics; `flaky` fails its first calls.
#[derive(Default)]
struct Gate {
    entered: Notify,
    open: Notify,
    runs: AtomicUsize,
}

struct GateConnector(Arc<Gate>);

#[async_trait]
impl Connector for GateConnector {
    fn step_type(&self) -> &str {
        "gate"
    }
    async fn run(&self, _: &Value, _: &StepContext) -> Result<Value, StepFailure> {
        self.0.runs.fetch_add(1, Ordering::SeqCst);
        self.0.entered.notify_one();
        self.0.open.notified().await;
        Ok(json!({"opened": true}))
    }
}

struct Boom;

#[async_trait]
impl Connector for Boom {
    fn step_type(&self) -> &str {
        "boom"
    }
    async fn run(&self, _: &Value, _: &StepContext) -> Result<Value, StepFailure> {
        panic!("connector bug")
    }
}

struct Flaky(AtomicUsize);

#[async_trait]
impl Connector for Flaky {
    fn step_type(&self) -> &str {
        "flaky"
    }
    async fn run(&self, _: &Value, ctx: &StepContext) -> Result<Value, StepFailure> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            Err(StepFailure::retryable(format!("try {n} failed")))
        } else {
            Ok(json!({"attempt": ctx.pointer("/job/attempt").cloned()}))
        }
    }
}

struct Offline;

#[async_trait]
impl HttpClient for Offline {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, StepFailure> {
        Err(StepFailure::permanent("offline"))
    }
}

struct World {
    levqor: Levqor,
    gate: Arc<Gate>,
    me: Principal,
}

async fn world() -> World {
    let gate = Arc::new(Gate::default());
    let store = Arc::new(MemoryStore::new());
    let connectors: Vec<Arc<dyn Connector>> = vec![
        Arc::new(GateConnector(gate.clone())),
        Arc::new(Boom),
        Arc::new(Flaky(AtomicUsize::new(0))),
    ];
    let runner = Arc::new(StepRunner::new(
        Arc::new(Offline),
        Arc::new(OutboxNotifier::new(store.clone())),
        connectors,
    ));
    let levqor = Levqor::builder(store, runner)
        .clock(Arc::new(SystemClock))
        .admin_key(Some("admin"))
        .signup_grant(1_000_000_000)
        .build()
        .unwrap();
    let admin = levqor.users().authenticate("admin").await.unwrap();
    let user = match levqor
        .users()
        .create(&admin, "e@example.com", None)
        .await
        .unwrap()
    {
        levqor_core::Upserted::Created(u) | levqor_core::Upserted::Existing(u) => u,
    };
    let key = levqor
        .users()
        .create_key(&admin, user.id, None)
        .await
        .unwrap();
    let me = levqor.users().authenticate(&key.secret).await.unwrap();
    World { levqor, gate, me }
}

fn config() -> EngineConfig {
    EngineConfig {
        poll_interval: Duration::from_millis(5),
        retry_base: Duration::from_millis(10),
        shutdown_grace: Duration::from_millis(200),
        ..EngineConfig::default()
    }
}

impl World {
    async fn submit(&self, steps: Value, max_attempts: i32) -> uuid::Uuid {
        let request = SubmitRequest {
            workflow: json!({"name": "t", "steps": steps}),
            input: json!({}),
            max_attempts: Some(max_attempts),
            run_after: None,
            idempotency_key: None,
        };
        self.levqor
            .jobs()
            .submit(&self.me, request)
            .await
            .unwrap()
            .admission
            .job()
            .id
    }

    async fn wait(&self, id: uuid::Uuid, status: JobStatus) -> Job {
        for _ in 0..500 {
            let job = self.levqor.jobs().get(&self.me, id).await.unwrap();
            if job.status == status {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "job never became {status:?}: {:?}",
            self.levqor.jobs().get(&self.me, id).await.unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_running_job_stops_it_at_the_next_step_boundary() {
    let w = world().await;
    let engine = w.levqor.start_engine(config());
    let id = w.submit(json!([{"id": "g", "type": "gate"}, {"id": "after", "type": "log", "message": "never"}]), 3).await;
    w.gate.entered.notified().await;
    let asked = w.levqor.jobs().cancel(&w.me, id).await.unwrap();
    assert_eq!(
        (asked.status, asked.cancel_requested),
        (JobStatus::Running, true)
    );
    w.gate.open.notify_one();
    let job = w.wait(id, JobStatus::Canceled).await;
    assert!(job.finished_at.is_some());
    let steps = w.levqor.jobs().steps(&w.me, id).await.unwrap();
    assert_eq!(
        steps.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(),
        vec!["succeeded", "pending"]
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_a_job_whose_step_outlives_the_grace_period() {
    let w = world().await;
    let engine = w.levqor.start_engine(config());
    let id = w
        .submit(
            json!([{"id": "first", "type": "log", "message": "x"}, {"id": "g", "type": "gate"}]),
            3,
        )
        .await;
    w.gate.entered.notified().await;
    engine.shutdown().await;
    let job = w.levqor.jobs().get(&w.me, id).await.unwrap();
    assert_eq!(
        (job.status, job.attempts),
        (JobStatus::Queued, 0),
        "released without spending an attempt"
    );
    // A new engine resumes after the checkpointed step.
    let engine = w.levqor.start_engine(config());
    w.gate.entered.notified().await;
    w.gate.open.notify_one();
    let job = w.wait(id, JobStatus::Succeeded).await;
    assert_eq!(job.attempts, 1);
    let steps = w.levqor.jobs().steps(&w.me, id).await.unwrap();
    assert_eq!(
        steps[0].record.as_ref().unwrap().attempt,
        1,
        "the first step ran once, before the shutdown"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_short_step_finish_then_releases_before_the_next() {
    let w = world().await;
    let engine = w.levqor.start_engine(EngineConfig {
        shutdown_grace: Duration::from_secs(5),
        ..config()
    });
    let id = w.submit(json!([{"id": "g", "type": "gate"}, {"id": "after", "type": "log", "message": "later"}]), 3).await;
    w.gate.entered.notified().await;
    let gate = w.gate.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.open.notify_one();
    });
    engine.shutdown().await;
    let job = w.levqor.jobs().get(&w.me, id).await.unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    let steps = w.levqor.jobs().steps(&w.me, id).await.unwrap();
    assert_eq!(
        steps.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(),
        vec!["succeeded", "pending"]
    );
    assert_eq!(w.gate.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_connector_is_a_failed_step_not_a_silent_success() {
    let w = world().await;
    let engine = w.levqor.start_engine(config());
    let id = w.submit(json!([{"id": "b", "type": "boom"}]), 3).await;
    let job = w.wait(id, JobStatus::Dead).await;
    assert!(job.error.unwrap().contains("panicked"));
    assert_eq!(job.attempts, 1, "a bug is not retried");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_retried_until_they_succeed() {
    let w = world().await;
    let engine = w.levqor.start_engine(config());
    let id = w.submit(json!([{"id": "f", "type": "flaky"}]), 5).await;
    let job = w.wait(id, JobStatus::Succeeded).await;
    assert_eq!(job.attempts, 3);
    assert_eq!(job.result.unwrap()["f"]["attempt"], 3);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_attempts_makes_a_job_dead() {
    let w = world().await;
    let engine = w.levqor.start_engine(config());
    let id = w.submit(json!([{"id": "f", "type": "flaky"}]), 2).await;
    let job = w.wait(id, JobStatus::Dead).await;
    assert_eq!(job.attempts, 2);
    assert!(job.error.unwrap().contains("try 1 failed"));
    engine.shutdown().await;
}
