//! The PostgreSQL backend: the distributed engine, where any number of nodes share one database.
//! Every batched call is one transaction of a few set-based statements (each column bound once
//! as an array and expanded with `UNNEST`). Claims take rows with `FOR UPDATE SKIP LOCKED`, so two
//! nodes never hold the same job and never wait on each other; statements that must wait for
//! several leases lock them in id order, so concurrent batches cannot deadlock.
//!
//! The jobs waiting to run are listed in `job_queue` and the running ones, with their leases, in
//! `job_leases` (see `migrations/postgres/0002_job_queue_and_leases.sql`): no index of `jobs`
//! covers a column that a claim, heartbeat or finish changes, so those updates are HOT. A queue
//! row only points at a job that may be due; a claim takes the job only if it is still `queued`
//! or `failed`, so a queue row left behind by a cancel racing a claim is harmless.

use crate::error::{db_error, migrate_error, setup_error};
use crate::jobs_sql::{
    FirstRow, JobRow, StepRow, as_stored, cancel_update, claimed, job_columns, reap_assignments,
    step_columns,
};
use crate::plan::{self, plan_commit};
use crate::sql::{SqlStore, decode};
use crate::types::Timestamp;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use levqor_core::jobs::store::{
    Claim, ClaimedJob, Finish, JobFilter, Lease, NewJob, Reaped, Write,
};
use levqor_core::{Admission, Job, JobStatus, JobStore, Result, StepRecord, Store};
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::HashSet;
use uuid::Uuid;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per node: the admit batches in flight, the engine's claim, commit, heartbeat and
/// reap calls, and the reads of the adapters.
const POOL_SIZE: u32 = 16;

/// Admission's writes in one statement: inserts the jobs ($1–$17) and queues those admitted as
/// `queued`, then places the holds ($18–$25) of those inserted, with their `hold` entries and
/// their owners' held totals; returns the ids inserted. The caller locked and checked those
/// totals first.
const ADMIT: &str = "WITH inserted AS (\
     INSERT INTO jobs (id, owner_id, workflow, input, status, attempts, max_attempts, \
     run_after, result, error, cancel_requested, idempotency_key, request_hash, created_at, updated_at, \
     started_at, finished_at) \
     SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::jsonb[], $4::jsonb[], $5::text[], $6::int4[], \
     $7::int4[], $8::timestamptz[], $9::jsonb[], $10::text[], $11::bool[], $12::text[], $13::text[], \
     $14::timestamptz[], $15::timestamptz[], $16::timestamptz[], $17::timestamptz[]) \
     ON CONFLICT (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
     RETURNING id, status, run_after), \
     queued AS (INSERT INTO job_queue (run_after, id) \
     SELECT run_after, id FROM inserted WHERE status = 'queued'), \
     held AS (SELECT h.* FROM UNNEST($18::uuid[], $19::uuid[], $20::int8[], $21::jsonb[], \
     $22::timestamptz[], $23::uuid[], $24::text[], $25::timestamptz[]) \
     AS h(job_id, user_id, credits, quote, expires_at, entry_id, key, created_at) \
     WHERE h.job_id IN (SELECT id FROM inserted)), \
     holds AS (INSERT INTO credit_holds (job_id, user_id, credits, quote, expires_at, open) \
     SELECT job_id, user_id, credits, quote, expires_at, TRUE FROM held), \
     entries AS (INSERT INTO credit_entries (id, user_id, kind, credits, held, job_id, \
     idempotency_key, reason, priority, expires_at, created_at) \
     SELECT entry_id, user_id, 'hold', 0, credits, job_id, key, NULL, 0, NULL, created_at FROM held), \
     accounts AS (UPDATE credit_accounts a SET held = a.held + placed.credits \
     FROM (SELECT user_id, sum(credits)::int8 AS credits FROM held GROUP BY user_id) AS placed \
     WHERE a.user_id = placed.user_id) \
     SELECT id FROM inserted";

/// `idempotency_key IS NOT NULL` lets the planner use the partial unique index.
const FIRST_WITH_KEYS: &str = concat!(
    "SELECT request_hash, ",
    job_columns!(),
    " FROM jobs WHERE idempotency_key IS NOT NULL ",
    "AND (owner_id, idempotency_key) IN (SELECT * FROM UNNEST($1::uuid[], $2::text[]))"
);

/// Takes the oldest due queue rows nobody else is taking (deleting them by their row address,
/// which their lock pins), moves the jobs still waiting to `running`, and leases them.
const CLAIM: &str = concat!(
    "WITH due AS (",
    "DELETE FROM job_queue WHERE ctid = ANY(ARRAY(",
    "SELECT ctid FROM job_queue WHERE run_after <= $4 ORDER BY run_after, id LIMIT $5 ",
    "FOR UPDATE SKIP LOCKED)) RETURNING id AS due_id), ",
    "claimed AS (",
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, ",
    "started_at = COALESCE(started_at, $4), updated_at = $4 ",
    "FROM due WHERE jobs.id = due.due_id AND jobs.status IN ('queued', 'failed') ",
    "RETURNING ",
    job_columns!(),
    "), ",
    "leased AS (INSERT INTO job_leases (id, token, worker, expires_at) SELECT id, $1, $2, $3 FROM claimed) ",
    "SELECT ",
    job_columns!(),
    " FROM claimed"
);

const STEPS_OF: &str = concat!(
    "SELECT ",
    step_columns!(),
    " FROM job_steps WHERE job_id = ANY($1) ORDER BY job_id, position"
);

/// Locks the leases still held, in id order.
const LOCK_HELD: &str = "SELECT l.id, l.token FROM job_leases l \
     JOIN UNNEST($1::uuid[], $2::uuid[]) AS held(id, token) ON l.id = held.id AND l.token = held.token \
     ORDER BY l.id FOR UPDATE OF l";

const UPSERT_STEPS: &str = concat!(
    "INSERT INTO job_steps (",
    step_columns!(),
    ") SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int4[], $4::text[], $5::jsonb[], $6::text[], ",
    "$7::int4[], $8::timestamptz[], $9::timestamptz[]) ",
    "ON CONFLICT (job_id, step_id) DO UPDATE SET position = EXCLUDED.position, status = EXCLUDED.status, ",
    "output = EXCLUDED.output, error = EXCLUDED.error, attempt = EXCLUDED.attempt, ",
    "started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at"
);

/// Releases the leases, ends the attempts, and queues the jobs to run again (`failed`, or
/// `queued` after a delay or a release).
const FINISH: &str = "WITH ended AS (\
     DELETE FROM job_leases l \
     USING UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int4[], $5::timestamptz[], $6::jsonb[], \
     $7::text[], $8::timestamptz[], $9::timestamptz[]) \
     AS f(id, token, status, attempts_delta, run_after, result, error, at, finished_at) \
     WHERE l.id = f.id AND l.token = f.token \
     RETURNING f.*), \
     updated AS (UPDATE jobs SET status = e.status, attempts = jobs.attempts + e.attempts_delta, \
     run_after = COALESCE(e.run_after, jobs.run_after), result = COALESCE(e.result, jobs.result), \
     error = e.error, updated_at = e.at, finished_at = COALESCE(e.finished_at, jobs.finished_at) \
     FROM ended e WHERE jobs.id = e.id \
     RETURNING jobs.id, jobs.status, jobs.run_after) \
     INSERT INTO job_queue (run_after, id) \
     SELECT run_after, id FROM updated WHERE status IN ('queued', 'failed')";

/// Extends the leases still held, locked in id order; returns whether each job's owner asked to
/// cancel it.
const EXTEND: &str = "WITH held AS (\
     SELECT l.id AS held_id FROM job_leases l \
     JOIN UNNEST($1::uuid[], $2::uuid[]) AS h(id, token) ON l.id = h.id AND l.token = h.token \
     ORDER BY l.id FOR UPDATE OF l), \
     extended AS (UPDATE job_leases SET expires_at = $3 FROM held WHERE job_leases.id = held.held_id \
     RETURNING job_leases.id, job_leases.token) \
     SELECT extended.id, extended.token, jobs.cancel_requested FROM extended JOIN jobs ON jobs.id = extended.id";

/// Releases the expired leases that no other transaction is writing (a job being written is left
/// for the next round), applies [`reap_assignments!`] to their jobs and queues the retries.
const REAP: &str = concat!(
    "WITH expired AS (",
    "DELETE FROM job_leases WHERE id IN (",
    "SELECT id FROM job_leases WHERE expires_at < $1 FOR UPDATE SKIP LOCKED) ",
    "RETURNING id AS expired_id), ",
    "reaped AS (UPDATE jobs SET ",
    reap_assignments!(),
    " FROM expired WHERE jobs.id = expired.expired_id RETURNING jobs.id, jobs.status, jobs.run_after), ",
    "retried AS (INSERT INTO job_queue (run_after, id) SELECT run_after, id FROM reaped WHERE status = 'failed') ",
    "SELECT status FROM reaped"
);

/// A job not yet running becomes `canceled` and leaves the queue; a running one gets
/// `cancel_requested`; a terminal one is left alone. A queue row that a claim is taking at the
/// same moment is skipped: the claim deletes it and, finding the job canceled, leaves the job.
const CANCEL: &str = concat!(
    "WITH changed AS (",
    cancel_update!(),
    "RETURNING ",
    job_columns!(),
    "), ",
    "dequeued AS (DELETE FROM job_queue WHERE ctid = ANY(ARRAY(",
    "SELECT q.ctid FROM job_queue q JOIN changed c ON q.run_after = c.run_after AND q.id = c.id ",
    "WHERE c.status = 'canceled' FOR UPDATE OF q SKIP LOCKED))) ",
    "SELECT ",
    job_columns!(),
    " FROM changed"
);

/// Levqor's store on PostgreSQL.
pub type PgStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://` or `postgresql://`) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect(url)
            .await
            .map_err(setup_error("connect"))?;
        MIGRATOR.run(&pool).await.map_err(migrate_error)?;
        Ok(SqlStore {
            read: pool.clone(),
            write: pool,
            side_tables: &["job_queue", "job_leases"],
            row_lock: " FOR UPDATE",
        })
    }

    /// Brings the schema of the database at `url` up to date.
    pub async fn migrate(url: &str) -> Result<()> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(setup_error("connect"))?;
        let migrated = MIGRATOR.run(&pool).await.map_err(migrate_error);
        pool.close().await;
        migrated
    }

    /// Closes every connection; later calls fail as `unavailable`.
    pub async fn close(&self) {
        self.write.close().await;
    }

    fn pool(&self) -> &PgPool {
        &self.write
    }
}

/// Jobs to insert, one array per column.
#[derive(Default)]
struct JobColumns<'a> {
    id: Vec<Uuid>,
    owner_id: Vec<Uuid>,
    workflow: Vec<&'a Value>,
    input: Vec<&'a Value>,
    status: Vec<&'static str>,
    attempts: Vec<i32>,
    max_attempts: Vec<i32>,
    run_after: Vec<DateTime<Utc>>,
    result: Vec<Option<&'a Value>>,
    error: Vec<Option<&'a str>>,
    cancel_requested: Vec<bool>,
    idempotency_key: Vec<Option<&'a str>>,
    request_hash: Vec<&'a str>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> JobColumns<'a> {
    fn push(&mut self, new: &'a NewJob) {
        let job = &new.job;
        self.id.push(job.id);
        self.owner_id.push(job.owner_id);
        self.workflow.push(&job.workflow);
        self.input.push(&job.input);
        self.status.push(job.status.as_str());
        self.attempts.push(job.attempts);
        self.max_attempts.push(job.max_attempts);
        self.run_after.push(job.run_after);
        self.result.push(job.result.as_ref());
        self.error.push(job.error.as_deref());
        self.cancel_requested.push(job.cancel_requested);
        self.idempotency_key.push(job.idempotency_key.as_deref());
        self.request_hash.push(&new.request_hash);
        self.created_at.push(job.created_at);
        self.updated_at.push(job.updated_at);
        self.started_at.push(job.started_at);
        self.finished_at.push(job.finished_at);
    }
}

/// The holds of an admit batch, one array per column.
#[derive(Default)]
struct HoldColumns<'a> {
    job_id: Vec<Uuid>,
    user_id: Vec<Uuid>,
    credits: Vec<i64>,
    quote: Vec<&'a Value>,
    expires_at: Vec<DateTime<Utc>>,
    entry_id: Vec<Uuid>,
    key: Vec<String>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> HoldColumns<'a> {
    fn push(&mut self, new: &'a NewJob) {
        let (job, Some(hold)) = (&new.job, &new.hold) else {
            return;
        };
        self.job_id.push(job.id);
        self.user_id.push(job.owner_id);
        self.credits.push(hold.credits);
        self.quote.push(&hold.quote);
        self.expires_at.push(hold.expires_at);
        self.entry_id.push(Uuid::now_v7());
        self.key.push(levqor_core::credits::hold_key(job.id));
        self.created_at.push(job.created_at);
    }
}

/// Step records to upsert, one array per column.
#[derive(Default)]
struct StepColumns<'a> {
    job_id: Vec<Uuid>,
    step_id: Vec<&'a str>,
    position: Vec<i32>,
    status: Vec<&'static str>,
    output: Vec<&'a Value>,
    error: Vec<Option<&'a str>>,
    attempt: Vec<i32>,
    started_at: Vec<DateTime<Utc>>,
    finished_at: Vec<DateTime<Utc>>,
}

impl<'a> StepColumns<'a> {
    fn push(&mut self, job_id: Uuid, step: &'a StepRecord) {
        self.job_id.push(job_id);
        self.step_id.push(&step.step_id);
        self.position.push(step.position);
        self.status.push(step.status.as_str());
        self.output.push(&step.output);
        self.error.push(step.error.as_deref());
        self.attempt.push(step.attempt);
        self.started_at.push(step.started_at);
        self.finished_at.push(step.finished_at);
    }
}

/// Attempts to end, one array per column.
#[derive(Default)]
struct FinishColumns<'a> {
    id: Vec<Uuid>,
    token: Vec<Uuid>,
    status: Vec<&'static str>,
    attempts_delta: Vec<i32>,
    run_after: Vec<Option<DateTime<Utc>>>,
    result: Vec<Option<&'a Value>>,
    error: Vec<Option<&'a str>>,
    at: Vec<DateTime<Utc>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> FinishColumns<'a> {
    fn push(&mut self, f: &'a Finish) {
        self.id.push(f.lease.job_id);
        self.token.push(f.lease.token);
        self.status.push(f.status.as_str());
        self.attempts_delta.push(f.attempts_delta);
        self.run_after.push(f.run_after);
        self.result.push(f.result.as_ref());
        self.error.push(f.error.as_deref());
        self.at.push(f.now);
        self.finished_at
            .push(f.status.is_terminal().then_some(f.now));
    }
}

/// The jobs that first used the (owner, key) pairs `taken`, with their requests' hashes.
async fn first_jobs(
    tx: &mut Transaction<'static, Postgres>,
    taken: Vec<(Uuid, &str)>,
) -> Result<Vec<plan::First>> {
    if taken.is_empty() {
        return Ok(Vec::new());
    }
    let (owners, keys): (Vec<Uuid>, Vec<&str>) = taken.into_iter().unzip();
    sqlx::query(FIRST_WITH_KEYS)
        .bind(&owners)
        .bind(&keys)
        .try_map(|row| decode::<_, FirstRow>(&row))
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error("admit_batch"))
}

#[async_trait]
impl JobStore for PgStore {
    async fn admit_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Result<Admission>>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let jobs: Vec<NewJob> = jobs.into_iter().map(as_stored).collect();
        let mut tx = self.pool().begin().await.map_err(db_error("admit_batch"))?;
        let mut offered = plan::offered(&jobs);
        let mut firsts = first_jobs(&mut tx, plan::offered_keys(&offered)).await?;
        plan::drop_taken(&mut offered, &firsts);
        let refused = self.hold_what_fits(&mut tx, &jobs, &mut offered).await?;
        let mut c = JobColumns::default();
        let mut h = HoldColumns::default();
        for new in offered {
            c.push(new);
            h.push(new);
        }
        let inserted: HashSet<Uuid> = sqlx::query_scalar(ADMIT)
            .bind(&c.id)
            .bind(&c.owner_id)
            .bind(&c.workflow)
            .bind(&c.input)
            .bind(&c.status)
            .bind(&c.attempts)
            .bind(&c.max_attempts)
            .bind(&c.run_after)
            .bind(&c.result)
            .bind(&c.error)
            .bind(&c.cancel_requested)
            .bind(&c.idempotency_key)
            .bind(&c.request_hash)
            .bind(&c.created_at)
            .bind(&c.updated_at)
            .bind(&c.started_at)
            .bind(&c.finished_at)
            .bind(&h.job_id)
            .bind(&h.user_id)
            .bind(&h.credits)
            .bind(&h.quote)
            .bind(&h.expires_at)
            .bind(&h.entry_id)
            .bind(&h.key)
            .bind(&h.created_at)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error("admit_batch"))?
            .into_iter()
            .collect();
        firsts.extend(first_jobs(&mut tx, plan::keys_taken(&jobs, &inserted, &firsts)).await?);
        tx.commit().await.map_err(db_error("admit_batch"))?;
        Ok(plan::admissions(jobs, &inserted, &firsts, &refused))
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<ClaimedJob>> {
        let jobs: Vec<Job> = sqlx::query(CLAIM)
            .bind(claim.token)
            .bind(claim.worker.as_str())
            .bind(claim.lease_until)
            .bind(claim.now)
            .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX))
            .try_map(|row| decode::<_, JobRow>(&row))
            .fetch_all(self.pool())
            .await
            .map_err(db_error("claim_due"))?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        // The claim holds these jobs now, so nobody else writes their steps: no transaction needed.
        // A job first started by this claim has no checkpoints to load.
        let ids: Vec<Uuid> = jobs
            .iter()
            .filter(|j| j.started_at != Some(claim.now))
            .map(|j| j.id)
            .collect();
        if ids.is_empty() {
            return Ok(claimed(jobs, Vec::new()));
        }
        let steps = sqlx::query(STEPS_OF)
            .bind(&ids)
            .try_map(|row| decode::<_, StepRow>(&row))
            .fetch_all(self.pool())
            .await
            .map_err(db_error("claim_due"))?;
        Ok(claimed(jobs, steps))
    }

    async fn commit(&self, writes: &[Write]) -> Result<Vec<bool>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = plan::leases(writes)
            .into_iter()
            .map(|l| (l.job_id, l.token))
            .unzip();
        let mut tx = self.pool().begin().await.map_err(db_error("commit"))?;
        let held: HashSet<(Uuid, Uuid)> = sqlx::query_as(LOCK_HELD)
            .bind(&ids)
            .bind(&tokens)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error("commit"))?
            .into_iter()
            .collect();
        let plan = plan_commit(writes, held);
        if !plan.steps.is_empty() {
            let mut s = StepColumns::default();
            for (job_id, step) in &plan.steps {
                s.push(*job_id, step);
            }
            sqlx::query(UPSERT_STEPS)
                .bind(&s.job_id)
                .bind(&s.step_id)
                .bind(&s.position)
                .bind(&s.status)
                .bind(&s.output)
                .bind(&s.error)
                .bind(&s.attempt)
                .bind(&s.started_at)
                .bind(&s.finished_at)
                .execute(&mut *tx)
                .await
                .map_err(db_error("commit"))?;
        }
        if !plan.finishes.is_empty() {
            let mut f = FinishColumns::default();
            for finish in &plan.finishes {
                f.push(finish);
            }
            sqlx::query(FINISH)
                .bind(&f.id)
                .bind(&f.token)
                .bind(&f.status)
                .bind(&f.attempts_delta)
                .bind(&f.run_after)
                .bind(&f.result)
                .bind(&f.error)
                .bind(&f.at)
                .bind(&f.finished_at)
                .execute(&mut *tx)
                .await
                .map_err(db_error("commit"))?;
        }
        if !plan.messages.is_empty() {
            crate::outbox_sql::insert_messages::<sqlx::Postgres>(&mut *tx, &plan.messages).await?;
        }
        tx.commit().await.map_err(db_error("commit"))?;
        Ok(plan.applied)
    }

    async fn extend_leases(&self, leases: &[Lease], until: DateTime<Utc>) -> Result<Vec<Uuid>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) =
            leases.iter().map(|l| (l.job_id, l.token)).unzip();
        let extended: Vec<(Uuid, Uuid, bool)> = sqlx::query_as(EXTEND)
            .bind(&ids)
            .bind(&tokens)
            .bind(until)
            .fetch_all(self.pool())
            .await
            .map_err(db_error("extend_leases"))?;
        Ok(plan::cancel_requested(leases, extended))
    }

    async fn reap_expired(&self, now: DateTime<Utc>) -> Result<Reaped> {
        self.reap_expired(REAP, now).await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        self.get_job(id).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.list_jobs(filter).await
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Job>> {
        let changed = sqlx::query(CANCEL)
            .bind(id)
            .bind(now)
            .try_map(|row| decode::<_, JobRow>(&row))
            .fetch_optional(self.pool())
            .await
            .map_err(db_error("cancel_job"))?;
        match changed {
            Some(job) => Ok(Some(job)),
            None => self.get_job(id).await,
        }
    }

    async fn approve_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<(Job, bool)>> {
        let done = sqlx::query(
            "WITH approved AS (UPDATE jobs SET status = 'queued', updated_at = $2 \
             WHERE id = $1 AND status = 'awaiting_approval' RETURNING run_after, id) \
             INSERT INTO job_queue (run_after, id) SELECT run_after, id FROM approved",
        )
        .bind(id)
        .bind(Timestamp(now))
        .execute(self.pool())
        .await
        .map_err(db_error("approve_job"))?;
        let approved = done.rows_affected() == 1;
        Ok(self.get_job(id).await?.map(|job| (job, approved)))
    }

    async fn list_steps(&self, job_id: Uuid) -> Result<Vec<StepRecord>> {
        self.list_steps(job_id).await
    }

    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_queue WHERE run_after <= $1")
            .bind(now)
            .fetch_one(&self.read)
            .await
            .map_err(db_error("queue_depth"))?;
        Ok(n as u64)
    }

    /// Running jobs are counted by their leases, a table of at most one row per worker.
    async fn count_jobs(&self, status: JobStatus) -> Result<u64> {
        if status != JobStatus::Running {
            return self.count_jobs(status).await;
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_leases")
            .fetch_one(&self.read)
            .await
            .map_err(db_error("count_jobs"))?;
        Ok(n as u64)
    }

    async fn erase_jobs(&self, owner_id: Uuid) -> Result<u64> {
        self.erase_jobs(owner_id).await
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        self.ping().await
    }

    async fn close(&self) {
        self.close().await
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn write_parallelism(&self) -> usize {
        4
    }
}
