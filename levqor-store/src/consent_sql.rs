//! Terms, marketing consent, objections and the consent ledger, the same on both backends. A
//! consent change and its ledger record are written in one transaction; the ledger's head row,
//! updated first, serializes appends across nodes.

use crate::error::{db_error, is_unique_violation};
use crate::sql::{Affected, SqlStore, Stored, decode, from_json, parsed};
use crate::types::{Timestamp, micros};
use async_trait::async_trait;
use levqor_core::consent::{
    Category, ConsentErasure, ConsentStats, ConsentStore, LedgerEntry, LedgerRecord, Objection,
    ObjectionKind, Subscription, SubscriptionStatus, TermsAcceptance, TermsVersion, seal,
};
use levqor_core::error::to_json;
use levqor_core::notify::OutboxMessage;
use levqor_core::{Error, Result};
use serde_json::Value;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

/// A row of `terms_versions`.
#[derive(FromRow)]
pub(crate) struct TermsRow {
    version: String,
    effective_at: Timestamp,
    changelog: String,
    material: bool,
    published_at: Timestamp,
}

impl Stored for TermsRow {
    type Value = TermsVersion;

    fn into_value(self) -> Result<TermsVersion, sqlx::Error> {
        Ok(TermsVersion {
            version: self.version,
            effective_at: self.effective_at.0,
            changelog: self.changelog,
            material: self.material,
            published_at: self.published_at.0,
        })
    }
}

/// A row of `terms_acceptances`.
#[derive(FromRow)]
pub(crate) struct AcceptanceRow {
    id: Uuid,
    user_id: Uuid,
    version: String,
    accepted_at: Timestamp,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl Stored for AcceptanceRow {
    type Value = TermsAcceptance;

    fn into_value(self) -> Result<TermsAcceptance, sqlx::Error> {
        Ok(TermsAcceptance {
            id: self.id,
            user_id: self.user_id,
            version: self.version,
            accepted_at: self.accepted_at.0,
            ip: self.ip,
            user_agent: self.user_agent,
        })
    }
}

/// A row of `marketing_subscriptions`.
#[derive(FromRow)]
pub(crate) struct SubscriptionRow {
    id: Uuid,
    email: String,
    status: String,
    categories: Value,
    token_hash: Option<String>,
    token_expires_at: Option<Timestamp>,
    token_used_at: Option<Timestamp>,
    last_sent_at: Option<Timestamp>,
    confirmed_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl Stored for SubscriptionRow {
    type Value = Subscription;

    fn into_value(self) -> Result<Subscription, sqlx::Error> {
        Ok(Subscription {
            id: self.id,
            email: self.email,
            status: parsed(
                "subscription status",
                &self.status,
                SubscriptionStatus::parse,
            )?,
            categories: from_json(self.categories)?,
            token_hash: self.token_hash,
            token_expires_at: self.token_expires_at.map(|t| t.0),
            token_used_at: self.token_used_at.map(|t| t.0),
            last_sent_at: self.last_sent_at.map(|t| t.0),
            confirmed_at: self.confirmed_at.map(|t| t.0),
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        })
    }
}

/// A row of `objections` without its user.
#[derive(FromRow)]
pub(crate) struct ObjectionRow {
    kind: String,
    objected: bool,
    updated_at: Timestamp,
}

impl Stored for ObjectionRow {
    type Value = Objection;

    fn into_value(self) -> Result<Objection, sqlx::Error> {
        Ok(Objection {
            kind: parsed("objection", &self.kind, ObjectionKind::parse)?,
            objected: self.objected,
            updated_at: self.updated_at.0,
        })
    }
}

/// A row of `consent_ledger`; the detail is stored as text, so its hash recomputes exactly.
#[derive(FromRow)]
pub(crate) struct LedgerRow {
    seq: i64,
    id: Uuid,
    at: Timestamp,
    subject: Uuid,
    action: String,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl Stored for LedgerRow {
    type Value = LedgerRecord;

    fn into_value(self) -> Result<LedgerRecord, sqlx::Error> {
        Ok(LedgerRecord {
            seq: self.seq,
            entry: LedgerEntry {
                id: self.id,
                at: self.at.0,
                subject: self.subject,
                action: self.action,
                detail: serde_json::from_str(&self.detail)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
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
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'r> SubscriptionRow: FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> (Uuid, Value): FromRow<'r, DB::Row>,
{
    /// Appends `entry` to the ledger inside `tx`: takes the head (locking it), seals the record
    /// after it, inserts it and moves the head.
    async fn append_ledger(conn: &mut DB::Connection, entry: &LedgerEntry) -> Result<()> {
        let (seq, prev): (i64, String) = sqlx::query_as(
            "UPDATE consent_ledger_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error("append_ledger"))?;
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
        messages: &[OutboxMessage],
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
        let messages: Vec<&OutboxMessage> = messages.iter().collect();
        crate::outbox_sql::insert_messages::<DB>(&mut tx, &messages).await?;
        tx.commit().await.map_err(db_error(operation))
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
            .try_map(|row| decode::<_, SubscriptionRow>(&row))
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("get_subscription"))
    }

    async fn count(&self, sql: &'static str, bind: Option<&str>) -> Result<u64> {
        let q = sqlx::query_scalar::<_, i64>(sql);
        let q = match bind {
            Some(b) => q.bind(b.to_string()),
            None => q,
        };
        let n = q.fetch_one(&self.read).await.map_err(db_error("count"))?;
        Ok(n as u64)
    }

    async fn list_subscribed_any(&self, after: Option<Uuid>) -> Result<Vec<(Uuid, Vec<Category>)>> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT id, categories FROM marketing_subscriptions WHERE status = 'subscribed'",
        );
        if let Some(a) = after {
            q.push(" AND id > ").push_bind(a);
        }
        q.push(" ORDER BY id LIMIT 1000");
        q.build_query_as::<(Uuid, Value)>()
            .fetch_all(&self.read)
            .await
            .map_err(db_error("consent_stats"))?
            .into_iter()
            .map(|(id, cats)| Ok((id, from_json(cats).map_err(db_error("consent_stats"))?)))
            .collect()
    }
}

#[async_trait]
impl<DB> ConsentStore for SqlStore<DB>
where
    DB: Database,
    DB::QueryResult: Affected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'r> SubscriptionRow: FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> (Uuid, Value): FromRow<'r, DB::Row>,
    for<'r> TermsRow: FromRow<'r, DB::Row>,
    for<'r> AcceptanceRow: FromRow<'r, DB::Row>,
    for<'r> ObjectionRow: FromRow<'r, DB::Row>,
    for<'r> LedgerRow: FromRow<'r, DB::Row>,
    for<'r> (Uuid,): FromRow<'r, DB::Row>,
{
    async fn publish_terms(
        &self,
        t: &TermsVersion,
        entry: &LedgerEntry,
        messages: &[OutboxMessage],
    ) -> Result<()> {
        let t = t.clone();
        self.with_ledger("publish_terms", Some(entry), messages, move |c| {
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

    async fn list_terms(&self) -> Result<Vec<TermsVersion>> {
        sqlx::query(
            "SELECT version, effective_at, changelog, material, published_at FROM terms_versions",
        )
        .try_map(|row| decode::<_, TermsRow>(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("list_terms"))
    }

    async fn accept_terms(&self, a: &TermsAcceptance, entry: &LedgerEntry) -> Result<()> {
        let a = a.clone();
        self.with_ledger("accept_terms", Some(entry), &[], move |c| {
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

    async fn list_acceptances(&self, user_id: Uuid) -> Result<Vec<TermsAcceptance>> {
        sqlx::query(
            "SELECT id, user_id, version, accepted_at, ip, user_agent FROM terms_acceptances \
             WHERE user_id = $1 ORDER BY id DESC",
        )
        .bind(user_id)
        .try_map(|row| decode::<_, AcceptanceRow>(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("list_acceptances"))
    }

    async fn subscription_by_email(&self, email: &str) -> Result<Option<Subscription>> {
        self.subscription_where("email = $1", email.to_string())
            .await
    }

    async fn subscription_by_token(&self, token_hash: &str) -> Result<Option<Subscription>> {
        self.subscription_where("token_hash = $1", token_hash.to_string())
            .await
    }

    async fn get_subscription(&self, id: Uuid) -> Result<Option<Subscription>> {
        self.subscription_where("id = $1", id).await
    }

    async fn put_subscription(
        &self,
        sub: &Subscription,
        entry: Option<&LedgerEntry>,
        messages: &[OutboxMessage],
    ) -> Result<()> {
        let s = sub.clone();
        let categories = to_json(&s.categories)?;
        self.with_ledger("put_subscription", entry, messages, move |c| {
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

    async fn list_subscribed(
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
                .try_map(|row| decode::<_, SubscriptionRow>(&row))
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

    async fn set_objection(
        &self,
        user_id: Uuid,
        o: &Objection,
        entry: &LedgerEntry,
        messages: &[OutboxMessage],
    ) -> Result<()> {
        let o = o.clone();
        self.with_ledger("set_objection", Some(entry), messages, move |c| {
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

    async fn list_objections(&self, user_id: Uuid) -> Result<Vec<Objection>> {
        sqlx::query("SELECT kind, objected, updated_at FROM objections WHERE user_id = $1")
            .bind(user_id)
            .try_map(|row| decode::<_, ObjectionRow>(&row))
            .fetch_all(&self.write)
            .await
            .map_err(db_error("list_objections"))
    }

    async fn objects_by_email(&self, email: &str, kind: ObjectionKind) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM objections o JOIN users u ON u.id = o.user_id \
             WHERE u.email = $1 AND o.kind = $2 AND o.objected",
        )
        .bind(email)
        .bind(kind.as_str())
        .fetch_one(&self.read)
        .await
        .map_err(db_error("objects_by_email"))?;
        Ok(n > 0)
    }

    async fn subject_of(&self, user_id: Uuid) -> Result<Uuid> {
        sqlx::query(
            "INSERT INTO consent_subjects (user_id, subject) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(Uuid::new_v4())
        .execute(&self.write)
        .await
        .map_err(db_error("subject_of"))?;
        sqlx::query_scalar("SELECT subject FROM consent_subjects WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.write)
            .await
            .map_err(db_error("subject_of"))
    }

    async fn ledger_after(&self, after: i64, limit: usize) -> Result<Vec<LedgerRecord>> {
        sqlx::query(
            "SELECT seq, id, at, subject, action, detail, prev_hash, hash FROM consent_ledger \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit as i64)
        .try_map(|row| decode::<_, LedgerRow>(&row))
        .fetch_all(&self.read)
        .await
        .map_err(db_error("ledger_after"))
    }

    async fn erase_consents(
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

    async fn consent_stats(&self, current: Option<&str>) -> Result<ConsentStats> {
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
}
