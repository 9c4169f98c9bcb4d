//! The gRPC server: every Levqor service, `grpc.health.v1.Health` and server reflection (v1)
//! on one listener. A call whose `grpc-timeout` passes is answered `DEADLINE_EXCEEDED` and
//! its handler is dropped, as is a call the client cancels, so its work stops at its next
//! await.

use crate::pb;
use crate::services::{
    billing, consent, credits, jobs, messages, privacy, quotas, screening, users,
};
use levqor_core::Levqor;
use levqor_core::screening::MAX_RULES_DOCUMENT_BYTES;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The largest request message accepted (512 KiB, as the REST adapter's body limit).
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024;

/// How often health follows the database's readiness.
const HEALTH_EVERY: Duration = Duration::from_secs(2);

/// The names health reports on: every Levqor service (and `""`, the server as a whole).
const SERVICE_NAMES: [&str; 9] = [
    pb::users_service_server::SERVICE_NAME,
    pb::jobs_service_server::SERVICE_NAME,
    pb::screening_service_server::SERVICE_NAME,
    pb::consent_service_server::SERVICE_NAME,
    pb::credits_service_server::SERVICE_NAME,
    pb::quotas_service_server::SERVICE_NAME,
    pb::billing_service_server::SERVICE_NAME,
    pb::privacy_service_server::SERVICE_NAME,
    pb::messages_service_server::SERVICE_NAME,
];

/// Keeps health following readiness for as long as it lives.
pub struct HealthGuard(JoinHandle<()>);

impl Drop for HealthGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every Levqor service, health and reflection, as routes to serve (or to add to a tonic
/// server of your own). Health is `SERVING` while the database answers (checked once before
/// this returns, then every two seconds); keep the guard for as long as the routes are served.
pub async fn services(levqor: Arc<Levqor>) -> (Routes, HealthGuard) {
    let (reporter, health) = tonic_health::server::health_reporter();
    let mut last = None;
    report(&levqor, &reporter, &mut last).await;
    let guard = HealthGuard(tokio::spawn(follow_readiness(
        levqor.clone(),
        reporter,
        last,
    )));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the descriptors were compiled with these protos");
    macro_rules! limited {
        ($server:expr) => {
            $server.max_decoding_message_size(MAX_MESSAGE_BYTES)
        };
    }
    let l = || levqor.clone();
    let routes = Routes::builder()
        .add_service(limited!(pb::users_service_server::UsersServiceServer::new(
            users::Users(l())
        )))
        .add_service(limited!(pb::jobs_service_server::JobsServiceServer::new(
            jobs::Jobs(l())
        )))
        // Rule documents may be larger; its other calls keep the limit (`screening.rs`).
        .add_service(
            pb::screening_service_server::ScreeningServiceServer::new(screening::Screening(l()))
                .max_decoding_message_size(MAX_RULES_DOCUMENT_BYTES),
        )
        .add_service(limited!(
            pb::consent_service_server::ConsentServiceServer::new(consent::Consent(l()))
        ))
        .add_service(limited!(
            pb::credits_service_server::CreditsServiceServer::new(credits::Credits(l()))
        ))
        .add_service(limited!(
            pb::quotas_service_server::QuotasServiceServer::new(quotas::Quotas(l()))
        ))
        .add_service(limited!(
            pb::billing_service_server::BillingServiceServer::new(billing::Billing(l()))
        ))
        .add_service(limited!(
            pb::privacy_service_server::PrivacyServiceServer::new(privacy::Privacy(l()))
        ))
        .add_service(limited!(
            pb::messages_service_server::MessagesServiceServer::new(messages::Messages(l()))
        ))
        .add_service(health)
        .add_service(reflection)
        .clone()
        .routes();
    (routes, guard)
}

/// Serves gRPC on `listener` until `shutdown` resolves (calls in flight finish first), on the
/// server in `transport.rs`: a connection runs its own calls, except a share that is spawned
/// while connections are fewer than worker threads.
pub async fn serve(
    levqor: Arc<Levqor>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (routes, _health) = services(levqor).await;
    crate::transport::serve(routes, listener, shutdown).await
}

async fn follow_readiness(
    levqor: Arc<Levqor>,
    reporter: HealthReporter,
    mut last: Option<ServingStatus>,
) {
    loop {
        tokio::time::sleep(HEALTH_EVERY).await;
        report(&levqor, &reporter, &mut last).await;
    }
}

/// Checks the database and reports a change of status for the server and every service.
async fn report(levqor: &Levqor, reporter: &HealthReporter, last: &mut Option<ServingStatus>) {
    let status = match levqor.ready().await {
        Ok(()) => ServingStatus::Serving,
        Err(_) => ServingStatus::NotServing,
    };
    if *last != Some(status) {
        reporter.set_service_status("", status).await;
        for name in SERVICE_NAMES {
            reporter.set_service_status(name, status).await;
        }
        *last = Some(status);
    }
}
