//! Users and API keys, the same on both backends.

use crate::error::{db_error, is_foreign_key_violation, is_unique_violation};
use crate::sql::{Affected, SqlStore, Stored, decode, limit};
use crate::types::{Timestamp, micros};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use levqor_core::users::{ApiKey, Upserted, User, UserStore};
use levqor_core::{Error, Result};
use serde_json::Value;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

const USER_COLUMNS: &str = "id, email, name, created_at, updated_at";
const KEY_COLUMNS: &str = "id, user_id, prefix, scopes, created_at, revoked_at";

/// A row of `users`.
#[derive(FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    email: String,
    name: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl Stored for UserRow {
    type Value = User;

    fn into_value(self) -> Result<User, sqlx::Error> {
        Ok(User {
            id: self.id,
            email: self.email,
            name: self.name,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
        })
    }
}

/// A row of `api_keys` without the secret's hash.
#[derive(FromRow)]
pub(crate) struct KeyRow {
    id: Uuid,
    user_id: Uuid,
    prefix: String,
    scopes: Value,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
}

impl Stored for KeyRow {
    type Value = ApiKey;

    fn into_value(self) -> Result<ApiKey, sqlx::Error> {
        Ok(ApiKey {
            id: self.id,
            user_id: self.user_id,
            prefix: self.prefix,
            scopes: crate::sql::from_json(self.scopes)?,
            created_at: self.created_at.0,
            revoked_at: self.revoked_at.map(|t| t.0),
        })
    }
}

#[async_trait]
impl<DB> UserStore for SqlStore<DB>
where
    DB: Database,
    DB::QueryResult: Affected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Timestamp: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Timestamp>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'r> UserRow: FromRow<'r, DB::Row>,
    for<'r> KeyRow: FromRow<'r, DB::Row>,
    for<'r> (Uuid,): FromRow<'r, DB::Row>,
{
    async fn upsert_user(&self, user: User) -> Result<Upserted> {
        let user = User {
            created_at: micros(user.created_at),
            updated_at: micros(user.updated_at),
            ..user
        };
        let inserted: Option<Uuid> = sqlx::query_scalar(
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

    async fn get_user(&self, id: Uuid) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .try_map(|row| decode::<_, UserRow>(&row))
            .fetch_optional(&self.read)
            .await
            .map_err(db_error("get_user"))
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .try_map(|row| decode::<_, UserRow>(&row))
            .fetch_optional(&self.read)
            .await
            .map_err(db_error("find_user_by_email"))
    }

    async fn update_user(&self, user: &User) -> Result<Option<User>> {
        let sql = format!(
            "UPDATE users SET email = $2, name = $3, updated_at = $4 WHERE id = $1 \
             RETURNING {USER_COLUMNS}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user.id)
            .bind(user.email.as_str())
            .bind(user.name.as_deref())
            .bind(Timestamp(user.updated_at))
            .try_map(|row| decode::<_, UserRow>(&row))
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

    async fn insert_key(&self, key: &ApiKey, secret_hash: &str) -> Result<()> {
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

    async fn list_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY id DESC");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .try_map(|row| decode::<_, KeyRow>(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_keys"))
    }

    async fn get_key(&self, id: Uuid) -> Result<Option<ApiKey>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .try_map(|row| decode::<_, KeyRow>(&row))
            .fetch_optional(&self.read)
            .await
            .map_err(db_error("get_key"))
    }

    /// Revoking twice keeps the first revocation time.
    async fn revoke_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<ApiKey>> {
        let sql = format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
             RETURNING {KEY_COLUMNS}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(Timestamp(now))
            .try_map(|row| decode::<_, KeyRow>(&row))
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("revoke_key"))
    }

    async fn find_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKey>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(secret_hash)
            .try_map(|row| decode::<_, KeyRow>(&row))
            .fetch_optional(&self.read)
            .await
            .map_err(db_error("find_key_by_hash"))
    }

    async fn list_users(&self, after: Option<Uuid>, limit_to: usize) -> Result<Vec<User>> {
        let mut q = QueryBuilder::<DB>::new(format!("SELECT {USER_COLUMNS} FROM users WHERE TRUE"));
        if let Some(a) = after {
            q.push(" AND id > ").push_bind(a);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(limit(limit_to));
        q.build()
            .try_map(|row| decode::<_, UserRow>(&row))
            .fetch_all(&self.read)
            .await
            .map_err(db_error("list_users"))
    }

    async fn delete_user(&self, id: Uuid) -> Result<bool> {
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
