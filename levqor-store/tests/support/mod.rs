//! Fresh, empty stores for tests: a SQLite file in the temp directory, or a database of its own
//! on the PostgreSQL server at `LEVQOR_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each is named after a UUID v7, whose
//! timestamp lets a later run remove what a run over an hour ago left behind.

use levqor_core::Store;
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use uuid::Uuid;

/// A new database file `levqor-test-<uuid>.db` in the temp directory.
pub async fn sqlite() -> Arc<dyn Store> {
    remove_stale_files();
    let path = std::env::temp_dir().join(format!("levqor-test-{}.db", Uuid::now_v7().simple()));
    levqor_store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("sqlite store")
}

/// A new database `levqor_test_<uuid>` on the test server.
pub async fn postgres() -> Arc<dyn Store> {
    let server = std::env::var("LEVQOR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = PgConnection::connect(&server)
        .await
        .expect("PostgreSQL at LEVQOR_TEST_PG_URL");
    drop_stale_databases(&mut admin).await;
    let name = format!("levqor_test_{}", Uuid::now_v7().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    admin.close().await.ok();
    let (base, _) = server.rsplit_once('/').expect("a URL with a database name");
    levqor_store::connect(&format!("{base}/{name}"))
        .await
        .expect("postgres store")
}

/// Whether `id`, the UUID v7 that names a test database, is from over an hour ago.
fn is_stale(id: &str) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Uuid::parse_str(id)
        .ok()
        .and_then(|id| id.get_timestamp())
        .is_some_and(|ts| now.saturating_sub(ts.to_unix().0) > 3600)
}

fn remove_stale_files() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("levqor-test-") else {
            continue;
        };
        if is_stale(rest.split('.').next().unwrap_or_default()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

async fn drop_stale_databases(admin: &mut PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'levqor\\_test\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for name in names {
        if is_stale(&name["levqor_test_".len()..]) {
            // A database still in use refuses to be dropped; it goes on a later run.
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&mut *admin)
            .await;
        }
    }
}
