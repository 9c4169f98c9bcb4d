//! The audit trail, the same on both backends.

use crate::error::db_error;
use crate::sql::{SqlStore, Stored, decode, limit, parsed};
use crate::types::Timestamp;
use async_trait::async_trait;
use levqor_core::Result;
use levqor_core::audit::{Actor, AuditRecord, AuditStore};
use serde_json::Value;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

const AUDIT_COLUMNS: &str = "id, at, actor, action, subject, detail";

/// A row of `audit_log`.
#[derive(FromRow)]
pub(crate) struct AuditRow {
    id: Uuid,
    at: Timestamp,
    actor: String,
    action: String,
    subject: Option<String>,
    detail: Value,
}

impl Stored for AuditRow {
    type Value = AuditRecord;

    fn into_value(self) -> Result<AuditRecord, sqlx::Error> {
        Ok(AuditRecord {
            id: self.id,
            at: self.at.0,
            actor: parsed("actor", &self.actor, Actor::parse)?,
            action: self.action,
            subject: self.subject,
            detail: self.detail,
        })
    }
}

#[async_trait]
impl<DB> AuditStore for SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'r> AuditRow: FromRow<'r, DB::Row>,
{
    async fn append_audit(&self, r: &AuditRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(r.id)
        .bind(Timestamp(r.at))
        .bind(r.actor.as_str())
        .bind(r.action.as_str())
        .bind(r.subject.as_deref())
        .bind(r.detail.clone())
        .execute(&self.write)
        .await
        .map_err(db_error("append_audit"))?;
        Ok(())
    }

    async fn list_audit(&self, before: Option<Uuid>, limit_to: usize) -> Result<Vec<AuditRecord>> {
        let mut q =
            QueryBuilder::<DB>::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE TRUE"));
        if let Some(b) = before {
            q.push(" AND id < ").push_bind(b);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit(limit_to));
        q.build()
            .try_map(|row| decode::<_, AuditRow>(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_audit"))
    }

    async fn find_audit(&self, action: &str, subject: Option<&str>) -> Result<Vec<AuditRecord>> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE action = "
        ));
        q.push_bind(action.to_string());
        if let Some(s) = subject {
            q.push(" AND subject = ").push_bind(s.to_string());
        }
        q.push(" ORDER BY id DESC");
        q.build()
            .try_map(|row| decode::<_, AuditRow>(&row))
            .fetch_all(&self.write)
            .await
            .map_err(db_error("find_audit"))
    }
}
