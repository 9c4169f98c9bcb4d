//! Analytics events, export records, legal holds and the retention sweep, the same on both
//! backends.

use crate::error::db_error;
use crate::sql::{Affected, SqlStore, Stored, decode, from_json, limit, push_not_in};
use crate::types::Timestamp;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use levqor_core::Result;
use levqor_core::error::to_json;
use levqor_core::notify::OutboxMessage;
use levqor_core::privacy::{DataClass, Event, ExportRecord, Held, LegalHold, PrivacyStore};
use serde_json::Value;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

/// A row of `events`.
#[derive(FromRow)]
pub(crate) struct EventRow {
    id: Uuid,
    user_id: Uuid,
    name: String,
    properties: Value,
    created_at: Timestamp,
}

impl Stored for EventRow {
    type Value = Event;

    fn into_value(self) -> Result<Event, sqlx::Error> {
        Ok(Event {
            id: self.id,
            user_id: self.user_id,
            name: self.name,
            properties: self.properties,
            created_at: self.created_at.0,
        })
    }
}

/// A row of `exports`.
#[derive(FromRow)]
pub(crate) struct ExportRow {
    id: Uuid,
    user_id: Uuid,
    created_at: Timestamp,
    bytes: i64,
    areas: Value,
}

impl Stored for ExportRow {
    type Value = ExportRecord;

    fn into_value(self) -> Result<ExportRecord, sqlx::Error> {
        Ok(ExportRecord {
            id: self.id,
            user_id: self.user_id,
            created_at: self.created_at.0,
            bytes: self.bytes,
            areas: from_json(self.areas)?,
        })
    }
}

/// A row of `legal_holds`.
#[derive(FromRow)]
pub(crate) struct HoldRow {
    user_id: Uuid,
    reason: String,
    created_at: Timestamp,
}

impl Stored for HoldRow {
    type Value = LegalHold;

    fn into_value(self) -> Result<LegalHold, sqlx::Error> {
        Ok(LegalHold {
            user_id: self.user_id,
            reason: self.reason,
            created_at: self.created_at.0,
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
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    /// Nulls the outputs of old steps of finished jobs; the step records stay.
    async fn sweep_step_outputs(
        &self,
        cutoff: DateTime<Utc>,
        held: &Held,
        dry_run: bool,
    ) -> Result<u64> {
        let head = if dry_run {
            "SELECT COUNT(*) AS n FROM job_steps"
        } else {
            "UPDATE job_steps SET output = 'null'"
        };
        let mut q = QueryBuilder::<DB>::new(head);
        q.push(" WHERE output <> 'null' AND finished_at < ")
            .push_bind(Timestamp(cutoff))
            .push(" AND job_id IN (SELECT id FROM jobs WHERE status IN ('succeeded', 'dead', 'canceled')");
        push_not_in(&mut q, "owner_id", &held.user_ids);
        q.push(")");
        if dry_run {
            let n: i64 = q
                .build_query_scalar()
                .fetch_one(&self.read)
                .await
                .map_err(db_error("sweep"))?;
            return Ok(n as u64);
        }
        Ok(q.build()
            .execute(&self.write)
            .await
            .map_err(db_error("sweep"))?
            .rows())
    }

    /// Deletes the rows of `table` whose `user_id` is `user_id`; how many.
    async fn erase_by_user(&self, table: &'static str, user_id: Uuid) -> Result<u64> {
        let sql = format!("DELETE FROM {table} WHERE user_id = $1");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .execute(&self.write)
            .await
            .map_err(db_error("erase"))?
            .rows())
    }
}

#[async_trait]
impl<DB> PrivacyStore for SqlStore<DB>
where
    DB: Database,
    DB::QueryResult: Affected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'r> EventRow: FromRow<'r, DB::Row>,
    for<'r> ExportRow: FromRow<'r, DB::Row>,
    for<'r> HoldRow: FromRow<'r, DB::Row>,
{
    async fn record_events(&self, events: &[Event]) -> Result<()> {
        for chunk in events.chunks(500) {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO events (id, user_id, name, properties, created_at) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(e.id)
                    .push_bind(e.user_id)
                    .push_bind(e.name.clone())
                    .push_bind(e.properties.clone())
                    .push_bind(Timestamp(e.created_at));
            });
            q.build()
                .execute(&self.write)
                .await
                .map_err(db_error("record_events"))?;
        }
        Ok(())
    }

    async fn list_events(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit_to: usize,
    ) -> Result<Vec<Event>> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, user_id, name, properties, created_at FROM events WHERE user_id = ",
        );
        q.push_bind(user_id);
        if let Some(a) = after {
            q.push(" AND id > ").push_bind(a);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(limit(limit_to));
        q.build()
            .try_map(|row| decode::<_, EventRow>(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_events"))
    }

    async fn erase_events(&self, user_id: Uuid) -> Result<u64> {
        self.erase_by_user("events", user_id).await
    }

    async fn record_export(&self, e: &ExportRecord, messages: &[OutboxMessage]) -> Result<()> {
        let mut tx = self
            .write
            .begin()
            .await
            .map_err(db_error("record_export"))?;
        sqlx::query(
            "INSERT INTO exports (id, user_id, created_at, bytes, areas) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(e.id)
        .bind(e.user_id)
        .bind(Timestamp(e.created_at))
        .bind(e.bytes)
        .bind(to_json(&e.areas)?)
        .execute(&mut *tx)
        .await
        .map_err(db_error("record_export"))?;
        let messages: Vec<&OutboxMessage> = messages.iter().collect();
        crate::outbox_sql::insert_messages::<DB>(&mut tx, &messages).await?;
        tx.commit().await.map_err(db_error("record_export"))?;
        Ok(())
    }

    async fn last_export(&self, user_id: Uuid) -> Result<Option<ExportRecord>> {
        sqlx::query(
            "SELECT id, user_id, created_at, bytes, areas FROM exports WHERE user_id = $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(user_id)
        .try_map(|row| decode::<_, ExportRow>(&row))
        .fetch_optional(&self.write)
        .await
        .map_err(db_error("last_export"))
    }

    async fn erase_exports(&self, user_id: Uuid) -> Result<u64> {
        self.erase_by_user("exports", user_id).await
    }

    async fn set_legal_hold(&self, h: &LegalHold) -> Result<()> {
        sqlx::query(
            "INSERT INTO legal_holds (user_id, reason, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET reason = excluded.reason",
        )
        .bind(h.user_id)
        .bind(h.reason.as_str())
        .bind(Timestamp(h.created_at))
        .execute(&self.write)
        .await
        .map_err(db_error("set_legal_hold"))?;
        Ok(())
    }

    async fn clear_legal_hold(&self, user_id: Uuid) -> Result<bool> {
        Ok(self.erase_by_user("legal_holds", user_id).await? > 0)
    }

    async fn legal_holds(&self) -> Result<Vec<LegalHold>> {
        sqlx::query("SELECT user_id, reason, created_at FROM legal_holds ORDER BY user_id")
            .try_map(|row| decode::<_, HoldRow>(&row))
            .fetch_all(&self.write)
            .await
            .map_err(db_error("legal_holds"))
    }

    async fn sweep(
        &self,
        class: DataClass,
        cutoff: DateTime<Utc>,
        held: &Held,
        dry_run: bool,
    ) -> Result<u64> {
        let op = "sweep";
        if class == DataClass::StepOutputs {
            return self.sweep_step_outputs(cutoff, held, dry_run).await;
        }
        // `rows` picks the ids whose retention ended; they are counted or deleted.
        let (table, rows) = match class {
            DataClass::Jobs => (
                "jobs",
                "SELECT id FROM jobs WHERE status IN ('succeeded', 'dead', 'canceled') AND finished_at < ",
            ),
            DataClass::Events => ("events", "SELECT id FROM events WHERE created_at < "),
            DataClass::Audit => ("audit_log", "SELECT id FROM audit_log WHERE at < "),
            DataClass::Exports => ("exports", "SELECT id FROM exports WHERE created_at < "),
            DataClass::Tokens => (
                "marketing_subscriptions",
                "SELECT id FROM marketing_subscriptions WHERE status = 'pending' AND token_expires_at < ",
            ),
            DataClass::Outbox => ("outbox", "SELECT id FROM outbox WHERE created_at < "),
            DataClass::Screenings => (
                "screenings",
                "SELECT id FROM screenings WHERE (appeal_status IS NULL OR appeal_status <> 'pending') \
                 AND created_at < ",
            ),
            DataClass::StepOutputs => unreachable!("handled above"),
        };
        let build = |head: String| {
            let mut q = QueryBuilder::<DB>::new(head);
            q.push(rows).push_bind(Timestamp(cutoff));
            match class {
                DataClass::Jobs => push_not_in(&mut q, "owner_id", &held.user_ids),
                DataClass::Events | DataClass::Exports | DataClass::Screenings => {
                    push_not_in(&mut q, "user_id", &held.user_ids)
                }
                DataClass::Tokens => push_not_in(&mut q, "email", &held.emails),
                DataClass::Outbox => push_not_in(&mut q, "to_addr", &held.emails),
                DataClass::Audit | DataClass::StepOutputs => {}
            }
            q.push(")");
            q
        };
        if dry_run {
            let mut q = build("SELECT COUNT(*) AS n FROM (".to_string());
            q.push(" AS old");
            let n: i64 = q
                .build_query_scalar()
                .fetch_one(&self.read)
                .await
                .map_err(db_error(op))?;
            return Ok(n as u64);
        }
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        if class == DataClass::Jobs {
            let side = std::iter::once(("job_steps", "job_id"))
                .chain(self.side_tables.iter().map(|t| (*t, "id")));
            for (side, col) in side {
                build(format!("DELETE FROM {side} WHERE {col} IN ("))
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error(op))?;
            }
        }
        let n = build(format!("DELETE FROM {table} WHERE id IN ("))
            .build()
            .execute(&mut *tx)
            .await
            .map_err(db_error(op))?
            .rows();
        tx.commit().await.map_err(db_error(op))?;
        Ok(n)
    }
}
