//! SIGKILL mid-run on PostgreSQL: every job still ends exactly once (see `support::crash_scenario`).

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_sigkill_mid_run() {
    support::crash_scenario(&support::fresh_pg_db().await, 2000).await;
}
