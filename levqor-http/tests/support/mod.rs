//! Helpers for tests that run the real `levqor` binary: start nodes, a local target server
//! that records every hit, fresh PostgreSQL databases, and a small REST client.
#![allow(dead_code)]

pub mod app;
pub mod fake_delivery;
pub mod fake_stripe;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "test-admin-key";

/// A running `levqor serve`.
pub struct Node {
    pub child: Child,
    pub base: String,
    /// The gRPC address (`host:port`).
    pub grpc: String,
}

impl Node {
    /// Starts `levqor serve` on a free port with `db` and extra flags; `http_request` steps may
    /// reach loopback (the test's target server).
    pub fn start(db: &str, extra: &[&str]) -> Node {
        Self::spawn(db, true, extra)
    }

    /// Like [`Node::start`], with the default address policy (no private targets).
    pub fn start_guarded(db: &str, extra: &[&str]) -> Node {
        Self::spawn(db, false, extra)
    }

    fn spawn(db: &str, allow_private: bool, extra: &[&str]) -> Node {
        let log =
            std::env::temp_dir().join(format!("levqor-test-{}.log", uuid::Uuid::now_v7().simple()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_levqor"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--grpc-listen",
                "127.0.0.1:0",
                "--database-url",
                db,
                "--admin-key",
                ADMIN,
                "--poll-ms",
                "20",
                "--signup-credits",
                "1000000000",
                "--default-tier",
                "enterprise",
            ])
            .args(if allow_private {
                &["--http-allow-private"][..]
            } else {
                &[][..]
            })
            .args(extra)
            .env("LEVQOR_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("levqor starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("levqor listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        let grpc = line
            .trim()
            .strip_prefix("levqor grpc listening on ")
            .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
            .to_string();
        Node {
            child,
            base: format!("http://{addr}"),
            grpc,
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap().success()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request seen by the target server.
#[derive(Debug, Clone)]
pub struct Hit {
    pub job: String,
    pub step: String,
    pub attempt: i64,
    pub node: String,
}

/// A local HTTP server for `http_request` steps. `POST /hit?sleep_ms=` records the
/// `x-job`, `x-step`, `x-attempt` and `x-node` headers.
#[derive(Clone, Default)]
pub struct Target {
    pub hits: Arc<Mutex<Vec<Hit>>>,
    pub base: String,
}

#[derive(serde::Deserialize)]
struct HitQuery {
    sleep_ms: Option<u64>,
}

impl Target {
    pub async fn start() -> Target {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let app = axum::Router::new()
            .route(
                "/hit",
                post(
                    |State(hits): State<Arc<Mutex<Vec<Hit>>>>,
                     Query(q): Query<HitQuery>,
                     headers: HeaderMap| async move {
                        if let Some(ms) = q.sleep_ms {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        let h = |k: &str| {
                            headers
                                .get(k)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string()
                        };
                        hits.lock().unwrap().push(Hit {
                            job: h("x-job"),
                            step: h("x-step"),
                            attempt: h("x-attempt").parse().unwrap_or(-1),
                            node: h("x-node"),
                        });
                        axum::Json(json!({"ok": true, "greeting": "hello"}))
                    },
                ),
            )
            .route("/plain", get(|| async { "plain text" }))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Target { hits, base }
    }

    pub fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    /// An `http_request` step that records a hit.
    pub fn step(&self, id: &str, sleep_ms: u64) -> Value {
        json!({"id": id, "type": "http_request", "method": "POST", "url": format!("{}/hit?sleep_ms={sleep_ms}", self.base),
               "headers": {"x-job": "{{job.id}}", "x-step": id, "x-attempt": "{{job.attempt}}", "x-node": "{{job.node}}"},
               "body": {"job": "{{job.id}}"}, "timeout_ms": 10000})
    }
}

/// A REST client for one node.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            base: base.into(),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A new user's key.
    pub async fn user_key(&self, email: &str) -> String {
        let (s, user) = self
            .call("POST", "/v1/users", ADMIN, Some(json!({"email": email})))
            .await;
        assert!(s == 201 || s == 200, "{user}");
        let (s, key) = self
            .call(
                "POST",
                &format!("/v1/users/{}/keys", user["id"].as_str().unwrap()),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(s, 201, "{key}");
        key["key"].as_str().unwrap().to_string()
    }

    /// Submits `n` jobs with `concurrency` callers; returns their ids.
    pub async fn submit_many(
        &self,
        key: &str,
        n: usize,
        concurrency: usize,
        body: Value,
    ) -> Vec<String> {
        use futures::StreamExt;
        futures::stream::iter(0..n)
            .map(|_| {
                let body = body.clone();
                async move {
                    let (s, job) = self.call("POST", "/v1/jobs", key, Some(body)).await;
                    assert_eq!(s, 202, "{job}");
                    job["id"].as_str().unwrap().to_string()
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await
    }

    /// Polls the job until it is in `status` (or `timeout` passes); the job as last seen.
    pub async fn wait_for_status(
        &self,
        key: &str,
        id: &str,
        status: &str,
        timeout: Duration,
    ) -> (bool, Value) {
        let path = format!("/v1/jobs/{id}");
        let reached = wait_for(timeout, || async {
            self.call("GET", &path, key, None).await.1["status"] == status
        })
        .await;
        (reached, self.call("GET", &path, key, None).await.1)
    }

    /// Every users' job the admin can see (the platform's own system jobs left out).
    pub async fn all_jobs(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/jobs?limit=100&cursor={c}"),
                None => "/v1/jobs?limit=100".to_string(),
            };
            let (s, page) = self.call("GET", &path, ADMIN, None).await;
            assert_eq!(s, 200, "{page}");
            out.extend(
                page["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|j| j["owner_id"] != SYSTEM_OWNER)
                    .cloned(),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    pub async fn status_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for j in self.all_jobs().await {
            *counts
                .entry(j["status"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        counts
    }
}

/// The owner of the platform's own jobs (the daily retention sweep).
pub const SYSTEM_OWNER: &str = "00000000-0000-0000-0000-000000000000";

/// Polls `check` until it returns true or `timeout` passes.
pub async fn wait_for<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A new, empty PostgreSQL database; its URL.
pub async fn fresh_pg_db() -> String {
    use sqlx::Connection;
    let admin = std::env::var("LEVQOR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL is reachable at LEVQOR_TEST_PG_URL");
    let name = format!("levqor_test_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A new SQLite database file; its URL.
pub fn fresh_sqlite_db() -> String {
    let path =
        std::env::temp_dir().join(format!("levqor-test-{}.db", uuid::Uuid::now_v7().simple()));
    format!("sqlite:{}", path.display())
}

/// The crash test: submit `n` jobs whose steps take a while, SIGKILL the node mid-run, start a
/// new one on the same database, and check that every job ends, none is lost, none completes
/// twice, and no step whose checkpoint was written ran again.
pub async fn crash_scenario(db: &str, n: usize) {
    let target = Target::start().await;
    let flags = ["--lease-secs", "2", "--workers", "32"];
    let first = Node::start(db, &flags);
    let api = Client::new(&first.base);
    let key = api.user_key("crash@example.com").await;
    let workflow = json!({"name": "crash", "steps": [
        {"id": "a", "type": "log", "message": "start"},
        target.step("b", 3),
        {"id": "c", "type": "delay", "ms": 10},
        target.step("d", 3),
        {"id": "e", "type": "log", "message": "end"}
    ]});
    let ids = api
        .submit_many(
            &key,
            n,
            32,
            json!({"workflow": workflow, "max_attempts": 5}),
        )
        .await;
    assert_eq!(ids.len(), n);
    let total_hits = 2 * n;
    assert!(
        wait_for(Duration::from_secs(120), || async {
            target.count() >= total_hits * 3 / 10
        })
        .await,
        "the node made progress"
    );
    first.kill();
    let at_kill = target.count();
    assert!(
        at_kill < total_hits,
        "the node was killed mid-run ({at_kill} of {total_hits} requests made)"
    );

    let second = Node::start(db, &flags);
    let api = Client::new(&second.base);
    let finished = wait_for(Duration::from_secs(180), || async {
        let counts = api.status_counts().await;
        ["succeeded", "dead", "canceled"]
            .iter()
            .map(|s| counts.get(*s).copied().unwrap_or(0))
            .sum::<usize>()
            == n
    })
    .await;
    let counts = api.status_counts().await;
    assert!(finished, "every job reaches a terminal state: {counts:?}");
    assert_eq!(counts.get("succeeded").copied(), Some(n), "{counts:?}");

    let jobs = api.all_jobs().await;
    assert_eq!(jobs.len(), n, "no job is lost or duplicated");
    let mut listed: Vec<String> = jobs
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut submitted = ids.clone();
    submitted.sort();
    assert_eq!(listed, submitted);

    // Where each step's checkpoint says it completed.
    use futures::StreamExt;
    let checkpoints: Vec<(String, HashMap<String, i64>)> =
        futures::stream::iter(ids.iter().cloned())
            .map(|id| {
                let api = api.clone();
                async move {
                    let (_, steps) = api
                        .call("GET", &format!("/v1/jobs/{id}/steps"), ADMIN, None)
                        .await;
                    let done = steps["steps"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| {
                            assert_eq!(s["status"], "succeeded", "{steps}");
                            (
                                s["id"].as_str().unwrap().to_string(),
                                s["attempt"].as_i64().unwrap(),
                            )
                        })
                        .collect();
                    (id, done)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
    let hits = target.hits.lock().unwrap().clone();
    let mut by_step: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for h in &hits {
        by_step
            .entry((h.job.clone(), h.step.clone()))
            .or_default()
            .push(h.attempt);
    }
    let mut reruns_of_unfinished = 0;
    for (job, done) in &checkpoints {
        for step in ["b", "d"] {
            let completed_in = done[step];
            let attempts = by_step
                .get(&(job.clone(), step.to_string()))
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                attempts.iter().filter(|&&a| a == completed_in).count(),
                1,
                "job {job} step {step} ran exactly once in the attempt that completed it: {attempts:?}"
            );
            assert!(
                attempts.iter().all(|&a| a <= completed_in),
                "job {job} step {step} ran again after its checkpoint (attempt {completed_in}): {attempts:?}"
            );
            reruns_of_unfinished += attempts.len() - 1;
        }
    }
    // Only steps in flight at the kill could run twice: at most one per worker.
    assert!(
        reruns_of_unfinished <= 32,
        "{reruns_of_unfinished} steps re-ran"
    );
    println!(
        "killed after {at_kill} of {total_hits} requests; {reruns_of_unfinished} unfinished steps ran again after the restart"
    );
    drop(second);
}
