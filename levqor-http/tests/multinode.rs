//! Three `levqor serve` nodes on one PostgreSQL database drain 5,000 jobs; each job runs on
//! exactly one node, once.

mod support;

use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use support::{Client, Node, Target, fresh_pg_db, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_and_each_job_runs_once() {
    const JOBS: usize = 5000;
    let db = fresh_pg_db().await;
    let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_levqor"))
        .args(["migrate", "--database-url", &db])
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let target = Target::start().await;
    let nodes: Vec<Node> = (1..=3)
        .map(|i| {
            Node::start(
                &db,
                &[
                    "--workers",
                    "16",
                    "--claim-batch",
                    "16",
                    "--node-name",
                    &format!("node-{i}"),
                ],
            )
        })
        .collect();
    let clients: Vec<Client> = nodes.iter().map(|n| Client::new(&n.base)).collect();
    let key = clients[0].user_key("multi@example.com").await;
    let body = json!({"workflow": {"name": "once", "steps": [target.step("x", 0)]}});
    let per_node = JOBS / clients.len();
    let submissions = clients.iter().map(|c| {
        c.submit_many(
            &key,
            per_node + usize::from(c.base == clients[0].base) * (JOBS % 3),
            16,
            body.clone(),
        )
    });
    let ids: Vec<String> = futures::future::join_all(submissions)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ids.len(), JOBS);
    let drained = wait_for(Duration::from_secs(300), || async {
        clients[1].status_counts().await.get("succeeded").copied() == Some(JOBS)
    })
    .await;
    assert!(drained, "{:?}", clients[1].status_counts().await);
    let hits = target.hits.lock().unwrap().clone();
    let mut per_job: HashMap<&str, usize> = HashMap::new();
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for h in &hits {
        *per_job.entry(h.job.as_str()).or_default() += 1;
        *per_node.entry(h.node.as_str()).or_default() += 1;
    }
    assert_eq!(per_job.len(), JOBS, "every job ran");
    assert!(
        per_job.values().all(|&n| n == 1),
        "a job ran more than once"
    );
    for i in 1..=3 {
        assert!(
            per_node
                .get(format!("node-{i}").as_str())
                .copied()
                .unwrap_or(0)
                > 0,
            "node-{i} ran nothing: {per_node:?}"
        );
    }
    println!("executions per node: {per_node:?}");
}
