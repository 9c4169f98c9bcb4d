//! The platform's recurring tasks run as system jobs inside the engine: one job per task per
//! period, however many nodes ask for it, and the daily retention sweep among them.

use chrono::{Duration, TimeZone, Utc};
use levqor_core::jobs::engine::schedule_system_jobs;
use levqor_core::jobs::store::JobFilter;
use levqor_core::{
    AuditStore, EngineConfig, HttpClient, HttpRequest, HttpResponse, JobStatus, Levqor,
    ManualClock, MemoryStore, OutboxNotifier, Principal, PrivacyStore, SYSTEM_OWNER, StepFailure,
    StepRunner, Store,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration as StdDuration;

struct Offline;

#[async_trait::async_trait]
impl HttpClient for Offline {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, StepFailure> {
        Err(StepFailure::permanent("offline"))
    }
}

fn service(
    clock: Arc<ManualClock>,
    dunning: Option<StdDuration>,
) -> (Levqor, Arc<MemoryStore>, Arc<StepRunner>) {
    let store = Arc::new(MemoryStore::new());
    let runner = Arc::new(StepRunner::new(
        Arc::new(Offline),
        Arc::new(OutboxNotifier::new(store.clone())),
        Vec::new(),
    ));
    let mut builder = Levqor::builder(store.clone(), runner.clone())
        .clock(clock)
        .admin_key(Some("admin"));
    if let Some(period) = dunning {
        builder = builder.dunning_every(period);
    }
    (builder.build().unwrap(), store, runner)
}

async fn system_jobs(store: &MemoryStore) -> Vec<levqor_core::Job> {
    use levqor_core::JobStore;
    store
        .list_jobs(&JobFilter {
            owner_id: Some(SYSTEM_OWNER),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn each_period_gets_one_system_job_whoever_asks() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 3, 10, 0, 0).unwrap(),
    ));
    let (_levqor, store, runner) = service(clock.clone(), None);
    let now = Utc.with_ymd_and_hms(2026, 11, 3, 10, 0, 0).unwrap();
    assert_eq!(
        schedule_system_jobs(store.as_ref(), &runner, now)
            .await
            .unwrap(),
        1
    );
    // Another node, later the same day: the same job.
    let later = now + Duration::hours(5);
    assert_eq!(
        schedule_system_jobs(store.as_ref(), &runner, later)
            .await
            .unwrap(),
        0
    );
    assert_eq!(system_jobs(&store).await.len(), 1);
    // The next day: a new one.
    assert_eq!(
        schedule_system_jobs(store.as_ref(), &runner, now + Duration::days(1))
            .await
            .unwrap(),
        1
    );
    let jobs = system_jobs(&store).await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].workflow["steps"][0]["task"], "retention_sweep");
}

#[tokio::test]
async fn the_daily_retention_sweep_runs_in_the_engine() {
    let start = Utc.with_ymd_and_hms(2026, 11, 3, 10, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let (levqor, store, _) = service(clock.clone(), None);
    let admin = Principal::Admin;
    let user = match levqor
        .users()
        .create(&admin, "old@example.com", None)
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
    levqor
        .privacy()
        .record_events(
            &me,
            &[("old".into(), json!({})), ("older".into(), json!({}))],
        )
        .await
        .unwrap();
    clock.set(start + Duration::days(400));

    let engine = levqor.start_engine(EngineConfig {
        workers: 2,
        poll_interval: StdDuration::from_millis(10),
        ..EngineConfig::default()
    });
    let mut swept = None;
    for _ in 0..300 {
        if let Some(job) = system_jobs(&store)
            .await
            .into_iter()
            .find(|j| j.status == JobStatus::Succeeded)
        {
            swept = Some(job);
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    engine.shutdown().await;
    let job = swept.expect("the sweep ran as a system job");
    assert_eq!(
        job.result.as_ref().unwrap()["run"]["classes"]["events"],
        2,
        "{:?}",
        job.result
    );
    assert!(
        store
            .list_events(user.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let audit = store.find_audit("retention.swept", None).await.unwrap();
    assert_eq!(audit.len(), 1, "the sweep is audited");
    let _: &dyn Store = store.as_ref();
}

#[tokio::test]
async fn dunning_runs_as_a_system_job_in_the_engine() {
    use levqor_core::BillingStore;
    use levqor_core::billing::{Dunning, DunningState};
    let start = Utc.with_ymd_and_hms(2026, 11, 3, 10, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let (levqor, store, _) = service(clock.clone(), Some(StdDuration::from_secs(3600)));
    let admin = Principal::Admin;
    let user = match levqor
        .users()
        .create(&admin, "owes@example.com", None)
        .await
        .unwrap()
    {
        levqor_core::Upserted::Created(u) | levqor_core::Upserted::Existing(u) => u,
    };
    store
        .put_dunning(
            &Dunning {
                user_id: user.id,
                state: DunningState::PastDue,
                since: start - Duration::days(20),
                reminders_sent: 0,
                updated_at: start,
            },
            None,
            &[],
        )
        .await
        .unwrap();
    let engine = levqor.start_engine(EngineConfig {
        workers: 2,
        poll_interval: StdDuration::from_millis(10),
        ..EngineConfig::default()
    });
    let mut state = None;
    for _ in 0..300 {
        state = store.dunning(user.id).await.unwrap().map(|d| d.state);
        if state == Some(DunningState::Suspended) {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    engine.shutdown().await;
    assert_eq!(state, Some(DunningState::Suspended));
    let ran = system_jobs(&store)
        .await
        .into_iter()
        .any(|j| j.workflow["steps"][0]["task"] == "dunning" && j.status == JobStatus::Succeeded);
    assert!(ran, "the dunning tick ran as a system job");
}
