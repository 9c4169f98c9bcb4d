//! The SQLite backend: one database file served to one process. SQLite lets one connection write
//! at a time, so every write goes through a pool of exactly one connection (waiting in the pool
//! is cheaper than retrying `SQLITE_BUSY`), and a write of several statements runs in a
//! `BEGIN IMMEDIATE` transaction that takes the write lock up front. Reads use a small pool of
//! read-only connections that WAL lets run alongside the writer.
//!
//! Each statement costs a round trip to the connection's thread, so a batch is a few set-based
//! statements, as on PostgreSQL. SQLite has no array parameters: a JSON array bound once and
//! expanded with `jsonb_each` plays the part of `UNNEST` (see [`rows`]). This needs SQLite 3.45
//! or later (`jsonb_each`, `unhex`, `RETURNING`, `UPDATE … FROM`); sqlx bundles a newer one.

use crate::error::{db_error, migrate_error, setup_error};
use crate::jobs_sql::{
    FirstRow, JobRow, StepRow, as_stored, claimed, job_columns, reap_assignments, step_columns,
};
use crate::plan::{self, plan_commit};
use crate::sql::{SqlStore, decode};
use crate::types::Timestamp;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use levqor_core::jobs::store::{Claim, ClaimedJob, JobFilter, Lease, NewJob, Reaped, Write};
use levqor_core::{Admission, Job, JobStatus, JobStore, Result, StepRecord, Store};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::collections::HashMap;
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Read connections next to the one writer.
const READERS: u32 = 4;

/// (In `INSERT … SELECT … ON CONFLICT`, SQLite needs a `WHERE` before `ON CONFLICT` so as not to
/// read it as a join constraint: hence `WHERE TRUE`.)
///
/// Admission's writes are one call of four statements (one hand-off to the connection's thread,
/// which commits too): the jobs ($1), their holds ($2) with their `hold` entries, and what each
/// owner's held total grows by ($3). The caller read and checked those totals first, and looked
/// the jobs' keys up: under the write lock nothing else inserts, so a key taken can only be a
/// bug, and it fails the insert (no `ON CONFLICT`) rather than leave a hold without its job.
/// Every job offered is inserted, or none.
const ADMIT: &str = "INSERT INTO jobs (id, owner_id, workflow, input, status, attempts, max_attempts, \
     run_after, result, error, cancel_requested, idempotency_key, request_hash, created_at, updated_at, \
     started_at, finished_at) \
     SELECT unhex(value ->> 'id'), unhex(value ->> 'owner_id'), value ->> 'workflow', value ->> 'input', \
     value ->> 'status', value ->> 'attempts', value ->> 'max_attempts', value ->> 'run_after', \
     value ->> 'result', value ->> 'error', value ->> 'cancel_requested', value ->> 'idempotency_key', \
     value ->> 'request_hash', value ->> 'created_at', value ->> 'updated_at', value ->> 'started_at', \
     value ->> 'finished_at' \
     FROM jsonb_each($1) \
     RETURNING id; \
     INSERT INTO credit_holds (job_id, user_id, credits, quote, expires_at, open) \
     SELECT unhex(value ->> 'job_id'), unhex(value ->> 'user_id'), value ->> 'credits', value ->> 'quote', \
     value ->> 'expires_at', TRUE \
     FROM jsonb_each($2); \
     INSERT INTO credit_entries (id, user_id, kind, credits, held, job_id, idempotency_key, reason, \
     priority, expires_at, created_at) \
     SELECT unhex(value ->> 'entry_id'), unhex(value ->> 'user_id'), 'hold', 0, value ->> 'credits', \
     unhex(value ->> 'job_id'), value ->> 'key', NULL, 0, NULL, value ->> 'created_at' \
     FROM jsonb_each($2); \
     UPDATE credit_accounts SET held = held + (value ->> 'credits') FROM jsonb_each($3) \
     WHERE credit_accounts.user_id = unhex(value ->> 'user_id')";

/// `idempotency_key IS NOT NULL` lets the planner use the partial unique index.
const FIRST_WITH_KEYS: &str = concat!(
    "SELECT request_hash, ",
    job_columns!(),
    " FROM jobs WHERE idempotency_key IS NOT NULL AND (owner_id, idempotency_key) IN ",
    "(SELECT unhex(value ->> 'owner_id'), value ->> 'key' FROM jsonb_each($1))"
);

const CLAIM: &str = concat!(
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_token = $1, lease_owner = $2, ",
    "lease_expires_at = $3, started_at = COALESCE(started_at, $4), updated_at = $4 ",
    "WHERE id IN (SELECT id FROM jobs WHERE status IN ('queued', 'failed') AND run_after <= $4 ",
    "ORDER BY run_after, id LIMIT $5) ",
    "RETURNING ",
    job_columns!()
);

/// The steps of the jobs a claim took (found through the small index of running jobs).
const CLAIMED_STEPS: &str = concat!(
    "SELECT ",
    step_columns!(),
    " FROM job_steps WHERE job_id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_token = $1) ",
    "ORDER BY job_id, position"
);

const HELD: &str = "SELECT id, lease_token FROM jobs WHERE status = 'running' AND (id, lease_token) IN \
     (SELECT unhex(value ->> 'id'), unhex(value ->> 'token') FROM jsonb_each($1))";

const UPSERT_STEPS: &str = concat!(
    "INSERT INTO job_steps (",
    step_columns!(),
    ") SELECT unhex(value ->> 'job_id'), value ->> 'step_id', value ->> 'position', value ->> 'status', ",
    "value ->> 'output', value ->> 'error', value ->> 'attempt', value ->> 'started_at', value ->> 'finished_at' ",
    "FROM jsonb_each($1) WHERE TRUE ",
    "ON CONFLICT (job_id, step_id) DO UPDATE SET position = excluded.position, status = excluded.status, ",
    "output = excluded.output, error = excluded.error, attempt = excluded.attempt, ",
    "started_at = excluded.started_at, finished_at = excluded.finished_at"
);

const FINISH: &str = "UPDATE jobs SET status = f.status, attempts = jobs.attempts + f.attempts_delta, \
     run_after = COALESCE(f.run_after, jobs.run_after), result = COALESCE(f.result, jobs.result), \
     error = f.error, updated_at = f.at, finished_at = COALESCE(f.finished_at, jobs.finished_at), \
     lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL \
     FROM (SELECT unhex(value ->> 'id') AS id, unhex(value ->> 'token') AS token, value ->> 'status' AS status, \
     value ->> 'attempts_delta' AS attempts_delta, value ->> 'run_after' AS run_after, \
     value ->> 'result' AS result, value ->> 'error' AS error, value ->> 'at' AS at, \
     value ->> 'finished_at' AS finished_at FROM jsonb_each($1)) AS f \
     WHERE jobs.id = f.id AND jobs.lease_token = f.token AND jobs.status = 'running'";

const EXTEND: &str = "UPDATE jobs SET lease_expires_at = $2 \
     FROM (SELECT unhex(value ->> 'id') AS id, unhex(value ->> 'token') AS token FROM jsonb_each($1)) AS l \
     WHERE jobs.id = l.id AND jobs.lease_token = l.token AND jobs.status = 'running' \
     RETURNING id, lease_token, cancel_requested";

const REAP: &str = concat!(
    "UPDATE jobs SET lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, ",
    reap_assignments!(),
    " WHERE status = 'running' AND lease_expires_at < $1 RETURNING status"
);

/// Levqor's store on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens (creating the file if missing) and migrates the database at `url`: `sqlite:path`,
    /// `sqlite://path`, or `sqlite::memory:` for a private in-memory database that lives as long
    /// as the store.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = options(url)?;
        if is_in_memory(url) {
            // An in-memory database lives as long as its last connection: keep one, forever.
            let pool = pool_options(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .map_err(setup_error("connect"))?;
            MIGRATOR.run(&pool).await.map_err(migrate_error)?;
            return Ok(SqlStore {
                read: pool.clone(),
                write: pool,
                side_tables: &[],
                row_lock: "",
            });
        }
        let write = open_writer(options.clone()).await?;
        MIGRATOR.run(&write).await.map_err(migrate_error)?;
        let read = pool_options(READERS)
            .connect_with(options.read_only(true))
            .await
            .map_err(setup_error("connect"))?;
        Ok(SqlStore {
            read,
            write,
            side_tables: &[],
            row_lock: "",
        })
    }

    /// Creates the database file if missing and brings its schema up to date.
    pub async fn migrate(url: &str) -> Result<()> {
        let write = open_writer(options(url)?).await?;
        let migrated = MIGRATOR.run(&write).await.map_err(migrate_error);
        write.close().await;
        migrated
    }

    /// Closes every connection; later calls fail as `unavailable`.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    async fn begin(&self, operation: &'static str) -> Result<Transaction<'static, Sqlite>> {
        self.write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error(operation))
    }
}

fn options(url: &str) -> Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(setup_error("connect"))?
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        // Deleted rows are overwritten, so an erased user's data does not linger in free pages.
        .pragma("secure_delete", "ON"))
}

/// A pool of at most `max` connections. An embedded connection has no far end to lose, so the
/// pool does not ping it before each use: that would cost a round trip to its thread per
/// operation (a dead connection thread still fails the operation itself).
fn pool_options(max: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max)
        .test_before_acquire(false)
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

async fn open_writer(options: SqliteConnectOptions) -> Result<SqlitePool> {
    pool_options(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal),
        )
        .await
        .map_err(setup_error("connect"))
}

/// The rows of a batch as `jsonb_each` reads them: objects whose fields the statements above
/// name. Ids travel as 32 hex digits (`unhex` turns them back into blobs), instants as
/// microseconds since the epoch, and JSON documents as strings holding their text: SQLite
/// stores a string as it comes, where an inline document would be parsed and printed again,
/// and a missing document (SQL NULL) stays apart from a JSON `null`.
mod rows {
    use levqor_core::jobs::store::{self, NewJob};
    use levqor_core::{Error, Result, StepRecord};
    use serde::Serialize;
    use serde_json::Value;
    use uuid::Uuid;
    use uuid::fmt::Simple;

    /// The JSON array of `rows`.
    pub fn json<T: Serialize>(rows: impl Iterator<Item = T>) -> Result<String> {
        serde_json::to_string(&rows.collect::<Vec<T>>()).map_err(|e| {
            tracing::error!(error = %e, "a batch could not be encoded");
            Error::internal("a batch could not be encoded")
        })
    }

    #[derive(Serialize)]
    pub struct Job<'a> {
        id: Simple,
        owner_id: Simple,
        workflow: String,
        input: String,
        status: &'static str,
        attempts: i32,
        max_attempts: i32,
        run_after: i64,
        result: Option<String>,
        error: Option<&'a str>,
        cancel_requested: bool,
        idempotency_key: Option<&'a str>,
        request_hash: &'a str,
        created_at: i64,
        updated_at: i64,
        started_at: Option<i64>,
        finished_at: Option<i64>,
    }

    impl<'a> From<&'a NewJob> for Job<'a> {
        fn from(new: &'a NewJob) -> Self {
            let job = &new.job;
            Job {
                id: job.id.simple(),
                owner_id: job.owner_id.simple(),
                workflow: job.workflow.to_string(),
                input: job.input.to_string(),
                status: job.status.as_str(),
                attempts: job.attempts,
                max_attempts: job.max_attempts,
                run_after: job.run_after.timestamp_micros(),
                result: job.result.as_ref().map(Value::to_string),
                error: job.error.as_deref(),
                cancel_requested: job.cancel_requested,
                idempotency_key: job.idempotency_key.as_deref(),
                request_hash: &new.request_hash,
                created_at: job.created_at.timestamp_micros(),
                updated_at: job.updated_at.timestamp_micros(),
                started_at: job.started_at.map(|t| t.timestamp_micros()),
                finished_at: job.finished_at.map(|t| t.timestamp_micros()),
            }
        }
    }

    /// The hold of an admitted job, with its `hold` entry.
    #[derive(Serialize)]
    pub struct Hold {
        job_id: Simple,
        user_id: Simple,
        credits: i64,
        quote: String,
        expires_at: i64,
        entry_id: Simple,
        key: String,
        created_at: i64,
    }

    impl Hold {
        /// The hold `new` asks for, if any.
        pub fn of(new: &NewJob) -> Option<Self> {
            let hold = new.hold.as_ref()?;
            let job = &new.job;
            Some(Hold {
                job_id: job.id.simple(),
                user_id: job.owner_id.simple(),
                credits: hold.credits,
                quote: hold.quote.to_string(),
                expires_at: hold.expires_at.timestamp_micros(),
                entry_id: Uuid::now_v7().simple(),
                key: levqor_core::credits::hold_key(job.id),
                created_at: job.created_at.timestamp_micros(),
            })
        }
    }

    /// What an owner's held total grows by.
    #[derive(Serialize)]
    pub struct Held {
        user_id: Simple,
        credits: i64,
    }

    impl Held {
        pub fn new(user_id: Uuid, credits: i64) -> Self {
            Held {
                user_id: user_id.simple(),
                credits,
            }
        }
    }

    /// An owner's idempotency key.
    #[derive(Serialize)]
    pub struct Key<'a> {
        owner_id: Simple,
        key: &'a str,
    }

    impl<'a> Key<'a> {
        pub fn new(owner_id: Uuid, key: &'a str) -> Self {
            Key {
                owner_id: owner_id.simple(),
                key,
            }
        }
    }

    #[derive(Serialize)]
    pub struct Lease {
        id: Simple,
        token: Simple,
    }

    impl From<&store::Lease> for Lease {
        fn from(lease: &store::Lease) -> Self {
            Lease {
                id: lease.job_id.simple(),
                token: lease.token.simple(),
            }
        }
    }

    #[derive(Serialize)]
    pub struct Step<'a> {
        job_id: Simple,
        step_id: &'a str,
        position: i32,
        status: &'static str,
        output: String,
        error: Option<&'a str>,
        attempt: i32,
        started_at: i64,
        finished_at: i64,
    }

    impl<'a> Step<'a> {
        /// `step`, recorded under `job_id`.
        pub fn new(job_id: Uuid, step: &'a StepRecord) -> Self {
            Step {
                job_id: job_id.simple(),
                step_id: &step.step_id,
                position: step.position,
                status: step.status.as_str(),
                output: step.output.to_string(),
                error: step.error.as_deref(),
                attempt: step.attempt,
                started_at: step.started_at.timestamp_micros(),
                finished_at: step.finished_at.timestamp_micros(),
            }
        }
    }

    #[derive(Serialize)]
    pub struct Finish<'a> {
        id: Simple,
        token: Simple,
        status: &'static str,
        attempts_delta: i32,
        run_after: Option<i64>,
        result: Option<String>,
        error: Option<&'a str>,
        at: i64,
        finished_at: Option<i64>,
    }

    impl<'a> From<&'a store::Finish> for Finish<'a> {
        fn from(f: &'a store::Finish) -> Self {
            Finish {
                id: f.lease.job_id.simple(),
                token: f.lease.token.simple(),
                status: f.status.as_str(),
                attempts_delta: f.attempts_delta,
                run_after: f.run_after.map(|t| t.timestamp_micros()),
                result: f.result.as_ref().map(Value::to_string),
                error: f.error.as_deref(),
                at: f.now.timestamp_micros(),
                finished_at: f.status.is_terminal().then(|| f.now.timestamp_micros()),
            }
        }
    }
}

/// A write transaction that takes as few trips to the writer connection's thread as it has
/// statements: `BEGIN IMMEDIATE` travels with its first statement and `COMMIT` with its last.
/// (sqlx's `Transaction` sends each on a trip of its own, and the thread then waits until the
/// answer is taken: two of the four trips of an admission batch, where the machine is busiest.)
/// Dropped before it commits (a failed statement, a cancelled call), it rolls back before its
/// connection goes back to the pool; a connection left in a transaction it cannot end is closed.
struct CompactTx {
    conn: Option<PoolConnection<Sqlite>>,
    begun: bool,
    committed: bool,
}

impl CompactTx {
    async fn acquire(pool: &SqlitePool, operation: &'static str) -> Result<Self> {
        let conn = pool.acquire().await.map_err(db_error(operation))?;
        Ok(CompactTx {
            conn: Some(conn),
            begun: false,
            committed: false,
        })
    }

    fn conn(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_deref_mut()
            .expect("the connection is held until the transaction is dropped")
    }

    /// What the next statement sent must start with: `BEGIN IMMEDIATE` the first time.
    fn begin(&mut self) -> &'static str {
        if std::mem::replace(&mut self.begun, true) {
            ""
        } else {
            "BEGIN IMMEDIATE; "
        }
    }

    /// `sql` as the transaction's last statements: `COMMIT` follows them in the same trip. Call
    /// [`Self::committed`] once they have run.
    fn last(&mut self, sql: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(format!("{}{sql}; COMMIT", self.begin()))
    }

    fn committed(&mut self) {
        self.committed = true;
    }
}

impl Drop for CompactTx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !self.begun || self.committed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Closing a connection rolls its transaction back.
            conn.close_on_drop();
            return;
        };
        runtime.spawn(async move {
            // `ROLLBACK` fails when there is nothing to roll back (`BEGIN` failed, or the
            // statements committed before the call was cancelled); an empty deferred
            // transaction then tells whether the connection is out of its transaction.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            if let Err(error) = sqlx::raw_sql("BEGIN DEFERRED; COMMIT")
                .execute(&mut *conn)
                .await
            {
                tracing::error!(%error, "a write transaction could not be ended: closing its connection");
                conn.close_on_drop();
            }
        });
    }
}

/// The jobs that first used the (owner, key) pairs `taken`, with their requests' hashes;
/// `before` (statements of the same transaction) is sent ahead in the same call.
async fn first_jobs(
    conn: &mut SqliteConnection,
    before: &str,
    taken: Vec<(Uuid, &str)>,
) -> Result<Vec<plan::First>> {
    if taken.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query(AssertSqlSafe(format!("{before}{FIRST_WITH_KEYS}")))
        .bind(rows::json(
            taken
                .into_iter()
                .map(|(owner, key)| rows::Key::new(owner, key)),
        )?)
        .try_map(|row| decode::<_, FirstRow>(&row))
        .fetch_all(conn)
        .await
        .map_err(db_error("admit_batch"))
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn admit_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Result<Admission>>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let jobs: Vec<NewJob> = jobs.into_iter().map(as_stored).collect();
        // Two trips when no job names a key: lock the owners' accounts, then admit and commit.
        let mut tx = CompactTx::acquire(&self.write, "admit_batch").await?;
        let mut offered = plan::offered(&jobs);
        let keys = plan::offered_keys(&offered);
        let mut firsts = if keys.is_empty() {
            Vec::new()
        } else {
            let before = tx.begin();
            first_jobs(tx.conn(), before, keys).await?
        };
        plan::drop_taken(&mut offered, &firsts);
        let owners = plan::hold_owners(&offered);
        let accounts = if owners.is_empty() {
            HashMap::new()
        } else {
            let before = tx.begin();
            self.lock_accounts_after(before, tx.conn(), &owners).await?
        };
        let refused = plan::take_refused(&jobs, &mut offered, &accounts);
        let admit = tx.last(ADMIT);
        let inserted: HashSet<Uuid> = sqlx::query_scalar(admit)
            .bind(rows::json(offered.iter().map(|n| rows::Job::from(*n)))?)
            .bind(rows::json(
                offered.iter().filter_map(|n| rows::Hold::of(n)),
            )?)
            .bind(rows::json(
                plan::held_per_owner(&offered)
                    .into_iter()
                    .map(|(owner, credits)| rows::Held::new(owner, credits)),
            )?)
            .fetch_all(tx.conn())
            .await
            .map_err(db_error("admit_batch"))?
            .into_iter()
            .collect();
        tx.committed();
        // Jobs of the batch that repeat a key it inserted: their first jobs are committed now,
        // and nothing else has written, the connection being still held.
        let taken = plan::keys_taken(&jobs, &inserted, &firsts);
        firsts.extend(first_jobs(tx.conn(), "", taken).await?);
        Ok(plan::admissions(jobs, &inserted, &firsts, &refused))
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<ClaimedJob>> {
        let mut tx = self.begin("claim_due").await?;
        let jobs: Vec<Job> = sqlx::query(CLAIM)
            .bind(claim.token)
            .bind(claim.worker.as_str())
            .bind(Timestamp(claim.lease_until))
            .bind(Timestamp(claim.now))
            .bind(i64::try_from(claim.limit).unwrap_or(i64::MAX))
            .try_map(|row| decode::<_, JobRow>(&row))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error("claim_due"))?;
        // A job first started by this claim has no checkpoints to load.
        let steps: Vec<StepRecord> = if jobs.iter().all(|j| j.started_at == Some(claim.now)) {
            Vec::new()
        } else {
            sqlx::query(CLAIMED_STEPS)
                .bind(claim.token)
                .try_map(|row| decode::<_, StepRow>(&row))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error("claim_due"))?
        };
        tx.commit().await.map_err(db_error("claim_due"))?;
        Ok(claimed(jobs, steps))
    }

    async fn commit(&self, writes: &[Write]) -> Result<Vec<bool>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let leases = rows::json(plan::leases(writes).iter().map(rows::Lease::from))?;
        let mut tx = self.begin("commit").await?;
        let held: HashSet<(Uuid, Uuid)> = sqlx::query_as(HELD)
            .bind(leases)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error("commit"))?
            .into_iter()
            .collect();
        let plan = plan_commit(writes, held);
        if !plan.steps.is_empty() {
            sqlx::query(UPSERT_STEPS)
                .bind(rows::json(
                    plan.steps
                        .iter()
                        .map(|(job_id, step)| rows::Step::new(*job_id, step)),
                )?)
                .execute(&mut *tx)
                .await
                .map_err(db_error("commit"))?;
        }
        if !plan.finishes.is_empty() {
            sqlx::query(FINISH)
                .bind(rows::json(
                    plan.finishes.iter().copied().map(rows::Finish::from),
                )?)
                .execute(&mut *tx)
                .await
                .map_err(db_error("commit"))?;
        }
        if !plan.messages.is_empty() {
            crate::outbox_sql::insert_messages::<sqlx::Sqlite>(&mut *tx, &plan.messages).await?;
        }
        tx.commit().await.map_err(db_error("commit"))?;
        Ok(plan.applied)
    }

    async fn extend_leases(&self, leases: &[Lease], until: DateTime<Utc>) -> Result<Vec<Uuid>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let extended: Vec<(Uuid, Uuid, bool)> = sqlx::query_as(EXTEND)
            .bind(rows::json(leases.iter().map(rows::Lease::from))?)
            .bind(Timestamp(until))
            .fetch_all(&self.write)
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
        self.cancel_job(id, now).await
    }

    async fn approve_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<(Job, bool)>> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', updated_at = $2 \
             WHERE id = $1 AND status = 'awaiting_approval'",
        )
        .bind(id)
        .bind(Timestamp(now))
        .execute(&self.write)
        .await
        .map_err(db_error("approve_job"))?;
        let approved = done.rows_affected() == 1;
        Ok(self.get_job(id).await?.map(|job| (job, approved)))
    }

    async fn list_steps(&self, job_id: Uuid) -> Result<Vec<StepRecord>> {
        self.list_steps(job_id).await
    }

    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<u64> {
        self.queue_depth(now).await
    }

    async fn count_jobs(&self, status: JobStatus) -> Result<u64> {
        self.count_jobs(status).await
    }

    async fn erase_jobs(&self, owner_id: Uuid) -> Result<u64> {
        self.erase_jobs(owner_id).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.ping().await
    }

    async fn close(&self) {
        self.close().await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
