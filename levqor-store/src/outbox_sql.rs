//! The outbox, the same on both backends.

use crate::error::db_error;
use crate::sql::{Affected, SqlStore, Stored, decode, from_json, limit};
use crate::types::Timestamp;
use async_trait::async_trait;
use levqor_core::Result;
use levqor_core::notify::{EmailKind, OutboxMessage, OutboxStore};
use serde_json::Value;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

/// A row of `outbox`.
#[derive(FromRow)]
pub(crate) struct MessageRow {
    id: Uuid,
    channel: String,
    to_addr: String,
    subject: String,
    body: String,
    job_id: Option<Uuid>,
    kind: String,
    attachments: Value,
    created_at: Timestamp,
}

impl Stored for MessageRow {
    type Value = OutboxMessage;

    fn into_value(self) -> Result<OutboxMessage, sqlx::Error> {
        Ok(OutboxMessage {
            id: self.id,
            channel: self.channel,
            to: self.to_addr,
            subject: self.subject,
            body: self.body,
            job_id: self.job_id,
            kind: match self.kind.as_str() {
                "marketing" => EmailKind::Marketing,
                _ => EmailKind::Transactional,
            },
            attachments: from_json(self.attachments)?,
            created_at: self.created_at.0,
        })
    }
}

#[async_trait]
impl<DB> OutboxStore for SqlStore<DB>
where
    DB: Database,
    DB::QueryResult: Affected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'r> MessageRow: FromRow<'r, DB::Row>,
{
    async fn push_outbox(&self, m: &OutboxMessage) -> Result<()> {
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
        .bind(levqor_core::error::to_json(&m.attachments)?)
        .execute(&self.write)
        .await
        .map_err(db_error("push_outbox"))?;
        Ok(())
    }

    async fn list_outbox(
        &self,
        before: Option<Uuid>,
        limit_to: usize,
    ) -> Result<Vec<OutboxMessage>> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, channel, to_addr, subject, body, job_id, created_at, kind, attachments \
             FROM outbox WHERE TRUE",
        );
        if let Some(before) = before {
            q.push(" AND id < ").push_bind(before);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit(limit_to));
        q.build()
            .try_map(|row| decode::<_, MessageRow>(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_outbox"))
    }

    async fn erase_outbox(&self, email: &str) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM outbox WHERE to_addr = $1")
            .bind(email)
            .execute(&self.write)
            .await
            .map_err(db_error("erase_outbox"))?
            .rows())
    }
}
