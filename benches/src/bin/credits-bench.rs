//! Ledger and admission throughput at 64 concurrent clients: grants posted straight to the
//! ledger, and jobs admitted through intake (quote, hold, admit in one transaction), each with
//! the clients on their own accounts and on one shared account. Prints
//! `<system> <metric>=<number>` lines.
//!
//! ```text
//! credits-bench --database-url postgres://… [--clients 64] [--ops 20000]
//! ```

use clap::Parser;
use levqor_core::credits::{EntryKind, NewEntry};
use levqor_core::{
    HttpClient, HttpRequest, HttpResponse, Levqor, OutboxNotifier, Principal, StepFailure,
    StepRunner, SubmitRequest, SystemClock, Upserted,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// `sqlite:PATH` or `postgres://…`.
    #[arg(long)]
    database_url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Operations per measurement.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
}

struct Offline;

#[async_trait::async_trait]
impl HttpClient for Offline {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, StepFailure> {
        Err(StepFailure::permanent("offline"))
    }
}

async fn users(levqor: &Levqor, n: usize) -> Vec<(Uuid, Principal)> {
    let admin = Principal::Admin;
    let mut out = Vec::new();
    for _ in 0..n {
        let email = format!("c-{}@example.com", Uuid::new_v4().simple());
        let (Upserted::Created(u) | Upserted::Existing(u)) =
            levqor.users().create(&admin, &email, None).await.unwrap();
        let key = levqor.users().create_key(&admin, u.id, None).await.unwrap();
        out.push((
            u.id,
            levqor.users().authenticate(&key.secret).await.unwrap(),
        ));
    }
    out
}

/// Runs `ops` calls of `op` from `clients` tasks, client `i` on `targets[i % len]`; ops/s.
async fn run<F, Fut>(clients: usize, ops: usize, targets: &[(Uuid, Principal)], op: F) -> f64
where
    F: Fn(Uuid, Principal, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let op = op.clone();
            let (user, who) = targets[c % targets.len()].clone();
            let mine = ops / clients + usize::from(c < ops % clients);
            tokio::spawn(async move {
                for i in 0..mine {
                    op(user, who.clone(), c * 1_000_000 + i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    ops as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let store = levqor_store::connect(&args.database_url)
        .await
        .expect("database");
    let system = store.backend();
    let runner = Arc::new(StepRunner::new(
        Arc::new(Offline),
        Arc::new(OutboxNotifier::new(store.clone())),
        Vec::new(),
    ));
    let levqor = Arc::new(
        Levqor::builder(store.clone(), runner)
            .clock(Arc::new(SystemClock))
            .admin_key(Some("admin"))
            .build()
            .expect("service"),
    );
    let own = users(&levqor, args.clients).await;
    let shared = users(&levqor, 1).await;
    let run_id = Uuid::new_v4().simple().to_string();

    for (label, targets) in [("own_accounts", &own), ("one_account", &shared)] {
        let s = store.clone();
        let rid = run_id.clone();
        let rate = run(args.clients, args.ops, targets, move |user, _, i| {
            let s = s.clone();
            let key = format!("{rid}-{label}-{i}");
            async move {
                s.post_entry(&NewEntry {
                    user_id: user,
                    kind: EntryKind::Grant,
                    credits: 1_000,
                    idempotency_key: key,
                    reason: None,
                    priority: 0,
                    expires_at: None,
                    now: chrono::Utc::now(),
                })
                .await
                .unwrap();
            }
        })
        .await;
        println!(
            "{system} ledger_grants_per_s_{label}={rate:.0} clients={}",
            args.clients
        );
    }

    let workflow = json!({"name": "w", "steps": [{"id": "a", "type": "email", "to": "x@example.com", "subject": "s", "body": "b"}]});
    for (label, targets) in [("own_accounts", &own), ("one_account", &shared)] {
        let l = levqor.clone();
        let wf = workflow.clone();
        let rate = run(args.clients, args.ops, targets, move |_, who, _| {
            let (l, wf) = (l.clone(), wf.clone());
            async move {
                l.jobs()
                    .submit(
                        &who,
                        SubmitRequest {
                            workflow: wf,
                            input: json!({}),
                            max_attempts: None,
                            run_after: Some(chrono::Utc::now() + chrono::Duration::days(1)),
                            idempotency_key: None,
                        },
                    )
                    .await
                    .unwrap();
            }
        })
        .await;
        println!(
            "{system} admissions_with_hold_per_s_{label}={rate:.0} clients={}",
            args.clients
        );
    }
}
