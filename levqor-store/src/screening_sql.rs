//! Screening records, the same on both backends.

use crate::error::db_error;
use crate::sql::{Affected, SqlStore, Stored, decode, from_json, limit, parsed};
use crate::types::Timestamp;
use async_trait::async_trait;
use levqor_core::Result;
use levqor_core::error::to_json;
use levqor_core::screening::{AppealStatus, ScreeningRecord, ScreeningStore};
use serde_json::Value;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

const SCREENING_COLUMNS: &str = "id, user_id, screening, request, appeal_status, appeal_reason, \
                                 decision_note, created_at, updated_at";

/// A row of `screenings`.
#[derive(FromRow)]
pub(crate) struct ScreeningRow {
    id: Uuid,
    user_id: Uuid,
    screening: Value,
    request: Option<Value>,
    appeal_status: Option<String>,
    appeal_reason: Option<String>,
    decision_note: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl Stored for ScreeningRow {
    type Value = ScreeningRecord;

    fn into_value(self) -> Result<ScreeningRecord, sqlx::Error> {
        Ok(ScreeningRecord {
            id: self.id,
            user_id: self.user_id,
            screening: from_json(self.screening)?,
            request: self.request,
            appeal_status: self
                .appeal_status
                .map(|a| parsed("appeal status", &a, AppealStatus::parse))
                .transpose()?,
            appeal_reason: self.appeal_reason,
            decision_note: self.decision_note,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        })
    }
}

#[async_trait]
impl<DB> ScreeningStore for SqlStore<DB>
where
    DB: Database,
    DB::QueryResult: Affected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Value>: Encode<'q, DB>,
    for<'r> ScreeningRow: FromRow<'r, DB::Row>,
{
    async fn put_screening(&self, r: &ScreeningRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO screenings (id, user_id, verdict, screening, request, appeal_status, \
             appeal_reason, decision_note, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET appeal_status = excluded.appeal_status, \
             appeal_reason = excluded.appeal_reason, decision_note = excluded.decision_note, \
             updated_at = excluded.updated_at",
        )
        .bind(r.id)
        .bind(r.user_id)
        .bind(r.screening.verdict.as_str())
        .bind(to_json(&r.screening)?)
        .bind(r.request.clone())
        .bind(r.appeal_status.map(AppealStatus::as_str))
        .bind(r.appeal_reason.as_deref())
        .bind(r.decision_note.as_deref())
        .bind(Timestamp(r.created_at))
        .bind(Timestamp(r.updated_at))
        .execute(&self.write)
        .await
        .map_err(db_error("put_screening"))?;
        Ok(())
    }

    async fn move_appeal(&self, r: &ScreeningRecord, from: AppealStatus) -> Result<bool> {
        let moved = sqlx::query(
            "UPDATE screenings SET appeal_status = $1, decision_note = $2, updated_at = $3 \
             WHERE id = $4 AND appeal_status = $5",
        )
        .bind(r.appeal_status.map(AppealStatus::as_str))
        .bind(r.decision_note.as_deref())
        .bind(Timestamp(r.updated_at))
        .bind(r.id)
        .bind(from.as_str())
        .execute(&self.write)
        .await
        .map_err(db_error("move_appeal"))?;
        Ok(moved.rows() == 1)
    }

    async fn get_screening(&self, id: Uuid) -> Result<Option<ScreeningRecord>> {
        let sql = format!("SELECT {SCREENING_COLUMNS} FROM screenings WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .try_map(|row| decode::<_, ScreeningRow>(&row))
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("get_screening"))
    }

    async fn list_screenings(
        &self,
        user_id: Option<Uuid>,
        before: Option<Uuid>,
        limit_to: usize,
    ) -> Result<Vec<ScreeningRecord>> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {SCREENING_COLUMNS} FROM screenings WHERE TRUE"
        ));
        if let Some(u) = user_id {
            q.push(" AND user_id = ").push_bind(u);
        }
        if let Some(b) = before {
            q.push(" AND id < ").push_bind(b);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit(limit_to));
        q.build()
            .try_map(|row| decode::<_, ScreeningRow>(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_screenings"))
    }

    async fn erase_screenings(&self, user_id: Uuid) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM screenings WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.write)
            .await
            .map_err(db_error("erase_screenings"))?
            .rows())
    }
}
