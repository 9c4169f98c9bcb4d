//! How database failures become core errors. The cause (which may quote the database's own
//! message) is logged here with the operation that failed; the caller gets a kind and a stable
//! code, never SQL.

use levqor_core::Error;

/// Maps a failure of `operation` to the core error a caller may see: stored data that cannot be
/// read is a bug (`internal`); anything else means the database is not serving (`unavailable`).
pub(crate) fn db_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| match e {
        sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => {
            tracing::error!(operation, error = %e, "stored data could not be read");
            Error::internal("stored data could not be read")
        }
        e => {
            tracing::warn!(operation, error = %e, "database call failed");
            Error::unavailable("the database is unavailable")
        }
    }
}

/// Maps a failure to open or migrate a database.
pub(crate) fn setup_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| match e {
        sqlx::Error::Configuration(_) => {
            tracing::warn!(operation, error = %e, "bad database URL");
            Error::invalid("bad_database_url", "the database URL is not valid")
        }
        e => db_error(operation)(e),
    }
}

/// Whether `e` is a unique-constraint violation (on any backend).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Whether `e` is a foreign-key violation (on any backend).
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_foreign_key_violation())
}

/// Maps a migration failure.
pub(crate) fn migrate_error(e: sqlx::migrate::MigrateError) -> Error {
    tracing::warn!(error = %e, "database migration failed");
    Error::unavailable("the database schema could not be migrated")
}
