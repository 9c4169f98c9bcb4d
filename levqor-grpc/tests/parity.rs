//! Parity of the adapters: every REST route is one core operation, and this table names the
//! RPC that exposes the same operation. The test fails when a REST route has no RPC, when an
//! RPC has no REST route, or when the table names a route or RPC that does not exist; the only
//! exceptions are the ones listed with their reasons.

use prost::Message;
use std::collections::BTreeSet;

/// REST route → the RPC of the same core operation (`Service/Method`).
const PARITY: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/v1/schemas/workflow",
        "levqor.v1.JobsService/GetWorkflowSchema",
    ),
    // Users and keys.
    ("POST", "/v1/users", "levqor.v1.UsersService/CreateUser"),
    ("GET", "/v1/users", "levqor.v1.UsersService/FindUser"),
    ("GET", "/v1/users/{id}", "levqor.v1.UsersService/GetUser"),
    (
        "PATCH",
        "/v1/users/{id}",
        "levqor.v1.UsersService/UpdateUser",
    ),
    (
        "POST",
        "/v1/users/{id}/keys",
        "levqor.v1.UsersService/CreateKey",
    ),
    (
        "GET",
        "/v1/users/{id}/keys",
        "levqor.v1.UsersService/ListKeys",
    ),
    (
        "DELETE",
        "/v1/keys/{id}",
        "levqor.v1.UsersService/RevokeKey",
    ),
    ("GET", "/v1/me", "levqor.v1.UsersService/GetMe"),
    // Jobs.
    ("POST", "/v1/jobs", "levqor.v1.JobsService/Submit"),
    ("GET", "/v1/jobs", "levqor.v1.JobsService/ListJobs"),
    ("GET", "/v1/jobs/{id}", "levqor.v1.JobsService/GetJob"),
    (
        "POST",
        "/v1/jobs/{id}/cancel",
        "levqor.v1.JobsService/CancelJob",
    ),
    (
        "GET",
        "/v1/jobs/{id}/steps",
        "levqor.v1.JobsService/ListSteps",
    ),
    ("GET", "/v1/jobs/{id}/watch", "levqor.v1.JobsService/Watch"),
    (
        "POST",
        "/v1/admin/jobs/{id}/approve",
        "levqor.v1.JobsService/ApproveJob",
    ),
    (
        "GET",
        "/v1/admin/outbox",
        "levqor.v1.MessagesService/ListOutbox",
    ),
    (
        "GET",
        "/v1/admin/outbox/{id}",
        "levqor.v1.MessagesService/GetOutboxMessage",
    ),
    (
        "POST",
        "/v1/admin/outbox/{id}/retry",
        "levqor.v1.MessagesService/RetryOutboxMessage",
    ),
    (
        "GET",
        "/v1/admin/templates",
        "levqor.v1.MessagesService/ListTemplates",
    ),
    (
        "GET",
        "/v1/admin/suppressions",
        "levqor.v1.MessagesService/ListSuppressions",
    ),
    (
        "DELETE",
        "/v1/admin/suppressions/{email}",
        "levqor.v1.MessagesService/RemoveSuppression",
    ),
    (
        "GET",
        "/v1/admin/templates/{name}/preview",
        "levqor.v1.MessagesService/PreviewTemplate",
    ),
    // Screening.
    ("POST", "/v1/screen", "levqor.v1.ScreeningService/Screen"),
    (
        "GET",
        "/v1/admin/screening/rules",
        "levqor.v1.ScreeningService/GetRules",
    ),
    (
        "PUT",
        "/v1/admin/screening/rules",
        "levqor.v1.ScreeningService/SetRules",
    ),
    (
        "POST",
        "/v1/jobs/{id}/appeal",
        "levqor.v1.ScreeningService/Appeal",
    ),
    (
        "GET",
        "/v1/admin/appeals",
        "levqor.v1.ScreeningService/ListAppeals",
    ),
    (
        "POST",
        "/v1/admin/appeals/{id}",
        "levqor.v1.ScreeningService/DecideAppeal",
    ),
    // Consent.
    ("GET", "/v1/terms", "levqor.v1.ConsentService/ListTerms"),
    (
        "POST",
        "/v1/terms/accept",
        "levqor.v1.ConsentService/AcceptTerms",
    ),
    (
        "GET",
        "/v1/terms/status",
        "levqor.v1.ConsentService/GetTermsStatus",
    ),
    (
        "GET",
        "/v1/terms/history",
        "levqor.v1.ConsentService/GetTermsHistory",
    ),
    (
        "GET",
        "/v1/admin/users/{id}/terms",
        "levqor.v1.ConsentService/GetTermsHistory",
    ),
    (
        "POST",
        "/v1/admin/terms",
        "levqor.v1.ConsentService/PublishTerms",
    ),
    (
        "POST",
        "/v1/marketing/subscribe",
        "levqor.v1.ConsentService/Subscribe",
    ),
    (
        "GET",
        "/v1/marketing/confirm",
        "levqor.v1.ConsentService/ConfirmSubscription",
    ),
    (
        "POST",
        "/v1/marketing/unsubscribe",
        "levqor.v1.ConsentService/Unsubscribe",
    ),
    (
        "GET",
        "/v1/marketing/unsubscribe",
        "levqor.v1.ConsentService/Unsubscribe",
    ),
    (
        "POST",
        "/v1/marketing/status",
        "levqor.v1.ConsentService/GetMarketingStatus",
    ),
    (
        "GET",
        "/v1/marketing/preferences",
        "levqor.v1.ConsentService/GetPreferences",
    ),
    (
        "PUT",
        "/v1/marketing/preferences",
        "levqor.v1.ConsentService/SetPreferences",
    ),
    (
        "POST",
        "/v1/admin/marketing/send",
        "levqor.v1.ConsentService/SendMarketing",
    ),
    (
        "GET",
        "/v1/me/objections",
        "levqor.v1.ConsentService/ListObjections",
    ),
    (
        "GET",
        "/v1/admin/users/{id}/objections",
        "levqor.v1.ConsentService/ListObjections",
    ),
    (
        "POST",
        "/v1/me/objections",
        "levqor.v1.ConsentService/SetObjection",
    ),
    (
        "POST",
        "/v1/admin/users/{id}/objections",
        "levqor.v1.ConsentService/SetObjection",
    ),
    (
        "GET",
        "/v1/admin/consent/verify",
        "levqor.v1.ConsentService/VerifyLedger",
    ),
    // Credits.
    ("GET", "/v1/credits", "levqor.v1.CreditsService/GetBalance"),
    (
        "GET",
        "/v1/admin/users/{id}/credits",
        "levqor.v1.CreditsService/GetBalance",
    ),
    (
        "GET",
        "/v1/credits/entries",
        "levqor.v1.CreditsService/ListEntries",
    ),
    (
        "POST",
        "/v1/admin/users/{id}/credits",
        "levqor.v1.CreditsService/Grant",
    ),
    ("POST", "/v1/quote", "levqor.v1.CreditsService/GetQuote"),
    // Quotas.
    ("GET", "/v1/usage", "levqor.v1.QuotasService/GetUsage"),
    (
        "GET",
        "/v1/admin/users/{id}/usage",
        "levqor.v1.QuotasService/GetUsage",
    ),
    ("GET", "/v1/tiers", "levqor.v1.QuotasService/ListTiers"),
    (
        "PATCH",
        "/v1/admin/users/{id}",
        "levqor.v1.QuotasService/SetTier",
    ),
    // Billing.
    (
        "POST",
        "/v1/billing/checkout",
        "levqor.v1.BillingService/Checkout",
    ),
    (
        "GET",
        "/v1/billing/status",
        "levqor.v1.BillingService/GetBillingStatus",
    ),
    (
        "GET",
        "/v1/admin/users/{id}/billing",
        "levqor.v1.BillingService/GetBillingStatus",
    ),
    (
        "POST",
        "/v1/admin/discounts",
        "levqor.v1.BillingService/CreateDiscounts",
    ),
    (
        "GET",
        "/v1/admin/ledger",
        "levqor.v1.BillingService/GetProfitLedger",
    ),
    (
        "GET",
        "/v1/admin/autoscale",
        "levqor.v1.BillingService/GetAutoscale",
    ),
    // Privacy.
    (
        "POST",
        "/v1/me/export",
        "levqor.v1.PrivacyService/ExportData",
    ),
    (
        "POST",
        "/v1/admin/users/{id}/export",
        "levqor.v1.PrivacyService/ExportData",
    ),
    ("POST", "/v1/me/erase", "levqor.v1.PrivacyService/EraseData"),
    (
        "POST",
        "/v1/admin/users/{id}/erase",
        "levqor.v1.PrivacyService/EraseData",
    ),
    (
        "POST",
        "/v1/events",
        "levqor.v1.PrivacyService/RecordEvents",
    ),
    (
        "PUT",
        "/v1/admin/users/{id}/legal-hold",
        "levqor.v1.PrivacyService/SetLegalHold",
    ),
    (
        "DELETE",
        "/v1/admin/users/{id}/legal-hold",
        "levqor.v1.PrivacyService/ClearLegalHold",
    ),
    (
        "GET",
        "/v1/admin/retention/policies",
        "levqor.v1.PrivacyService/GetRetentionPolicies",
    ),
    (
        "PUT",
        "/v1/admin/retention/policies",
        "levqor.v1.PrivacyService/SetRetentionPolicies",
    ),
    (
        "POST",
        "/v1/admin/retention/sweep",
        "levqor.v1.PrivacyService/SweepRetention",
    ),
    (
        "GET",
        "/v1/admin/compliance",
        "levqor.v1.PrivacyService/GetCompliance",
    ),
    (
        "GET",
        "/v1/admin/audit",
        "levqor.v1.PrivacyService/ListAudit",
    ),
];

/// REST routes with no RPC of their own, and why.
const REST_ONLY: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/v1/billing/webhook",
        "the payment provider calls HTTP",
    ),
    (
        "POST",
        "/v1/webhooks/resend",
        "the email provider calls HTTP",
    ),
    ("GET", "/health", "gRPC clients ask grpc.health.v1.Health"),
    (
        "GET",
        "/ready",
        "gRPC clients ask grpc.health.v1.Health (it follows readiness)",
    ),
];

// Core operations on neither remote API, by design: `Jobs::run_due` (run due jobs on the
// caller's thread) is for programs that embed Levqor and drive its engine themselves, through
// the C ABI (`levqor_run_due`) or Rust; a server runs its own workers (`--workers`), and a
// remote call must not become a worker.

/// Every `(METHOD, path)` the REST router serves, read from its route modules.
fn rest_routes() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../levqor-http/src/routes");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("the REST routes are beside this crate") {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // `.route("/path", get(a).post(b))`, possibly over several lines.
        for call in source.split(".route(").skip(1) {
            let call: String = call.split_whitespace().collect();
            let path = call.split('"').nth(1).expect("a route's path is a literal");
            let handlers = &call[call.find(',').expect("a route has handlers") + 1..];
            let mut depth = 0;
            let mut end = handlers.len();
            for (i, c) in handlers.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' if depth == 0 => {
                        end = i;
                        break;
                    }
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            for method in ["get", "post", "put", "patch", "delete"] {
                let as_first = handlers[..end].starts_with(&format!("{method}("));
                let chained = handlers[..end].contains(&format!(".{method}("));
                if as_first || chained {
                    routes.insert((method.to_uppercase(), path.to_string()));
                }
            }
        }
    }
    routes
}

/// Every `Service/Method` of the Levqor protos.
fn rpcs() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(levqor_grpc::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|f| f.package() == "levqor.v1")
        .flat_map(|f| {
            f.service.iter().flat_map(|s| {
                s.method
                    .iter()
                    .map(move |m| format!("levqor.v1.{}/{}", s.name(), m.name()))
            })
        })
        .collect()
}

#[test]
fn the_route_reader_sees_the_router() {
    let routes = rest_routes();
    assert!(routes.contains(&("POST".into(), "/v1/jobs".into())));
    assert!(routes.contains(&("GET".into(), "/v1/jobs".into())));
    assert!(routes.contains(&("DELETE".into(), "/v1/admin/users/{id}/legal-hold".into())));
    assert!(routes.len() > 60, "{routes:?}");
}

#[test]
fn every_rest_operation_has_an_rpc_and_every_rpc_a_rest_route() {
    let routes = rest_routes();
    let rpcs = rpcs();
    let mut problems = Vec::new();
    for (method, path) in &routes {
        let mapped = PARITY.iter().any(|(m, p, _)| m == method && p == path);
        let excepted = REST_ONLY.iter().any(|(m, p, _)| m == method && p == path);
        if !mapped && !excepted {
            problems.push(format!("REST {method} {path} has no RPC"));
        }
    }
    for (method, path, rpc) in PARITY {
        if !routes.contains(&(method.to_string(), path.to_string())) {
            problems.push(format!(
                "the table names REST {method} {path}, which is not served"
            ));
        }
        if !rpcs.contains(*rpc) {
            problems.push(format!("the table names {rpc}, which the protos lack"));
        }
    }
    for (method, path, _) in REST_ONLY {
        if !routes.contains(&(method.to_string(), path.to_string())) {
            problems.push(format!("the exception {method} {path} is not served"));
        }
    }
    for rpc in &rpcs {
        if !PARITY.iter().any(|(_, _, r)| r == rpc) {
            problems.push(format!("{rpc} has no REST route"));
        }
    }
    assert!(
        problems.is_empty(),
        "the adapters differ:\n{}",
        problems.join("\n")
    );
}
