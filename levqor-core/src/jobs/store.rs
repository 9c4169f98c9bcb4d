//! The job store port: what the engine and intake need from storage, shaped for batches so
//! that a backend can commit many admissions, claims and completions in one transaction.

use super::model::{Job, JobStatus, StepRecord};
use crate::error::Result;
use crate::notify::OutboxMessage;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// A job ready to be admitted, with the fingerprint of the request that made it.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The job to insert (status `queued` or `awaiting_approval`).
    pub job: Job,
    /// SHA-256 of the canonical request; a replayed idempotency key must match it.
    pub request_hash: String,
    /// Credits to hold for it in the same transaction; when they do not fit, the job is not
    /// admitted (`insufficient_credits`).
    pub hold: Option<NewHold>,
}

/// Credits to reserve when a job is admitted (set by the pricing stage).
#[derive(Debug, Clone, PartialEq)]
pub struct NewHold {
    /// How many.
    pub credits: i64,
    /// The quote it came from (prices per step type, factors), used to settle.
    pub quote: Value,
    /// When an unsettled hold is released by the sweep.
    pub expires_at: DateTime<Utc>,
}

/// The idempotency key of the `hold` ledger entry of `job_id`'s hold.
pub fn hold_key(job_id: Uuid) -> String {
    format!("hold:{job_id}")
}

/// The error of an admission whose hold does not fit what the owner has available.
pub fn insufficient_credits() -> crate::Error {
    crate::Error::insufficient_credits("the account has too few credits for this job's quote")
}

/// What admitting one job did.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// The job was inserted.
    Created(Job),
    /// The owner had already used this idempotency key with the same request: the first job.
    Replayed(Job),
}

impl Admission {
    /// The job, new or first.
    pub fn job(&self) -> &Job {
        match self {
            Admission::Created(j) | Admission::Replayed(j) => j,
        }
    }
}

/// A request to claim due jobs under one lease token.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Fences every later write: only the holder of the token may write the job.
    pub token: Uuid,
    /// The claiming worker, for operators.
    pub worker: String,
    /// Jobs whose `run_after` is not after this are due. Whole microseconds (what every
    /// backend stores), so a job first started by this claim has `started_at == now`.
    pub now: DateTime<Utc>,
    /// The lease ends here unless extended.
    pub lease_until: DateTime<Utc>,
    /// At most this many jobs.
    pub limit: usize,
}

/// A claimed job with the checkpoints of the steps it already completed.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job, now `running`, with `attempts` counting this attempt.
    pub job: Job,
    /// Checkpoints recorded by earlier attempts or before a `delay`.
    pub steps: Vec<StepRecord>,
}

/// The right to write a claimed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job_id: Uuid,
    /// The token of the claim that took it.
    pub token: Uuid,
}

/// A write by the holder of a lease. A write whose lease is no longer held (it expired and the
/// job was reclaimed, or the job was canceled) changes nothing.
#[derive(Debug, Clone)]
pub enum Write {
    /// Record finished steps; the job keeps running.
    Checkpoint {
        /// Whose lease.
        lease: Lease,
        /// Steps to record (upserted by step id).
        steps: Vec<StepRecord>,
        /// Messages the steps sent, written to the outbox in the same transaction.
        messages: Vec<OutboxMessage>,
    },
    /// End the attempt: record `steps` and move the job to `status`, releasing the lease.
    Finish(Finish),
}

/// The end of an attempt.
#[derive(Debug, Clone)]
pub struct Finish {
    /// Whose lease.
    pub lease: Lease,
    /// `succeeded`, `failed`, `dead`, `canceled`, or `queued` (a `delay` or a release).
    pub status: JobStatus,
    /// For `failed` and `queued`: when it may run again.
    pub run_after: Option<DateTime<Utc>>,
    /// For `succeeded`: the step outputs.
    pub result: Option<Value>,
    /// For `failed` and `dead`: why.
    pub error: Option<String>,
    /// Steps to record in the same transaction.
    pub steps: Vec<StepRecord>,
    /// Messages the steps sent, written to the outbox in the same transaction.
    pub messages: Vec<OutboxMessage>,
    /// `-1` when the attempt does not count (a `delay` or a graceful release), else `0`.
    pub attempts_delta: i32,
    /// When.
    pub now: DateTime<Utc>,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this owner's jobs (`None`: every owner's; for admins).
    pub owner_id: Option<Uuid>,
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs older than this id (the cursor; ids are time-ordered, listing is newest first).
    pub before: Option<Uuid>,
    /// At most this many.
    pub limit: usize,
}

/// What expired leases became.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Put back to `failed` for another attempt.
    pub retried: u64,
    /// Out of attempts: `dead`.
    pub dead: u64,
}

/// Storage of jobs and their step checkpoints.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Admits jobs in one transaction. Per job: `Created`, `Replayed` (same owner, same key, same
    /// request hash), or an error (`Conflict` `idempotency_key_reused` for another request,
    /// `insufficient_credits` when its hold does not fit what the owner has available, in batch
    /// order). A created job's hold is placed in the same transaction.
    async fn admit_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Result<Admission>>>;
    /// Claims up to `claim.limit` due `queued`/`failed` jobs, oldest `run_after` first, so that
    /// no two claims ever hold the same job; each becomes `running` with `attempts + 1`.
    async fn claim_due(&self, claim: &Claim) -> Result<Vec<ClaimedJob>>;
    /// Applies writes in one transaction; per write, whether its lease was still held.
    async fn commit(&self, writes: &[Write]) -> Result<Vec<bool>>;
    /// Extends the leases still held until `until`; returns the ids of those jobs whose owner
    /// asked to cancel them.
    async fn extend_leases(&self, leases: &[Lease], until: DateTime<Utc>) -> Result<Vec<Uuid>>;
    /// Jobs whose lease ended before `now` (their worker died): back to `failed` to be retried
    /// at once, or `dead` when no attempt is left.
    async fn reap_expired(&self, now: DateTime<Utc>) -> Result<Reaped>;
    /// A job by id.
    async fn get_job(&self, id: Uuid) -> Result<Option<Job>>;
    /// Jobs, newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>>;
    /// Cancels a job: one not yet running becomes `canceled`; a running one gets
    /// `cancel_requested`. Terminal jobs are returned unchanged. `None` when no such job.
    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Job>>;
    /// Lets a job held for approval run: `awaiting_approval` becomes `queued`. The job, and
    /// whether this call approved it (a job in any other status, approved before included, is
    /// returned unchanged with `false`, so of two racing approvals one wins). `None` when no
    /// such job.
    async fn approve_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<(Job, bool)>>;
    /// The step checkpoints of a job, by position.
    async fn list_steps(&self, job_id: Uuid) -> Result<Vec<StepRecord>>;
    /// How many jobs wait to run (`queued` or `failed`) at `now`.
    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<u64>;
    /// How many jobs are in `status`.
    async fn count_jobs(&self, status: JobStatus) -> Result<u64>;
    /// Deletes every job of `owner_id` with its steps (erasure); how many jobs.
    async fn erase_jobs(&self, owner_id: Uuid) -> Result<u64>;
}
