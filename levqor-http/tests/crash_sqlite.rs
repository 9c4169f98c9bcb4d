//! SIGKILL mid-run on SQLite: every job still ends exactly once (see `support::crash_scenario`).

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill_mid_run() {
    support::crash_scenario(&support::fresh_sqlite_db(), 2000).await;
}
