//! Tiers and API usage per day, the same on both backends.

use crate::error::db_error;
use crate::sql::{Affected, SqlStore};
use crate::types::Timestamp;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use levqor_core::Result;
use levqor_core::quotas::{CallCount, QuotaStore};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use std::collections::HashMap;
use uuid::Uuid;

#[async_trait]
impl<DB> QuotaStore for SqlStore<DB>
where
    DB: Database,
    DB::QueryResult: Affected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (String, i64): FromRow<'r, DB::Row>,
    for<'r> (Uuid, String, i64): FromRow<'r, DB::Row>,
{
    async fn tier_of(&self, user_id: Uuid) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT tier FROM user_tiers WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error("tier_of"))
    }

    async fn set_tier(&self, user_id: Uuid, tier: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_tiers (user_id, tier, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET tier = excluded.tier, updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(tier)
        .bind(Timestamp(now))
        .execute(&self.write)
        .await
        .map_err(db_error("set_tier"))?;
        Ok(())
    }

    /// Adds the counts in one upsert for the whole batch (keys sorted, so concurrent batches
    /// lock rows in one order), and hands each item the day's total it reached.
    async fn add_calls(&self, calls: &[CallCount]) -> Result<Vec<u64>> {
        let op = "add_calls";
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let mut days: std::collections::BTreeMap<(Uuid, &str), i64> = Default::default();
        for c in calls {
            *days.entry((c.user_id, c.day.as_str())).or_default() += c.calls as i64;
        }
        let mut q = QueryBuilder::<DB>::new("INSERT INTO api_usage_days (user_id, day, calls) ");
        q.push_values(&days, |mut b, ((u, d), n)| {
            b.push_bind(*u).push_bind(d.to_string()).push_bind(*n);
        });
        q.push(
            " ON CONFLICT (user_id, day) DO UPDATE SET calls = api_usage_days.calls + excluded.calls \
             RETURNING user_id, day, calls",
        );
        let totals: HashMap<(Uuid, String), i64> = q
            .build_query_as::<(Uuid, String, i64)>()
            .fetch_all(&self.write)
            .await
            .map_err(db_error(op))?
            .into_iter()
            .map(|(user, day, calls)| ((user, day), calls))
            .collect();
        // The last item of a (user, day) reached the total; each earlier one, less what came
        // after it.
        let mut left: HashMap<(Uuid, &str), i64> = HashMap::new();
        let mut out = vec![0u64; calls.len()];
        for (i, c) in calls.iter().enumerate().rev() {
            let key = (c.user_id, c.day.as_str());
            let total = *left.entry(key).or_insert_with(|| {
                totals
                    .get(&(c.user_id, c.day.clone()))
                    .copied()
                    .unwrap_or_default()
            });
            out[i] = total.max(0) as u64;
            left.insert(key, total - c.calls as i64);
        }
        Ok(out)
    }

    async fn usage_days(&self, user_id: Uuid, month: &str) -> Result<Vec<(String, u64)>> {
        Ok(sqlx::query_as::<_, (String, i64)>(
            "SELECT day, calls FROM api_usage_days WHERE user_id = $1 AND day LIKE $2 ORDER BY day",
        )
        .bind(user_id)
        .bind(format!("{month}-%"))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("usage_days"))?
        .into_iter()
        .map(|(day, calls)| (day, calls.max(0) as u64))
        .collect())
    }

    async fn erase_usage(&self, user_id: Uuid) -> Result<u64> {
        let op = "erase_usage";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        let mut n = 0;
        for sql in [
            "DELETE FROM api_usage_days WHERE user_id = $1",
            "DELETE FROM user_tiers WHERE user_id = $1",
        ] {
            n += sqlx::query(sql)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error(op))?
                .rows();
        }
        tx.commit().await.map_err(db_error(op))?;
        Ok(n)
    }
}
