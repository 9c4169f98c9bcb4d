//! Consent, privacy and screening storage, the same on both backends: every query here reads
//! alike on SQLite and PostgreSQL. A consent change and its ledger record are written in one
//! transaction; the ledger's head row, updated first, serializes appends across nodes.

use crate::error::{db_error, is_unique_violation};
use crate::sql::SqlStore;
use crate::types::{Timestamp, micros};
use chrono::{DateTime, Utc};
use levqor_core::audit::{Actor, AuditRecord};
use levqor_core::consent::{
    Category, ConsentErasure, ConsentStats, LedgerEntry, LedgerRecord, Objection, ObjectionKind,
    Subscription, SubscriptionStatus, TermsAcceptance, TermsVersion, seal,
};
use levqor_core::privacy::{DataClass, Event, ExportRecord, Held, LegalHold};
use levqor_core::screening::{AppealStatus, ScreeningRecord};
use levqor_core::users::User;
use levqor_core::{Error, Result};
use serde_json::Value;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type,
};
use uuid::Uuid;

fn decode_err(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {what} {value:?}").into())
}

fn json_err(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::internal(e.to_string()))
}

/// Pushes ` AND <column> NOT IN (…)` when `values` is not empty.
fn push_not_in<DB, T>(q: &mut QueryBuilder<DB>, column: &str, values: &[T])
where
    DB: Database,
    T: for<'q> Encode<'q, DB> + Type<DB> + Clone + Send + 'static,
{
    if values.is_empty() {
        return;
    }
    q.push(format!(" AND {column} NOT IN ("));
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    q.push(")");
}

/// How many rows a statement changed, on either backend.
pub(crate) trait Affected {
    fn rows(&self) -> u64;
}

impl Affected for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

impl Affected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

impl<DB> SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: Affected,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Timestamp: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB>,
    for<'q> i32: Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<Value>: Encode<'q, DB> + Decode<'q, DB>,
{
    /// Appends `entry` to the ledger inside `tx`: takes the head (locking it), seals the record
    /// after it, inserts it and moves the head.
    async fn append_ledger(conn: &mut DB::Connection, entry: &LedgerEntry) -> Result<()> {
        let head = sqlx::query(
            "UPDATE consent_ledger_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error("append_ledger"))?;
        let seq: i64 = head.try_get("seq").map_err(db_error("append_ledger"))?;
        let prev: String = head.try_get("hash").map_err(db_error("append_ledger"))?;
        let entry = LedgerEntry {
            at: micros(entry.at),
            ..entry.clone()
        };
        let hash = seal(seq, &prev, &entry);
        sqlx::query(
            "INSERT INTO consent_ledger (seq, id, at, subject, action, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(entry.id)
        .bind(Timestamp(entry.at))
        .bind(entry.subject)
        .bind(entry.action.as_str())
        .bind(entry.detail.to_string().as_str())
        .bind(prev.as_str())
        .bind(hash.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db_error("append_ledger"))?;
        sqlx::query("UPDATE consent_ledger_head SET hash = $1 WHERE id = 1")
            .bind(hash.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db_error("append_ledger"))?;
        Ok(())
    }

    /// Runs `write` and then appends `entry`, in one transaction.
    async fn with_ledger<'e, F>(
        &self,
        operation: &'static str,
        entry: Option<&LedgerEntry>,
        write: F,
    ) -> Result<()>
    where
        F: for<'c> FnOnce(
            &'c mut DB::Connection,
        )
            -> futures::future::BoxFuture<'c, std::result::Result<(), sqlx::Error>>,
    {
        let mut tx = self.write.begin().await.map_err(db_error(operation))?;
        write(&mut tx).await.map_err(|e| {
            if is_unique_violation(&e) {
                Error::conflict("duplicate", "this record exists already")
            } else {
                db_error(operation)(e)
            }
        })?;
        if let Some(entry) = entry {
            Self::append_ledger(&mut tx, entry).await?;
        }
        tx.commit().await.map_err(db_error(operation))
    }

    fn terms_from_row(row: &DB::Row) -> std::result::Result<TermsVersion, sqlx::Error> {
        Ok(TermsVersion {
            version: row.try_get("version")?,
            effective_at: row.try_get::<Timestamp, _>("effective_at")?.0,
            changelog: row.try_get("changelog")?,
            material: row.try_get("material")?,
            published_at: row.try_get::<Timestamp, _>("published_at")?.0,
        })
    }

    fn acceptance_from_row(row: &DB::Row) -> std::result::Result<TermsAcceptance, sqlx::Error> {
        Ok(TermsAcceptance {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            version: row.try_get("version")?,
            accepted_at: row.try_get::<Timestamp, _>("accepted_at")?.0,
            ip: row.try_get("ip")?,
            user_agent: row.try_get("user_agent")?,
        })
    }

    fn subscription_from_row(row: &DB::Row) -> std::result::Result<Subscription, sqlx::Error> {
        let status: String = row.try_get("status")?;
        let categories: Value = row.try_get("categories")?;
        let ts = |c: &str| -> std::result::Result<Option<DateTime<Utc>>, sqlx::Error> {
            Ok(row.try_get::<Option<Timestamp>, _>(c)?.map(|t| t.0))
        };
        Ok(Subscription {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            status: SubscriptionStatus::parse(&status)
                .ok_or_else(|| decode_err("subscription status", &status))?,
            categories: serde_json::from_value::<Vec<Category>>(categories).map_err(json_err)?,
            token_hash: row.try_get("token_hash")?,
            token_expires_at: ts("token_expires_at")?,
            token_used_at: ts("token_used_at")?,
            last_sent_at: ts("last_sent_at")?,
            confirmed_at: ts("confirmed_at")?,
            created_at: row.try_get::<Timestamp, _>("created_at")?.0,
            updated_at: row.try_get::<Timestamp, _>("updated_at")?.0,
        })
    }

    fn ledger_from_row(row: &DB::Row) -> std::result::Result<LedgerRecord, sqlx::Error> {
        let detail: String = row.try_get("detail")?;
        Ok(LedgerRecord {
            seq: row.try_get("seq")?,
            entry: LedgerEntry {
                id: row.try_get("id")?,
                at: row.try_get::<Timestamp, _>("at")?.0,
                subject: row.try_get("subject")?,
                action: row.try_get("action")?,
                detail: serde_json::from_str(&detail).map_err(json_err)?,
            },
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        })
    }

    fn audit_from_row(row: &DB::Row) -> std::result::Result<AuditRecord, sqlx::Error> {
        let actor: String = row.try_get("actor")?;
        Ok(AuditRecord {
            id: row.try_get("id")?,
            at: row.try_get::<Timestamp, _>("at")?.0,
            actor: Actor::parse(&actor).ok_or_else(|| decode_err("actor", &actor))?,
            action: row.try_get("action")?,
            subject: row.try_get("subject")?,
            detail: row.try_get("detail")?,
        })
    }

    fn screening_from_row(row: &DB::Row) -> std::result::Result<ScreeningRecord, sqlx::Error> {
        let appeal: Option<String> = row.try_get("appeal_status")?;
        Ok(ScreeningRecord {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            screening: serde_json::from_value(row.try_get("screening")?).map_err(json_err)?,
            request: row.try_get("request")?,
            appeal_status: match appeal {
                None => None,
                Some(a) => Some(AppealStatus::parse(&a).ok_or_else(|| decode_err("appeal", &a))?),
            },
            appeal_reason: row.try_get("appeal_reason")?,
            decision_note: row.try_get("decision_note")?,
            created_at: row.try_get::<Timestamp, _>("created_at")?.0,
            updated_at: row.try_get::<Timestamp, _>("updated_at")?.0,
        })
    }

    pub async fn publish_terms(&self, t: &TermsVersion, entry: &LedgerEntry) -> Result<()> {
        let t = t.clone();
        self.with_ledger("publish_terms", Some(entry), move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO terms_versions (version, effective_at, changelog, material, published_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(t.version.as_str())
                .bind(Timestamp(t.effective_at))
                .bind(t.changelog.as_str())
                .bind(t.material)
                .bind(Timestamp(t.published_at))
                .execute(c)
                .await
                .map(|_| ())
            })
        })
        .await
        .map_err(|e| {
            if e.code == "duplicate" {
                Error::conflict(
                    "terms_version_exists",
                    "a terms version with this name was already published",
                )
            } else {
                e
            }
        })
    }

    pub async fn list_terms(&self) -> Result<Vec<TermsVersion>> {
        sqlx::query(
            "SELECT version, effective_at, changelog, material, published_at FROM terms_versions",
        )
        .try_map(|row| Self::terms_from_row(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("list_terms"))
    }

    pub async fn accept_terms(&self, a: &TermsAcceptance, entry: &LedgerEntry) -> Result<()> {
        let a = a.clone();
        self.with_ledger("accept_terms", Some(entry), move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO terms_acceptances (id, user_id, version, accepted_at, ip, user_agent) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(a.id)
                .bind(a.user_id)
                .bind(a.version.as_str())
                .bind(Timestamp(a.accepted_at))
                .bind(a.ip.as_deref())
                .bind(a.user_agent.as_deref())
                .execute(c)
                .await
                .map(|_| ())
            })
        })
        .await
    }

    pub async fn list_acceptances(&self, user_id: Uuid) -> Result<Vec<TermsAcceptance>> {
        sqlx::query(
            "SELECT id, user_id, version, accepted_at, ip, user_agent FROM terms_acceptances \
             WHERE user_id = $1 ORDER BY id DESC",
        )
        .bind(user_id)
        .try_map(|row| Self::acceptance_from_row(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("list_acceptances"))
    }

    async fn subscription_where(
        &self,
        clause: &'static str,
        bind: impl for<'q> Encode<'q, DB> + Type<DB> + Send + 'static,
    ) -> Result<Option<Subscription>> {
        let sql = format!(
            "SELECT id, email, status, categories, token_hash, token_expires_at, token_used_at, \
             last_sent_at, confirmed_at, created_at, updated_at FROM marketing_subscriptions WHERE {clause}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(bind)
            .try_map(|row| Self::subscription_from_row(&row))
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("get_subscription"))
    }

    pub async fn subscription_by_email(&self, email: &str) -> Result<Option<Subscription>> {
        self.subscription_where("email = $1", email.to_string())
            .await
    }

    pub async fn subscription_by_token(&self, token_hash: &str) -> Result<Option<Subscription>> {
        self.subscription_where("token_hash = $1", token_hash.to_string())
            .await
    }

    pub async fn get_subscription(&self, id: Uuid) -> Result<Option<Subscription>> {
        self.subscription_where("id = $1", id).await
    }

    pub async fn put_subscription(
        &self,
        sub: &Subscription,
        entry: Option<&LedgerEntry>,
    ) -> Result<()> {
        let s = sub.clone();
        let categories = to_json(&s.categories)?;
        self.with_ledger("put_subscription", entry, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO marketing_subscriptions (id, email, status, categories, token_hash, \
                     token_expires_at, token_used_at, last_sent_at, confirmed_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO UPDATE SET email = excluded.email, status = excluded.status, \
                     categories = excluded.categories, token_hash = excluded.token_hash, \
                     token_expires_at = excluded.token_expires_at, token_used_at = excluded.token_used_at, \
                     last_sent_at = excluded.last_sent_at, confirmed_at = excluded.confirmed_at, \
                     updated_at = excluded.updated_at",
                )
                .bind(s.id)
                .bind(s.email.as_str())
                .bind(s.status.as_str())
                .bind(categories)
                .bind(s.token_hash.as_deref())
                .bind(s.token_expires_at.map(Timestamp))
                .bind(s.token_used_at.map(Timestamp))
                .bind(s.last_sent_at.map(Timestamp))
                .bind(s.confirmed_at.map(Timestamp))
                .bind(Timestamp(s.created_at))
                .bind(Timestamp(s.updated_at))
                .execute(c)
                .await
                .map(|_| ())
            })
        })
        .await
        .map_err(|e| {
            if e.code == "duplicate" {
                Error::conflict("subscription_exists", "another subscription has this email")
            } else {
                e
            }
        })
    }

    pub async fn list_subscribed(
        &self,
        category: Category,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Subscription>> {
        // Filtering categories in Rust keeps the query the same on both backends; the status
        // filter does the bulk of the work.
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < limit {
            let mut q = QueryBuilder::<DB>::new(
                "SELECT id, email, status, categories, token_hash, token_expires_at, token_used_at, \
                 last_sent_at, confirmed_at, created_at, updated_at FROM marketing_subscriptions \
                 WHERE status = 'subscribed'",
            );
            if let Some(c) = cursor {
                q.push(" AND id > ").push_bind(c);
            }
            q.push(" ORDER BY id LIMIT ").push_bind(limit as i64);
            let page: Vec<Subscription> = q
                .build()
                .try_map(|row| Self::subscription_from_row(&row))
                .fetch_all(&self.read)
                .await
                .map_err(db_error("list_subscribed"))?;
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            out.extend(
                page.into_iter()
                    .filter(|s| s.categories.contains(&category)),
            );
        }
        out.truncate(limit);
        Ok(out)
    }

    pub async fn set_objection(
        &self,
        user_id: Uuid,
        o: &Objection,
        entry: &LedgerEntry,
    ) -> Result<()> {
        let o = o.clone();
        self.with_ledger("set_objection", Some(entry), move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO objections (user_id, kind, objected, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, kind) DO UPDATE SET objected = excluded.objected, \
                     updated_at = excluded.updated_at",
                )
                .bind(user_id)
                .bind(o.kind.as_str())
                .bind(o.objected)
                .bind(Timestamp(o.updated_at))
                .execute(c)
                .await
                .map(|_| ())
            })
        })
        .await
    }

    pub async fn list_objections(&self, user_id: Uuid) -> Result<Vec<Objection>> {
        sqlx::query("SELECT kind, objected, updated_at FROM objections WHERE user_id = $1")
            .bind(user_id)
            .try_map(|row: DB::Row| {
                let kind: String = row.try_get("kind")?;
                Ok(Objection {
                    kind: ObjectionKind::parse(&kind)
                        .ok_or_else(|| decode_err("objection", &kind))?,
                    objected: row.try_get("objected")?,
                    updated_at: row.try_get::<Timestamp, _>("updated_at")?.0,
                })
            })
            .fetch_all(&self.write)
            .await
            .map_err(db_error("list_objections"))
    }

    pub async fn objects_by_email(&self, email: &str, kind: ObjectionKind) -> Result<bool> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM objections o JOIN users u ON u.id = o.user_id \
             WHERE u.email = $1 AND o.kind = $2 AND o.objected",
        )
        .bind(email)
        .bind(kind.as_str())
        .try_map(|row: DB::Row| row.try_get("n"))
        .fetch_one(&self.read)
        .await
        .map_err(db_error("objects_by_email"))?;
        Ok(n > 0)
    }

    pub async fn subject_of(&self, user_id: Uuid) -> Result<Uuid> {
        sqlx::query(
            "INSERT INTO consent_subjects (user_id, subject) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(Uuid::new_v4())
        .execute(&self.write)
        .await
        .map_err(db_error("subject_of"))?;
        sqlx::query("SELECT subject FROM consent_subjects WHERE user_id = $1")
            .bind(user_id)
            .try_map(|row: DB::Row| row.try_get("subject"))
            .fetch_one(&self.write)
            .await
            .map_err(db_error("subject_of"))
    }

    pub async fn ledger_after(&self, after: i64, limit: usize) -> Result<Vec<LedgerRecord>> {
        sqlx::query(
            "SELECT seq, id, at, subject, action, detail, prev_hash, hash FROM consent_ledger \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit as i64)
        .try_map(|row| Self::ledger_from_row(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("ledger_after"))
    }

    pub async fn erase_consents(
        &self,
        user_id: Uuid,
        email: &str,
        tombstone: Uuid,
    ) -> Result<ConsentErasure> {
        let op = "erase_consents";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        let mut out = ConsentErasure::default();
        for (sql, by_email) in [
            ("DELETE FROM marketing_subscriptions WHERE email = $1", true),
            ("DELETE FROM objections WHERE user_id = $1", false),
            ("DELETE FROM consent_subjects WHERE user_id = $1", false),
        ] {
            let q = sqlx::query(sql);
            let q = if by_email {
                q.bind(email)
            } else {
                q.bind(user_id)
            };
            out.deleted += q.execute(&mut *tx).await.map_err(db_error(op))?.rows();
        }
        out.pseudonymized = sqlx::query(
            "UPDATE terms_acceptances SET user_id = $2, ip = NULL, user_agent = NULL WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(tombstone)
        .execute(&mut *tx)
        .await
        .map_err(db_error(op))?
        .rows();
        tx.commit().await.map_err(db_error(op))?;
        Ok(out)
    }

    async fn count(&self, sql: &'static str, bind: Option<&str>) -> Result<u64> {
        let q = sqlx::query(sql);
        let q = match bind {
            Some(b) => q.bind(b.to_string()),
            None => q,
        };
        let n: i64 = q
            .try_map(|row: DB::Row| row.try_get("n"))
            .fetch_one(&self.read)
            .await
            .map_err(db_error("count"))?;
        Ok(n as u64)
    }

    pub async fn consent_stats(&self, current: Option<&str>) -> Result<ConsentStats> {
        let users = self.count("SELECT COUNT(*) AS n FROM users", None).await?;
        let accepted_current = match current {
            Some(v) => {
                self.count(
                    "SELECT COUNT(DISTINCT a.user_id) AS n FROM terms_acceptances a \
                     JOIN users u ON u.id = a.user_id WHERE a.version = $1",
                    Some(v),
                )
                .await?
            }
            None => 0,
        };
        let mut subscriptions_by_status = Vec::new();
        for st in [
            SubscriptionStatus::Pending,
            SubscriptionStatus::Subscribed,
            SubscriptionStatus::Unsubscribed,
        ] {
            let n = self
                .count(
                    "SELECT COUNT(*) AS n FROM marketing_subscriptions WHERE status = $1",
                    Some(st.as_str()),
                )
                .await?;
            subscriptions_by_status.push((st, n));
        }
        let mut subscribed_by_category: Vec<(Category, u64)> =
            Category::ALL.into_iter().map(|c| (c, 0)).collect();
        let mut after = None;
        loop {
            let page = self.list_subscribed_any(after).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.0);
            for (_, cats) in &page {
                for (c, n) in subscribed_by_category.iter_mut() {
                    if cats.contains(c) {
                        *n += 1;
                    }
                }
            }
        }
        let mut objections_by_kind = Vec::new();
        for k in ObjectionKind::ALL {
            let n = self
                .count(
                    "SELECT COUNT(*) AS n FROM objections WHERE kind = $1 AND objected",
                    Some(k.as_str()),
                )
                .await?;
            objections_by_kind.push((k, n));
        }
        Ok(ConsentStats {
            users,
            accepted_current,
            subscribed_by_category,
            subscriptions_by_status,
            objections_by_kind,
        })
    }

    async fn list_subscribed_any(&self, after: Option<Uuid>) -> Result<Vec<(Uuid, Vec<Category>)>> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, categories FROM marketing_subscriptions WHERE status = 'subscribed'",
        );
        if let Some(a) = after {
            q.push(" AND id > ").push_bind(a);
        }
        q.push(" ORDER BY id LIMIT 1000");
        q.build()
            .try_map(|row: DB::Row| {
                let cats: Value = row.try_get("categories")?;
                Ok((
                    row.try_get("id")?,
                    serde_json::from_value(cats).map_err(json_err)?,
                ))
            })
            .fetch_all(&self.read)
            .await
            .map_err(db_error("consent_stats"))
    }

    pub async fn get_setting(&self, key: &str) -> Result<Option<Value>> {
        sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .try_map(|row: DB::Row| row.try_get("value"))
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("get_setting"))
    }

    pub async fn put_setting(&self, key: &str, value: &Value, only_if_absent: bool) -> Result<()> {
        let sql = if only_if_absent {
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
        } else {
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        };
        sqlx::query(sql)
            .bind(key)
            .bind(value.clone())
            .execute(&self.write)
            .await
            .map_err(db_error("put_setting"))?;
        Ok(())
    }

    pub async fn append_audit(&self, r: &AuditRecord) -> Result<()> {
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

    pub async fn list_audit(&self, before: Option<Uuid>, limit: usize) -> Result<Vec<AuditRecord>> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, at, actor, action, subject, detail FROM audit_log WHERE TRUE",
        );
        if let Some(b) = before {
            q.push(" AND id < ").push_bind(b);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(limit as i64);
        q.build()
            .try_map(|row| Self::audit_from_row(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_audit"))
    }

    pub async fn find_audit(
        &self,
        action: &str,
        subject: Option<&str>,
    ) -> Result<Vec<AuditRecord>> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, at, actor, action, subject, detail FROM audit_log WHERE action = ",
        );
        q.push_bind(action.to_string());
        if let Some(s) = subject {
            q.push(" AND subject = ").push_bind(s.to_string());
        }
        q.push(" ORDER BY id DESC");
        q.build()
            .try_map(|row| Self::audit_from_row(&row))
            .fetch_all(&self.write)
            .await
            .map_err(db_error("find_audit"))
    }

    pub async fn record_events(&self, events: &[Event]) -> Result<()> {
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

    pub async fn list_events(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, user_id, name, properties, created_at FROM events WHERE user_id = ",
        );
        q.push_bind(user_id);
        if let Some(a) = after {
            q.push(" AND id > ").push_bind(a);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(limit as i64);
        q.build()
            .try_map(|row: DB::Row| {
                Ok(Event {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    name: row.try_get("name")?,
                    properties: row.try_get("properties")?,
                    created_at: row.try_get::<Timestamp, _>("created_at")?.0,
                })
            })
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_events"))
    }

    pub async fn record_export(&self, e: &ExportRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO exports (id, user_id, created_at, bytes, areas) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(e.id)
        .bind(e.user_id)
        .bind(Timestamp(e.created_at))
        .bind(e.bytes)
        .bind(to_json(&e.areas)?)
        .execute(&self.write)
        .await
        .map_err(db_error("record_export"))?;
        Ok(())
    }

    pub async fn last_export(&self, user_id: Uuid) -> Result<Option<ExportRecord>> {
        sqlx::query(
            "SELECT id, user_id, created_at, bytes, areas FROM exports WHERE user_id = $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(user_id)
        .try_map(|row: DB::Row| {
            Ok(ExportRecord {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                created_at: row.try_get::<Timestamp, _>("created_at")?.0,
                bytes: row.try_get("bytes")?,
                areas: serde_json::from_value(row.try_get("areas")?).map_err(json_err)?,
            })
        })
        .fetch_optional(&self.write)
        .await
        .map_err(db_error("last_export"))
    }

    pub async fn set_legal_hold(&self, h: &LegalHold) -> Result<()> {
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

    pub async fn clear_legal_hold(&self, user_id: Uuid) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM legal_holds WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.write)
            .await
            .map_err(db_error("clear_legal_hold"))?
            .rows()
            > 0)
    }

    pub async fn legal_holds(&self) -> Result<Vec<LegalHold>> {
        sqlx::query("SELECT user_id, reason, created_at FROM legal_holds ORDER BY user_id")
            .try_map(|row: DB::Row| {
                Ok(LegalHold {
                    user_id: row.try_get("user_id")?,
                    reason: row.try_get("reason")?,
                    created_at: row.try_get::<Timestamp, _>("created_at")?.0,
                })
            })
            .fetch_all(&self.write)
            .await
            .map_err(db_error("legal_holds"))
    }

    pub async fn put_screening(&self, r: &ScreeningRecord) -> Result<()> {
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

    pub async fn get_screening(&self, id: Uuid) -> Result<Option<ScreeningRecord>> {
        sqlx::query(
            "SELECT id, user_id, screening, request, appeal_status, appeal_reason, decision_note, \
             created_at, updated_at FROM screenings WHERE id = $1",
        )
        .bind(id)
        .try_map(|row| Self::screening_from_row(&row))
        .fetch_optional(&self.write)
        .await
        .map_err(db_error("get_screening"))
    }

    pub async fn list_screenings(
        &self,
        user_id: Option<Uuid>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ScreeningRecord>> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, user_id, screening, request, appeal_status, appeal_reason, decision_note, \
             created_at, updated_at FROM screenings WHERE TRUE",
        );
        if let Some(u) = user_id {
            q.push(" AND user_id = ").push_bind(u);
        }
        if let Some(b) = before {
            q.push(" AND id < ").push_bind(b);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(limit as i64);
        q.build()
            .try_map(|row| Self::screening_from_row(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_screenings"))
    }

    /// Deletes the rows of `table` whose `column` is `value` (an erasure); how many.
    pub async fn erase_rows(
        &self,
        table: &'static str,
        column: &'static str,
        value: impl for<'q> Encode<'q, DB> + Type<DB> + Send + 'static,
    ) -> Result<u64> {
        let sql = format!("DELETE FROM {table} WHERE {column} = $1");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .execute(&self.write)
            .await
            .map_err(db_error("erase"))?
            .rows())
    }

    /// Deletes an owner's jobs with their steps and their rows in the backend's side tables
    /// (queue entries and leases), in one transaction.
    pub async fn erase_jobs(&self, owner: Uuid) -> Result<u64> {
        let op = "erase_jobs";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        sqlx::query(
            "DELETE FROM job_steps WHERE job_id IN (SELECT id FROM jobs WHERE owner_id = $1)",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(db_error(op))?;
        for table in self.side_tables {
            let sql = format!(
                "DELETE FROM {table} WHERE id IN (SELECT id FROM jobs WHERE owner_id = $1)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .execute(&mut *tx)
                .await
                .map_err(db_error(op))?;
        }
        let n = sqlx::query("DELETE FROM jobs WHERE owner_id = $1")
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(db_error(op))?
            .rows();
        tx.commit().await.map_err(db_error(op))?;
        Ok(n)
    }

    pub async fn sweep(
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
                .build()
                .try_map(|row: DB::Row| row.try_get("n"))
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
                .build()
                .try_map(|row: DB::Row| row.try_get("n"))
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

    pub async fn list_users(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<User>> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, email, name, created_at, updated_at FROM users WHERE TRUE",
        );
        if let Some(a) = after {
            q.push(" AND id > ").push_bind(a);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(limit as i64);
        q.build()
            .try_map(|row: DB::Row| {
                Ok(User {
                    id: row.try_get("id")?,
                    email: row.try_get("email")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get::<Timestamp, _>("created_at")?.0,
                    updated_at: row.try_get::<Timestamp, _>("updated_at")?.0,
                })
            })
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_users"))
    }

    pub async fn delete_user(&self, id: Uuid) -> Result<bool> {
        let op = "delete_user";
        let mut tx = self.write.begin().await.map_err(db_error(op))?;
        sqlx::query("DELETE FROM api_keys WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error(op))?;
        let n = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error(op))?
            .rows();
        tx.commit().await.map_err(db_error(op))?;
        Ok(n > 0)
    }
}
