//! Property test: under any interleaving of admissions, claims, writes (current and stale),
//! reaping and cancels, every job only moves along allowed transitions, terminal jobs never
//! change, and no two claims ever hold the same job.

use chrono::{Duration, TimeZone, Utc};
use levqor_core::jobs::store::{Claim, Finish, JobFilter, Lease, NewJob, Write};
use levqor_core::{Job, JobStatus, JobStore, MemoryStore};
use proptest::prelude::*;
use serde_json::json;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Admit,
    Claim(usize),
    Finish {
        pick: usize,
        status: u8,
        stale: bool,
    },
    Reap(i64),
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Admit),
        2 => (1usize..4).prop_map(Op::Claim),
        3 => (any::<usize>(), 0u8..5, any::<bool>()).prop_map(|(pick, status, stale)| Op::Finish { pick, status, stale }),
        1 => (0i64..90).prop_map(Op::Reap),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

fn new_job(owner: Uuid, at: chrono::DateTime<Utc>) -> NewJob {
    NewJob {
        job: Job {
            id: Uuid::now_v7(),
            owner_id: owner,
            workflow: json!({"name": "p", "steps": [{"id": "a", "type": "log", "message": "x"}]}),
            input: json!({}),
            status: JobStatus::Queued,
            attempts: 0,
            max_attempts: 2,
            run_after: at,
            result: None,
            error: None,
            cancel_requested: false,
            idempotency_key: None,
            created_at: at,
            updated_at: at,
            started_at: None,
            finished_at: None,
        },
        request_hash: String::new(),
        hold: None,
    }
}

const STATUSES: [JobStatus; 5] = [
    JobStatus::Succeeded,
    JobStatus::Failed,
    JobStatus::Dead,
    JobStatus::Canceled,
    JobStatus::Queued,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn jobs_only_move_along_allowed_transitions(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = MemoryStore::new();
            let owner = Uuid::now_v7();
            let mut now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let mut held: Vec<Lease> = Vec::new();
            let mut stale: Vec<Lease> = Vec::new();
            let mut seen: HashMap<Uuid, JobStatus> = HashMap::new();
            for op in ops {
                match op {
                    Op::Admit => {
                        store.admit_batch(vec![new_job(owner, now)]).await.unwrap();
                    }
                    Op::Claim(limit) => {
                        let claim = Claim { token: Uuid::new_v4(), worker: "w".into(), now, lease_until: now + Duration::seconds(30), limit };
                        for c in store.claim_due(&claim).await.unwrap() {
                            prop_assert!(!held.iter().any(|l| l.job_id == c.job.id), "job {} claimed while held", c.job.id);
                            held.push(Lease { job_id: c.job.id, token: claim.token });
                        }
                    }
                    Op::Finish { pick, status, stale: use_stale } => {
                        let pool = if use_stale { &stale } else { &held };
                        if pool.is_empty() {
                            continue;
                        }
                        let lease = pool[pick % pool.len()];
                        let mut status = STATUSES[status as usize];
                        // The engine's contract: a retry only while attempts remain.
                        let job = store.get_job(lease.job_id).await.unwrap().unwrap();
                        if status == JobStatus::Failed && job.attempts >= job.max_attempts {
                            status = JobStatus::Dead;
                        }
                        let finish = Finish {
                            lease, status, run_after: Some(now), result: None, error: None, steps: vec![], messages: vec![],
                            attempts_delta: if status == JobStatus::Queued { -1 } else { 0 }, now,
                        };
                        let applied = store.commit(&[Write::Finish(finish)]).await.unwrap()[0];
                        prop_assert_eq!(applied, !use_stale, "only the current holder writes");
                        if applied {
                            held.retain(|l| *l != lease);
                            stale.push(lease);
                        }
                    }
                    Op::Reap(secs) => {
                        now += Duration::seconds(secs);
                        store.reap_expired(now).await.unwrap();
                        // Reaped leases are no longer held.
                        let mut still = Vec::new();
                        for l in held.drain(..) {
                            let j = store.get_job(l.job_id).await.unwrap().unwrap();
                            if j.status == JobStatus::Running { still.push(l) } else { stale.push(l) }
                        }
                        held = still;
                    }
                    Op::Cancel(pick) => {
                        let jobs = store.list_jobs(&JobFilter { limit: 1000, ..Default::default() }).await.unwrap();
                        if !jobs.is_empty() {
                            store.cancel_job(jobs[pick % jobs.len()].id, now).await.unwrap();
                        }
                    }
                }
                for job in store.list_jobs(&JobFilter { limit: 1000, ..Default::default() }).await.unwrap() {
                    prop_assert!(job.attempts >= 0 && job.attempts <= job.max_attempts, "attempts out of range: {job:?}");
                    if let Some(before) = seen.insert(job.id, job.status) && before != job.status {
                        // A claim (queued/failed -> running) followed by a finish within one op is
                        // impossible, so each observed change is one transition.
                        prop_assert!(before.can_become(job.status), "{before:?} -> {:?}", job.status);
                    }
                }
            }
            Ok(())
        })?;
    }
}
