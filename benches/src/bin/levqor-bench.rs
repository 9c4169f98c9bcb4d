//! Levqor's engine benchmark: enqueue and drain N one-`log`-step jobs on a store, printing
//! `<system> <metric>=<number>` lines (the format `../shared/bench/anchor-queues.sh` collects
//! through `EXTRA_BENCH_CMD`).
//!
//! ```text
//! levqor-bench --database-url sqlite:/tmp/bench.db --jobs 20000
//! levqor-bench --database-url postgres://…/anchors --jobs 20000
//! ```

use clap::Parser;
use levqor_core::jobs::store::NewJob;
use levqor_core::{
    EngineConfig, Job, JobStatus, Levqor, OutboxNotifier, StepRunner, Store, SubmitRequest,
    SystemClock,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Store URL; defaults to `$DATABASE_URL`.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Jobs per run; defaults to `$N`.
    #[arg(long, env = "N", default_value_t = 20_000)]
    jobs: usize,
    /// Jobs per enqueue batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Workers (jobs in flight) while draining.
    #[arg(long, default_value_t = 1024)]
    workers: usize,
    /// Concurrent callers for the one-job-per-call intake measurement.
    #[arg(long, default_value_t = 10)]
    callers: usize,
    /// Most jobs per claim.
    #[arg(long, default_value_t = 1000)]
    claim_batch: usize,
}

struct NoHttp;

#[async_trait::async_trait]
impl levqor_core::HttpClient for NoHttp {
    async fn send(
        &self,
        _: levqor_core::HttpRequest,
    ) -> Result<levqor_core::HttpResponse, levqor_core::StepFailure> {
        Err(levqor_core::StepFailure::permanent(
            "the benchmark makes no HTTP requests",
        ))
    }
}

fn new_job(owner: Uuid) -> NewJob {
    let now = chrono::Utc::now();
    NewJob {
        job: Job {
            id: Uuid::now_v7(),
            owner_id: owner,
            workflow: json!({"name": "bench", "steps": [{"id": "a", "type": "log", "message": "noop"}]}),
            input: json!({}),
            status: JobStatus::Queued,
            attempts: 0,
            max_attempts: 3,
            run_after: now,
            result: None,
            error: None,
            cancel_requested: false,
            idempotency_key: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        },
        request_hash: String::new(),
        hold: None,
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let store = levqor_store::connect(&args.database_url)
        .await
        .expect("store connects");
    let system = format!("levqor-{}", store.backend());
    let runner = Arc::new(StepRunner::new(
        Arc::new(NoHttp),
        Arc::new(OutboxNotifier::new(store.clone())),
        Vec::new(),
    ));
    let levqor = Arc::new(
        Levqor::builder(store.clone(), runner)
            .clock(Arc::new(SystemClock))
            .admin_key(Some("bench-admin"))
            .build()
            .expect("service"),
    );
    let admin = levqor
        .users()
        .authenticate("bench-admin")
        .await
        .expect("admin");
    let owner = match levqor
        .users()
        .create(&admin, "bench@example.com", None)
        .await
        .expect("user")
    {
        levqor_core::Upserted::Created(u) | levqor_core::Upserted::Existing(u) => u.id,
    };
    // Jobs submitted through intake are priced and held: give the bench user plenty.
    levqor
        .credits()
        .grant(
            &admin,
            owner,
            levqor_core::credits::Grant {
                credits: 1_000_000_000,
                reason: Some("bench".into()),
                expires_at: None,
                priority: 0,
                idempotency_key: Uuid::new_v4().to_string(),
            },
        )
        .await
        .expect("credits");
    let key = levqor
        .users()
        .create_key(&admin, owner, None)
        .await
        .expect("key");
    let me = levqor
        .users()
        .authenticate(&key.secret)
        .await
        .expect("user key");
    let config = EngineConfig {
        workers: args.workers,
        claim_batch: args.claim_batch,
        poll_interval: Duration::from_millis(5),
        ..EngineConfig::default()
    };

    // One job per call through the whole intake path (validation, fingerprint, group commit),
    // from `callers` concurrent callers.
    let t = Instant::now();
    let tasks: Vec<_> = (0..args.callers)
        .map(|c| {
            let (levqor, me) = (levqor.clone(), me.clone());
            let n = args.jobs / args.callers + usize::from(c < args.jobs % args.callers);
            tokio::spawn(async move {
                for _ in 0..n {
                    levqor
                        .jobs()
                        .submit(&me, request())
                        .await
                        .expect("admitted");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller");
    }
    let rate = args.jobs as f64 / t.elapsed().as_secs_f64();
    println!(
        "{system} enqueue_single_c{}_jobs_per_s={rate:.0}",
        args.callers
    );
    let rate = drain(&levqor, &store, &config, args.jobs).await;
    println!(
        "{system} process_w{}_after_single_jobs_per_s={rate:.0}",
        args.workers
    );

    // Batches of `batch` jobs per store call.
    let t = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let n = left.min(args.batch);
        let batch: Vec<NewJob> = (0..n).map(|_| new_job(owner)).collect();
        for r in store.admit_batch(batch).await.expect("admit") {
            r.expect("admitted");
        }
        left -= n;
    }
    let rate = args.jobs as f64 / t.elapsed().as_secs_f64();
    println!("{system} enqueue_batch{}_jobs_per_s={rate:.0}", args.batch);
    let rate = drain(&levqor, &store, &config, args.jobs).await;
    println!("{system} process_w{}_jobs_per_s={rate:.0}", args.workers);
}

fn request() -> SubmitRequest {
    SubmitRequest {
        workflow: json!({"name": "bench", "steps": [{"id": "a", "type": "log", "message": "noop"}]}),
        input: json!({}),
        max_attempts: None,
        run_after: None,
        idempotency_key: None,
    }
}

/// Starts an engine on a filled queue and returns jobs/s until `jobs` more have succeeded.
async fn drain(levqor: &Levqor, store: &Arc<dyn Store>, config: &EngineConfig, jobs: usize) -> f64 {
    let before = store.count_jobs(JobStatus::Succeeded).await.expect("count");
    let t = Instant::now();
    let engine = levqor.start_engine(config.clone());
    // Drained when nothing is due and nothing runs: both counts use small partial indexes, so
    // polling them costs the database little.
    loop {
        let due = store.queue_depth(chrono::Utc::now()).await.expect("depth");
        let running = store.count_jobs(JobStatus::Running).await.expect("count");
        if due == 0 && running == 0 {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            panic!("drain timed out with {due} due and {running} running");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = jobs as f64 / t.elapsed().as_secs_f64();
    let done = store.count_jobs(JobStatus::Succeeded).await.expect("count") - before;
    // The engine also runs its own system jobs (the daily retention sweep): at most a couple.
    assert!(
        (jobs as u64..=jobs as u64 + 2).contains(&done),
        "every job succeeded: {done} of {jobs}"
    );
    engine.shutdown().await;
    rate
}
