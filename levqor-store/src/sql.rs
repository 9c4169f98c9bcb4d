//! What both SQL backends do the same way: the column lists, the row mappings, and every query
//! whose text and types agree on SQLite and PostgreSQL (`$n` placeholders work on both). The hot
//! paths that differ (admit, claim, commit, heartbeats) live in each backend's module.

use crate::error::{db_error, is_foreign_key_violation, is_unique_violation};
use crate::plan::First;
use crate::types::{Timestamp, micros};
use chrono::{DateTime, Utc};
use levqor_core::jobs::store::{ClaimedJob, JobFilter, NewJob, Reaped};
use levqor_core::notify::EmailKind;
use levqor_core::users::{ApiKey, Upserted, User};
use levqor_core::{Error, Job, JobStatus, OutboxMessage, Result, StepRecord, StepStatus};
use serde_json::Value;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Row, Type,
};
use std::collections::HashMap;
use uuid::Uuid;

/// The columns of a [`Job`], in the order [`SqlStore::job_from_row`] reads them by name.
macro_rules! job_columns {
    () => {
        "id, owner_id, workflow, input, status, attempts, max_attempts, run_after, result, error, \
         cancel_requested, idempotency_key, created_at, updated_at, started_at, finished_at"
    };
}

/// The columns of a [`StepRecord`].
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

/// Implements [`UserStore`](levqor_core::UserStore) and [`OutboxStore`](levqor_core::OutboxStore),
/// which both backends serve with the shared queries, for a store with an `sql: SqlStore<_>`.
macro_rules! delegate_shared_ports {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl levqor_core::UserStore for $store {
            async fn upsert_user(
                &self,
                user: levqor_core::User,
            ) -> levqor_core::Result<levqor_core::Upserted> {
                self.sql.upsert_user(user).await
            }

            async fn get_user(
                &self,
                id: uuid::Uuid,
            ) -> levqor_core::Result<Option<levqor_core::User>> {
                self.sql.get_user(id).await
            }

            async fn find_user_by_email(
                &self,
                email: &str,
            ) -> levqor_core::Result<Option<levqor_core::User>> {
                self.sql.find_user_by_email(email).await
            }

            async fn update_user(
                &self,
                user: &levqor_core::User,
            ) -> levqor_core::Result<Option<levqor_core::User>> {
                self.sql.update_user(user).await
            }

            async fn insert_key(
                &self,
                key: &levqor_core::ApiKey,
                secret_hash: &str,
            ) -> levqor_core::Result<()> {
                self.sql.insert_key(key, secret_hash).await
            }

            async fn list_keys(
                &self,
                user_id: uuid::Uuid,
            ) -> levqor_core::Result<Vec<levqor_core::ApiKey>> {
                self.sql.list_keys(user_id).await
            }

            async fn get_key(
                &self,
                id: uuid::Uuid,
            ) -> levqor_core::Result<Option<levqor_core::ApiKey>> {
                self.sql.get_key(id).await
            }

            async fn revoke_key(
                &self,
                id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> levqor_core::Result<Option<levqor_core::ApiKey>> {
                self.sql.revoke_key(id, now).await
            }

            async fn find_key_by_hash(
                &self,
                secret_hash: &str,
            ) -> levqor_core::Result<Option<levqor_core::ApiKey>> {
                self.sql.find_key_by_hash(secret_hash).await
            }

            async fn list_users(
                &self,
                after: Option<uuid::Uuid>,
                limit: usize,
            ) -> levqor_core::Result<Vec<levqor_core::User>> {
                self.sql.list_users(after, limit).await
            }

            async fn delete_user(&self, id: uuid::Uuid) -> levqor_core::Result<bool> {
                self.sql.delete_user(id).await
            }
        }

        $crate::sql::delegate! { ConsentStore for $store {
            publish_terms(terms: &levqor_core::consent::TermsVersion, entry: &levqor_core::consent::LedgerEntry) -> ();
            list_terms() -> Vec<levqor_core::consent::TermsVersion>;
            accept_terms(acceptance: &levqor_core::consent::TermsAcceptance, entry: &levqor_core::consent::LedgerEntry) -> ();
            list_acceptances(user_id: uuid::Uuid) -> Vec<levqor_core::consent::TermsAcceptance>;
            subscription_by_email(email: &str) -> Option<levqor_core::consent::Subscription>;
            subscription_by_token(token_hash: &str) -> Option<levqor_core::consent::Subscription>;
            get_subscription(id: uuid::Uuid) -> Option<levqor_core::consent::Subscription>;
            put_subscription(sub: &levqor_core::consent::Subscription, entry: Option<&levqor_core::consent::LedgerEntry>) -> ();
            list_subscribed(category: levqor_core::consent::Category, after: Option<uuid::Uuid>, limit: usize) -> Vec<levqor_core::consent::Subscription>;
            set_objection(user_id: uuid::Uuid, objection: &levqor_core::consent::Objection, entry: &levqor_core::consent::LedgerEntry) -> ();
            list_objections(user_id: uuid::Uuid) -> Vec<levqor_core::consent::Objection>;
            objects_by_email(email: &str, kind: levqor_core::consent::ObjectionKind) -> bool;
            subject_of(user_id: uuid::Uuid) -> uuid::Uuid;
            ledger_after(after: i64, limit: usize) -> Vec<levqor_core::consent::LedgerRecord>;
            erase_consents(user_id: uuid::Uuid, email: &str, tombstone: uuid::Uuid) -> levqor_core::consent::ConsentErasure;
            consent_stats(current: Option<&str>) -> levqor_core::consent::ConsentStats;
        }}

        $crate::sql::delegate! { CreditStore for $store {
            account(user_id: uuid::Uuid) -> levqor_core::credits::Account;
            post_entry(entry: &levqor_core::credits::NewEntry) -> levqor_core::credits::Posted;
            list_entries(user_id: uuid::Uuid, before: Option<uuid::Uuid>, limit: usize) -> Vec<levqor_core::credits::Entry>;
            holds_to_close(now: chrono::DateTime<chrono::Utc>, limit: usize) -> Vec<levqor_core::credits::Hold>;
            close_hold(job_id: uuid::Uuid, actual: i64, now: chrono::DateTime<chrono::Utc>) -> bool;
            expire_credits(now: chrono::DateTime<chrono::Utc>) -> i64;
            pseudonymize_credits(user_id: uuid::Uuid, tombstone: uuid::Uuid) -> u64;
        }}

        $crate::sql::delegate! { BillingStore for $store {
            customer_of(user_id: uuid::Uuid) -> Option<String>;
            set_customer(user_id: uuid::Uuid, customer_id: &str) -> String;
            user_of_customer(customer_id: &str) -> Option<uuid::Uuid>;
            record_event(id: &str, kind: &str, now: chrono::DateTime<chrono::Utc>) -> bool;
            dunning(user_id: uuid::Uuid) -> Option<levqor_core::billing::Dunning>;
            put_dunning(dunning: &levqor_core::billing::Dunning) -> ();
            past_due() -> Vec<levqor_core::billing::Dunning>;
            record_revenue(revenue: &levqor_core::billing::Revenue) -> ();
            revenue_between(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> Vec<levqor_core::billing::Revenue>;
            job_runtimes_between(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> Vec<(chrono::DateTime<chrono::Utc>, i64)>;
            entries_between(kind: levqor_core::credits::EntryKind, from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> Vec<(chrono::DateTime<chrono::Utc>, i64)>;
            create_codes(codes: &[levqor_core::billing::DiscountCode]) -> ();
            get_code(code: &str) -> Option<levqor_core::billing::DiscountCode>;
            redeemed(code: &str, user_id: uuid::Uuid) -> bool;
            redeem(code: &str, user_id: uuid::Uuid, now: chrono::DateTime<chrono::Utc>) -> levqor_core::billing::DiscountCode;
            erase_billing(user_id: uuid::Uuid, tombstone: uuid::Uuid) -> u64;
        }}

        $crate::sql::delegate! { QuotaStore for $store {
            tier_of(user_id: uuid::Uuid) -> Option<String>;
            set_tier(user_id: uuid::Uuid, tier: &str, now: chrono::DateTime<chrono::Utc>) -> ();
            add_calls(calls: &[levqor_core::quotas::CallCount]) -> Vec<u64>;
            usage_days(user_id: uuid::Uuid, month: &str) -> Vec<(String, u64)>;
            erase_usage(user_id: uuid::Uuid) -> u64;
        }}

        #[async_trait::async_trait]
        impl levqor_core::SettingsStore for $store {
            async fn get_setting(&self, key: &str) -> levqor_core::Result<Option<serde_json::Value>> {
                self.sql.get_setting(key).await
            }

            async fn put_setting(&self, key: &str, value: &serde_json::Value) -> levqor_core::Result<()> {
                self.sql.put_setting(key, value, false).await
            }

            async fn put_setting_if_absent(&self, key: &str, value: &serde_json::Value) -> levqor_core::Result<()> {
                self.sql.put_setting(key, value, true).await
            }
        }

        $crate::sql::delegate! { AuditStore for $store {
            append_audit(record: &levqor_core::audit::AuditRecord) -> ();
            list_audit(before: Option<uuid::Uuid>, limit: usize) -> Vec<levqor_core::audit::AuditRecord>;
            find_audit(action: &str, subject: Option<&str>) -> Vec<levqor_core::audit::AuditRecord>;
        }}

        #[async_trait::async_trait]
        impl levqor_core::ScreeningStore for $store {
            async fn put_screening(&self, record: &levqor_core::screening::ScreeningRecord) -> levqor_core::Result<()> {
                self.sql.put_screening(record).await
            }

            async fn get_screening(&self, id: uuid::Uuid) -> levqor_core::Result<Option<levqor_core::screening::ScreeningRecord>> {
                self.sql.get_screening(id).await
            }

            async fn list_screenings(&self, user_id: Option<uuid::Uuid>, before: Option<uuid::Uuid>, limit: usize) -> levqor_core::Result<Vec<levqor_core::screening::ScreeningRecord>> {
                self.sql.list_screenings(user_id, before, limit).await
            }

            async fn erase_screenings(&self, user_id: uuid::Uuid) -> levqor_core::Result<u64> {
                self.sql.erase_rows("screenings", "user_id", user_id).await
            }
        }

        #[async_trait::async_trait]
        impl levqor_core::PrivacyStore for $store {
            async fn record_events(&self, events: &[levqor_core::privacy::Event]) -> levqor_core::Result<()> {
                self.sql.record_events(events).await
            }

            async fn list_events(&self, user_id: uuid::Uuid, after: Option<uuid::Uuid>, limit: usize) -> levqor_core::Result<Vec<levqor_core::privacy::Event>> {
                self.sql.list_events(user_id, after, limit).await
            }

            async fn erase_events(&self, user_id: uuid::Uuid) -> levqor_core::Result<u64> {
                self.sql.erase_rows("events", "user_id", user_id).await
            }

            async fn record_export(&self, export: &levqor_core::privacy::ExportRecord) -> levqor_core::Result<()> {
                self.sql.record_export(export).await
            }

            async fn last_export(&self, user_id: uuid::Uuid) -> levqor_core::Result<Option<levqor_core::privacy::ExportRecord>> {
                self.sql.last_export(user_id).await
            }

            async fn erase_exports(&self, user_id: uuid::Uuid) -> levqor_core::Result<u64> {
                self.sql.erase_rows("exports", "user_id", user_id).await
            }

            async fn set_legal_hold(&self, hold: &levqor_core::privacy::LegalHold) -> levqor_core::Result<()> {
                self.sql.set_legal_hold(hold).await
            }

            async fn clear_legal_hold(&self, user_id: uuid::Uuid) -> levqor_core::Result<bool> {
                self.sql.clear_legal_hold(user_id).await
            }

            async fn legal_holds(&self) -> levqor_core::Result<Vec<levqor_core::privacy::LegalHold>> {
                self.sql.legal_holds().await
            }

            async fn sweep(&self, class: levqor_core::privacy::DataClass, cutoff: chrono::DateTime<chrono::Utc>, held: &levqor_core::privacy::Held, dry_run: bool) -> levqor_core::Result<u64> {
                self.sql.sweep(class, cutoff, held, dry_run).await
            }
        }

        #[async_trait::async_trait]
        impl levqor_core::OutboxStore for $store {
            async fn push_outbox(
                &self,
                message: &levqor_core::OutboxMessage,
            ) -> levqor_core::Result<()> {
                self.sql.push_outbox(message).await
            }

            async fn list_outbox(
                &self,
                before: Option<uuid::Uuid>,
                limit: usize,
            ) -> levqor_core::Result<Vec<levqor_core::OutboxMessage>> {
                self.sql.list_outbox(before, limit).await
            }

            async fn erase_outbox(&self, email: &str) -> levqor_core::Result<u64> {
                self.sql.erase_rows("outbox", "to_addr", email.to_string()).await
            }
        }
    };
}

/// Implements a store port whose every method forwards to the same-named method of `self.sql`.
macro_rules! delegate {
    ($port:ident for $store:ty { $($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)* }) => {
        #[async_trait::async_trait]
        impl levqor_core::$port for $store {
            $(
                async fn $name(&self, $($arg: $ty),*) -> levqor_core::Result<$ret> {
                    self.sql.$name($($arg),*).await
                }
            )*
        }
    };
}

pub(crate) use {
    cancel_update, delegate, delegate_shared_ports, job_columns, reap_assignments, step_columns,
};

/// The error recorded on a job whose lease expired.
const LEASE_EXPIRED: &str = "the worker running this job was lost (lease expired)";

/// The pools of one database and the queries both backends share.
pub(crate) struct SqlStore<DB: Database> {
    /// Serves reads.
    pub read: Pool<DB>,
    /// Serves writes. On SQLite: the one connection allowed to write.
    pub write: Pool<DB>,
    /// Tables beside `jobs` keyed by job id (PostgreSQL's queue and leases), which deleting a
    /// job must clear too.
    pub side_tables: &'static [&'static str],
    /// What a `SELECT` appends to lock the rows it reads until the transaction ends
    /// (` FOR UPDATE` on PostgreSQL; nothing on SQLite, whose one writer serializes writes).
    pub row_lock: &'static str,
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Timestamp: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> i32: Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Decode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
{
    /// Reads a row selected with [`job_columns!`].
    pub fn job_from_row(row: &DB::Row) -> Result<Job, sqlx::Error> {
        Ok(Job {
            id: row.try_get("id")?,
            owner_id: row.try_get("owner_id")?,
            workflow: row.try_get("workflow")?,
            input: row.try_get("input")?,
            status: job_status(row.try_get("status")?)?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            run_after: row.try_get::<Timestamp, _>("run_after")?.0,
            result: row.try_get("result")?,
            error: row.try_get("error")?,
            cancel_requested: row.try_get("cancel_requested")?,
            idempotency_key: row.try_get("idempotency_key")?,
            created_at: row.try_get::<Timestamp, _>("created_at")?.0,
            updated_at: row.try_get::<Timestamp, _>("updated_at")?.0,
            started_at: row
                .try_get::<Option<Timestamp>, _>("started_at")?
                .map(|t| t.0),
            finished_at: row
                .try_get::<Option<Timestamp>, _>("finished_at")?
                .map(|t| t.0),
        })
    }

    /// Reads a row selected with `request_hash` and [`job_columns!`].
    pub fn first_from_row(row: &DB::Row) -> Result<First, sqlx::Error> {
        Ok(First {
            job: Self::job_from_row(row)?,
            request_hash: row.try_get("request_hash")?,
        })
    }

    /// Reads a row selected with [`step_columns!`].
    pub fn step_from_row(row: &DB::Row) -> Result<StepRecord, sqlx::Error> {
        let status: &str = row.try_get("status")?;
        Ok(StepRecord {
            job_id: row.try_get("job_id")?,
            step_id: row.try_get("step_id")?,
            position: row.try_get("position")?,
            status: StepStatus::parse(status).ok_or_else(|| unknown("step status", status))?,
            output: row.try_get("output")?,
            error: row.try_get("error")?,
            attempt: row.try_get("attempt")?,
            started_at: row.try_get::<Timestamp, _>("started_at")?.0,
            finished_at: row.try_get::<Timestamp, _>("finished_at")?.0,
        })
    }

    fn user_from_row(row: &DB::Row) -> Result<User, sqlx::Error> {
        Ok(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            created_at: row.try_get::<Timestamp, _>("created_at")?.0,
            updated_at: row.try_get::<Timestamp, _>("updated_at")?.0,
        })
    }

    fn key_from_row(row: &DB::Row) -> Result<ApiKey, sqlx::Error> {
        let scopes: Value = row.try_get("scopes")?;
        Ok(ApiKey {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            prefix: row.try_get("prefix")?,
            scopes: serde_json::from_value(scopes).map_err(|e| sqlx::Error::Decode(e.into()))?,
            created_at: row.try_get::<Timestamp, _>("created_at")?.0,
            revoked_at: row
                .try_get::<Option<Timestamp>, _>("revoked_at")?
                .map(|t| t.0),
        })
    }

    fn outbox_from_row(row: &DB::Row) -> Result<OutboxMessage, sqlx::Error> {
        Ok(OutboxMessage {
            id: row.try_get("id")?,
            channel: row.try_get("channel")?,
            to: row.try_get("to_addr")?,
            subject: row.try_get("subject")?,
            body: row.try_get("body")?,
            job_id: row.try_get("job_id")?,
            kind: match row.try_get::<String, _>("kind")?.as_str() {
                "marketing" => EmailKind::Marketing,
                _ => EmailKind::Transactional,
            },
            attachments: serde_json::from_value(row.try_get("attachments")?)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            created_at: row.try_get::<Timestamp, _>("created_at")?.0,
        })
    }

    /// `SELECT 1`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(db_error("ping"))?;
        Ok(())
    }

    pub async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id)
        .try_map(|row| Self::job_from_row(&row))
        .fetch_optional(&self.read)
        .await
        .map_err(db_error("get_job"))
    }

    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
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
            .try_map(|row| Self::job_from_row(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_jobs"))
    }

    pub async fn list_steps(&self, job_id: Uuid) -> Result<Vec<StepRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            step_columns!(),
            " FROM job_steps WHERE job_id = $1 ORDER BY position, step_id"
        ))
        .bind(job_id)
        .try_map(|row| Self::step_from_row(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("list_steps"))
    }

    /// A job not yet running becomes `canceled`; a running one gets `cancel_requested` (its
    /// worker stops at the next step boundary); a terminal one is returned unchanged.
    pub async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Job>> {
        let changed = sqlx::query(concat!(cancel_update!(), "RETURNING ", job_columns!()))
            .bind(id)
            .bind(Timestamp(now))
            .try_map(|row| Self::job_from_row(&row))
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
    pub async fn reap_expired(&self, sql: &'static str, now: DateTime<Utc>) -> Result<Reaped> {
        let statuses: Vec<String> = sqlx::query(sql)
            .bind(Timestamp(now))
            .bind(LEASE_EXPIRED)
            .try_map(|row: DB::Row| row.try_get("status"))
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

    pub async fn queue_depth(&self, now: DateTime<Utc>) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'failed') AND run_after <= $1")
            .bind(Timestamp(now))
            .try_map(|row: DB::Row| row.try_get("n"))
            .fetch_one(&self.read)
            .await
            .map_err(db_error("queue_depth"))?;
        Ok(n as u64)
    }

    pub async fn count_jobs(&self, status: JobStatus) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE status = $1")
            .bind(status.as_str())
            .try_map(|row: DB::Row| row.try_get("n"))
            .fetch_one(&self.read)
            .await
            .map_err(db_error("count_jobs"))?;
        Ok(n as u64)
    }

    pub async fn upsert_user(&self, user: User) -> Result<Upserted> {
        let user = User {
            created_at: micros(user.created_at),
            updated_at: micros(user.updated_at),
            ..user
        };
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (email) DO NOTHING RETURNING id",
        )
        .bind(user.id)
        .bind(user.email.as_str())
        .bind(user.name.as_deref())
        .bind(Timestamp(user.created_at))
        .bind(Timestamp(user.updated_at))
        .fetch_optional(&self.write)
        .await
        .map_err(db_error("upsert_user"))?;
        if inserted.is_some() {
            return Ok(Upserted::Created(user));
        }
        match self.find_user_by_email(&user.email).await? {
            Some(existing) => Ok(Upserted::Existing(existing)),
            None => Err(Error::unavailable(
                "the user was neither inserted nor found; try again",
            )),
        }
    }

    pub async fn get_user(&self, id: Uuid) -> Result<Option<User>> {
        sqlx::query("SELECT id, email, name, created_at, updated_at FROM users WHERE id = $1")
            .bind(id)
            .try_map(|row| Self::user_from_row(&row))
            .fetch_optional(&self.read)
            .await
            .map_err(db_error("get_user"))
    }

    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        sqlx::query("SELECT id, email, name, created_at, updated_at FROM users WHERE email = $1")
            .bind(email)
            .try_map(|row| Self::user_from_row(&row))
            .fetch_optional(&self.read)
            .await
            .map_err(db_error("find_user_by_email"))
    }

    pub async fn update_user(&self, user: &User) -> Result<Option<User>> {
        sqlx::query(
            "UPDATE users SET email = $2, name = $3, updated_at = $4 WHERE id = $1 \
             RETURNING id, email, name, created_at, updated_at",
        )
        .bind(user.id)
        .bind(user.email.as_str())
        .bind(user.name.as_deref())
        .bind(Timestamp(user.updated_at))
        .try_map(|row| Self::user_from_row(&row))
        .fetch_optional(&self.write)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::conflict("email_taken", "another user has this email")
            } else {
                db_error("update_user")(e)
            }
        })
    }

    pub async fn insert_key(&self, key: &ApiKey, secret_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, prefix, secret_hash, scopes, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(key.id)
        .bind(key.user_id)
        .bind(key.prefix.as_str())
        .bind(secret_hash)
        .bind(Value::from(key.scopes.clone()))
        .bind(Timestamp(key.created_at))
        .bind(key.revoked_at.map(Timestamp))
        .execute(&self.write)
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                Error::not_found("user")
            } else {
                db_error("insert_key")(e)
            }
        })?;
        Ok(())
    }

    pub async fn list_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>> {
        sqlx::query(
            "SELECT id, user_id, prefix, scopes, created_at, revoked_at FROM api_keys \
             WHERE user_id = $1 ORDER BY id DESC",
        )
        .bind(user_id)
        .try_map(|row| Self::key_from_row(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("list_keys"))
    }

    pub async fn get_key(&self, id: Uuid) -> Result<Option<ApiKey>> {
        sqlx::query("SELECT id, user_id, prefix, scopes, created_at, revoked_at FROM api_keys WHERE id = $1")
            .bind(id)
            .try_map(|row| Self::key_from_row(&row))
            .fetch_optional(&self.read)
            .await
            .map_err(db_error("get_key"))
    }

    /// Revoking twice keeps the first revocation time.
    pub async fn revoke_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<ApiKey>> {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
             RETURNING id, user_id, prefix, scopes, created_at, revoked_at",
        )
        .bind(id)
        .bind(Timestamp(now))
        .try_map(|row| Self::key_from_row(&row))
        .fetch_optional(&self.write)
        .await
        .map_err(db_error("revoke_key"))
    }

    pub async fn find_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKey>> {
        sqlx::query(
            "SELECT id, user_id, prefix, scopes, created_at, revoked_at FROM api_keys \
             WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(secret_hash)
        .try_map(|row| Self::key_from_row(&row))
        .fetch_optional(&self.read)
        .await
        .map_err(db_error("find_key_by_hash"))
    }

    pub async fn push_outbox(&self, m: &OutboxMessage) -> Result<()> {
        sqlx::query(
            "INSERT INTO outbox (id, channel, to_addr, subject, body, job_id, created_at, kind, attachments) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(m.id)
        .bind(m.channel.as_str())
        .bind(m.to.as_str())
        .bind(m.subject.as_str())
        .bind(m.body.as_str())
        .bind(m.job_id)
        .bind(Timestamp(m.created_at))
        .bind(m.kind.as_str())
        .bind(serde_json::to_value(&m.attachments).map_err(|e| Error::internal(e.to_string()))?)
        .execute(&self.write)
        .await
        .map_err(db_error("push_outbox"))?;
        Ok(())
    }

    pub async fn list_outbox(
        &self,
        before: Option<Uuid>,
        limit_to: usize,
    ) -> Result<Vec<OutboxMessage>> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, channel, to_addr, subject, body, job_id, created_at, kind, attachments FROM outbox WHERE TRUE",
        );
        if let Some(before) = before {
            q.push(" AND id < ").push_bind(before);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit(limit_to));
        q.build()
            .try_map(|row| Self::outbox_from_row(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_outbox"))
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

/// Parses a stored job status.
pub(crate) fn job_status(s: &str) -> Result<JobStatus, sqlx::Error> {
    JobStatus::parse(s).ok_or_else(|| unknown("job status", s))
}

fn unknown(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {what} {value:?}").into())
}

/// A row count limit as SQL takes it.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
