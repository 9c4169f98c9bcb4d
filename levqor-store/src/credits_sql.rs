//! The credit ledger on both backends. Every change locks the account row first (PostgreSQL:
//! `FOR UPDATE`; SQLite has one writer), so concurrent holds, settlements and grants on one
//! account run one after another, and the table's CHECKs back the rule that nothing leaves an
//! account with less than nothing available.

use crate::error::{db_error, is_unique_violation};
use crate::plan;
use crate::sql::{Affected, SqlStore, Stored, decode, limit, parsed};
use crate::types::{Timestamp, micros};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use levqor_core::Result;
use levqor_core::credits::{
    self, Account, Bucket, CreditStore, Entry, EntryKind, Hold, NewEntry, Posted,
};
use levqor_core::jobs::store::NewJob;
use serde_json::Value;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

const ENTRY_COLUMNS: &str = "id, user_id, kind, credits, held, job_id, idempotency_key, reason, \
                             priority, expires_at, created_at";

/// One row of an entry to insert.
fn new_entry(
    user_id: Uuid,
    kind: EntryKind,
    (credits, held): (i64, i64),
    job_id: Option<Uuid>,
    key: String,
    now: DateTime<Utc>,
) -> Entry {
    Entry {
        id: Uuid::now_v7(),
        user_id,
        kind,
        credits,
        held,
        job_id,
        idempotency_key: key,
        reason: None,
        priority: 0,
        expires_at: None,
        created_at: micros(now),
    }
}

/// A row of `credit_entries`.
#[derive(FromRow)]
pub(crate) struct EntryRow {
    id: Uuid,
    user_id: Uuid,
    kind: String,
    credits: i64,
    held: i64,
    job_id: Option<Uuid>,
    idempotency_key: String,
    reason: Option<String>,
    priority: i32,
    expires_at: Option<Timestamp>,
    created_at: Timestamp,
}

impl Stored for EntryRow {
    type Value = Entry;

    fn into_value(self) -> Result<Entry, sqlx::Error> {
        Ok(Entry {
            id: self.id,
            user_id: self.user_id,
            kind: parsed("entry kind", &self.kind, EntryKind::parse)?,
            credits: self.credits,
            held: self.held,
            job_id: self.job_id,
            idempotency_key: self.idempotency_key,
            reason: self.reason,
            priority: self.priority,
            expires_at: self.expires_at.map(|t| t.0),
            created_at: self.created_at.0,
        })
    }
}

/// A row of `credit_buckets` without its user.
#[derive(FromRow)]
pub(crate) struct BucketRow {
    id: Uuid,
    rank: i32,
    priority: i32,
    expires_at: Option<Timestamp>,
    remaining: i64,
}

impl Stored for BucketRow {
    type Value = Bucket;

    fn into_value(self) -> Result<Bucket, sqlx::Error> {
        Ok(Bucket {
            id: self.id,
            rank: u8::try_from(self.rank).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            priority: self.priority,
            expires_at: self.expires_at.map(|t| t.0),
            remaining: self.remaining,
        })
    }
}

/// A row of `credit_holds`.
#[derive(FromRow)]
pub(crate) struct HoldRow {
    job_id: Uuid,
    user_id: Uuid,
    credits: i64,
    quote: Value,
    expires_at: Timestamp,
}

impl Stored for HoldRow {
    type Value = Hold;

    fn into_value(self) -> Result<Hold, sqlx::Error> {
        Ok(Hold {
            job_id: self.job_id,
            user_id: self.user_id,
            credits: self.credits,
            quote: self.quote,
            expires_at: self.expires_at.0,
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
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> EntryRow: FromRow<'r, DB::Row>,
    for<'r> BucketRow: FromRow<'r, DB::Row>,
    for<'r> (Uuid, i64, i64): FromRow<'r, DB::Row>,
{
    /// The totals of `owners`' accounts, locked until the transaction ends; missing accounts
    /// are created empty so that they can be locked too.
    pub(crate) async fn lock_accounts(
        &self,
        conn: &mut DB::Connection,
        owners: &[Uuid],
    ) -> Result<HashMap<Uuid, Account>> {
        if owners.is_empty() {
            return Ok(HashMap::new());
        }
        self.lock_accounts_after("", conn, owners).await
    }

    /// [`Self::lock_accounts`] of one owner or more, with the statements `before` (of the same
    /// transaction) sent ahead of it in the same call.
    pub(crate) async fn lock_accounts_after(
        &self,
        before: &str,
        conn: &mut DB::Connection,
        owners: &[Uuid],
    ) -> Result<HashMap<Uuid, Account>> {
        let op = "lock_accounts";
        // One statement: a missing account is created empty, an existing one is "updated" to
        // itself, which locks its row (PostgreSQL) until the transaction ends; either way the
        // row comes back. Owners arrive sorted, so concurrent batches lock in one order.
        let mut q = QueryBuilder::<DB>::new(format!(
            "{before}INSERT INTO credit_accounts (user_id, balance, held) "
        ));
        q.push_values(owners, |mut b, o| {
            b.push_bind(*o).push_bind(0i64).push_bind(0i64);
        });
        q.push(
            " ON CONFLICT (user_id) DO UPDATE SET held = credit_accounts.held \
             RETURNING user_id, balance, held",
        );
        q.build_query_as::<(Uuid, i64, i64)>()
            .fetch_all(&mut *conn)
            .await
            .map(|rows| {
                rows.into_iter()
                    .map(|(user, balance, held)| (user, Account { balance, held }))
                    .collect()
            })
            .map_err(db_error(op))
    }

    /// Locks the accounts of the `offered` jobs' owners and takes out of `offered` the jobs
    /// whose holds do not fit, deciding in batch order; returns their ids.
    pub(crate) async fn hold_what_fits(
        &self,
        conn: &mut DB::Connection,
        jobs: &[NewJob],
        offered: &mut Vec<&NewJob>,
    ) -> Result<HashSet<Uuid>> {
        let accounts = self
            .lock_accounts(conn, &plan::hold_owners(offered))
            .await?;
        Ok(plan::take_refused(jobs, offered, &accounts))
    }

    async fn insert_entries(&self, conn: &mut DB::Connection, entries: &[Entry]) -> Result<()> {
        for chunk in entries.chunks(500) {
            let mut q =
                QueryBuilder::<DB>::new(format!("INSERT INTO credit_entries ({ENTRY_COLUMNS}) "));
            q.push_values(chunk, |mut b, e| {
                b.push_bind(e.id)
                    .push_bind(e.user_id)
                    .push_bind(e.kind.as_str().to_string())
                    .push_bind(e.credits)
                    .push_bind(e.held)
                    .push_bind(e.job_id)
                    .push_bind(e.idempotency_key.clone())
                    .push_bind(e.reason.clone())
                    .push_bind(e.priority)
                    .push_bind(e.expires_at.map(Timestamp))
                    .push_bind(Timestamp(e.created_at));
            });
            q.build()
                .execute(&mut *conn)
                .await
                .map_err(db_error("insert_entries"))?;
        }
        Ok(())
    }

    async fn move_account(
        &self,
        conn: &mut DB::Connection,
        user_id: Uuid,
        credits: i64,
        held: i64,
    ) -> Result<()> {
        // The account exists: every caller locked it first (`lock_accounts` creates it).
        sqlx::query(
            "UPDATE credit_accounts SET balance = balance + $2, held = held + $3 WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(credits)
        .bind(held)
        .execute(&mut *conn)
        .await
        .map_err(db_error("move_account"))?;
        Ok(())
    }

    /// The user's open buckets, locked.
    async fn open_buckets(&self, conn: &mut DB::Connection, user_id: Uuid) -> Result<Vec<Bucket>> {
        let sql = format!(
            "SELECT id, rank, priority, expires_at, remaining FROM credit_buckets \
             WHERE user_id = $1 AND remaining > 0 ORDER BY id{}",
            self.row_lock
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .try_map(|row| decode::<_, BucketRow>(&row))
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error("open_buckets"))
    }

    async fn take_from(
        &self,
        conn: &mut DB::Connection,
        buckets: &[Bucket],
        taken: &[(usize, i64)],
    ) -> Result<()> {
        for &(i, t) in taken {
            sqlx::query("UPDATE credit_buckets SET remaining = remaining - $2 WHERE id = $1")
                .bind(buckets[i].id)
                .bind(t)
                .execute(&mut *conn)
                .await
                .map_err(db_error("take_from"))?;
        }
        Ok(())
    }

    async fn entry_by_key(
        &self,
        conn: &mut DB::Connection,
        user_id: Uuid,
        key: &str,
    ) -> Result<Option<Entry>> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM credit_entries WHERE user_id = $1 AND idempotency_key = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(key)
            .try_map(|row| decode::<_, EntryRow>(&row))
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error("entry_by_key"))
    }

    async fn replayed(&self, new: &NewEntry) -> Result<Posted> {
        let mut conn = self.write.acquire().await.map_err(db_error("post_entry"))?;
        self.entry_by_key(&mut conn, new.user_id, &new.idempotency_key)
            .await?
            .map(Posted::Replayed)
            .ok_or_else(|| {
                levqor_core::Error::unavailable("the entry was neither posted nor found; try again")
            })
    }
}

#[async_trait]
impl<DB> CreditStore for SqlStore<DB>
where
    DB: Database,
    DB::QueryResult: Affected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> EntryRow: FromRow<'r, DB::Row>,
    for<'r> BucketRow: FromRow<'r, DB::Row>,
    for<'r> (Uuid, i64, i64): FromRow<'r, DB::Row>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'r> HoldRow: FromRow<'r, DB::Row>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> (Uuid,): FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    async fn account(&self, user_id: Uuid) -> Result<Account> {
        Ok(sqlx::query_as::<_, (i64, i64)>(
            "SELECT balance, held FROM credit_accounts WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.write)
        .await
        .map_err(db_error("account"))?
        .map(|(balance, held)| Account { balance, held })
        .unwrap_or_default())
    }

    async fn post_entry(&self, new: &NewEntry) -> Result<Posted> {
        let op = "post_entry";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        let accounts = self.lock_accounts(&mut tx, &[new.user_id]).await?;
        if let Some(first) = self
            .entry_by_key(&mut tx, new.user_id, &new.idempotency_key)
            .await?
        {
            return Ok(Posted::Replayed(first));
        }
        if new.credits < 0 {
            let available = accounts
                .get(&new.user_id)
                .copied()
                .unwrap_or_default()
                .available();
            if available < -new.credits {
                return Err(credits::insufficient_credits());
            }
            let buckets = self.open_buckets(&mut tx, new.user_id).await?;
            let taken = credits::spend(&buckets, -new.credits);
            self.take_from(&mut tx, &buckets, &taken).await?;
        }
        let entry = Entry {
            reason: new.reason.clone(),
            priority: new.priority,
            expires_at: new.expires_at.map(micros),
            ..new_entry(
                new.user_id,
                new.kind,
                (new.credits, 0),
                None,
                new.idempotency_key.clone(),
                new.now,
            )
        };
        self.insert_entries(&mut tx, std::slice::from_ref(&entry))
            .await?;
        if new.credits > 0 {
            sqlx::query(
                "INSERT INTO credit_buckets (id, user_id, rank, priority, expires_at, remaining) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(entry.id)
            .bind(entry.user_id)
            .bind(i32::from(new.kind.spend_rank()))
            .bind(new.priority)
            .bind(entry.expires_at.map(Timestamp))
            .bind(new.credits)
            .execute(&mut *tx)
            .await
            .map_err(db_error(op))?;
        }
        self.move_account(&mut tx, new.user_id, new.credits, 0)
            .await?;
        match tx.commit().await {
            Ok(()) => Ok(Posted::Created(entry)),
            Err(e) if is_unique_violation(&e) => self.replayed(new).await,
            Err(e) => Err(db_error(op)(e)),
        }
    }

    async fn list_entries(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit_to: usize,
    ) -> Result<Vec<Entry>> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {ENTRY_COLUMNS} FROM credit_entries WHERE user_id = "
        ));
        q.push_bind(user_id);
        if let Some(b) = before {
            q.push(" AND id < ").push_bind(b);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit(limit_to));
        q.build()
            .try_map(|row| decode::<_, EntryRow>(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_entries"))
    }

    async fn holds_to_close(&self, now: DateTime<Utc>, limit_to: usize) -> Result<Vec<Hold>> {
        sqlx::query(
            "SELECT h.job_id, h.user_id, h.credits, h.quote, h.expires_at FROM credit_holds h \
             LEFT JOIN jobs j ON j.id = h.job_id WHERE h.open AND (h.expires_at < $1 OR j.id IS NULL \
             OR j.status IN ('succeeded', 'dead', 'canceled')) ORDER BY h.job_id LIMIT $2",
        )
        .bind(Timestamp(now))
        .bind(limit(limit_to))
        .try_map(|row| decode::<_, HoldRow>(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("holds_to_close"))
    }

    async fn close_hold(&self, job_id: Uuid, actual: i64, now: DateTime<Utc>) -> Result<bool> {
        let op = "close_hold";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        let owner: Option<Uuid> =
            sqlx::query_scalar("SELECT user_id FROM credit_holds WHERE job_id = $1 AND open")
                .bind(job_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error(op))?;
        let Some(owner) = owner else {
            return Ok(false);
        };
        self.lock_accounts(&mut tx, &[owner]).await?;
        let credits: Option<i64> = sqlx::query_scalar(
            "UPDATE credit_holds SET open = FALSE WHERE job_id = $1 AND open RETURNING credits",
        )
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error(op))?;
        let Some(credits) = credits else {
            return Ok(false); // another node closed it first
        };
        let actual = actual.clamp(0, credits);
        if actual > 0 {
            let buckets = self.open_buckets(&mut tx, owner).await?;
            let taken = credits::spend(&buckets, actual);
            self.take_from(&mut tx, &buckets, &taken).await?;
        }
        let kind = if actual > 0 {
            EntryKind::Settle
        } else {
            EntryKind::Release
        };
        let entry = new_entry(
            owner,
            kind,
            (-actual, -credits),
            Some(job_id),
            format!("close:{job_id}"),
            now,
        );
        self.insert_entries(&mut tx, &[entry]).await?;
        self.move_account(&mut tx, owner, -actual, -credits).await?;
        tx.commit().await.map_err(db_error(op))?;
        Ok(true)
    }

    async fn expire_credits(&self, now: DateTime<Utc>) -> Result<i64> {
        let op = "expire_credits";
        let users: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT user_id FROM credit_buckets WHERE remaining > 0 AND expires_at <= $1",
        )
        .bind(Timestamp(now))
        .fetch_all(&self.read)
        .await
        .map_err(db_error(op))?;
        let mut total = 0;
        for user in users {
            let mut tx = self.write.begin().await.map_err(db_error(op))?;
            let accounts = self.lock_accounts(&mut tx, &[user]).await?;
            let available = accounts.get(&user).copied().unwrap_or_default().available();
            let buckets = self.open_buckets(&mut tx, user).await?;
            let expired = credits::expiring(&buckets, available, now);
            if expired.is_empty() {
                continue;
            }
            self.take_from(&mut tx, &buckets, &expired).await?;
            let entries: Vec<Entry> = expired
                .iter()
                .map(|&(i, t)| {
                    new_entry(
                        user,
                        EntryKind::Expiry,
                        (-t, 0),
                        None,
                        format!("expiry:{}:{}", buckets[i].id, now.timestamp_micros()),
                        now,
                    )
                })
                .collect();
            self.insert_entries(&mut tx, &entries).await?;
            let sum: i64 = expired.iter().map(|(_, t)| t).sum();
            self.move_account(&mut tx, user, -sum, 0).await?;
            tx.commit().await.map_err(db_error(op))?;
            total += sum;
        }
        Ok(total)
    }

    /// Moves a user's ledger to `tombstone`: the amounts stay, the person goes.
    async fn pseudonymize_credits(&self, user_id: Uuid, tombstone: Uuid) -> Result<u64> {
        let op = "pseudonymize_credits";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        let mut n = 0;
        for sql in [
            "UPDATE credit_entries SET user_id = $2, reason = NULL WHERE user_id = $1",
            "UPDATE credit_buckets SET user_id = $2 WHERE user_id = $1",
            "UPDATE credit_holds SET user_id = $2 WHERE user_id = $1",
            "UPDATE credit_accounts SET user_id = $2 WHERE user_id = $1",
        ] {
            let r = sqlx::query(sql)
                .bind(user_id)
                .bind(tombstone)
                .execute(&mut *tx)
                .await
                .map_err(db_error(op))?;
            if sql.starts_with("UPDATE credit_entries") {
                n = r.rows();
            }
        }
        tx.commit().await.map_err(db_error(op))?;
        Ok(n)
    }
}
