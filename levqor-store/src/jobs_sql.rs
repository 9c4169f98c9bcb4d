//! The job queries both backends share (reads, cancel, reap, counts, erasure) and the job and
//! step rows. The hot paths (admit, claim, commit, heartbeats) are each backend's own.

use crate::error::db_error;
use crate::plan::First;
use crate::sql::{Affected, SqlStore, Stored, decode, limit, parsed};
use crate::types::{Timestamp, micros};
use chrono::{DateTime, Utc};
use levqor_core::jobs::store::{ClaimedJob, JobFilter, NewJob, Reaped};
use levqor_core::{Job, JobStatus, Result, StepRecord, StepStatus};
use serde_json::Value;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use std::collections::HashMap;
use uuid::Uuid;

/// The columns of a [`JobRow`].
macro_rules! job_columns {
    () => {
        "id, owner_id, workflow, input, status, attempts, max_attempts, run_after, result, error, \
         cancel_requested, idempotency_key, created_at, updated_at, started_at, finished_at"
    };
}

/// The columns of a [`StepRow`].
macro_rules! step_columns {
    () => {
        "job_id, step_id, position, status, output, error, attempt, started_at, finished_at"
    };
}

/// What an expired lease does to its job: back to `failed` for an attempt at once, or `dead`
/// when none is left. `$1` is now, `$2` the error to record. (Where the lease itself is kept, and
/// so how it is released, is each backend's own.)
macro_rules! reap_assignments {
    () => {
        "updated_at = $1, error = $2, \
         status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'failed' END, \
         finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE finished_at END, \
         run_after = CASE WHEN attempts >= max_attempts THEN run_after ELSE $1 END"
    };
}

/// What cancel does to a job that is not terminal: a running one gets `cancel_requested` (its
/// worker stops at the next step boundary), any other becomes `canceled`. `$1` is the job, `$2`
/// now.
macro_rules! cancel_update {
    () => {
        "UPDATE jobs SET \
         cancel_requested = CASE WHEN status = 'running' THEN TRUE ELSE cancel_requested END, \
         finished_at = CASE WHEN status = 'running' THEN finished_at ELSE $2 END, \
         status = CASE WHEN status = 'running' THEN status ELSE 'canceled' END, \
         updated_at = $2 \
         WHERE id = $1 AND status NOT IN ('succeeded', 'dead', 'canceled') "
    };
}

pub(crate) use {cancel_update, job_columns, reap_assignments, step_columns};

/// The error recorded on a job whose lease expired.
const LEASE_EXPIRED: &str = "the worker running this job was lost (lease expired)";

/// A row selected with [`job_columns!`].
#[derive(FromRow)]
pub(crate) struct JobRow {
    id: Uuid,
    owner_id: Uuid,
    workflow: Value,
    input: Value,
    status: String,
    attempts: i32,
    max_attempts: i32,
    run_after: Timestamp,
    result: Option<Value>,
    error: Option<String>,
    cancel_requested: bool,
    idempotency_key: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
}

impl Stored for JobRow {
    type Value = Job;

    fn into_value(self) -> Result<Job, sqlx::Error> {
        Ok(Job {
            id: self.id,
            owner_id: self.owner_id,
            workflow: self.workflow,
            input: self.input,
            status: parsed("job status", &self.status, JobStatus::parse)?,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            run_after: self.run_after.0,
            result: self.result,
            error: self.error,
            cancel_requested: self.cancel_requested,
            idempotency_key: self.idempotency_key,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
            started_at: self.started_at.map(|t| t.0),
            finished_at: self.finished_at.map(|t| t.0),
        })
    }
}

/// A row selected with `request_hash` and [`job_columns!`]: the first job of an idempotency key.
#[derive(FromRow)]
pub(crate) struct FirstRow {
    request_hash: String,
    #[sqlx(flatten)]
    job: JobRow,
}

impl Stored for FirstRow {
    type Value = First;

    fn into_value(self) -> Result<First, sqlx::Error> {
        Ok(First {
            job: self.job.into_value()?,
            request_hash: self.request_hash,
        })
    }
}

/// A row selected with [`step_columns!`].
#[derive(FromRow)]
pub(crate) struct StepRow {
    job_id: Uuid,
    step_id: String,
    position: i32,
    status: String,
    output: Value,
    error: Option<String>,
    attempt: i32,
    started_at: Timestamp,
    finished_at: Timestamp,
}

impl Stored for StepRow {
    type Value = StepRecord;

    fn into_value(self) -> Result<StepRecord, sqlx::Error> {
        Ok(StepRecord {
            job_id: self.job_id,
            step_id: self.step_id,
            position: self.position,
            status: parsed("step status", &self.status, StepStatus::parse)?,
            output: self.output,
            error: self.error,
            attempt: self.attempt,
            started_at: self.started_at.0,
            finished_at: self.finished_at.0,
        })
    }
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    DB::QueryResult: Affected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> JobRow: FromRow<'r, DB::Row>,
    for<'r> StepRow: FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
{
    /// `SELECT 1`.
    pub(crate) async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(db_error("ping"))?;
        Ok(())
    }

    pub(crate) async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id)
        .try_map(|row| decode::<_, JobRow>(&row))
        .fetch_optional(&self.read)
        .await
        .map_err(db_error("get_job"))
    }

    pub(crate) async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut q =
            QueryBuilder::<DB>::new(concat!("SELECT ", job_columns!(), " FROM jobs WHERE TRUE"));
        if let Some(owner) = filter.owner_id {
            q.push(" AND owner_id = ").push_bind(owner);
        }
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(before) = filter.before {
            q.push(" AND id < ").push_bind(before);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit(filter.limit));
        q.build()
            .try_map(|row| decode::<_, JobRow>(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_jobs"))
    }

    pub(crate) async fn list_steps(&self, job_id: Uuid) -> Result<Vec<StepRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            step_columns!(),
            " FROM job_steps WHERE job_id = $1 ORDER BY position, step_id"
        ))
        .bind(job_id)
        .try_map(|row| decode::<_, StepRow>(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("list_steps"))
    }

    /// A job not yet running becomes `canceled`; a running one gets `cancel_requested` (its
    /// worker stops at the next step boundary); a terminal one is returned unchanged.
    pub(crate) async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Job>> {
        let changed = sqlx::query(concat!(cancel_update!(), "RETURNING ", job_columns!()))
            .bind(id)
            .bind(Timestamp(now))
            .try_map(|row| decode::<_, JobRow>(&row))
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("cancel_job"))?;
        match changed {
            Some(job) => Ok(Some(job)),
            None => self.get_job(id).await,
        }
    }

    /// Runs `sql`, an UPDATE that applies [`reap_assignments!`] to the expired leases it selects
    /// and returns their new `status`, and counts the outcomes.
    pub(crate) async fn reap_expired(
        &self,
        sql: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Reaped> {
        let statuses: Vec<String> = sqlx::query_scalar(sql)
            .bind(Timestamp(now))
            .bind(LEASE_EXPIRED)
            .fetch_all(&self.write)
            .await
            .map_err(db_error("reap_expired"))?;
        let dead = statuses
            .iter()
            .filter(|s| *s == JobStatus::Dead.as_str())
            .count() as u64;
        Ok(Reaped {
            retried: statuses.len() as u64 - dead,
            dead,
        })
    }

    pub(crate) async fn queue_depth(&self, now: DateTime<Utc>) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'failed') AND run_after <= $1",
        )
        .bind(Timestamp(now))
        .fetch_one(&self.read)
        .await
        .map_err(db_error("queue_depth"))?;
        Ok(n as u64)
    }

    pub(crate) async fn count_jobs(&self, status: JobStatus) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = $1")
            .bind(status.as_str())
            .fetch_one(&self.read)
            .await
            .map_err(db_error("count_jobs"))?;
        Ok(n as u64)
    }

    /// Deletes an owner's jobs with their steps and their rows in the backend's side tables
    /// (queue entries and leases), in one transaction.
    pub(crate) async fn erase_jobs(&self, owner: Uuid) -> Result<u64> {
        let op = "erase_jobs";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        sqlx::query(
            "DELETE FROM job_steps WHERE job_id IN (SELECT id FROM jobs WHERE owner_id = $1)",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(db_error(op))?;
        for table in self.side_tables {
            let sql = format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM jobs WHERE owner_id = $1)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .execute(&mut *tx)
                .await
                .map_err(db_error(op))?;
        }
        let n = sqlx::query("DELETE FROM jobs WHERE owner_id = $1")
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(db_error(op))?
            .rows();
        tx.commit().await.map_err(db_error(op))?;
        Ok(n)
    }
}

/// `new` with its job as it reads back once stored: instants truncated to the microsecond.
pub(crate) fn as_stored(new: NewJob) -> NewJob {
    let job = new.job;
    let job = Job {
        run_after: micros(job.run_after),
        created_at: micros(job.created_at),
        updated_at: micros(job.updated_at),
        started_at: job.started_at.map(micros),
        finished_at: job.finished_at.map(micros),
        ..job
    };
    NewJob { job, ..new }
}

/// Claimed jobs with their recorded steps, oldest `run_after` first (the order they were due).
pub(crate) fn claimed(mut jobs: Vec<Job>, steps: Vec<StepRecord>) -> Vec<ClaimedJob> {
    jobs.sort_by_key(|j| (j.run_after, j.id));
    let mut by_job: HashMap<Uuid, Vec<StepRecord>> = HashMap::new();
    for step in steps {
        by_job.entry(step.job_id).or_default().push(step);
    }
    jobs.into_iter()
        .map(|job| ClaimedJob {
            steps: by_job.remove(&job.id).unwrap_or_default(),
            job,
        })
        .collect()
}
