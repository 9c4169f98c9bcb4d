//! The gRPC server in process on an ephemeral port, over the in-memory store, and its
//! generated clients.
#![allow(dead_code)]

use levqor_core::{
    EngineConfig, EngineHandle, HttpClient, HttpRequest, HttpResponse, Levqor, MemoryStore,
    OutboxNotifier, StepFailure, StepRunner,
};
use levqor_grpc::pb;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

pub const ADMIN: &str = "admin-secret";

/// Steps that would call out fail for good: these tests run `log` steps only.
struct Offline;

#[async_trait::async_trait]
impl HttpClient for Offline {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, StepFailure> {
        Err(StepFailure::permanent("offline"))
    }
}

/// A running server and a channel to it.
pub struct Server {
    pub levqor: Arc<Levqor>,
    pub channel: Channel,
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<std::io::Result<()>>>,
    engine: Option<EngineHandle>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A service over a fresh in-memory store, configured by `configure`.
pub fn levqor(
    configure: impl FnOnce(levqor_core::LevqorBuilder) -> levqor_core::LevqorBuilder,
) -> Levqor {
    let store = Arc::new(MemoryStore::new());
    let runner = Arc::new(StepRunner::new(
        Arc::new(Offline),
        Arc::new(OutboxNotifier::new(store.clone())),
        Vec::new(),
    ));
    configure(
        Levqor::builder(store, runner)
            .admin_key(Some(ADMIN))
            .signup_grant(1_000_000),
    )
    .build()
    .unwrap()
}

impl Server {
    /// The server over a default service (no engine: jobs stay queued).
    pub async fn start() -> Server {
        Self::over(levqor(|b| b)).await
    }

    /// The server over a default service with the worker pool running.
    pub async fn with_engine() -> Server {
        let mut server = Self::start().await;
        server.engine = Some(server.levqor.start_engine(EngineConfig {
            workers: 4,
            poll_interval: Duration::from_millis(20),
            ..EngineConfig::default()
        }));
        server
    }

    /// The server over `levqor`.
    pub async fn over(levqor: Levqor) -> Server {
        let levqor = Arc::new(levqor);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(levqor_grpc::serve(levqor.clone(), listener, async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Server {
            levqor,
            channel,
            addr,
            stop: Some(stop),
            serving: Some(serving),
            engine: None,
        }
    }

    /// Asks the server to stop; the handle ends when it has.
    pub fn stop(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.serving.take().expect("stopped once")
    }

    /// A new channel (its own connection) to the server.
    pub async fn connect(&self) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
    }

    pub fn users(&self) -> pb::users_service_client::UsersServiceClient<Channel> {
        pb::users_service_client::UsersServiceClient::new(self.channel.clone())
    }
    pub fn jobs(&self) -> pb::jobs_service_client::JobsServiceClient<Channel> {
        pb::jobs_service_client::JobsServiceClient::new(self.channel.clone())
    }
    pub fn screening(&self) -> pb::screening_service_client::ScreeningServiceClient<Channel> {
        pb::screening_service_client::ScreeningServiceClient::new(self.channel.clone())
    }
    pub fn consent(&self) -> pb::consent_service_client::ConsentServiceClient<Channel> {
        pb::consent_service_client::ConsentServiceClient::new(self.channel.clone())
    }
    pub fn credits(&self) -> pb::credits_service_client::CreditsServiceClient<Channel> {
        pb::credits_service_client::CreditsServiceClient::new(self.channel.clone())
    }
    pub fn quotas(&self) -> pb::quotas_service_client::QuotasServiceClient<Channel> {
        pb::quotas_service_client::QuotasServiceClient::new(self.channel.clone())
    }
    pub fn billing(&self) -> pb::billing_service_client::BillingServiceClient<Channel> {
        pb::billing_service_client::BillingServiceClient::new(self.channel.clone())
    }
    pub fn privacy(&self) -> pb::privacy_service_client::PrivacyServiceClient<Channel> {
        pb::privacy_service_client::PrivacyServiceClient::new(self.channel.clone())
    }
    pub fn messages(&self) -> pb::messages_service_client::MessagesServiceClient<Channel> {
        pb::messages_service_client::MessagesServiceClient::new(self.channel.clone())
    }

    /// A job of [`log_workflow`] submitted as `key` (queued while no engine runs).
    pub async fn log_job(&self, key: &str) -> pb::Job {
        submitted_job(&mut self.jobs(), key, log_workflow(), None).await
    }

    /// The events of job `id`, watched as `key`.
    pub async fn watch(&self, key: &str, id: &str) -> tonic::Streaming<pb::JobEvent> {
        self.jobs()
            .watch(as_(key, pb::WatchRequest { id: id.into() }))
            .await
            .unwrap()
            .into_inner()
    }

    /// A new user (created by the admin) and a key of theirs with every scope.
    pub async fn user(&self, email: &str) -> (String, String) {
        let user = self
            .users()
            .create_user(as_(
                ADMIN,
                pb::CreateUserRequest {
                    email: email.into(),
                    name: Some("Ada".into()),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        let key = self
            .users()
            .create_key(as_(
                ADMIN,
                pb::CreateKeyRequest {
                    user_id: user.id.clone(),
                    scopes: vec![],
                },
            ))
            .await
            .unwrap()
            .into_inner();
        (user.id, key.secret)
    }
}

/// `message` sent with `authorization: Bearer key`.
pub fn as_<T>(key: &str, message: T) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {key}")).unwrap(),
    );
    req
}

/// JSON as a `google.protobuf.Struct`.
pub fn object(json: Value) -> pbjson_types::Struct {
    serde_json::from_value(json).unwrap()
}

/// JSON as a `google.protobuf.Value`.
pub fn value(json: Value) -> pbjson_types::Value {
    serde_json::from_value(json).unwrap()
}

/// A message as JSON (field names as in the protos).
pub fn json<T: serde::Serialize>(message: &T) -> Value {
    serde_json::to_value(message).unwrap()
}

/// The code and the stable machine code (`ErrorInfo.reason`) of a refusal.
pub fn refusal<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>) -> (Code, String) {
    use tonic_types::StatusExt;
    let status = result.expect_err("the call should be refused");
    let reason = status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default();
    (status.code(), reason)
}

/// The bad fields of an `INVALID_ARGUMENT` refusal.
pub fn bad_fields<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>) -> Vec<String> {
    use tonic_types::StatusExt;
    let status = result.expect_err("the call should be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// A one-step workflow that logs.
/// The job that `workflow` (with `input`) became when `jobs` submitted it as `key`.
pub async fn submitted_job(
    jobs: &mut pb::jobs_service_client::JobsServiceClient<Channel>,
    key: &str,
    workflow: pbjson_types::Struct,
    input: Option<Value>,
) -> pb::Job {
    let request = pb::SubmitRequest {
        workflow: Some(workflow),
        input: input.map(value),
        ..Default::default()
    };
    jobs.submit(as_(key, request))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap()
}

pub fn log_workflow() -> pbjson_types::Struct {
    object(
        serde_json::json!({"name": "t", "steps": [{"id": "a", "type": "log", "message": "hi {{input.who}}"}]}),
    )
}

impl Server {
    /// The outbox as the admin lists it through `MessagesService/ListOutbox`, newest first
    /// (its first 100 messages).
    pub async fn outbox(&self) -> Vec<pb::OutboxMessage> {
        self.messages()
            .list_outbox(as_(
                ADMIN,
                pb::ListOutboxRequest {
                    limit: Some(100),
                    cursor: None,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .messages
    }

    /// The messages of the outbox sent to `to`, newest first.
    pub async fn outbox_to(&self, to: &str) -> Vec<pb::OutboxMessage> {
        let mut mails = self.outbox().await;
        mails.retain(|m| m.to == to);
        mails
    }
}

/// The `token=` query parameter of the link to `path` in an email's body.
pub fn token_in(body: &str, path: &str) -> String {
    let start = body
        .find(path)
        .unwrap_or_else(|| panic!("no {path} link in {body:?}"))
        + path.len();
    let rest = &body[start..];
    let start = rest
        .find("token=")
        .unwrap_or_else(|| panic!("no token in {body:?}"))
        + "token=".len();
    rest[start..]
        .split(|c: char| c.is_whitespace() || c == '&')
        .next()
        .unwrap()
        .to_string()
}
