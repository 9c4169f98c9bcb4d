//! Data subject requests at scale: seeds one user with many analytics events (and a few jobs)
//! through the service, then times the DSAR export (a ZIP emailed through the outbox) and the
//! erasure of that user. Prints `<system> <metric>=<number>` lines.
//!
//! ```text
//! privacy-bench --database-url sqlite:/tmp/p.db [--events 100000]
//! ```

use clap::Parser;
use levqor_core::{
    HttpClient, HttpRequest, HttpResponse, Levqor, OutboxNotifier, Principal, StepFailure,
    StepRunner, SubmitRequest, SystemClock, Upserted,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// `sqlite:PATH` or `postgres://…` (a fresh database).
    #[arg(long)]
    database_url: String,
    /// Events to seed.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Jobs to seed.
    #[arg(long, default_value_t = 100)]
    jobs: usize,
}

struct Offline;

#[async_trait::async_trait]
impl HttpClient for Offline {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, StepFailure> {
        Err(StepFailure::permanent("offline"))
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let store = levqor_store::connect(&args.database_url)
        .await
        .expect("database");
    let system = store.backend();
    let runner = Arc::new(StepRunner::new(
        Arc::new(Offline),
        Arc::new(OutboxNotifier::new(store.clone())),
        Vec::new(),
    ));
    let levqor = Levqor::builder(store, runner)
        .clock(Arc::new(SystemClock))
        .admin_key(Some("admin"))
        .build()
        .expect("service");
    let admin = Principal::Admin;
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let user = match levqor
        .users()
        .create(&admin, &email, Some("Bench Person"))
        .await
        .unwrap()
    {
        Upserted::Created(u) | Upserted::Existing(u) => u,
    };
    let key = levqor
        .users()
        .create_key(&admin, user.id, None)
        .await
        .unwrap();
    let me = levqor.users().authenticate(&key.secret).await.unwrap();

    let seeded = Instant::now();
    let batch: Vec<(String, serde_json::Value)> = (0..1000)
        .map(|i| {
            (
                "page_view".to_string(),
                json!({"page": format!("/docs/{}", i % 50), "ms": i}),
            )
        })
        .collect();
    let mut left = args.events;
    while left > 0 {
        let n = left.min(batch.len());
        levqor
            .privacy()
            .record_events(&me, &batch[..n])
            .await
            .unwrap();
        left -= n;
    }
    for i in 0..args.jobs {
        levqor
            .jobs()
            .submit(
                &me,
                SubmitRequest {
                    workflow: json!({"name": "w", "steps": [{"id": "a", "type": "log", "message": "x"}]}),
                    input: json!({"i": i}),
                    max_attempts: None,
                    run_after: Some(chrono::Utc::now() + chrono::Duration::days(1)),
                    idempotency_key: None,
                },
            )
            .await
            .unwrap();
    }
    println!(
        "{system} seed_events={} seed_secs={:.2}",
        args.events,
        seeded.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let export = levqor.privacy().export_user(&me, None).await.unwrap();
    println!(
        "{system} export_ms={:.0} export_zip_bytes={} events={}",
        started.elapsed().as_secs_f64() * 1000.0,
        export.bytes,
        args.events
    );

    let started = Instant::now();
    let summary = levqor.privacy().erase_user(&me, None).await.unwrap();
    println!(
        "{system} erase_ms={:.0} events_deleted={} jobs_deleted={}",
        started.elapsed().as_secs_f64() * 1000.0,
        summary.areas["events"].deleted,
        summary.areas["jobs"].deleted
    );
}
