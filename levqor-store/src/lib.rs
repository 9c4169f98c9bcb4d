//! Levqor's store on SQL databases: [`SqliteStore`] (embedded, one process) and [`PgStore`] (any
//! number of nodes sharing one database), each implementing every store port of
//! `levqor-core` with the semantics of its in-memory reference store, which the core's
//! conformance suite checks for all three. Both are a [`SqlStore`]: the ports whose queries
//! read alike on both databases are implemented once, generically, one file per domain; the
//! job engine's hot paths are each backend's own.
//!
//! Queries are checked at run time (`sqlx::query`), so building needs no database; the schema is
//! applied by `sqlx::migrate!` from `migrations/sqlite` and `migrations/postgres`. Nothing here
//! holds a rule of the domain: this crate only stores and fetches, in as few statements per
//! batch as each database allows. Errors are the core's: a database that fails is `unavailable`
//! (the cause is logged, never returned), stored data that cannot be read is `internal`.
//!
//! ```no_run
//! # async fn demo() -> levqor_core::Result<()> {
//! let store = levqor_store::connect("sqlite://levqor.db").await?;
//! store.ping().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// The generic impls on `SqlStore` name the crate's row structs and column types in their
// bounds; those are implementation details, and `SqlStore` is only ever built for SQLite or
// PostgreSQL, where every bound holds.
#![allow(private_bounds)]

mod audit_sql;
mod billing_sql;
mod consent_sql;
mod credits_sql;
mod error;
mod jobs_sql;
mod outbox_sql;
mod plan;
mod postgres;
mod privacy_sql;
mod quotas_sql;
mod screening_sql;
mod settings_sql;
mod sql;
mod sqlite;
mod types;
mod users_sql;

pub use postgres::PgStore;
pub use sql::SqlStore;
pub use sqlite::SqliteStore;

use levqor_core::{Error, Store};
use std::sync::Arc;

/// The databases a URL can name.
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Result<Self, Error> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(Error::invalid(
                "bad_database_url",
                "the database URL must start with sqlite:, postgres:// or postgresql://",
            ))
        }
    }
}

/// Opens the database at `url`, brings its schema up to date and returns it as the core's
/// [`Store`]: `sqlite:path` or `sqlite://path` (the file is created if missing; `sqlite::memory:`
/// for a private in-memory database), or `postgres://…` / `postgresql://…`.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, Error> {
    Ok(match Backend::of(url)? {
        Backend::Sqlite => Arc::new(SqliteStore::connect(url).await?),
        Backend::Postgres => Arc::new(PgStore::connect(url).await?),
    })
}

/// Brings the schema of the database at `url` up to date, and nothing else.
pub async fn migrate(url: &str) -> Result<(), Error> {
    match Backend::of(url)? {
        Backend::Sqlite => SqliteStore::migrate(url).await,
        Backend::Postgres => PgStore::migrate(url).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_schemes_are_refused_before_anything_is_opened() {
        for url in ["mysql://localhost/db", "levqor.db", ""] {
            let err = connect(url).await.err().expect("refused");
            assert_eq!(err.code, "bad_database_url", "{url}");
        }
    }
}
