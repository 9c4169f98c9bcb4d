//! Terms, marketing consent, objections, screening, exports and retention through the REST
//! router, on the in-memory store, with an injected clock.

mod support;

use axum::http::{StatusCode, header};
use base64::Engine as _;
use chrono::{Duration, TimeZone, Utc};
use levqor_core::{Levqor, ManualClock, MemoryStore};
use serde_json::{Value, json};
use std::io::Read;
use std::sync::Arc;
use support::app::{App, Reply, runner};

const ADMIN: &str = "admin-secret";

/// The app with the clock its service reads.
struct Api {
    app: App,
    clock: Arc<ManualClock>,
}

impl std::ops::Deref for Api {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

fn api() -> Api {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap(),
    ));
    let app = App::new(
        Levqor::builder(store.clone(), runner(store))
            .clock(clock.clone())
            .admin_key(Some(ADMIN))
            .public_url("https://levqor.example")
            .signup_grant(1_000_000_000)
            .build()
            .unwrap(),
    );
    Api { app, clock }
}

impl Api {
    /// The screening rules in force, as the admin reads them.
    async fn rules(&self) -> Value {
        self.call("GET", "/v1/admin/screening/rules", Some(ADMIN), None)
            .await
            .body
    }

    /// Replaces the screening rules as the admin.
    async fn put_rules(&self, rules: Value) -> Reply {
        self.call("PUT", "/v1/admin/screening/rules", Some(ADMIN), Some(rules))
            .await
    }

    async fn user(&self, email: &str) -> (String, String) {
        let u = self
            .call(
                "POST",
                "/v1/users",
                Some(ADMIN),
                Some(json!({"email": email, "name": "Grace Hopper"})),
            )
            .await;
        assert_eq!(u.status, StatusCode::CREATED, "{:?}", u.body);
        let id = u.body["id"].as_str().unwrap().to_string();
        let k = self
            .call("POST", &format!("/v1/users/{id}/keys"), Some(ADMIN), None)
            .await;
        (id, k.body["key"].as_str().unwrap().to_string())
    }

    /// Follows the confirmation link of the newest email to `to`.
    async fn confirm_newest_opt_in(&self, to: &str) -> Reply {
        let mails = self.outbox_to(to).await;
        let token = token_in(mails[0]["body"].as_str().unwrap(), "/v1/marketing/confirm");
        self.call(
            "GET",
            &format!("/v1/marketing/confirm?token={token}"),
            None,
            None,
        )
        .await
    }

    async fn outbox_to(&self, to: &str) -> Vec<Value> {
        let r = self
            .call("GET", "/v1/admin/outbox?limit=100", Some(ADMIN), None)
            .await;
        r.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["to"] == to)
            .cloned()
            .collect()
    }

    async fn submit(&self, key: &str, workflow: Value, input: Value) -> Reply {
        self.call(
            "POST",
            "/v1/jobs",
            Some(key),
            Some(json!({"workflow": workflow, "input": input})),
        )
        .await
    }
}

fn log_workflow(message: &str) -> Value {
    json!({"name": "t", "steps": [{"id": "a", "type": "log", "message": message}]})
}

fn token_in(body: &str, path: &str) -> String {
    let start = body
        .find(path)
        .unwrap_or_else(|| panic!("no {path} link in {body:?}"))
        + path.len();
    let rest = &body[start..];
    let start = rest.find("token=").unwrap() + 6;
    rest[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn double_opt_in_then_unsubscribe_and_marketing_only_with_consent() {
    let api = api();
    let email = "Reader@Example.com";
    let r = api
        .call(
            "POST",
            "/v1/marketing/subscribe",
            None,
            Some(json!({"email": email, "categories": ["offers", "technical"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["confirmation_sent"], true);
    async fn status(api: &Api) -> Value {
        api.call(
            "POST",
            "/v1/marketing/status",
            None,
            Some(json!({"email": "reader@example.com"})),
        )
        .await
        .body
    }
    assert_eq!(status(&api).await["status"], "pending");

    // A marketing send reaches nobody while the consent is pending.
    let send = json!({"category": "offers", "subject": "Deal", "body": "Half price"});
    let r = api
        .call(
            "POST",
            "/v1/admin/marketing/send",
            Some(ADMIN),
            Some(send.clone()),
        )
        .await;
    assert_eq!(r.body["sent"], 0, "{:?}", r.body);

    // Repeating the subscribe within the hour sends nothing new and creates no duplicate.
    let again = api
        .call(
            "POST",
            "/v1/marketing/subscribe",
            None,
            Some(json!({"email": email, "categories": ["offers", "technical"]})),
        )
        .await;
    assert_eq!(again.body["confirmation_sent"], false);
    let mails = api.outbox_to("reader@example.com").await;
    assert_eq!(mails.len(), 1, "one confirmation email");
    let token = token_in(mails[0]["body"].as_str().unwrap(), "/v1/marketing/confirm");

    let r = api
        .call(
            "GET",
            &format!("/v1/marketing/confirm?token={token}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "subscribed");
    assert_eq!(
        status(&api).await["categories"],
        json!(["offers", "technical"])
    );

    // Marketing for a category the reader chose arrives, with an unsubscribe link; others do not.
    let r = api
        .call(
            "POST",
            "/v1/admin/marketing/send",
            Some(ADMIN),
            Some(send.clone()),
        )
        .await;
    assert_eq!(r.body["sent"], 1);
    let r = api
        .call(
            "POST",
            "/v1/admin/marketing/send",
            Some(ADMIN),
            Some(json!({"category": "events", "subject": "Meetup", "body": "Come"})),
        )
        .await;
    assert_eq!(r.body["sent"], 0);
    let mails = api.outbox_to("reader@example.com").await;
    let deal = mails.iter().find(|m| m["subject"] == "Deal").unwrap();
    assert_eq!(deal["kind"], "marketing");
    let unsubscribe = token_in(deal["body"].as_str().unwrap(), "/v1/marketing/unsubscribe");
    // Rendered from the `marketing` template: both parts, the link in each, and the RFC 8058
    // headers.
    let html = deal["html"].as_str().unwrap();
    assert!(
        html.contains("Half price") && html.contains(&unsubscribe),
        "{html}"
    );
    let link = deal["headers"]["List-Unsubscribe"].as_str().unwrap();
    assert!(
        link.starts_with('<') && link.ends_with('>') && link.contains(&unsubscribe),
        "{link}"
    );
    assert_eq!(
        deal["headers"]["List-Unsubscribe-Post"],
        "List-Unsubscribe=One-Click"
    );

    // A mail client's one-click unsubscribe: a form POST to the link.
    let path = &link[link.find("/v1/").unwrap()..link.len() - 1];
    let r = api
        .raw(
            axum::http::Request::builder()
                .method("POST")
                .uri(path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from("List-Unsubscribe=One-Click"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(status(&api).await["status"], "unsubscribed");
    assert!(
        api.outbox_to("reader@example.com")
            .await
            .iter()
            .any(|m| m["subject"] == "You are unsubscribed"),
        "the unsubscribe is confirmed by email"
    );
    let r = api
        .call("POST", "/v1/admin/marketing/send", Some(ADMIN), Some(send))
        .await;
    assert_eq!(r.body["sent"], 0, "no marketing after unsubscribing");

    // A forged unsubscribe token is refused.
    let r = api
        .call(
            "POST",
            "/v1/marketing/unsubscribe",
            None,
            Some(json!({"token": format!("{}x", unsubscribe)})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("token_unknown"))
    );

    // Every change is in the consent ledger, which verifies.
    let r = api
        .call("GET", "/v1/admin/consent/verify", Some(ADMIN), None)
        .await;
    assert_eq!(r.body["ok"], true, "{:?}", r.body);
    assert_eq!(r.body["records"], 3, "requested, confirmed, unsubscribed");
}

#[tokio::test]
async fn expired_reused_unknown_and_resent_tokens() {
    let api = api();
    let subscribe = |email: &'static str| {
        api.call(
            "POST",
            "/v1/marketing/subscribe",
            None,
            Some(json!({"email": email, "categories": ["events"]})),
        )
    };
    subscribe("late@example.com").await;
    let token = token_in(
        api.outbox_to("late@example.com").await[0]["body"]
            .as_str()
            .unwrap(),
        "/v1/marketing/confirm",
    );
    api.clock.advance(Duration::days(8));
    let r = api
        .call(
            "GET",
            &format!("/v1/marketing/confirm?token={token}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("token_expired"))
    );

    // After the hour, subscribing again sends a fresh link, which works once.
    let r = subscribe("late@example.com").await;
    assert_eq!(r.body["confirmation_sent"], true);
    let mails = api.outbox_to("late@example.com").await;
    assert_eq!(mails.len(), 2);
    let fresh = token_in(mails[0]["body"].as_str().unwrap(), "/v1/marketing/confirm");
    assert_ne!(fresh, token);
    let r = api
        .call(
            "GET",
            &format!("/v1/marketing/confirm?token={token}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        r.body["code"], "token_unknown",
        "the old token was replaced"
    );
    let r = api
        .call(
            "GET",
            &format!("/v1/marketing/confirm?token={fresh}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api
        .call(
            "GET",
            &format!("/v1/marketing/confirm?token={fresh}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::CONFLICT, Some("token_used"))
    );
    let r = api
        .call("GET", "/v1/marketing/confirm?token=nope", None, None)
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("token_unknown"))
    );
    let r = api.call("GET", "/v1/marketing/confirm", None, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Bad subscriptions change nothing.
    let r = api
        .call(
            "POST",
            "/v1/marketing/subscribe",
            None,
            Some(json!({"email": "x@example.com", "categories": ["spam"]})),
        )
        .await;
    assert_eq!(r.body["errors"][0]["pointer"], "/categories/0");
    let r = api
        .call(
            "POST",
            "/v1/marketing/subscribe",
            None,
            Some(json!({"email": "nope"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(api.outbox_to("x@example.com").await.is_empty());
}

#[tokio::test]
async fn the_public_routes_are_rate_limited() {
    let api = api();
    let mut last = None;
    for i in 0..11 {
        let r = api
            .call(
                "POST",
                "/v1/marketing/status",
                None,
                Some(json!({"email": format!("p{i}@example.com")})),
            )
            .await;
        last = Some(r);
    }
    let r = last.unwrap();
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn the_preference_center_changes_categories() {
    let api = api();
    let (_, key) = api.user("prefs@example.com").await;
    let r = api
        .call("GET", "/v1/marketing/preferences", Some(&key), None)
        .await;
    assert_eq!(r.body["status"], Value::Null);
    let r = api
        .call(
            "PUT",
            "/v1/marketing/preferences",
            Some(&key),
            Some(json!({"categories": ["educational"]})),
        )
        .await;
    assert_eq!(
        r.body["status"], "pending",
        "a first choice still needs the opt-in"
    );
    api.confirm_newest_opt_in("prefs@example.com").await;
    let r = api
        .call(
            "PUT",
            "/v1/marketing/preferences",
            Some(&key),
            Some(json!({"categories": ["offers", "educational"]})),
        )
        .await;
    assert_eq!(
        (r.body["status"].as_str(), &r.body["categories"]),
        (Some("subscribed"), &json!(["offers", "educational"]))
    );
    let r = api
        .call(
            "PUT",
            "/v1/marketing/preferences",
            Some(&key),
            Some(json!({"categories": []})),
        )
        .await;
    assert_eq!(r.body["status"], "unsubscribed");
}

#[tokio::test]
async fn objections_are_enforced_for_all_four_kinds() {
    let api = api();
    let (user_id, key) = api.user("objector@example.com").await;
    let object = |kind: &'static str, objected: bool| {
        api.call(
            "POST",
            "/v1/me/objections",
            Some(&key),
            Some(json!({"kind": kind, "objected": objected})),
        )
    };

    // automation: intake refuses the user's jobs until the objection is withdrawn.
    assert_eq!(object("automation", true).await.status, StatusCode::OK);
    let r = api.submit(&key, log_workflow("hi"), json!({})).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("objection_automation"))
    );
    object("automation", false).await;
    assert_eq!(
        api.submit(&key, log_workflow("hi"), json!({})).await.status,
        StatusCode::ACCEPTED
    );

    // analytics: events are not recorded.
    let event = json!({"name": "page_view", "properties": {"page": "/pricing"}});
    let r = api
        .call("POST", "/v1/events", Some(&key), Some(event.clone()))
        .await;
    assert_eq!(r.body["recorded"], 1);
    object("analytics", true).await;
    let r = api
        .call("POST", "/v1/events", Some(&key), Some(event))
        .await;
    assert_eq!(
        (r.status, &r.body["recorded"]),
        (StatusCode::ACCEPTED, &json!(0))
    );

    // marketing: no marketing email even with a confirmed consent.
    api.call(
        "POST",
        "/v1/marketing/subscribe",
        None,
        Some(json!({"email": "objector@example.com", "categories": ["offers"]})),
    )
    .await;
    let confirm = api
        .outbox_to("objector@example.com")
        .await
        .into_iter()
        .find(|m| m["subject"] == "Confirm your subscription")
        .unwrap();
    let token = token_in(confirm["body"].as_str().unwrap(), "/v1/marketing/confirm");
    api.call(
        "GET",
        &format!("/v1/marketing/confirm?token={token}"),
        None,
        None,
    )
    .await;
    let send = json!({"category": "offers", "subject": "Deal", "body": "x"});
    object("marketing", true).await;
    let r = api
        .call(
            "POST",
            "/v1/admin/marketing/send",
            Some(ADMIN),
            Some(send.clone()),
        )
        .await;
    assert_eq!(
        (&r.body["sent"], &r.body["skipped"]),
        (&json!(0), &json!(1))
    );
    object("marketing", false).await;
    let r = api
        .call("POST", "/v1/admin/marketing/send", Some(ADMIN), Some(send))
        .await;
    assert_eq!(r.body["sent"], 1);

    // profiling: the core check that lead scoring calls refuses.
    let id = uuid::Uuid::parse_str(&user_id).unwrap();
    assert!(
        api.levqor
            .consent()
            .check_profiling_allowed(id)
            .await
            .is_ok()
    );
    object("profiling", true).await;
    let err = api
        .levqor
        .consent()
        .check_profiling_allowed(id)
        .await
        .unwrap_err();
    assert_eq!(err.code, "objection_profiling");

    // Each change was confirmed by email and shows in the list, and the admin sees the same.
    let confirmations = api
        .outbox_to("objector@example.com")
        .await
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .contains("objection is recorded")
        })
        .count();
    assert_eq!(confirmations, 6);
    let mine = api.call("GET", "/v1/me/objections", Some(&key), None).await;
    let theirs = api
        .call(
            "GET",
            &format!("/v1/admin/users/{user_id}/objections"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(mine.body, theirs.body);
    let objected: Vec<&str> = mine.body["objections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["objected"] == true)
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(objected, ["profiling", "analytics"]);
    let r = object("everything", true).await;
    assert_eq!(r.body["errors"][0]["pointer"], "/kind");
}

#[tokio::test]
async fn material_terms_must_be_accepted_again() {
    let api = api();
    let (_, key) = api.user("terms@example.com").await;
    assert_eq!(
        api.submit(&key, log_workflow("x"), json!({})).await.status,
        StatusCode::ACCEPTED
    );

    let publish = |version: &str, material: bool, effective_at: Option<&str>| {
        api.call(
            "POST",
            "/v1/admin/terms",
            Some(ADMIN),
            Some(json!({"version": version, "changelog": "changes", "material": material, "effective_at": effective_at})),
        )
    };
    assert_eq!(
        publish("2026-11", true, None).await.status,
        StatusCode::CREATED
    );
    assert!(
        api.outbox_to("terms@example.com")
            .await
            .iter()
            .any(|m| m["body"].as_str().unwrap().contains("2026-11")),
        "a material version is announced to every user"
    );
    let r = api.submit(&key, log_workflow("x"), json!({})).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("terms_not_accepted"))
    );
    let s = api.call("GET", "/v1/terms/status", Some(&key), None).await;
    assert_eq!(
        s.body,
        json!({"current_version": "2026-11", "accepted_version": null, "must_accept": true})
    );

    let r = api
        .call(
            "POST",
            "/v1/terms/accept",
            Some(&key),
            Some(json!({"version": "2026-11"})),
        )
        .await;
    assert_eq!(r.body["must_accept"], false, "{:?}", r.body);
    assert_eq!(
        api.submit(&key, log_workflow("x"), json!({})).await.status,
        StatusCode::ACCEPTED
    );

    // A minor version needs no new acceptance; a material one does, once in effect.
    publish("2026-11b", false, None).await;
    assert_eq!(
        api.submit(&key, log_workflow("x"), json!({})).await.status,
        StatusCode::ACCEPTED
    );
    publish("2027-01", true, Some("2027-01-01T00:00:00Z")).await;
    assert_eq!(
        api.submit(&key, log_workflow("x"), json!({})).await.status,
        StatusCode::ACCEPTED
    );
    let r = api
        .call(
            "POST",
            "/v1/terms/accept",
            Some(&key),
            Some(json!({"version": "2027-01"})),
        )
        .await;
    assert_eq!(r.body["code"], "terms_not_in_effect");
    api.clock
        .set(Utc.with_ymd_and_hms(2027, 1, 2, 0, 0, 0).unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = api.submit(&key, log_workflow("x"), json!({})).await;
    assert_eq!(r.body["code"], "terms_not_accepted");
    api.call(
        "POST",
        "/v1/terms/accept",
        Some(&key),
        Some(json!({"version": "2027-01"})),
    )
    .await;
    assert_eq!(
        api.submit(&key, log_workflow("x"), json!({})).await.status,
        StatusCode::ACCEPTED
    );

    let h = api.call("GET", "/v1/terms/history", Some(&key), None).await;
    let versions: Vec<&str> = h.body["acceptances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        ["2027-01", "2026-11"],
        "history is kept, newest first"
    );
    assert_eq!(
        publish("2026-11", false, None).await.body["code"],
        "terms_version_exists"
    );
    let r = api
        .call(
            "POST",
            "/v1/terms/accept",
            Some(&key),
            Some(json!({"version": "1999"})),
        )
        .await;
    assert_eq!(r.body["errors"][0]["pointer"], "/version");
    let r = api
        .call(
            "POST",
            "/v1/admin/terms",
            Some(&key),
            Some(json!({"version": "x"})),
        )
        .await;
    assert_eq!(r.body["code"], "admin_only");
}

fn zip_files(attachment: &Value) -> Vec<(String, Value)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(attachment["content_base64"].as_str().unwrap())
        .unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            (
                f.name().unwrap().to_string(),
                serde_json::from_str(&s).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn exports_are_emailed_as_a_zip_once_a_day() {
    let api = api();
    let (user_id, key) = api.user("export@example.com").await;
    api.submit(&key, log_workflow("for Grace"), json!({"who": "Grace"}))
        .await;
    api.call(
        "POST",
        "/v1/events",
        Some(&key),
        Some(json!({"name": "login", "properties": {}})),
    )
    .await;
    api.call(
        "POST",
        "/v1/me/objections",
        Some(&key),
        Some(json!({"kind": "profiling", "objected": true})),
    )
    .await;

    let r = api.call("POST", "/v1/me/export", Some(&key), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let mail = api
        .outbox_to("export@example.com")
        .await
        .into_iter()
        .find(|m| m["subject"] == "Your data export")
        .unwrap();
    assert!(
        !mail["body"].as_str().unwrap().contains("http"),
        "no download link"
    );
    let attachment = &mail["attachments"][0];
    assert_eq!(attachment["content_type"], "application/zip");
    let files = zip_files(attachment);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "profile.json",
            "keys.json",
            "jobs.json",
            "credits.json",
            "usage.json",
            "consents.json",
            "objections.json",
            "events.json"
        ]
    );
    assert_eq!(files[0].1["email"], "export@example.com");
    assert!(
        files[1]
            .1
            .to_string()
            .find("lq_")
            .is_none_or(|_| !files[1].1.to_string().contains(&key)),
        "no secrets"
    );
    assert_eq!(files[2].1[0]["input"]["who"], "Grace");

    let r = api.call("POST", "/v1/me/export", Some(&key), None).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("export_rate_limited"))
    );
    let wait: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((86_000..=86_400).contains(&wait), "{wait}");
    let r = api
        .call(
            "POST",
            &format!("/v1/admin/users/{user_id}/export"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the admin's export counts too"
    );
    api.clock.advance(Duration::hours(25));
    assert_eq!(
        api.call("POST", "/v1/me/export", Some(&key), None)
            .await
            .status,
        StatusCode::ACCEPTED
    );

    let audit = api.call("GET", "/v1/admin/audit", Some(ADMIN), None).await;
    let exports = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "export.sent")
        .count();
    assert_eq!(exports, 2);
    assert!(
        !audit.body.to_string().contains("export@example.com"),
        "audit records hold no email"
    );
}

#[tokio::test]
async fn screening_blocks_holds_warns_and_refusals_can_be_appealed() {
    let api = api();
    let (_, key) = api.user("screened@example.com").await;

    // medium: admitted with a warning and the matches.
    let r = api
        .submit(&key, log_workflow("ask about my mortgage"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["screening"]["verdict"], "warn", "{:?}", r.body);
    assert_eq!(r.body["warnings"][0]["code"], "high_risk_content");

    // high: held for approval until the admin approves.
    let r = api
        .submit(
            &key,
            log_workflow("note"),
            json!({"text": "renew my oxycodone prescription"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["status"], "awaiting_approval", "{:?}", r.body);
    assert_eq!(r.body["screening"]["matches"][0]["pointer"], "/input/text");
    let held = r.body["id"].as_str().unwrap().to_string();
    let r = api
        .call(
            "POST",
            &format!("/v1/admin/jobs/{held}/approve"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "queued", "{:?}", r.body);
    let r = api
        .call(
            "POST",
            &format!("/v1/admin/jobs/{held}/approve"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["code"], "admin_only");

    // critical: refused, with every match located, and nothing admitted.
    let r = api
        .call(
            "POST",
            "/v1/jobs",
            Some(&key),
            Some(json!({"workflow": log_workflow("how to launder money offshore"), "input": {}})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("high_risk_content"))
    );
    assert_eq!(r.body["screening"]["verdict"], "block");
    let m = &r.body["screening"]["matches"][0];
    assert_eq!(
        (m["category"].as_str(), m["severity"].as_str()),
        (Some("financial"), Some("critical"))
    );
    assert_eq!(m["pointer"], "/workflow/steps/0/message");
    let refused = r.body["job_id"].as_str().unwrap().to_string();
    let r = api
        .call("GET", &format!("/v1/jobs/{refused}"), Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Another user cannot appeal it; its owner can, once; the admin approves and it runs.
    let (_, other) = api.user("other@example.com").await;
    let appeal = json!({"reason": "it is a compliance training course"});
    let r = api
        .call(
            "POST",
            &format!("/v1/jobs/{refused}/appeal"),
            Some(&other),
            Some(appeal.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .call(
            "POST",
            &format!("/v1/jobs/{held}/appeal"),
            Some(&key),
            Some(appeal.clone()),
        )
        .await;
    assert_eq!(r.body["code"], "not_appealable");
    let r = api
        .call(
            "POST",
            &format!("/v1/jobs/{refused}/appeal"),
            Some(&key),
            Some(appeal.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let r = api
        .call(
            "POST",
            &format!("/v1/jobs/{refused}/appeal"),
            Some(&key),
            Some(appeal),
        )
        .await;
    assert_eq!(r.body["code"], "already_appealed");
    let r = api
        .call("GET", "/v1/admin/appeals", Some(ADMIN), None)
        .await;
    assert_eq!(r.body["appeals"][0]["id"], refused.as_str());
    let r = api
        .call(
            "POST",
            &format!("/v1/admin/appeals/{refused}"),
            Some(ADMIN),
            Some(json!({"approve": true, "note": "training material"})),
        )
        .await;
    assert_eq!(r.body["job"]["status"], "queued", "{:?}", r.body);
    assert_eq!(r.body["job"]["id"], refused.as_str());
    let r = api
        .call("GET", &format!("/v1/jobs/{refused}"), Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api
        .call(
            "POST",
            &format!("/v1/admin/appeals/{refused}"),
            Some(ADMIN),
            Some(json!({"approve": false})),
        )
        .await;
    assert_eq!(r.body["code"], "no_pending_appeal");
    assert!(
        api.outbox_to("screened@example.com")
            .await
            .iter()
            .any(|m| m["subject"].as_str().unwrap().contains("approved")),
        "the user hears the decision"
    );

    // Free text goes through the same engine; the dashboard counts by category and severity.
    let r = api
        .call(
            "POST",
            "/v1/screen",
            Some(&key),
            Some(json!({"text": "I need a divorce lawyer"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["category"] == "legal"),
        "{:?}",
        r.body
    );
    let d = api
        .call("GET", "/v1/admin/compliance", Some(ADMIN), None)
        .await;
    assert_eq!(d.body["screening"]["verdicts"]["block"], 1, "{:?}", d.body);
    assert_eq!(
        d.body["screening"]["matches_by_category_and_severity"]["financial"]["critical"], 2,
        "\"launder money\" and \"launder\""
    );
}

#[tokio::test]
async fn admins_replace_the_screening_rules() {
    let api = api();
    let (_, key) = api.user("rules@example.com").await;
    let rules = json!({"rules": [{"term": "quantum widget", "category": "financial", "severity": "critical"}]});
    let r = api.put_rules(rules).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = api
        .submit(&key, log_workflow("sell the Quantum-Widget"), json!({}))
        .await;
    assert_eq!(r.body["code"], "high_risk_content", "{:?}", r.body);
    let r = api
        .submit(&key, log_workflow("how to launder money"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "the old rules are gone");
    let bad = json!({"rules": [{"term": "", "category": "legal", "severity": "low"}, {"term": "x", "category": "astrology", "severity": "low"}]});
    let r = api.put_rules(bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = api.rules().await;
    assert_eq!(
        r["rules"][0]["term"], "quantum widget",
        "a refused set changes nothing"
    );
}

#[tokio::test]
async fn intent_rules_refuse_by_what_a_text_asks_and_say_why() {
    let api = api();
    let (_, key) = api.user("intent@example.com").await;
    let rules = json!({
        "rules": [{"term": "dose", "category": "medical", "severity": "medium",
                   "unless": "dose_senses", "within": 3}],
        "lists": [
            {"name": "act", "terms": ["prescribe"]},
            {"name": "drug", "terms": ["insulin"]},
            {"name": "all", "terms": ["every caller"]},
            {"name": "dose_senses", "terms": ["humour"]}
        ],
        "intents": [
            {"name": "everyone", "action": "all", "marks": "everyone"},
            {"name": "medical.prescribes", "action": "act", "subject": "drug", "window": 3,
             "category": "medical", "severity": "high", "to_everyone": "critical"}
        ]
    });
    let r = api.put_rules(rules.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["intents"][1]["to_everyone"], "critical");
    let r = api
        .submit(
            &key,
            log_workflow("Prescribe insulin to every caller"),
            json!({}),
        )
        .await;
    assert_eq!(r.body["code"], "high_risk_content", "{:?}", r.body);
    let found = &r.body["screening"]["matches"][0];
    assert_eq!(found["term"], "medical.prescribes");
    assert_eq!(found["pointer"], "/workflow/steps/0/message");
    assert_eq!(found["because"]["action"], "prescribe");
    assert_eq!(found["because"]["subject"], "insulin");
    assert_eq!(found["because"]["mark"]["kind"], "everyone");
    assert_eq!(found["because"]["mark"]["words"], json!(["every caller"]));
    let r = api
        .submit(&key, log_workflow("Prescribe insulin"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["status"], "awaiting_approval", "held: {:?}", r.body);
    let r = api
        .call(
            "POST",
            "/v1/screen",
            Some(&key),
            Some(json!({"text": "a dose of humour"})),
        )
        .await;
    assert_eq!(r.body["verdict"], "allow", "{:?}", r.body);
    // Every violation, each at its pointer; nothing changes.
    let mut bad = rules;
    bad["intents"][1]["subject"] = json!("drugs");
    bad["intents"][1]["window"] = json!(500);
    bad["lists"][1]["terms"] = json!(["insulin", "INSULIN"]);
    let r = api.put_rules(bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers = r.pointers();
    assert_eq!(
        pointers,
        [
            "/lists/1/terms/1",
            "/intents/1/subject",
            "/intents/1/window"
        ]
    );
    let r = api.rules().await;
    assert_eq!(r["intents"][1]["subject"], "drug", "nothing changed");
}

#[tokio::test]
async fn a_learned_stage_refuses_what_the_rules_hold_and_says_why() {
    let api = api();
    let (_, key) = api.user("learned@example.com").await;
    // The default rules, learned stage and all, go back as they came.
    let defaults = api.rules().await;
    assert!(
        defaults["model"]["weights"]
            .as_object()
            .is_some_and(|w| w.len() > 1_000)
    );
    let r = api.put_rules(defaults.clone()).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &defaults));
    // A rule document may outgrow the body limit of every other request; the rest keep it.
    let mut big = defaults.clone();
    for i in 0..30_000 {
        big["model"]["weights"][format!("padding{i}")] = json!([1, 1]);
    }
    assert!(big.to_string().len() > levqor_http::MAX_BODY_BYTES);
    let r = api.put_rules(big).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = "x".repeat(levqor_http::MAX_BODY_BYTES);
    let r = api
        .call(
            "POST",
            "/v1/screen",
            Some(&key),
            Some(json!({ "text": text })),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = api.put_rules(defaults.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    let rules = json!({
        "rules": [{"term": "insulin", "category": "medical", "severity": "high"}],
        "model": {"window": 8, "escalate_at": 80, "clear_below": 20, "bias": [-3000, 0],
                  "weights": {"every caller": [5000, 0], "pharmacist": [0, -4000]}}
    });
    let r = api.put_rules(rules.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["model"], rules["model"]);
    let r = api
        .submit(
            &key,
            log_workflow("Tell every caller how much insulin to take"),
            json!({}),
        )
        .await;
    assert_eq!(r.body["code"], "high_risk_content", "{:?}", r.body);
    let found = &r.body["screening"]["matches"][0];
    assert_eq!(found["term"], "insulin");
    assert_eq!(found["severity"], "critical");
    assert_eq!(
        found["learned"],
        json!({"from": "high", "score": 88, "words": ["every caller"]})
    );
    let r = api
        .submit(
            &key,
            log_workflow("The pharmacist restocks insulin"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_ne!(
        r.body["status"], "awaiting_approval",
        "warned, not held: {:?}",
        r.body
    );
    // A model out of range is refused at each field; the rules stay.
    let mut bad = rules;
    bad["model"]["window"] = json!(0);
    bad["model"]["weights"]["three whole words"] = json!([1, 1]);
    let r = api.put_rules(bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers = r.pointers();
    assert_eq!(
        pointers,
        ["/model/window", "/model/weights/three whole words"]
    );
    let r = api.rules().await;
    assert_eq!(r["model"]["window"], 8, "nothing changed");
}

#[tokio::test]
async fn retention_sweeps_old_data_except_under_legal_hold() {
    let api = api();
    let (kept_id, kept) = api.user("kept@example.com").await;
    let (_, gone) = api.user("gone@example.com").await;
    for key in [&kept, &gone] {
        api.call(
            "POST",
            "/v1/events",
            Some(key),
            Some(json!({"events": [{"name": "a"}, {"name": "b"}]})),
        )
        .await;
    }
    let r = api
        .call(
            "PUT",
            &format!("/v1/admin/users/{kept_id}/legal-hold"),
            Some(ADMIN),
            Some(json!({"reason": "case 42"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = api
        .call(
            "PUT",
            "/v1/admin/retention/policies",
            Some(ADMIN),
            Some(json!({"events": 30, "outbox": 30})),
        )
        .await;
    assert_eq!(r.body["events"], 30, "{:?}", r.body);
    let r = api
        .call(
            "PUT",
            "/v1/admin/retention/policies",
            Some(ADMIN),
            Some(json!({"logs": 3})),
        )
        .await;
    assert_eq!(r.body["errors"][0]["pointer"], "/logs");

    api.clock.advance(Duration::days(31));
    let dry = api
        .call(
            "POST",
            "/v1/admin/retention/sweep?dry_run=true",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(dry.body["classes"]["events"], 2, "{:?}", dry.body);
    assert_eq!(dry.body["dry_run"], true);
    let again = api
        .call(
            "POST",
            "/v1/admin/retention/sweep?dry_run=true",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        again.body["classes"], dry.body["classes"],
        "a dry run deletes nothing"
    );
    let done = api
        .call("POST", "/v1/admin/retention/sweep", Some(ADMIN), None)
        .await;
    assert_eq!(done.body["classes"]["events"], 2);
    assert_eq!(done.body["held_users"], 1);
    let after = api
        .call(
            "POST",
            "/v1/admin/retention/sweep?dry_run=true",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(after.body["classes"]["events"], 0);

    // Erasure of a held user is refused and changes nothing; lifting the hold allows it.
    let r = api.call("POST", "/v1/me/erase", Some(&kept), None).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::CONFLICT, Some("legal_hold"))
    );
    assert_eq!(
        api.call("GET", "/v1/me", Some(&kept), None).await.status,
        StatusCode::OK
    );
    let r = api
        .call(
            "DELETE",
            &format!("/v1/admin/users/{kept_id}/legal-hold"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.call("POST", "/v1/me/erase", Some(&kept), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = api
        .call(
            "POST",
            &format!("/v1/admin/users/{kept_id}/erase"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.body["already_erased"], true, "erasure is idempotent");
    assert_eq!(r.body["tombstone"].as_str().map(str::len), Some(36));
    let r = api.call("GET", "/v1/me", Some(&kept), None).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the keys died with the user"
    );
}

#[tokio::test]
async fn a_stranger_cannot_widen_a_confirmed_consent() {
    let api = api();
    let email = "careful@example.com";
    api.call(
        "POST",
        "/v1/marketing/subscribe",
        None,
        Some(json!({"email": email, "categories": ["technical"]})),
    )
    .await;
    api.confirm_newest_opt_in(email).await;
    let r = api
        .call(
            "POST",
            "/v1/marketing/subscribe",
            None,
            Some(json!({"email": email, "categories": ["offers"]})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["confirmation_sent"]),
        (StatusCode::ACCEPTED, &json!(false))
    );
    let r = api
        .call(
            "POST",
            "/v1/marketing/status",
            None,
            Some(json!({"email": email})),
        )
        .await;
    assert_eq!(r.body["categories"], json!(["technical"]));
    let r = api
        .call(
            "POST",
            "/v1/admin/marketing/send",
            Some(ADMIN),
            Some(json!({"category": "offers", "subject": "s", "body": "b"})),
        )
        .await;
    assert_eq!(r.body["sent"], 0);
}
