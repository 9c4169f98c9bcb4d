//! Billing storage on both backends: customers, applied events, dunning, revenue, discount
//! codes. A redemption locks its code row, so the count never passes the limit and a user
//! redeems a code once (the primary key of `discount_redemptions`).

use crate::error::{db_error, is_unique_violation};
use crate::sql::{Affected, SqlStore, Stored, decode, parsed};
use crate::types::{Timestamp, micros};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use levqor_core::billing::{BillingStore, DiscountCode, Dunning, DunningState, Revenue};
use levqor_core::credits::EntryKind;
use levqor_core::notify::OutboxMessage;
use levqor_core::{Error, Result};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

const CODE_COLUMNS: &str =
    "code, kind, value, expires_at, max_redemptions, redemptions, created_at";

/// A row of `discount_codes`.
#[derive(FromRow)]
pub(crate) struct CodeRow {
    code: String,
    kind: String,
    value: i64,
    expires_at: Option<Timestamp>,
    max_redemptions: Option<i64>,
    redemptions: i64,
    created_at: Timestamp,
}

impl Stored for CodeRow {
    type Value = DiscountCode;

    fn into_value(self) -> Result<DiscountCode, sqlx::Error> {
        Ok(DiscountCode {
            code: self.code,
            kind: self.kind,
            value: self.value,
            expires_at: self.expires_at.map(|t| t.0),
            max_redemptions: self.max_redemptions,
            redemptions: self.redemptions,
            created_at: self.created_at.0,
        })
    }
}

/// A row of `dunning`.
#[derive(FromRow)]
pub(crate) struct DunningRow {
    user_id: Uuid,
    state: String,
    since: Timestamp,
    reminders_sent: i32,
    updated_at: Timestamp,
}

impl Stored for DunningRow {
    type Value = Dunning;

    fn into_value(self) -> Result<Dunning, sqlx::Error> {
        Ok(Dunning {
            user_id: self.user_id,
            state: parsed("dunning state", &self.state, DunningState::parse)?,
            since: self.since.0,
            reminders_sent: self.reminders_sent,
            updated_at: self.updated_at.0,
        })
    }
}

/// A row of `revenue`.
#[derive(FromRow)]
pub(crate) struct RevenueRow {
    id: String,
    user_id: Option<Uuid>,
    amount_minor: i64,
    currency: String,
    source: String,
    at: Timestamp,
}

impl Stored for RevenueRow {
    type Value = Revenue;

    fn into_value(self) -> Result<Revenue, sqlx::Error> {
        Ok(Revenue {
            id: self.id,
            user_id: self.user_id,
            amount_minor: self.amount_minor,
            currency: self.currency,
            source: self.source,
            at: self.at.0,
        })
    }
}

#[async_trait]
impl<DB> BillingStore for SqlStore<DB>
where
    DB: Database,
    DB::QueryResult: Affected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> serde_json::Value: Encode<'q, DB> + Type<DB>,
    for<'r> CodeRow: FromRow<'r, DB::Row>,
    for<'r> DunningRow: FromRow<'r, DB::Row>,
    for<'r> RevenueRow: FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (Uuid,): FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (Timestamp, i64): FromRow<'r, DB::Row>,
    for<'r> (Timestamp, Timestamp): FromRow<'r, DB::Row>,
{
    async fn customer_of(&self, user_id: Uuid) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT customer_id FROM billing_customers WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("customer_of"))
    }

    async fn set_customer(&self, user_id: Uuid, customer_id: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO billing_customers (user_id, customer_id) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(customer_id)
        .execute(&self.write)
        .await
        .map_err(db_error("set_customer"))?;
        self.customer_of(user_id)
            .await?
            .ok_or_else(|| Error::unavailable("the customer was neither stored nor found"))
    }

    async fn user_of_customer(&self, customer_id: &str) -> Result<Option<Uuid>> {
        sqlx::query_scalar("SELECT user_id FROM billing_customers WHERE customer_id = $1")
            .bind(customer_id)
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("user_of_customer"))
    }

    async fn event_recorded(&self, id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM billing_events WHERE id = $1")
            .bind(id)
            .fetch_one(&self.write)
            .await
            .map_err(db_error("event_recorded"))?;
        Ok(n > 0)
    }

    async fn record_event(&self, id: &str, kind: &str, now: DateTime<Utc>) -> Result<bool> {
        Ok(sqlx::query(
            "INSERT INTO billing_events (id, kind, received_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(kind)
        .bind(Timestamp(now))
        .execute(&self.write)
        .await
        .map_err(db_error("record_event"))?
        .rows()
            == 1)
    }

    async fn dunning(&self, user_id: Uuid) -> Result<Option<Dunning>> {
        sqlx::query("SELECT user_id, state, since, reminders_sent, updated_at FROM dunning WHERE user_id = $1")
            .bind(user_id)
            .try_map(|row| decode::<_, DunningRow>(&row))
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("dunning"))
    }

    async fn put_dunning<'a>(
        &self,
        d: &Dunning,
        previous: Option<&'a Dunning>,
        messages: &[OutboxMessage],
    ) -> Result<bool> {
        let mut tx = self.write.begin().await.map_err(db_error("put_dunning"))?;
        // Inserted when there was no record, updated when it is still the one read: the whole
        // record is compared, so a change in between (a reminder, a payment) is seen.
        let sql = match previous {
            None => {
                "INSERT INTO dunning (user_id, state, since, reminders_sent, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO NOTHING"
            }
            Some(_) => {
                "UPDATE dunning SET state = $2, since = $3, reminders_sent = $4, updated_at = $5 \
                 WHERE user_id = $1 AND state = $6 AND since = $7 AND reminders_sent = $8 \
                 AND updated_at = $9"
            }
        };
        let mut q = sqlx::query(sql)
            .bind(d.user_id)
            .bind(d.state.as_str())
            .bind(Timestamp(d.since))
            .bind(d.reminders_sent)
            .bind(Timestamp(d.updated_at));
        if let Some(p) = previous {
            q = q
                .bind(p.state.as_str())
                .bind(Timestamp(p.since))
                .bind(p.reminders_sent)
                .bind(Timestamp(p.updated_at));
        }
        let saved = q
            .execute(&mut *tx)
            .await
            .map_err(db_error("put_dunning"))?
            .rows()
            == 1;
        if !saved {
            return Ok(false);
        }
        let messages: Vec<&OutboxMessage> = messages.iter().collect();
        crate::outbox_sql::insert_messages::<DB>(&mut tx, &messages).await?;
        tx.commit().await.map_err(db_error("put_dunning"))?;
        Ok(true)
    }

    async fn past_due(&self) -> Result<Vec<Dunning>> {
        sqlx::query(
            "SELECT user_id, state, since, reminders_sent, updated_at FROM dunning \
             WHERE state = 'past_due' ORDER BY user_id",
        )
        .try_map(|row| decode::<_, DunningRow>(&row))
        .fetch_all(&self.write)
        .await
        .map_err(db_error("past_due"))
    }

    async fn record_revenue(&self, r: &Revenue) -> Result<()> {
        sqlx::query(
            "INSERT INTO revenue (id, user_id, amount_minor, currency, source, at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(r.id.as_str())
        .bind(r.user_id)
        .bind(r.amount_minor)
        .bind(r.currency.as_str())
        .bind(r.source.as_str())
        .bind(Timestamp(r.at))
        .execute(&self.write)
        .await
        .map_err(db_error("record_revenue"))?;
        Ok(())
    }

    async fn revenue_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Revenue>> {
        sqlx::query(
            "SELECT id, user_id, amount_minor, currency, source, at FROM revenue WHERE at >= $1 AND at < $2",
        )
        .bind(Timestamp(from))
        .bind(Timestamp(to))
        .try_map(|row| decode::<_, RevenueRow>(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("revenue_between"))
    }

    async fn job_runtimes_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>> {
        Ok(sqlx::query_as::<_, (Timestamp, Timestamp)>(
            "SELECT started_at, finished_at FROM jobs WHERE finished_at >= $1 AND finished_at < $2 \
             AND started_at IS NOT NULL",
        )
        .bind(Timestamp(from))
        .bind(Timestamp(to))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("job_runtimes_between"))?
        .into_iter()
        .map(|(start, end)| (end.0, (end.0 - start.0).num_milliseconds()))
        .collect())
    }

    async fn entries_between(
        &self,
        kind: EntryKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>> {
        Ok(sqlx::query_as::<_, (Timestamp, i64)>(
            "SELECT created_at, credits FROM credit_entries WHERE kind = $1 AND created_at >= $2 AND created_at < $3",
        )
        .bind(kind.as_str())
        .bind(Timestamp(from))
        .bind(Timestamp(to))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("entries_between"))?
        .into_iter()
        .map(|(at, credits)| (at.0, credits))
        .collect())
    }

    async fn create_codes(&self, codes: &[DiscountCode]) -> Result<()> {
        let op = "create_codes";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        for chunk in codes.chunks(500) {
            let mut q =
                QueryBuilder::<DB>::new(format!("INSERT INTO discount_codes ({CODE_COLUMNS}) "));
            q.push_values(chunk, |mut b, c| {
                b.push_bind(c.code.clone())
                    .push_bind(c.kind.clone())
                    .push_bind(c.value)
                    .push_bind(c.expires_at.map(|t| Timestamp(micros(t))))
                    .push_bind(c.max_redemptions)
                    .push_bind(c.redemptions)
                    .push_bind(Timestamp(micros(c.created_at)));
            });
            if let Err(e) = q.build().execute(&mut *tx).await {
                return Err(if is_unique_violation(&e) {
                    Error::conflict(
                        "discount_code_exists",
                        "a discount code with this name exists",
                    )
                } else {
                    db_error(op)(e)
                });
            }
        }
        tx.commit().await.map_err(db_error(op))
    }

    async fn get_code(&self, code: &str) -> Result<Option<DiscountCode>> {
        let sql = format!("SELECT {CODE_COLUMNS} FROM discount_codes WHERE code = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(code)
            .try_map(|row| decode::<_, CodeRow>(&row))
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("get_code"))
    }

    async fn redeemed(&self, code: &str, user_id: Uuid) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM discount_redemptions WHERE code = $1 AND user_id = $2",
        )
        .bind(code)
        .bind(user_id)
        .fetch_one(&self.write)
        .await
        .map_err(db_error("redeemed"))?;
        Ok(n > 0)
    }

    async fn redeem(&self, code: &str, user_id: Uuid, now: DateTime<Utc>) -> Result<DiscountCode> {
        let op = "redeem";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        let sql = format!(
            "SELECT {CODE_COLUMNS} FROM discount_codes WHERE code = $1{}",
            self.row_lock
        );
        let found = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(code)
            .try_map(|row| decode::<_, CodeRow>(&row))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error(op))?
            .ok_or_else(|| Error::not_found("discount code").with_code("discount_unknown"))?;
        found.check(now)?;
        let inserted = sqlx::query(
            "INSERT INTO discount_redemptions (code, user_id, redeemed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (code, user_id) DO NOTHING",
        )
        .bind(code)
        .bind(user_id)
        .bind(Timestamp(now))
        .execute(&mut *tx)
        .await
        .map_err(db_error(op))?
        .rows();
        if inserted == 0 {
            return Err(Error::conflict(
                "discount_already_redeemed",
                "you already redeemed this code",
            ));
        }
        sqlx::query("UPDATE discount_codes SET redemptions = redemptions + 1 WHERE code = $1")
            .bind(code)
            .execute(&mut *tx)
            .await
            .map_err(db_error(op))?;
        tx.commit().await.map_err(db_error(op))?;
        Ok(DiscountCode {
            redemptions: found.redemptions + 1,
            ..found
        })
    }

    async fn erase_billing(&self, user_id: Uuid, tombstone: Uuid) -> Result<u64> {
        let op = "erase_billing";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        let mut n = 0;
        for sql in [
            "DELETE FROM billing_customers WHERE user_id = $1",
            "DELETE FROM dunning WHERE user_id = $1",
        ] {
            n += sqlx::query(sql)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error(op))?
                .rows();
        }
        for sql in [
            "UPDATE revenue SET user_id = $2 WHERE user_id = $1",
            "UPDATE discount_redemptions SET user_id = $2 WHERE user_id = $1",
        ] {
            sqlx::query(sql)
                .bind(user_id)
                .bind(tombstone)
                .execute(&mut *tx)
                .await
                .map_err(db_error(op))?;
        }
        tx.commit().await.map_err(db_error(op))?;
        Ok(n)
    }
}
