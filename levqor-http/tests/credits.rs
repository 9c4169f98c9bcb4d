//! Credits through the REST API: quotes, admission holds (402 when they do not fit), admin
//! grants, settlement at the actual cost once the job ran, and 64 clients racing for the last
//! credits on PostgreSQL.

mod support;

use axum::http::{StatusCode, header};
use levqor_core::{EngineConfig, Levqor, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::app::{App, runner};

const ADMIN: &str = "admin-secret";

fn service(store: Arc<dyn Store>) -> App {
    App::new(
        Levqor::builder(store.clone(), runner(store))
            .admin_key(Some(ADMIN))
            .build()
            .unwrap(),
    )
}

async fn user(app: &App, email: &str) -> (String, String) {
    let (_, u) = app
        .call(
            "POST",
            "/v1/users",
            Some(ADMIN),
            Some(json!({"email": email})),
        )
        .await
        .pair();
    let id = u["id"].as_str().unwrap().to_string();
    let (_, k) = app
        .call("POST", &format!("/v1/users/{id}/keys"), Some(ADMIN), None)
        .await
        .pair();
    (id, k["key"].as_str().unwrap().to_string())
}

fn workflow() -> Value {
    json!({"name": "w", "steps": [
        {"id": "a", "type": "log", "message": "x"},
        {"id": "b", "type": "condition", "if": {"path": "/input/go", "op": "eq", "value": true}, "then": "c", "else": "d"},
        {"id": "c", "type": "http_request", "url": "https://example.invalid/", "method": "GET"},
        {"id": "d", "type": "log", "message": "skipped the request"}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_quoted_held_and_settled_at_what_ran() {
    let app = service(Arc::new(levqor_core::MemoryStore::new()));
    let (id, key) = user(&app, "payer@example.com").await;

    // The quote: 1 + 1 + 10 + 1 at a calm load factor of 1.0.
    let (s, q) = app
        .call(
            "POST",
            "/v1/quote",
            Some(&key),
            Some(json!({"workflow": workflow()})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(q["credits"], 13, "{q}");
    let names: Vec<&str> = q["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "base:condition",
            "base:http_request",
            "base:log",
            "load_factor",
            "performance_bonus"
        ]
    );
    assert_eq!(q["components"][3]["factor"], 1.0);
    let (s, bad) = app
        .call(
            "POST",
            "/v1/quote",
            Some(&key),
            Some(json!({"workflow": {"steps": "no"}})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    // A new user has nothing: the job is refused and nothing is written.
    let submit = json!({"workflow": workflow(), "input": {"go": false}});
    let (s, r) = app
        .call("POST", "/v1/jobs", Some(&key), Some(submit.clone()))
        .await
        .pair();
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::PAYMENT_REQUIRED, Some("insufficient_credits"))
    );
    let (_, jobs) = app.call("GET", "/v1/jobs", Some(&key), None).await.pair();
    assert!(jobs["jobs"].as_array().unwrap().is_empty());

    // The admin grants 20 (a retry with the same key grants nothing more).
    let grant = json!({"credits": 20, "reason": "welcome", "idempotency_key": "welcome-1"});
    let (s, e) = app
        .call(
            "POST",
            &format!("/v1/admin/users/{id}/credits"),
            Some(ADMIN),
            Some(grant.clone()),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let (s, again) = app
        .call(
            "POST",
            &format!("/v1/admin/users/{id}/credits"),
            Some(ADMIN),
            Some(grant),
        )
        .await
        .pair();
    assert_eq!((s, &again["id"]), (StatusCode::OK, &e["id"]));
    let (s, r) = app
        .call(
            "POST",
            &format!("/v1/admin/users/{id}/credits"),
            Some(&key),
            Some(json!({"credits": 5, "idempotency_key": "x"})),
        )
        .await
        .pair();
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin_only"))
    );
    let (s, r) = app
        .call(
            "POST",
            &format!("/v1/admin/users/{id}/credits"),
            Some(ADMIN),
            Some(json!({"credits": 1.5})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r["errors"].as_array().unwrap().len(), 2, "{r}");

    // Now the job is admitted with its quote, and 13 are held.
    let (s, job) = app
        .call("POST", "/v1/jobs", Some(&key), Some(submit.clone()))
        .await
        .pair();
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["quote"]["credits"], 13);
    let (_, c) = app
        .call("GET", "/v1/credits", Some(&key), None)
        .await
        .pair();
    assert_eq!(c, json!({"balance": 20, "available": 7, "held": 13}));
    let (s, r) = app
        .call("POST", "/v1/jobs", Some(&key), Some(submit))
        .await
        .pair();
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{r}");

    // It runs; the condition skips the request, so it costs 1 + 1 + 1, and the hold settles.
    let engine = app.levqor.start_engine(EngineConfig {
        workers: 2,
        poll_interval: Duration::from_millis(10),
        ..EngineConfig::default()
    });
    let settled = support::wait_for(Duration::from_secs(10), || {
        let app = app.clone();
        let key = key.clone();
        async move {
            app.call("GET", "/v1/credits", Some(&key), None)
                .await
                .pair()
                .1["held"]
                == 0
        }
    })
    .await;
    engine.shutdown().await;
    assert!(settled);
    let (_, c) = app
        .call("GET", "/v1/credits", Some(&key), None)
        .await
        .pair();
    assert_eq!(c, json!({"balance": 17, "available": 17, "held": 0}));
    let (_, entries) = app
        .call("GET", "/v1/credits/entries", Some(&key), None)
        .await
        .pair();
    let kinds: Vec<(&str, i64)> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["credits"].as_i64().unwrap()))
        .collect();
    assert_eq!(kinds, [("settle", -3), ("hold", 0), ("grant", 20)]);
    assert_eq!(entries["entries"][0]["job_id"], job["id"]);
}

/// 64 clients race to submit jobs against a balance that covers exactly N of them: exactly N
/// are admitted, the rest get 402, and the ledger adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_race_for_the_last_credits_on_postgres() {
    const CLIENTS: usize = 64;
    const N: i64 = 23;
    let store = levqor_store::connect(&support::fresh_pg_db().await)
        .await
        .unwrap();
    let app = service(store.clone());
    let (id, key) = user(&app, "racer@example.com").await;
    let one = json!({"workflow": {"name": "w", "steps": [{"id": "a", "type": "email", "to": "x@example.com", "subject": "s", "body": "b"}]}});
    let (_, q) = app
        .call(
            "POST",
            "/v1/quote",
            Some(&key),
            Some(json!({"workflow": one["workflow"]})),
        )
        .await
        .pair();
    let price = q["credits"].as_i64().unwrap();
    assert_eq!(price, 5);
    let (s, _) = app
        .call(
            "POST",
            &format!("/v1/admin/users/{id}/credits"),
            Some(ADMIN),
            Some(json!({"credits": N * price, "idempotency_key": "race"})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::CREATED);

    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (app, key, body) = (app.clone(), key.clone(), one.clone());
            tokio::spawn(async move {
                app.call("POST", "/v1/jobs", Some(&key), Some(body))
                    .await
                    .pair()
            })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = 0;
    for t in tasks {
        let (s, body) = t.await.unwrap();
        match s {
            StatusCode::ACCEPTED => admitted += 1,
            StatusCode::PAYMENT_REQUIRED => {
                assert_eq!(body["code"], "insufficient_credits");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((admitted, refused), (N, CLIENTS as i64 - N));
    let (_, c) = app
        .call("GET", "/v1/credits", Some(&key), None)
        .await
        .pair();
    assert_eq!(
        c,
        json!({"balance": N * price, "available": 0, "held": N * price})
    );
    let user_id = uuid::Uuid::parse_str(&id).unwrap();
    let entries = store.list_entries(user_id, None, 1000).await.unwrap();
    assert_eq!(entries.iter().map(|e| e.credits).sum::<i64>(), N * price);
    assert_eq!(entries.iter().map(|e| e.held).sum::<i64>(), N * price);
    assert_eq!(
        entries.len() as i64,
        N + 1,
        "one hold per admitted job, and the grant"
    );
    let (_, jobs) = app
        .call("GET", "/v1/jobs?limit=100", Some(&key), None)
        .await
        .pair();
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len() as i64,
        N,
        "no refused job was written"
    );
}

/// Tiers and monthly quotas: every call with a user's key is counted, responses say where the
/// caller stands, calls past the quota get 429 with the time to the reset, and the count is
/// shared by every node on one PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_hold_across_nodes_and_tiers_change_them() {
    let url = support::fresh_pg_db().await;
    let node = |store: Arc<dyn Store>| {
        let app = service(store);
        app.levqor.quotas().set_tiers(vec![
            levqor_core::quotas::Tier {
                name: "sandbox".into(),
                monthly_calls: Some(5),
                price_cents: 0,
            },
            levqor_core::quotas::Tier {
                name: "enterprise".into(),
                monthly_calls: None,
                price_cents: 19_900,
            },
        ]);
        app
    };
    let a = node(levqor_store::connect(&url).await.unwrap());
    let b = node(levqor_store::connect(&url).await.unwrap());
    let (id, key) = user(&a, "metered@example.com").await;

    // Five calls, alternating nodes: the remaining count falls across both.
    for i in 0..5u64 {
        let app = if i % 2 == 0 { &a } else { &b };
        let r = app.call("GET", "/v1/credits", Some(&key), None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-ratelimit-limit"], "5");
        assert_eq!(
            r.headers["x-ratelimit-remaining"],
            (4 - i).to_string().as_str()
        );
        let reset: u64 = r.headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(reset > 0 && reset <= 31 * 86_400);
    }
    let r = &b.call("GET", "/v1/credits", Some(&key), None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(r.body["code"], "quota_exceeded");

    // The admin is not metered; the usage report shows today's calls, six of them.
    let (s, usage) = a
        .call(
            "GET",
            &format!("/v1/admin/users/{id}/usage"),
            Some(ADMIN),
            None,
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::OK, "{usage}");
    assert_eq!(
        (usage["calls"].as_u64(), usage["limit"].as_u64()),
        (Some(6), Some(5))
    );
    assert_eq!(usage["days"].as_array().unwrap().len(), 1);

    // Moving the user to an unlimited tier lifts the quota on both nodes.
    let (s, r) = a
        .call(
            "PATCH",
            &format!("/v1/admin/users/{id}"),
            Some(ADMIN),
            Some(json!({"tier": "gold"})),
        )
        .await
        .pair();
    assert_eq!(
        (s, r["errors"][0]["pointer"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("/tier"))
    );
    let (s, r) = a
        .call(
            "PATCH",
            &format!("/v1/admin/users/{id}"),
            Some(ADMIN),
            Some(json!({"tier": "enterprise"})),
        )
        .await
        .pair();
    assert_eq!(s, StatusCode::OK, "{r}");
    tokio::time::sleep(Duration::from_millis(5_100)).await; // node b's tier cache
    let r = &b.call("GET", "/v1/usage", Some(&key), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-ratelimit-limit"], "unlimited");
}

/// On a single-writer store the counts live in the process and are written every second: the
/// quota is enforced at once, and the stored usage catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_counts_in_memory_and_writes_each_second() {
    let store = levqor_store::connect(&support::fresh_sqlite_db())
        .await
        .unwrap();
    let app = service(store.clone());
    app.levqor
        .quotas()
        .set_tiers(vec![levqor_core::quotas::Tier {
            name: "sandbox".into(),
            monthly_calls: Some(3),
            price_cents: 0,
        }]);
    let (id, key) = user(&app, "local@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            app.call("GET", "/v1/credits", Some(&key), None)
                .await
                .pair()
                .0,
            StatusCode::OK
        );
    }
    let (s, r) = app
        .call("GET", "/v1/credits", Some(&key), None)
        .await
        .pair();
    assert_eq!(
        (s, r["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded"))
    );
    let (_, usage) = app
        .call(
            "GET",
            &format!("/v1/admin/users/{id}/usage"),
            Some(ADMIN),
            None,
        )
        .await
        .pair();
    assert_eq!(usage["calls"], 4, "unwritten counts are reported: {usage}");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let user_id = uuid::Uuid::parse_str(&id).unwrap();
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let stored: u64 = store
        .usage_days(user_id, &month)
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(stored, 4, "written within a second or two");
}
