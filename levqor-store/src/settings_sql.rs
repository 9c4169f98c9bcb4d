//! Deployment settings, the same on both backends.

use crate::error::db_error;
use crate::sql::SqlStore;
use async_trait::async_trait;
use levqor_core::Result;
use levqor_core::settings::SettingsStore;
use serde_json::Value;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

impl<DB> SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
{
    async fn write_setting(&self, key: &str, value: &Value, only_if_absent: bool) -> Result<()> {
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
}

#[async_trait]
impl<DB> SettingsStore for SqlStore<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Value: Encode<'q, DB> + Type<DB>,
    for<'r> (Value,): FromRow<'r, DB::Row>,
{
    async fn get_setting(&self, key: &str) -> Result<Option<Value>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.write)
            .await
            .map_err(db_error("get_setting"))
    }

    async fn put_setting(&self, key: &str, value: &Value) -> Result<()> {
        self.write_setting(key, value, false).await
    }

    async fn put_setting_if_absent(&self, key: &str, value: &Value) -> Result<()> {
        self.write_setting(key, value, true).await
    }
}
