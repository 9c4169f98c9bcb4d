//! The outbox and its dispatcher's queue, the same on both backends. A claim is one `UPDATE`
//! of the due rows picked by a subquery (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so two
//! nodes never take the same message and neither waits for the other); a settle applies only
//! under the claim's token.

use crate::error::db_error;
use crate::sql::{Affected, SqlStore, Stored, decode, from_json, limit, parsed};
use crate::types::Timestamp;
use async_trait::async_trait;
use levqor_core::Result;
use levqor_core::notify::{
    ABANDONED, Attempt, Delivery, DeliveryStatus, EXPIRED, EmailKind, OutboxClaim, OutboxMessage,
    OutboxStore, Settle, Settled, Suppression, SuppressionReason,
};
use serde_json::Value;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

/// The columns of a message, in [`MessageRow`]'s order.
const COLUMNS: &str = "id, channel, to_addr, subject, body, job_id, created_at, kind, attachments, \
     status, attempts, next_attempt_at, sent_at, provider_message_id, last_error, html, headers";

/// Inserts one message (the placeholders of [`COLUMNS`]).
const INSERT: &str = "INSERT INTO outbox (id, channel, to_addr, subject, body, job_id, created_at, kind, \
     attachments, status, attempts, next_attempt_at, sent_at, provider_message_id, last_error, html, headers) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

/// A row of `outbox`.
#[derive(FromRow)]
pub(crate) struct MessageRow {
    id: Uuid,
    channel: String,
    to_addr: String,
    subject: String,
    body: String,
    job_id: Option<Uuid>,
    created_at: Timestamp,
    kind: String,
    attachments: Value,
    status: String,
    attempts: i32,
    next_attempt_at: Timestamp,
    sent_at: Option<Timestamp>,
    provider_message_id: Option<String>,
    last_error: Option<String>,
    html: Option<String>,
    headers: Value,
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
            html: self.html,
            headers: from_json(self.headers)?,
            created_at: self.created_at.0,
            delivery: Delivery {
                status: parsed("delivery status", &self.status, DeliveryStatus::parse)?,
                attempts: u32::try_from(self.attempts).unwrap_or(0),
                next_attempt_at: self.next_attempt_at.0,
                sent_at: self.sent_at.map(|t| t.0),
                provider_message_id: self.provider_message_id,
                last_error: self.last_error,
            },
        })
    }
}

/// A row of `outbox_attempts`.
#[derive(FromRow)]
pub(crate) struct AttemptRow {
    number: i32,
    node: String,
    started_at: Timestamp,
    finished_at: Timestamp,
    outcome: String,
    answer: String,
}

impl Stored for AttemptRow {
    type Value = Attempt;

    fn into_value(self) -> Result<Attempt, sqlx::Error> {
        Ok(Attempt {
            number: u32::try_from(self.number).unwrap_or(0),
            node: self.node,
            started_at: self.started_at.0,
            finished_at: self.finished_at.0,
            outcome: self.outcome,
            answer: self.answer,
        })
    }
}

/// A row of `suppressions`.
#[derive(FromRow)]
pub(crate) struct SuppressionRow {
    id: Uuid,
    email: String,
    reason: String,
    detail: Option<String>,
    event_id: Option<String>,
    created_at: Timestamp,
}

impl Stored for SuppressionRow {
    type Value = Suppression;

    fn into_value(self) -> Result<Suppression, sqlx::Error> {
        Ok(Suppression {
            id: self.id,
            email: self.email,
            reason: parsed("suppression reason", &self.reason, SuppressionReason::parse)?,
            detail: self.detail,
            event_id: self.event_id,
            created_at: self.created_at.0,
        })
    }
}

const SUPPRESSION_COLUMNS: &str = "id, email, reason, detail, event_id, created_at";

/// Writes `messages` to the outbox on `conn` (in a transaction of the caller's, so that a
/// message lands with the change that caused it).
pub(crate) async fn insert_messages<DB>(
    conn: &mut DB::Connection,
    messages: &[&OutboxMessage],
) -> Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
{
    for m in messages {
        let d = &m.delivery;
        sqlx::query(INSERT)
            .bind(m.id)
            .bind(m.channel.as_str())
            .bind(m.to.as_str())
            .bind(m.subject.as_str())
            .bind(m.body.as_str())
            .bind(m.job_id)
            .bind(Timestamp(m.created_at))
            .bind(m.kind.as_str())
            .bind(levqor_core::error::to_json(&m.attachments)?)
            .bind(d.status.as_str())
            .bind(i32::try_from(d.attempts).unwrap_or(i32::MAX))
            .bind(Timestamp(d.next_attempt_at))
            .bind(d.sent_at.map(Timestamp))
            .bind(d.provider_message_id.as_deref())
            .bind(d.last_error.as_deref())
            .bind(m.html.as_deref())
            .bind(levqor_core::error::to_json(&m.headers)?)
            .execute(&mut *conn)
            .await
            .map_err(db_error("push_outbox"))?;
    }
    Ok(())
}

/// Pushes ` AND channel IN (…)` (the list is never empty: a claim names its channels).
fn push_channels<DB: Database>(q: &mut QueryBuilder<DB>, channels: &[String])
where
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    q.push(" AND channel IN (");
    let mut list = q.separated(", ");
    for c in channels {
        list.push_bind(c.clone());
    }
    q.push(")");
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
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'r> MessageRow: FromRow<'r, DB::Row>,
    for<'r> AttemptRow: FromRow<'r, DB::Row>,
    for<'r> SuppressionRow: FromRow<'r, DB::Row>,
{
    async fn push_outbox(&self, m: &OutboxMessage) -> Result<()> {
        let mut conn = self
            .write
            .acquire()
            .await
            .map_err(db_error("push_outbox"))?;
        insert_messages::<DB>(&mut conn, &[m]).await
    }

    async fn list_outbox(
        &self,
        before: Option<Uuid>,
        limit_to: usize,
    ) -> Result<Vec<OutboxMessage>> {
        let mut q = QueryBuilder::<DB>::new(format!("SELECT {COLUMNS} FROM outbox WHERE TRUE"));
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

    async fn get_outbox(&self, id: Uuid) -> Result<Option<OutboxMessage>> {
        let mut q = QueryBuilder::<DB>::new(format!("SELECT {COLUMNS} FROM outbox WHERE id = "));
        q.push_bind(id);
        q.build()
            .try_map(|row| decode::<_, MessageRow>(&row))
            .fetch_optional(&self.read)
            .await
            .map_err(db_error("get_outbox"))
    }

    async fn erase_outbox(&self, email: &str) -> Result<u64> {
        let mut deleted = 0;
        for statement in [
            "DELETE FROM outbox WHERE to_addr = $1",
            "DELETE FROM suppressions WHERE email = $1",
        ] {
            deleted += sqlx::query(statement)
                .bind(email)
                .execute(&self.write)
                .await
                .map_err(db_error("erase_outbox"))?
                .rows();
        }
        Ok(deleted)
    }

    async fn suppress(&self, s: &Suppression) -> Result<bool> {
        Ok(sqlx::query(
            "INSERT INTO suppressions (id, email, reason, detail, event_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
        )
        .bind(s.id)
        .bind(s.email.as_str())
        .bind(s.reason.as_str())
        .bind(s.detail.as_deref())
        .bind(s.event_id.as_deref())
        .bind(Timestamp(s.created_at))
        .execute(&self.write)
        .await
        .map_err(db_error("suppress"))?
        .rows()
            == 1)
    }

    async fn suppression(&self, email: &str) -> Result<Option<Suppression>> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE email = "
        ));
        q.push_bind(email.to_string());
        q.build()
            .try_map(|row| decode::<_, SuppressionRow>(&row))
            .fetch_optional(&self.read)
            .await
            .map_err(db_error("suppression"))
    }

    async fn list_suppressions(
        &self,
        before: Option<Uuid>,
        limit_to: usize,
    ) -> Result<Vec<Suppression>> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE TRUE"
        ));
        if let Some(before) = before {
            q.push(" AND id < ").push_bind(before);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit(limit_to));
        q.build()
            .try_map(|row| decode::<_, SuppressionRow>(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_suppressions"))
    }

    async fn unsuppress(&self, email: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM suppressions WHERE email = $1")
            .bind(email)
            .execute(&self.write)
            .await
            .map_err(db_error("unsuppress"))?
            .rows()
            == 1)
    }

    async fn claim_outbox(&self, claim: &OutboxClaim) -> Result<Vec<OutboxMessage>> {
        if claim.channels.is_empty() || claim.limit == 0 {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<DB>::new(
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_token = ",
        );
        q.push_bind(claim.token)
            .push(", lease_until = ")
            .push_bind(Timestamp(claim.lease_until))
            .push(
                " WHERE id IN (SELECT id FROM outbox WHERE status IN ('pending', 'sending') AND ((status = 'pending' AND next_attempt_at <= ",
            )
            .push_bind(Timestamp(claim.now))
            .push(" AND next_attempt_at >= ")
            .push_bind(Timestamp(claim.not_before))
            .push(")");
        let reclaim: Vec<String> = claim
            .reclaim
            .iter()
            .filter(|c| claim.channels.contains(c))
            .cloned()
            .collect();
        if !reclaim.is_empty() {
            q.push(" OR (status = 'sending' AND lease_until <= ")
                .push_bind(Timestamp(claim.now));
            push_channels(&mut q, &reclaim);
            q.push(")");
        }
        q.push(")");
        push_channels(&mut q, &claim.channels);
        q.push(" ORDER BY next_attempt_at, id LIMIT ")
            .push_bind(limit(claim.limit))
            .push(self.row_lock);
        if !self.row_lock.is_empty() {
            q.push(" SKIP LOCKED");
        }
        q.push(format!(") RETURNING {COLUMNS}"));
        let mut claimed = q
            .build()
            .try_map(|row| decode::<_, MessageRow>(&row))
            .fetch_all(&self.write)
            .await
            .map_err(db_error("claim_outbox"))?;
        // `RETURNING` keeps no order: hand them out oldest due first.
        claimed.sort_by_key(|m| (m.delivery.next_attempt_at, m.id));
        Ok(claimed)
    }

    async fn settle_outbox(&self, settles: &[Settle]) -> Result<Vec<bool>> {
        if settles.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self
            .write
            .begin()
            .await
            .map_err(db_error("settle_outbox"))?;
        let mut applied = Vec::with_capacity(settles.len());
        for s in settles {
            let sent = s.status == DeliveryStatus::Sent;
            let changed = sqlx::query(
                "UPDATE outbox SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at), \
                 sent_at = COALESCE($3, sent_at), provider_message_id = COALESCE($4, provider_message_id), \
                 last_error = $5, lease_token = NULL, lease_until = NULL \
                 WHERE id = $6 AND lease_token = $7 AND status = 'sending'",
            )
            .bind(s.status.as_str())
            .bind(s.next_attempt_at.map(Timestamp))
            .bind(sent.then_some(Timestamp(s.attempt.finished_at)))
            .bind(s.provider_message_id.as_deref())
            .bind((!sent).then_some(s.attempt.answer.as_str()))
            .bind(s.message_id)
            .bind(s.token)
            .execute(&mut *tx)
            .await
            .map_err(db_error("settle_outbox"))?
            .rows()
                == 1;
            if changed {
                let a = &s.attempt;
                sqlx::query(
                    "INSERT INTO outbox_attempts (message_id, number, node, started_at, finished_at, outcome, answer) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (message_id, number) DO NOTHING",
                )
                .bind(s.message_id)
                .bind(i32::try_from(a.number).unwrap_or(i32::MAX))
                .bind(a.node.as_str())
                .bind(Timestamp(a.started_at))
                .bind(Timestamp(a.finished_at))
                .bind(a.outcome.as_str())
                .bind(a.answer.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error("settle_outbox"))?;
            }
            applied.push(changed);
        }
        tx.commit().await.map_err(db_error("settle_outbox"))?;
        Ok(applied)
    }

    async fn sweep_outbox(&self, claim: &OutboxClaim) -> Result<Settled> {
        let mut settled = Settled::default();
        if claim.channels.is_empty() {
            return Ok(settled);
        }
        let blind: Vec<String> = claim
            .channels
            .iter()
            .filter(|c| !claim.reclaim.contains(c))
            .cloned()
            .collect();
        if !blind.is_empty() {
            let mut q =
                QueryBuilder::<DB>::new("UPDATE outbox SET status = 'unknown', last_error = ");
            q.push_bind(ABANDONED)
                .push(", lease_token = NULL, lease_until = NULL WHERE status = 'sending' AND lease_until <= ")
                .push_bind(Timestamp(claim.now));
            push_channels(&mut q, &blind);
            settled.unknown = q
                .build()
                .execute(&self.write)
                .await
                .map_err(db_error("sweep_outbox"))?
                .rows();
        }
        let mut q = QueryBuilder::<DB>::new("UPDATE outbox SET status = 'failed', last_error = ");
        q.push_bind(EXPIRED)
            .push(" WHERE status = 'pending' AND next_attempt_at < ")
            .push_bind(Timestamp(claim.not_before));
        push_channels(&mut q, &claim.channels);
        settled.expired = q
            .build()
            .execute(&self.write)
            .await
            .map_err(db_error("sweep_outbox"))?
            .rows();
        Ok(settled)
    }

    async fn retry_outbox(&self, id: Uuid, now: chrono::DateTime<chrono::Utc>) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE outbox SET status = 'pending', next_attempt_at = $1 \
             WHERE id = $2 AND status IN ('failed', 'unknown')",
        )
        .bind(Timestamp(now))
        .bind(id)
        .execute(&self.write)
        .await
        .map_err(db_error("retry_outbox"))?
        .rows()
            == 1)
    }

    async fn list_attempts(&self, message_id: Uuid) -> Result<Vec<Attempt>> {
        sqlx::query(
            "SELECT number, node, started_at, finished_at, outcome, answer \
             FROM outbox_attempts WHERE message_id = $1 ORDER BY number",
        )
        .bind(message_id)
        .try_map(|row| decode::<_, AttemptRow>(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("list_attempts"))
    }
}
