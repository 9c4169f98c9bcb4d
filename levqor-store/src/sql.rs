//! [`SqlStore`]: the pools of one database, and what every shared query uses. Each store port
//! whose queries read alike on SQLite and PostgreSQL (`$n` placeholders work on both) is
//! implemented once, generically over the database, in its domain's file (`users_sql`,
//! `consent_sql`, …); rows are read through `#[derive(FromRow)]` structs that convert into the
//! core's types ([`Stored`]). What differs (the hot admit/claim/commit paths, locking,
//! migrations) lives in `sqlite` and `postgres`.
//!
//! Rust does not carry a trait's where-clauses to its users, so each generic impl states the
//! encodings and rows it needs; the compiler checks them for both databases.

use sqlx::{Database, Encode, FromRow, Pool, QueryBuilder, Row, Type};

/// Levqor's store on one SQL database: [`SqliteStore`](crate::SqliteStore) or
/// [`PgStore`](crate::PgStore).
pub struct SqlStore<DB: Database> {
    /// Serves reads.
    pub(crate) read: Pool<DB>,
    /// Serves writes. On SQLite: the one connection allowed to write.
    pub(crate) write: Pool<DB>,
    /// Tables beside `jobs` keyed by job id (PostgreSQL's queue and leases), which deleting a
    /// job must clear too.
    pub(crate) side_tables: &'static [&'static str],
    /// What a `SELECT` appends to lock the rows it reads until the transaction ends
    /// (` FOR UPDATE` on PostgreSQL; nothing on SQLite, whose one writer serializes writes).
    pub(crate) row_lock: &'static str,
}

/// A row struct as stored, and the core's value it reads as (an unknown enum name or a
/// malformed document is a decode error: stored data that cannot be read).
pub(crate) trait Stored: Sized {
    /// The core's type.
    type Value;
    /// The value this row holds.
    fn into_value(self) -> Result<Self::Value, sqlx::Error>;
}

/// Reads `row` as the row struct `S` and converts it into the core's value.
pub(crate) fn decode<'r, R, S>(row: &'r R) -> Result<S::Value, sqlx::Error>
where
    R: Row,
    S: FromRow<'r, R> + Stored,
{
    S::from_row(row)?.into_value()
}

/// A decode error for a stored name that is not one of `what`'s.
pub(crate) fn unknown(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {what} {value:?}").into())
}

/// A stored name parsed with `parse`, or a decode error.
pub(crate) fn parsed<T>(
    what: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, sqlx::Error> {
    parse(value).ok_or_else(|| unknown(what, value))
}

/// A stored JSON document as `T`, or a decode error.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, sqlx::Error> {
    serde_json::from_value(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A row count limit as SQL takes it.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Pushes ` AND <column> NOT IN (…)` when `values` is not empty.
pub(crate) fn push_not_in<DB, T>(q: &mut QueryBuilder<DB>, column: &str, values: &[T])
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
    /// Rows changed.
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
