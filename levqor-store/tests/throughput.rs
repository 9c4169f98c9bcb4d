//! Store-level throughput of the batched calls, without HTTP or the engine around them: admit in
//! group-commit-sized batches, then claim and finish every job, `write_parallelism` callers at a
//! time. Ignored by default; run with
//! `cargo test -p levqor-store --test throughput -- --ignored --nocapture --test-threads 1`
//! (a debug build understates what a release build does).

use chrono::{Duration, Utc};
use levqor_core::jobs::store::{Claim, Finish, Lease, NewJob, Write};
use levqor_core::{JobStatus, StepRecord, StepStatus, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

mod support;

const JOBS: usize = 20_000;
const ADMIT_BATCH: usize = 512;
const CLAIM_BATCH: usize = 500;

async fn run(store: Arc<dyn Store>, label: &str) {
    let owner = Uuid::now_v7();
    let now = Utc::now();
    let parallel = store.write_parallelism();

    let started = Instant::now();
    let batches: Vec<Vec<NewJob>> = (0..JOBS)
        .map(|i| {
            let mut new = levqor_core::conformance::job(owner, Some(&format!("k{i}")), now);
            new.job.workflow =
                json!({"name": "w", "steps": [{"id": "a", "type": "log", "message": "hello"}]});
            new
        })
        .collect::<Vec<_>>()
        .chunks(ADMIT_BATCH)
        .map(<[NewJob]>::to_vec)
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(batches));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (store, queue) = (store.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(batch) = queue.lock().unwrap().pop() else {
                    return;
                };
                for admitted in store.admit_batch(batch).await.unwrap() {
                    admitted.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let admit = started.elapsed();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..parallel {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            loop {
                let t = Utc::now();
                let claim = Claim {
                    token: Uuid::new_v4(),
                    worker: format!("w{w}"),
                    now: t,
                    lease_until: t + Duration::seconds(30),
                    limit: CLAIM_BATCH,
                };
                let claimed = store.claim_due(&claim).await.unwrap();
                if claimed.is_empty() {
                    return done;
                }
                let writes: Vec<Write> = claimed
                    .iter()
                    .map(|c| {
                        let step = StepRecord {
                            job_id: c.job.id,
                            step_id: "a".into(),
                            position: 0,
                            status: StepStatus::Succeeded,
                            output: json!({"logged": true}),
                            error: None,
                            attempt: c.job.attempts,
                            started_at: t,
                            finished_at: t,
                        };
                        Write::Finish(Finish {
                            lease: Lease {
                                job_id: c.job.id,
                                token: claim.token,
                            },
                            status: JobStatus::Succeeded,
                            run_after: None,
                            result: Some(json!({"a": {"logged": true}})),
                            error: None,
                            steps: vec![step],
                            attempts_delta: 0,
                            now: t,
                        })
                    })
                    .collect();
                let applied = store.commit(&writes).await.unwrap();
                assert!(applied.iter().all(|a| *a));
                done += applied.len();
            }
        }));
    }
    let mut processed = 0;
    for t in tasks {
        processed += t.await.unwrap();
    }
    let process = started.elapsed();
    assert_eq!(processed, JOBS);
    println!(
        "{label}: admitted {JOBS} jobs in {admit:?} ({:.0}/s), claimed and finished them in {process:?} ({:.0}/s)",
        JOBS as f64 / admit.as_secs_f64(),
        JOBS as f64 / process.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures throughput; run by hand"]
async fn sqlite_throughput() {
    run(support::sqlite().await, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures throughput; run by hand"]
async fn postgres_throughput() {
    run(support::postgres().await, "postgres").await;
}
