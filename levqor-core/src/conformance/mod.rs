//! The store conformance suite: every backend (memory, SQLite, PostgreSQL) must pass it.
//! A backend's test file instantiates it with [`conformance_suite!`](crate::conformance_suite),
//! passing an expression that yields a fresh, empty store.
#![allow(missing_docs)]

use crate::error::ErrorKind;
use crate::jobs::model::{Job, JobStatus, StepRecord, StepStatus};
use crate::jobs::store::{Admission, Claim, Finish, JobFilter, Lease, NewJob, Write};
use crate::notify::OutboxMessage;
use crate::store::Store;
use crate::users::{self, Upserted, User};
use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

/// Instantiates every conformance case as a `#[tokio::test]` against the store that `$make`
/// (an expression evaluating to a future of `Arc<dyn Store>`) builds.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            users_upsert_is_idempotent_by_email, update_user_refuses_a_taken_email, keys_are_found_by_hash_until_revoked,
            admitted_jobs_round_trip, idempotency_keys_replay_or_conflict, claims_take_due_jobs_only, approval_moves_a_held_job_once,
            concurrent_claims_never_share_a_job, writes_are_fenced_by_the_lease, checkpoints_survive_a_reclaim,
            a_delay_requeues_without_spending_an_attempt, heartbeats_extend_leases_and_report_cancels,
            expired_leases_are_retried_or_dead, jobs_list_newest_first_by_owner_and_status, cancel_follows_the_state_machine,
            outbox_lists_newest_first, queue_depth_counts_due_jobs,
            outbox_claims_due_messages_and_fences_settles, concurrent_outbox_claims_never_share_a_message,
            abandoned_and_stale_messages_are_settled_by_the_sweep, step_messages_land_with_their_checkpoint_only,
            suppressions_keep_the_first_reason_and_go_with_erasure,
            consent_records_round_trip_and_chain, privacy_records_round_trip, an_appeal_is_decided_once,
            sweeps_keep_recent_and_held_data, finished_jobs_and_step_outputs_are_swept,
            areas_erase_only_their_persons_rows,
            credit_entries_are_idempotent_and_never_overdraw, admission_holds_what_fits_and_settles_what_ran,
            a_short_account_refuses_only_its_own_jobs, a_batch_without_keys_refuses_only_what_does_not_fit,
            a_failed_admission_writes_nothing,
            a_cancelled_admission_lands_whole_or_not_at_all,
            expired_holds_and_credits_are_released_but_never_below_holds, ledger_holds_under_random_operations,
            billing_records_round_trip, api_calls_are_counted_per_month_and_day);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: std::sync::Arc<dyn $crate::Store> = $make.await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

mod billing;
mod credits;
mod outbox;
mod privacy;
pub use billing::*;
pub use credits::*;
pub use outbox::*;
pub use privacy::*;

/// A fixed instant, whole milliseconds, so every backend stores it exactly.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + Duration::milliseconds(678)
}

fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::milliseconds(1)).unwrap()
}

pub async fn user(store: &Arc<dyn Store>, email: &str) -> User {
    let now = t0();
    match store
        .upsert_user(User {
            id: Uuid::now_v7(),
            email: email.into(),
            name: Some("N".into()),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap()
    {
        Upserted::Created(u) | Upserted::Existing(u) => u,
    }
}

pub fn job(owner: Uuid, key: Option<&str>, run_after: DateTime<Utc>) -> NewJob {
    NewJob {
        job: Job {
            id: Uuid::now_v7(),
            owner_id: owner,
            workflow: json!({"name": "w", "steps": [{"id": "a", "type": "log", "message": "ü ✓"}]}),
            input: json!({"n": 1, "nested": {"k": [1, 2]}, "f": 1.5e-7, "big": 12345678901234567_i64, "s": "a\"b\\c\n\u{1}"}),
            status: JobStatus::Queued,
            attempts: 0,
            max_attempts: 3,
            run_after,
            result: None,
            error: None,
            cancel_requested: false,
            idempotency_key: key.map(str::to_string),
            created_at: t0(),
            updated_at: t0(),
            started_at: None,
            finished_at: None,
        },
        request_hash: "h1".into(),
        hold: None,
    }
}

async fn admit(store: &Arc<dyn Store>, new: NewJob) -> Job {
    match store
        .admit_batch(vec![new])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .unwrap()
    {
        Admission::Created(j) => j,
        other => panic!("expected a new job, got {other:?}"),
    }
}

fn claim(now: DateTime<Utc>, limit: usize) -> Claim {
    Claim {
        token: Uuid::new_v4(),
        worker: "w".into(),
        now,
        lease_until: now + Duration::seconds(30),
        limit,
    }
}

fn step(job_id: Uuid, id: &str, position: i32, status: StepStatus, attempt: i32) -> StepRecord {
    StepRecord {
        job_id,
        step_id: id.into(),
        position,
        status,
        output: json!({"out": id}),
        error: (status == StepStatus::Failed).then(|| "boom".to_string()),
        attempt,
        started_at: t0(),
        finished_at: t0() + Duration::milliseconds(5),
    }
}

fn finish(lease: Lease, status: JobStatus, steps: Vec<StepRecord>) -> Write {
    Write::Finish(Finish {
        lease,
        status,
        run_after: None,
        result: (status == JobStatus::Succeeded).then(|| json!({"a": {"out": "a"}})),
        error: (status != JobStatus::Succeeded).then(|| "e".to_string()),
        steps,
        messages: Vec::new(),
        attempts_delta: 0,
        now: t0() + Duration::seconds(1),
    })
}

pub async fn users_upsert_is_idempotent_by_email(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let again = store
        .upsert_user(User {
            id: Uuid::now_v7(),
            email: "a@example.com".into(),
            name: None,
            created_at: t0(),
            updated_at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(again, Upserted::Existing(a.clone()));
    assert_eq!(store.get_user(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.find_user_by_email("a@example.com").await.unwrap(),
        Some(a)
    );
    assert_eq!(
        store
            .find_user_by_email("nobody@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_user(Uuid::now_v7()).await.unwrap(), None);
}

pub async fn update_user_refuses_a_taken_email(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let b = user(&store, "b@example.com").await;
    let err = store
        .update_user(&User {
            email: "a@example.com".into(),
            ..b.clone()
        })
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.code), (ErrorKind::Conflict, "email_taken"));
    assert_eq!(
        store.get_user(b.id).await.unwrap().unwrap().email,
        "b@example.com"
    );
    let renamed = User {
        email: "c@example.com".into(),
        name: None,
        ..b.clone()
    };
    assert_eq!(
        store.update_user(&renamed).await.unwrap(),
        Some(renamed.clone())
    );
    assert_eq!(
        store.find_user_by_email("c@example.com").await.unwrap(),
        Some(renamed)
    );
    let ghost = User {
        id: Uuid::now_v7(),
        ..a.clone()
    };
    assert_eq!(
        store.update_user(&ghost).await.unwrap(),
        None,
        "no such user, even with a taken email"
    );
    assert_eq!(
        store
            .update_user(&User {
                email: "ghost@example.com".into(),
                ..ghost
            })
            .await
            .unwrap(),
        None
    );
}

pub async fn keys_are_found_by_hash_until_revoked(store: Arc<dyn Store>) {
    let u = user(&store, "k@example.com").await;
    let (first, hash1) = users::issue_key(u.id, vec!["jobs:read".into()], t0());
    let (second, hash2) = users::issue_key(u.id, vec!["*".into()], t0() + Duration::seconds(1));
    store.insert_key(&first.key, &hash1).await.unwrap();
    store.insert_key(&second.key, &hash2).await.unwrap();
    assert_eq!(
        store.find_key_by_hash(&hash1).await.unwrap(),
        Some(first.key.clone())
    );
    let listed = store.list_keys(u.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![second.key.id, first.key.id]
    );
    let revoked = store
        .revoke_key(first.key.id, t0() + Duration::seconds(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(t0() + Duration::seconds(2)));
    let again = store
        .revoke_key(first.key.id, t0() + Duration::seconds(9))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(t0() + Duration::seconds(2)),
        "the first revocation time stays"
    );
    assert_eq!(store.find_key_by_hash(&hash1).await.unwrap(), None);
    assert_eq!(
        store.find_key_by_hash(&hash2).await.unwrap().map(|k| k.id),
        Some(second.key.id)
    );
    assert_eq!(
        store
            .get_key(first.key.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(t0() + Duration::seconds(2))
    );
    assert_eq!(store.revoke_key(Uuid::now_v7(), t0()).await.unwrap(), None);
}

pub async fn admitted_jobs_round_trip(store: Arc<dyn Store>) {
    let u = user(&store, "j@example.com").await;
    let new = job(u.id, Some("k1"), t0());
    let created = admit(&store, new.clone()).await;
    assert_eq!(created, new.job);
    assert_eq!(store.get_job(created.id).await.unwrap(), Some(new.job));
    assert_eq!(store.get_job(Uuid::now_v7()).await.unwrap(), None);
}

pub async fn idempotency_keys_replay_or_conflict(store: Arc<dyn Store>) {
    let u = user(&store, "i@example.com").await;
    let other = user(&store, "o@example.com").await;
    let first = admit(&store, job(u.id, Some("key"), t0())).await;
    let mut different = job(u.id, Some("key"), t0());
    different.request_hash = "h2".into();
    let results = store
        .admit_batch(vec![
            job(u.id, Some("key"), t0()),
            different,
            job(other.id, Some("key"), t0()),
        ])
        .await
        .unwrap();
    assert_eq!(
        results[0].as_ref().unwrap(),
        &Admission::Replayed(first.clone())
    );
    assert_eq!(
        results[1].as_ref().unwrap_err().code,
        "idempotency_key_reused"
    );
    assert!(
        matches!(results[2], Ok(Admission::Created(_))),
        "keys are scoped by owner"
    );
    // The same new key twice in one batch behaves like two calls in a row.
    let a = job(u.id, Some("fresh"), t0());
    let results = store
        .admit_batch(vec![a.clone(), job(u.id, Some("fresh"), t0())])
        .await
        .unwrap();
    assert_eq!(
        results[0].as_ref().unwrap(),
        &Admission::Created(a.job.clone())
    );
    assert_eq!(results[1].as_ref().unwrap(), &Admission::Replayed(a.job));
    let all = store
        .list_jobs(&JobFilter {
            owner_id: Some(u.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "no duplicate jobs were written");
}

pub async fn claims_take_due_jobs_only(store: Arc<dyn Store>) {
    let u = user(&store, "c@example.com").await;
    let due = admit(&store, job(u.id, None, t0())).await;
    let later = admit(&store, job(u.id, None, t0() + Duration::seconds(60))).await;
    let mut held = job(u.id, None, t0());
    held.job.status = JobStatus::AwaitingApproval;
    admit(&store, held).await;
    let c = claim(t0() + Duration::seconds(1), 10);
    let claimed = store.claim_due(&c).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let j = &claimed[0].job;
    assert_eq!(
        (j.id, j.status, j.attempts),
        (due.id, JobStatus::Running, 1)
    );
    assert_eq!(j.started_at, Some(c.now));
    assert!(claimed[0].steps.is_empty());
    assert!(
        store
            .claim_due(&claim(t0() + Duration::seconds(1), 10))
            .await
            .unwrap()
            .is_empty(),
        "a running job is not claimed again"
    );
    let c2 = store
        .claim_due(&claim(t0() + Duration::seconds(61), 10))
        .await
        .unwrap();
    assert_eq!(
        c2.iter().map(|c| c.job.id).collect::<Vec<_>>(),
        vec![later.id]
    );
}

pub async fn approval_moves_a_held_job_once(store: Arc<dyn Store>) {
    let u = user(&store, "ap@example.com").await;
    let mut held = job(u.id, None, t0());
    held.job.status = JobStatus::AwaitingApproval;
    let held = admit(&store, held).await;
    let queued = admit(&store, job(u.id, None, t0())).await;
    let at = t0() + Duration::seconds(1);
    let (approved, moved) = store.approve_job(held.id, at).await.unwrap().unwrap();
    assert_eq!(
        (approved.status, approved.updated_at, moved),
        (JobStatus::Queued, at, true)
    );
    let (again, moved) = store.approve_job(held.id, at).await.unwrap().unwrap();
    assert_eq!(
        (again.status, moved),
        (JobStatus::Queued, false),
        "approved once"
    );
    let (other, moved) = store.approve_job(queued.id, at).await.unwrap().unwrap();
    assert_eq!(
        (other.status, moved),
        (JobStatus::Queued, false),
        "never held"
    );
    let claimed = store.claim_due(&claim(at, 10)).await.unwrap();
    assert_eq!(claimed.len(), 2, "the approved job is due");
}

pub async fn concurrent_claims_never_share_a_job(store: Arc<dyn Store>) {
    let u = user(&store, "cc@example.com").await;
    let jobs: Vec<NewJob> = (0..300).map(|_| job(u.id, None, t0())).collect();
    store.admit_batch(jobs).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_due(&claim(t0() + Duration::seconds(1), 25))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.job.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 300);
}

pub async fn writes_are_fenced_by_the_lease(store: Arc<dyn Store>) {
    let u = user(&store, "f@example.com").await;
    let j = admit(&store, job(u.id, None, t0())).await;
    let c = claim(t0(), 1);
    store.claim_due(&c).await.unwrap();
    let stale = Lease {
        job_id: j.id,
        token: Uuid::new_v4(),
    };
    let applied = store
        .commit(&[finish(
            stale,
            JobStatus::Succeeded,
            vec![step(j.id, "a", 0, StepStatus::Succeeded, 1)],
        )])
        .await
        .unwrap();
    assert_eq!(applied, vec![false]);
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    assert!(
        store.list_steps(j.id).await.unwrap().is_empty(),
        "a fenced-off write records no step"
    );
    let lease = Lease {
        job_id: j.id,
        token: c.token,
    };
    let applied = store
        .commit(&[finish(
            lease,
            JobStatus::Succeeded,
            vec![step(j.id, "a", 0, StepStatus::Succeeded, 1)],
        )])
        .await
        .unwrap();
    assert_eq!(applied, vec![true]);
    let done = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"a": {"out": "a"}})));
    assert_eq!(done.finished_at, Some(t0() + Duration::seconds(1)));
    assert_eq!(
        store
            .commit(&[finish(lease, JobStatus::Dead, vec![])])
            .await
            .unwrap(),
        vec![false],
        "a finished job takes no more writes"
    );
}

pub async fn checkpoints_survive_a_reclaim(store: Arc<dyn Store>) {
    let u = user(&store, "cp@example.com").await;
    let j = admit(&store, job(u.id, None, t0())).await;
    let c = claim(t0(), 1);
    store.claim_due(&c).await.unwrap();
    let lease = Lease {
        job_id: j.id,
        token: c.token,
    };
    let writes = [
        Write::Checkpoint {
            lease,
            steps: vec![step(j.id, "a", 0, StepStatus::Succeeded, 1)],
            messages: Vec::new(),
        },
        Write::Checkpoint {
            lease,
            steps: vec![step(j.id, "b", 1, StepStatus::Skipped, 1)],
            messages: Vec::new(),
        },
    ];
    assert_eq!(store.commit(&writes).await.unwrap(), vec![true, true]);
    let mut failed = finish(
        lease,
        JobStatus::Failed,
        vec![step(j.id, "c", 2, StepStatus::Failed, 1)],
    );
    if let Write::Finish(f) = &mut failed {
        f.run_after = Some(t0() + Duration::seconds(2));
    }
    assert_eq!(store.commit(&[failed]).await.unwrap(), vec![true]);
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status, after.run_after, after.error.as_deref()),
        (JobStatus::Failed, t0() + Duration::seconds(2), Some("e"))
    );
    assert_eq!(after.finished_at, None);
    assert!(
        store
            .claim_due(&claim(t0() + Duration::seconds(1), 1))
            .await
            .unwrap()
            .is_empty(),
        "not before its retry time"
    );
    let c2 = claim(t0() + Duration::seconds(3), 1);
    let again = store.claim_due(&c2).await.unwrap();
    assert_eq!(again[0].job.attempts, 2);
    let steps = &again[0].steps;
    let mut ids: Vec<(&str, StepStatus)> = steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.status))
        .collect();
    ids.sort_by_key(|(id, _)| *id);
    assert_eq!(
        ids,
        vec![
            ("a", StepStatus::Succeeded),
            ("b", StepStatus::Skipped),
            ("c", StepStatus::Failed)
        ]
    );
    let a = steps.iter().find(|s| s.step_id == "a").unwrap();
    assert_eq!(a, &step(j.id, "a", 0, StepStatus::Succeeded, 1));
    // The retried step is upserted over its failed record.
    let lease = Lease {
        job_id: j.id,
        token: c2.token,
    };
    let ok = finish(
        lease,
        JobStatus::Succeeded,
        vec![step(j.id, "c", 2, StepStatus::Succeeded, 2)],
    );
    assert_eq!(store.commit(&[ok]).await.unwrap(), vec![true]);
    let recorded = store.list_steps(j.id).await.unwrap();
    assert_eq!(
        recorded
            .iter()
            .map(|s| (s.position, s.status, s.attempt))
            .collect::<Vec<_>>(),
        vec![
            (0, StepStatus::Succeeded, 1),
            (1, StepStatus::Skipped, 1),
            (2, StepStatus::Succeeded, 2)
        ]
    );
}

pub async fn a_delay_requeues_without_spending_an_attempt(store: Arc<dyn Store>) {
    let u = user(&store, "d@example.com").await;
    let j = admit(&store, job(u.id, None, t0())).await;
    let c = claim(t0(), 1);
    store.claim_due(&c).await.unwrap();
    let w = Write::Finish(Finish {
        lease: Lease {
            job_id: j.id,
            token: c.token,
        },
        status: JobStatus::Queued,
        run_after: Some(t0() + Duration::milliseconds(200)),
        result: None,
        error: None,
        steps: vec![step(j.id, "a", 0, StepStatus::Succeeded, 1)],
        messages: Vec::new(),
        attempts_delta: -1,
        now: t0(),
    });
    assert_eq!(store.commit(&[w]).await.unwrap(), vec![true]);
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status, after.attempts, after.run_after),
        (JobStatus::Queued, 0, t0() + Duration::milliseconds(200))
    );
    let again = store
        .claim_due(&claim(t0() + Duration::seconds(1), 1))
        .await
        .unwrap();
    assert_eq!(again[0].job.attempts, 1);
    assert_eq!(again[0].steps.len(), 1);
}

pub async fn heartbeats_extend_leases_and_report_cancels(store: Arc<dyn Store>) {
    let u = user(&store, "h@example.com").await;
    let a = admit(&store, job(u.id, None, t0())).await;
    let b = admit(&store, job(u.id, None, t0())).await;
    let c = claim(t0(), 2);
    store.claim_due(&c).await.unwrap();
    store.cancel_job(b.id, t0()).await.unwrap();
    let leases = [
        Lease {
            job_id: a.id,
            token: c.token,
        },
        Lease {
            job_id: b.id,
            token: c.token,
        },
    ];
    let canceled = store
        .extend_leases(&leases, t0() + Duration::seconds(100))
        .await
        .unwrap();
    assert_eq!(canceled, vec![b.id]);
    let reaped = store
        .reap_expired(t0() + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(
        reaped.retried + reaped.dead,
        0,
        "extended leases are not reaped"
    );
    let stale = [Lease {
        job_id: a.id,
        token: Uuid::new_v4(),
    }];
    store
        .extend_leases(&stale, t0() + Duration::seconds(1000))
        .await
        .unwrap();
    let reaped = store
        .reap_expired(t0() + Duration::seconds(101))
        .await
        .unwrap();
    assert_eq!(reaped.retried, 2, "a stale token extends nothing");
}

pub async fn expired_leases_are_retried_or_dead(store: Arc<dyn Store>) {
    let u = user(&store, "r@example.com").await;
    let mut last = job(u.id, None, t0());
    last.job.max_attempts = 1;
    let last = admit(&store, last).await;
    let retry = admit(&store, job(u.id, None, t0())).await;
    store.claim_due(&claim(t0(), 2)).await.unwrap();
    let reaped = store
        .reap_expired(t0() + Duration::seconds(31))
        .await
        .unwrap();
    assert_eq!((reaped.retried, reaped.dead), (1, 1));
    let dead = store.get_job(last.id).await.unwrap().unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert!(dead.error.is_some() && dead.finished_at.is_some());
    let again = store.get_job(retry.id).await.unwrap().unwrap();
    assert_eq!((again.status, again.attempts), (JobStatus::Failed, 1));
    assert_eq!(
        store
            .claim_due(&claim(t0() + Duration::seconds(32), 5))
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn jobs_list_newest_first_by_owner_and_status(store: Arc<dyn Store>) {
    let u = user(&store, "l@example.com").await;
    let other = user(&store, "l2@example.com").await;
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(admit(&store, job(u.id, None, t0())).await.id);
    }
    admit(&store, job(other.id, None, t0())).await;
    store.cancel_job(mine[1], t0()).await.unwrap();
    let page = |before, status, limit| JobFilter {
        owner_id: Some(u.id),
        status,
        before,
        limit,
    };
    let first = store.list_jobs(&page(None, None, 3)).await.unwrap();
    assert_eq!(
        first.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![mine[4], mine[3], mine[2]]
    );
    let rest = store
        .list_jobs(&page(Some(mine[2]), None, 3))
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![mine[1], mine[0]]
    );
    let canceled = store
        .list_jobs(&page(None, Some(JobStatus::Canceled), 10))
        .await
        .unwrap();
    assert_eq!(
        canceled.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![mine[1]]
    );
    let everyone = store
        .list_jobs(&JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(everyone.len(), 6);
}

pub async fn cancel_follows_the_state_machine(store: Arc<dyn Store>) {
    let u = user(&store, "x@example.com").await;
    let queued = admit(&store, job(u.id, None, t0())).await;
    let canceled = store
        .cancel_job(queued.id, t0() + Duration::seconds(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (canceled.status, canceled.finished_at),
        (JobStatus::Canceled, Some(t0() + Duration::seconds(1)))
    );
    let running = admit(&store, job(u.id, None, t0())).await;
    let c = claim(t0() + Duration::seconds(2), 1);
    store.claim_due(&c).await.unwrap();
    let asked = store
        .cancel_job(running.id, t0() + Duration::seconds(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (asked.status, asked.cancel_requested),
        (JobStatus::Running, true)
    );
    let lease = Lease {
        job_id: running.id,
        token: c.token,
    };
    assert_eq!(
        store
            .commit(&[finish(lease, JobStatus::Canceled, vec![])])
            .await
            .unwrap(),
        vec![true]
    );
    let done = store.get_job(running.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Canceled);
    let unchanged = store
        .cancel_job(done.id, t0() + Duration::seconds(9))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged, done, "a terminal job is returned unchanged");
    assert_eq!(store.cancel_job(Uuid::now_v7(), t0()).await.unwrap(), None);
}

pub async fn outbox_lists_newest_first(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..3 {
        let m = OutboxMessage {
            id: Uuid::now_v7(),
            channel: "email".into(),
            to: format!("to{i}@example.com"),
            subject: "s".into(),
            body: "b".into(),
            job_id: (i == 0).then(Uuid::now_v7),
            kind: if i == 1 {
                crate::notify::EmailKind::Marketing
            } else {
                crate::notify::EmailKind::Transactional
            },
            attachments: if i == 2 {
                vec![crate::notify::StoredAttachment::from(
                    &crate::notify::Attachment {
                        filename: "a.zip".into(),
                        content_type: "application/zip".into(),
                        content: vec![0, 1, 2, 255],
                    },
                )]
            } else {
                Vec::new()
            },
            html: (i == 1).then(|| "<p>Hi &amp; welcome</p>".to_string()),
            headers: if i == 1 {
                [(
                    "List-Unsubscribe".to_string(),
                    "<https://x.example/u?token=t>".to_string(),
                )]
                .into()
            } else {
                Default::default()
            },
            created_at: ms(t0()),
            delivery: crate::notify::Delivery::pending(ms(t0())),
        };
        store.push_outbox(&m).await.unwrap();
        ids.push(m);
    }
    let all = store.list_outbox(None, 10).await.unwrap();
    assert_eq!(all, vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    let older = store.list_outbox(Some(ids[1].id), 10).await.unwrap();
    assert_eq!(older, vec![ids[0].clone()]);
}

pub async fn queue_depth_counts_due_jobs(store: Arc<dyn Store>) {
    let u = user(&store, "q@example.com").await;
    for _ in 0..3 {
        admit(&store, job(u.id, None, t0())).await;
    }
    admit(&store, job(u.id, None, t0() + Duration::hours(1))).await;
    assert_eq!(store.queue_depth(t0()).await.unwrap(), 3);
    store.claim_due(&claim(t0(), 1)).await.unwrap();
    assert_eq!(store.queue_depth(t0()).await.unwrap(), 2);
    assert_eq!(store.count_jobs(JobStatus::Queued).await.unwrap(), 3);
    assert_eq!(store.count_jobs(JobStatus::Running).await.unwrap(), 1);
    assert_eq!(store.count_jobs(JobStatus::Dead).await.unwrap(), 0);
}
