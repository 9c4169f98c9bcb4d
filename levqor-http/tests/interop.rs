//! A client in another language drives the running binary over gRPC: Python, its stubs
//! generated from the same protos by grpcio-tools (`levqor-grpc/interop/client.py`), submits a
//! job, watches it to its end and reads it back. It needs `python3` with the packages of
//! `levqor-grpc/interop/requirements.txt` (CI installs them); `LEVQOR_PYTHON` names another
//! interpreter.

mod support;

use serde_json::{Value, json};
use support::{ADMIN, Node, fresh_sqlite_db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_submits_watches_and_gets_a_job_over_grpc() {
    let node = Node::start(&fresh_sqlite_db(), &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../levqor-grpc/interop/client.py"
    );
    let python = std::env::var("LEVQOR_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = tokio::process::Command::new(&python)
        .args([script, "--target", &node.grpc, "--admin-key", ADMIN])
        .output()
        .await
        .unwrap_or_else(|e| panic!("{python} runs: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client failed (its packages: pip install -r \
         levqor-grpc/interop/requirements.txt)\nstdout: {stdout}\nstderr: {stderr}"
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(seen["submitted"], "queued");
    assert_eq!(seen["status"], "succeeded");
    assert_eq!(
        seen["statuses"].as_array().unwrap().last().unwrap(),
        "succeeded"
    );
    assert_eq!(seen["result"], json!({"a": {"message": "hi python"}}));
    assert_eq!(seen["stranger"], "NOT_FOUND");
    assert_eq!(seen["keyless"], "UNAUTHENTICATED");
    assert_eq!(seen["ratelimit_limit"], "unlimited");
    // The job the Python client made is the one REST serves.
    let api = support::Client::new(&node.base);
    let id = seen["job_id"].as_str().unwrap();
    let (status, job) = api
        .call("GET", &format!("/v1/jobs/{id}"), ADMIN, None)
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["result"], seen["result"]);
}
