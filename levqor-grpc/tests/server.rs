//! What every RPC shares: health, reflection, request ids, quota metadata, message size,
//! deadlines and cancellation.

mod support;

use levqor_core::quotas::Tier;
use levqor_grpc::pb;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_types::StatusExt;

/// A new, empty PostgreSQL database; its name and URL.
async fn fresh_pg_db() -> (String, String) {
    use sqlx::Connection;
    let admin = std::env::var("LEVQOR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL is reachable at LEVQOR_TEST_PG_URL");
    let name = format!("levqor_grpc_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    (name, url)
}

async fn drop_pg_db(name: &str) {
    use sqlx::Connection;
    let admin = std::env::var("LEVQOR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}

fn status(check: Result<tonic::Response<HealthCheckResponse>, tonic::Status>) -> ServingStatus {
    ServingStatus::try_from(check.unwrap().into_inner().status).unwrap()
}

#[tokio::test]
async fn health_is_serving_while_the_database_answers_and_follows_it_down() {
    let (name, url) = fresh_pg_db().await;
    let store = levqor_store::connect(&url).await.unwrap();
    let runner = Arc::new(levqor_core::StepRunner::new(
        Arc::new(NoNetwork),
        Arc::new(levqor_core::OutboxNotifier::new(store.clone())),
        Vec::new(),
    ));
    let levqor = levqor_core::Levqor::builder(store, runner).build().unwrap();
    let server = Server::over(levqor).await;
    let mut health = HealthClient::new(server.channel.clone());
    for service in ["", "levqor.v1.JobsService", "levqor.v1.PrivacyService"] {
        let check = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await;
        assert_eq!(status(check), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "levqor.v1.Nope".into(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);

    let mut watch = health
        .watch(HealthCheckRequest {
            service: "levqor.v1.JobsService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    drop_pg_db(&name).await;
    let next = tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .expect("health notices the database is gone")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
}

struct NoNetwork;

#[async_trait::async_trait]
impl levqor_core::HttpClient for NoNetwork {
    async fn send(
        &self,
        _: levqor_core::HttpRequest,
    ) -> Result<levqor_core::HttpResponse, levqor_core::StepFailure> {
        Err(levqor_core::StepFailure::permanent("no network"))
    }
}

#[tokio::test]
async fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = Server::start().await;
    let mut client = ServerReflectionClient::new(server.channel.clone());
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = tokio_stream::iter([
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "levqor.v1.JobsService".into(),
        )),
    ]);
    let mut answers = client
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let listed = answers
        .next()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap();
    let MessageResponse::ListServicesResponse(listed) = listed else {
        panic!("{listed:?}")
    };
    let names: Vec<_> = listed.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "levqor.v1.UsersService",
        "levqor.v1.JobsService",
        "levqor.v1.ScreeningService",
        "levqor.v1.ConsentService",
        "levqor.v1.CreditsService",
        "levqor.v1.QuotasService",
        "levqor.v1.BillingService",
        "levqor.v1.PrivacyService",
        "levqor.v1.MessagesService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let file = answers
        .next()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap();
    let MessageResponse::FileDescriptorResponse(file) = file else {
        panic!("{file:?}")
    };
    assert!(!file.file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn the_request_id_is_echoed_on_answers_and_refusals() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut req = as_(&key, pb::GetMeRequest {});
    req.metadata_mut()
        .insert("x-request-id", MetadataValue::from_static("trace-42"));
    let answer = server.users().get_me(req).await.unwrap();
    assert_eq!(answer.metadata().get("x-request-id").unwrap(), "trace-42");

    let mut req = as_("lq_wrong", pb::GetMeRequest {});
    req.metadata_mut()
        .insert("x-request-id", MetadataValue::from_static("trace-43"));
    let refused = server.users().get_me(req).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(refused.metadata().get("x-request-id").unwrap(), "trace-43");
    let details = refused.get_error_details();
    assert_eq!(details.request_info().unwrap().request_id, "trace-43");
    assert_eq!(details.error_info().unwrap().reason, "unauthenticated");

    // Without one (or with one that is not sane), the server makes one.
    let mut req = as_(&key, pb::GetMeRequest {});
    req.metadata_mut()
        .insert("x-request-id", MetadataValue::from_static("has space"));
    let answer = server.users().get_me(req).await.unwrap();
    let made = answer
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
}

#[tokio::test]
async fn every_call_is_metered_and_a_call_past_the_quota_is_exhausted_with_its_wait() {
    let tiers = vec![Tier {
        name: "tiny".into(),
        monthly_calls: Some(2),
        price_cents: 0,
    }];
    let server = Server::over(levqor(|b| b.tiers(tiers).default_tier("tiny"))).await;
    let (_, key) = server.user("ada@example.com").await;
    let mut users = server.users();
    let first = users.get_me(as_(&key, pb::GetMeRequest {})).await.unwrap();
    let m = first.metadata();
    assert_eq!(m.get("x-ratelimit-limit").unwrap(), "2");
    assert_eq!(m.get("x-ratelimit-remaining").unwrap(), "1");
    assert!(m.get("x-ratelimit-reset").is_some());
    users.get_me(as_(&key, pb::GetMeRequest {})).await.unwrap();
    let over = users
        .get_me(as_(&key, pb::GetMeRequest {}))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted);
    assert_eq!(over.metadata().get("x-ratelimit-remaining").unwrap(), "0");
    let details = over.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "quota_exceeded");
    assert!(details.retry_info().unwrap().retry_delay.unwrap() > Duration::ZERO);
    // The admin is not metered.
    let admin = users
        .get_user(as_(
            ADMIN,
            pb::GetUserRequest {
                id: uuid::Uuid::nil().to_string(),
            },
        ))
        .await;
    assert!(
        admin
            .unwrap_err()
            .metadata()
            .get("x-ratelimit-limit")
            .is_none()
    );
}

#[tokio::test]
async fn a_message_over_the_limit_is_refused_and_changes_nothing() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let big = "x".repeat(levqor_grpc::MAX_MESSAGE_BYTES + 1);
    let refused = server
        .jobs()
        .submit(as_(
            &key,
            pb::SubmitRequest {
                workflow: Some(log_workflow()),
                input: Some(value(serde_json::json!({ "big": big }))),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    let listed = server
        .jobs()
        .list_jobs(as_(&key, pb::ListJobsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.jobs.is_empty());
}

#[tokio::test]
async fn a_watch_past_its_deadline_ends_and_stops_watching() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let job = server.log_job(&key).await;
    // No engine runs here: the job stays queued, so only the deadline ends the watch.
    let mut req = as_(&key, pb::WatchRequest { id: job.id.clone() });
    req.set_timeout(Duration::from_millis(300));
    let mut events = server.jobs().watch(req).await.unwrap().into_inner();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.job.unwrap().status, "queued");
    let end = events.next().await.unwrap().unwrap_err();
    assert!(
        matches!(end.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{end:?}"
    );
    let signals = server.levqor.jobs().signals().clone();
    let stopped = async {
        while signals.watchers() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("the server dropped the watch");
}

#[tokio::test]
async fn a_cancelled_watch_stops_watching() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let job = server.log_job(&key).await;
    let mut events = server.watch(&key, &job.id).await;
    events.next().await.unwrap().unwrap();
    let signals = server.levqor.jobs().signals().clone();
    assert_eq!(signals.watchers(), 1);
    drop(events);
    let stopped = async {
        while signals.watchers() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("the server dropped the watch");
}

#[tokio::test]
async fn a_unary_call_past_its_deadline_is_deadline_exceeded() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    // tonic polls the handler before the deadline's timer, so a handler that finishes without
    // ever waiting (a key already cached) can beat even a 1 ns deadline: of several such calls,
    // some must end at the deadline and none may fail otherwise.
    let mut late = 0;
    for _ in 0..20 {
        let mut req = as_(&key, pb::GetMeRequest {});
        req.set_timeout(Duration::from_nanos(1));
        match server.users().get_me(req).await {
            Ok(_) => {}
            Err(e) => {
                assert!(
                    matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
                    "{e:?}"
                );
                late += 1;
            }
        }
    }
    assert!(late > 0, "no call ended at its deadline");
}

/// Submits on `channels` at once, `calls` in all (round robin), and checks that every call was
/// answered with its own job.
async fn submit_at_once(channels: &[tonic::transport::Channel], key: &str, calls: usize) {
    let submits = (0..calls).map(|n| {
        let mut jobs =
            pb::jobs_service_client::JobsServiceClient::new(channels[n % channels.len()].clone());
        async move {
            let input = serde_json::json!({"who": format!("caller {n}")});
            let job = submitted_job(&mut jobs, key, log_workflow(), Some(input)).await;
            assert_eq!(
                json(&job.input.unwrap()),
                serde_json::json!({"who": format!("caller {n}")})
            );
            job.id
        }
    });
    let ids: std::collections::HashSet<String> = futures::future::join_all(submits)
        .await
        .into_iter()
        .collect();
    assert_eq!(ids.len(), calls);
}

/// With fewer connections than worker threads the server spawns a share of the calls; with as
/// many or more, each connection runs its own. Either way every call is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_one_channel_and_on_several_are_all_answered() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    submit_at_once(std::slice::from_ref(&server.channel), &key, 48).await;
    let mut several = Vec::new();
    for _ in 0..3 {
        several.push(server.connect().await.unwrap());
    }
    submit_at_once(&several, &key, 48).await;
}

#[tokio::test]
async fn stopping_refuses_new_connections_and_lets_calls_in_flight_finish() {
    let mut server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let job = server.log_job(&key).await;
    let mut events = server.watch(&key, &job.id).await;
    assert_eq!(
        events.next().await.unwrap().unwrap().job.unwrap().status,
        "queued"
    );

    let serving = server.stop();
    let mut refused = false;
    for _ in 0..250 {
        if server.connect().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "a stopping server still accepts connections");
    assert!(
        !serving.is_finished(),
        "the server stopped with a watch in flight"
    );

    // The watch in flight still sees what happens to its job, and ends as it normally does.
    let who = server.levqor.authorize(Some(&key)).await.caller.unwrap();
    let id = job.id.parse().unwrap();
    server.levqor.jobs().cancel(&who, id).await.unwrap();
    let mut last = None;
    while let Some(event) = events.next().await {
        last = Some(event.unwrap().job.unwrap().status);
    }
    assert_eq!(last.as_deref(), Some("canceled"));
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("the server stopped once its last call ended")
        .unwrap()
        .unwrap();
}
