//! Jobs in memory.

use super::{MemoryStore, StoredJob, holds};
use crate::credits::insufficient_credits;
use crate::error::{Error, Result};
use crate::jobs::model::{Job, JobStatus, StepRecord};
use crate::jobs::store::{
    Admission, Claim, ClaimedJob, JobFilter, JobStore, Lease, NewJob, Reaped, Write,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[async_trait]
impl JobStore for MemoryStore {
    async fn admit_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Result<Admission>>> {
        let mut s = self.lock();
        // A job id is a primary key: a batch that repeats one, or takes a stored one, fails
        // whole, as a database's insert would.
        let mut ids = std::collections::HashSet::new();
        if jobs
            .iter()
            .any(|n| !ids.insert(n.job.id) || s.jobs.contains_key(&n.job.id))
        {
            return Err(Error::internal("a job id is taken"));
        }
        Ok(jobs
            .into_iter()
            .map(|new| {
                if let Some(key) = &new.job.idempotency_key
                    && let Some(first) = s.idempotency.get(&(new.job.owner_id, key.clone()))
                {
                    let first = &s.jobs[first];
                    return if first.request_hash == new.request_hash {
                        Ok(Admission::Replayed(first.job.clone()))
                    } else {
                        Err(Error::conflict(
                            "idempotency_key_reused",
                            "this Idempotency-Key was used with another request",
                        ))
                    };
                }
                if let Some(hold) = &new.hold {
                    let account = s
                        .accounts
                        .get(&new.job.owner_id)
                        .copied()
                        .unwrap_or_default();
                    if account.available() < hold.credits {
                        return Err(insufficient_credits());
                    }
                    s.place_hold(&new.job, hold);
                }
                if let Some(key) = &new.job.idempotency_key {
                    s.idempotency
                        .insert((new.job.owner_id, key.clone()), new.job.id);
                }
                let job = new.job.clone();
                s.jobs.insert(
                    job.id,
                    StoredJob {
                        job: new.job,
                        request_hash: new.request_hash,
                        lease: None,
                    },
                );
                Ok(Admission::Created(job))
            })
            .collect())
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<ClaimedJob>> {
        let mut s = self.lock();
        let mut due: Vec<(DateTime<Utc>, Uuid)> = s
            .jobs
            .values()
            .filter(|j| {
                matches!(j.job.status, JobStatus::Queued | JobStatus::Failed)
                    && j.job.run_after <= claim.now
            })
            .map(|j| (j.job.run_after, j.job.id))
            .collect();
        due.sort();
        due.truncate(claim.limit);
        let mut out = Vec::with_capacity(due.len());
        for (_, id) in due {
            let stored = s.jobs.get_mut(&id).expect("due job exists");
            stored.job.status = JobStatus::Running;
            stored.job.attempts += 1;
            stored.job.started_at.get_or_insert(claim.now);
            stored.job.updated_at = claim.now;
            stored.lease = Some((claim.token, claim.lease_until));
            let job = stored.job.clone();
            let steps = s
                .steps
                .get(&id)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            out.push(ClaimedJob { job, steps });
        }
        Ok(out)
    }

    async fn commit(&self, writes: &[Write]) -> Result<Vec<bool>> {
        let mut s = self.lock();
        Ok(writes
            .iter()
            .map(|w| {
                let (lease, steps, messages) = match w {
                    Write::Checkpoint {
                        lease,
                        steps,
                        messages,
                    } => (lease, steps, messages),
                    Write::Finish(f) => (&f.lease, &f.steps, &f.messages),
                };
                if !s.jobs.get(&lease.job_id).is_some_and(|j| holds(j, lease)) {
                    return false;
                }
                let recorded = s.steps.entry(lease.job_id).or_default();
                for step in steps {
                    recorded.insert(step.step_id.clone(), step.clone());
                }
                for m in messages {
                    s.outbox.insert(m.id, m.clone());
                }
                if let Write::Finish(f) = w {
                    let stored = s.jobs.get_mut(&lease.job_id).expect("held job exists");
                    let job = &mut stored.job;
                    job.status = f.status;
                    job.attempts += f.attempts_delta;
                    if let Some(at) = f.run_after {
                        job.run_after = at;
                    }
                    job.result = f.result.clone().or(job.result.take());
                    job.error = f.error.clone();
                    job.updated_at = f.now;
                    if f.status.is_terminal() {
                        job.finished_at = Some(f.now);
                    }
                    stored.lease = None;
                }
                true
            })
            .collect())
    }

    async fn extend_leases(&self, leases: &[Lease], until: DateTime<Utc>) -> Result<Vec<Uuid>> {
        let mut s = self.lock();
        let mut canceled = Vec::new();
        for lease in leases {
            if let Some(stored) = s.jobs.get_mut(&lease.job_id)
                && holds(stored, lease)
            {
                stored.lease = Some((lease.token, until));
                if stored.job.cancel_requested {
                    canceled.push(lease.job_id);
                }
            }
        }
        Ok(canceled)
    }

    async fn reap_expired(&self, now: DateTime<Utc>) -> Result<Reaped> {
        let mut s = self.lock();
        let mut reaped = Reaped::default();
        for stored in s.jobs.values_mut() {
            let expired = stored.job.status == JobStatus::Running
                && stored.lease.is_some_and(|(_, until)| until < now);
            if !expired {
                continue;
            }
            stored.lease = None;
            stored.job.updated_at = now;
            stored.job.error = Some("the worker running this job was lost (lease expired)".into());
            if stored.job.attempts >= stored.job.max_attempts {
                stored.job.status = JobStatus::Dead;
                stored.job.finished_at = Some(now);
                reaped.dead += 1;
            } else {
                stored.job.status = JobStatus::Failed;
                stored.job.run_after = now;
                reaped.retried += 1;
            }
        }
        Ok(reaped)
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        Ok(self.lock().jobs.get(&id).map(|j| j.job.clone()))
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let s = self.lock();
        Ok(s.jobs
            .values()
            .rev()
            .map(|j| &j.job)
            .filter(|j| filter.owner_id.is_none_or(|o| j.owner_id == o))
            .filter(|j| filter.status.is_none_or(|st| j.status == st))
            .filter(|j| filter.before.is_none_or(|b| j.id < b))
            .take(filter.limit)
            .cloned()
            .collect())
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Job>> {
        let mut s = self.lock();
        let Some(stored) = s.jobs.get_mut(&id) else {
            return Ok(None);
        };
        let job = &mut stored.job;
        match job.status {
            JobStatus::Running => job.cancel_requested = true,
            st if st.is_terminal() => return Ok(Some(job.clone())),
            _ => {
                job.status = JobStatus::Canceled;
                job.finished_at = Some(now);
            }
        }
        job.updated_at = now;
        Ok(Some(job.clone()))
    }

    async fn approve_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<(Job, bool)>> {
        let mut s = self.lock();
        let Some(stored) = s.jobs.get_mut(&id) else {
            return Ok(None);
        };
        let approved = stored.job.status == JobStatus::AwaitingApproval;
        if approved {
            stored.job.status = JobStatus::Queued;
            stored.job.updated_at = now;
        }
        Ok(Some((stored.job.clone(), approved)))
    }

    async fn list_steps(&self, job_id: Uuid) -> Result<Vec<StepRecord>> {
        let mut steps: Vec<StepRecord> = self
            .lock()
            .steps
            .get(&job_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        steps.sort_by_key(|s| s.position);
        Ok(steps)
    }

    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(self
            .lock()
            .jobs
            .values()
            .filter(|j| {
                matches!(j.job.status, JobStatus::Queued | JobStatus::Failed)
                    && j.job.run_after <= now
            })
            .count() as u64)
    }

    async fn count_jobs(&self, status: JobStatus) -> Result<u64> {
        Ok(self
            .lock()
            .jobs
            .values()
            .filter(|j| j.job.status == status)
            .count() as u64)
    }

    async fn erase_jobs(&self, owner_id: Uuid) -> Result<u64> {
        let mut s = self.lock();
        let ids: Vec<Uuid> = s
            .jobs
            .values()
            .filter(|j| j.job.owner_id == owner_id)
            .map(|j| j.job.id)
            .collect();
        for id in &ids {
            s.remove_job(*id);
        }
        Ok(ids.len() as u64)
    }
}
