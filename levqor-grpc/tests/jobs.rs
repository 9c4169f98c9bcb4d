//! `levqor.v1.JobsService` and `MessagesService` through the generated clients.

mod support;

use levqor_grpc::pb;
use serde_json::json;
use support::*;
use tokio_stream::StreamExt;
use tonic::Code;

fn submit(workflow: pbjson_types::Struct) -> pb::SubmitRequest {
    pb::SubmitRequest {
        workflow: Some(workflow),
        input: Some(value(json!({"who": "you"}))),
        ..Default::default()
    }
}

#[tokio::test]
async fn watch_streams_a_job_from_queued_to_succeeded() {
    let server = Server::with_engine().await;
    let (_, key) = server.user("ada@example.com").await;
    let admitted = server
        .jobs()
        .submit(as_(&key, submit(log_workflow())))
        .await
        .unwrap();
    assert_eq!(
        admitted.metadata().get("x-ratelimit-limit").unwrap(),
        "1000"
    );
    let job = admitted.into_inner().job.unwrap();
    assert_eq!(job.status, "queued");
    let mut events = server.watch(&key, &job.id).await;
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        let event = event.unwrap();
        let job = event.job.unwrap();
        seen.push((
            job.status.clone(),
            event
                .steps
                .iter()
                .map(|s| s.status.clone())
                .collect::<Vec<_>>(),
        ));
        if job.status == "succeeded" {
            assert_eq!(
                json(&job.result.unwrap()),
                json!({"a": {"message": "hi you"}})
            );
        }
    }
    assert_eq!(
        seen.last().unwrap(),
        &("succeeded".to_string(), vec!["succeeded".to_string()]),
        "{seen:?}"
    );
    assert!(seen.len() >= 2 || seen[0].0 == "succeeded", "{seen:?}");
    let mut before = seen.first().unwrap().clone();
    for s in &seen[1..] {
        assert_ne!(s, &before, "every event is a change: {seen:?}");
        before = s.clone();
    }
}

#[tokio::test]
async fn submit_get_list_cancel_and_steps() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut jobs = server.jobs();
    let first = jobs
        .submit(as_(
            &key,
            pb::SubmitRequest {
                idempotency_key: Some("k-1".into()),
                ..submit(log_workflow())
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed);
    let job = first.job.unwrap();
    let replay = jobs
        .submit(as_(
            &key,
            pb::SubmitRequest {
                idempotency_key: Some("k-1".into()),
                ..submit(log_workflow())
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(replay.replayed);
    assert_eq!(replay.job.unwrap().id, job.id);

    let got = jobs
        .get_job(as_(&key, pb::GetJobRequest { id: job.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, job);
    let listed = jobs
        .list_jobs(as_(&key, pb::ListJobsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.jobs.len(), 1);
    let steps = jobs
        .list_steps(as_(&key, pb::ListStepsRequest { id: job.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(steps.steps.len(), 1);
    assert_eq!(
        (
            steps.steps[0].id.as_str(),
            steps.steps[0].r#type.as_str(),
            steps.steps[0].status.as_str()
        ),
        ("a", "log", "pending")
    );
    let cancelled = jobs
        .cancel_job(as_(&key, pb::CancelJobRequest { id: job.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, "canceled");
    let again = jobs
        .cancel_job(as_(&key, pb::CancelJobRequest { id: job.id.clone() }))
        .await;
    assert_eq!(refusal(again), (Code::Aborted, "invalid_transition".into()));
}

#[tokio::test]
async fn another_users_job_is_not_found_and_bad_input_names_its_fields() {
    let server = Server::start().await;
    let (_, ada) = server.user("ada@example.com").await;
    let (_, bob) = server.user("bob@example.com").await;
    let mut jobs = server.jobs();
    let job = jobs
        .submit(as_(&ada, submit(log_workflow())))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let theirs = jobs
        .get_job(as_(&bob, pb::GetJobRequest { id: job.id.clone() }))
        .await;
    assert_eq!(refusal(theirs), (Code::NotFound, "not_found".into()));
    let watch = jobs
        .watch(as_(&bob, pb::WatchRequest { id: job.id.clone() }))
        .await;
    assert_eq!(refusal(watch).0, Code::NotFound);
    let junk = jobs
        .get_job(as_(
            &ada,
            pb::GetJobRequest {
                id: "not-an-id".into(),
            },
        ))
        .await;
    assert_eq!(refusal(junk).0, Code::NotFound);

    let bad = jobs
        .submit(as_(
            &ada,
            pb::SubmitRequest {
                max_attempts: Some(0),
                ..submit(object(
                    json!({"name": "t", "steps": [{"id": "a", "type": "nope"}]}),
                ))
            },
        ))
        .await;
    let fields = bad_fields(bad);
    assert!(!fields.is_empty(), "{fields:?}");
}

#[tokio::test]
async fn calls_without_a_good_key_are_unauthenticated() {
    let server = Server::start().await;
    let none = server
        .jobs()
        .list_jobs(pb::ListJobsRequest::default())
        .await;
    assert_eq!(
        refusal(none),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    let wrong = server
        .jobs()
        .list_jobs(as_("lq_nope", pb::ListJobsRequest::default()))
        .await;
    assert_eq!(refusal(wrong).0, Code::Unauthenticated);
    let schema = server
        .jobs()
        .get_workflow_schema(pb::GetWorkflowSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(json(&schema).get("$schema").is_some() || json(&schema).get("type").is_some());
}
