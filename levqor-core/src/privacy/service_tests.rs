//! The privacy service's rules, against [`Privacy`] itself over the in-memory store and a
//! clock that stands still: analytics events, DSAR exports, erasure across the registered
//! areas, legal holds, retention policies and their sweep, the audit log and the compliance
//! dashboard.

use super::*;
use crate::audit::{Actor, AuditRecord, audit_subject};
use crate::auth::Principal;
use crate::clock::Clock as _;
use crate::consent::TermsArea;
use crate::consent::{ClientInfo, Consent, ConsentsArea, ObjectionsArea, SubscriptionStatus};
use crate::error::ErrorKind;
use crate::memory::MemoryStore;
use crate::notify::{MessagesArea, MockNotifier, OutboxMessage, OutboxStore};
use crate::personal_data::{AreaErasure, Person, PersonalDataArea};
use crate::screening::{self, AppealStatus, ScreeningRecord, ScreeningStore, ScreeningsArea};
use crate::testing::{Base, t0};
use crate::users::{KeysArea, ProfileArea, User};
use async_trait::async_trait;
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::json;
use std::fmt::Debug;
use std::io::Read as _;
use std::sync::{Arc, Mutex};

const ADMIN: &Principal = &Principal::Admin;

struct World {
    base: Base,
    consent: Arc<Consent>,
    p: Privacy,
}

fn world() -> World {
    on(Base::new())
}

/// The privacy service over `base`, with the builder's areas of the users, consent, privacy,
/// screening and notify domains registered in the builder's order.
fn on(base: Base) -> World {
    let consent = Arc::new(base.consent());
    let s = base.store.clone();
    let areas: [Arc<dyn PersonalDataArea>; 9] = [
        Arc::new(ProfileArea(s.clone())),
        Arc::new(KeysArea(s.clone())),
        Arc::new(ConsentsArea(consent.clone())),
        Arc::new(ObjectionsArea(s.clone())),
        Arc::new(TermsArea(s.clone())),
        Arc::new(EventsArea(s.clone())),
        Arc::new(ScreeningsArea(s.clone())),
        Arc::new(MessagesArea(s.clone())),
        Arc::new(ExportsArea(s)),
    ];
    for area in areas {
        base.areas.register(area);
    }
    let p = base.privacy(consent.clone());
    World { base, consent, p }
}

fn ev(name: &str) -> (String, Value) {
    (name.to_string(), json!({"page": "/pricing"}))
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn failure<T: Debug>(r: Result<T>) -> (ErrorKind, &'static str) {
    let e = r.unwrap_err();
    (e.kind, e.code)
}

/// The error's code and the pointers of its violations, sorted.
fn invalid<T: Debug>(r: Result<T>) -> (&'static str, Vec<String>) {
    let e = r.unwrap_err();
    let mut pointers: Vec<String> = e.violations.into_iter().map(|v| v.pointer).collect();
    pointers.sort();
    (e.code, pointers)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Asserts that `r` failed with `code`.
#[track_caller]
fn refused<T: Debug>(r: Result<T>, code: &str) {
    assert_eq!(r.unwrap_err().code, code);
}

/// Asserts that `r` failed as `validation_failed` at exactly `pointers`.
#[track_caller]
fn invalid_at<T: Debug>(r: Result<T>, pointers: &[&str]) {
    assert_eq!(invalid(r), ("validation_failed", names(pointers)));
}

/// The files of the ZIP attached to `mail`.
fn zip_files(mail: &OutboxMessage) -> Vec<(String, Value)> {
    let b64 = &mail.attachments[0].content_base64;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.unwrap())).unwrap();
    let mut files = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        let name = f.name().unwrap().to_string();
        files.push((name, serde_json::from_str(&s).unwrap()));
    }
    files
}

impl World {
    async fn outbox(&self) -> Vec<OutboxMessage> {
        self.base.store.list_outbox(None, 10_000).await.unwrap()
    }

    async fn mails_to(&self, to: &str) -> Vec<OutboxMessage> {
        let mut all = self.outbox().await;
        all.retain(|m| m.to == to);
        all
    }

    async fn events(&self, user: &User) -> Vec<Event> {
        let store = &self.base.store;
        store.list_events(user.id, None, 10_000).await.unwrap()
    }

    async fn audit(&self, action: &str) -> Vec<AuditRecord> {
        let store = self.base.audit.store();
        store.find_audit(action, None).await.unwrap()
    }

    async fn holds(&self) -> Vec<LegalHold> {
        self.base.store.legal_holds().await.unwrap()
    }

    async fn last_export(&self, user: &User) -> Option<ExportRecord> {
        self.base.store.last_export(user.id).await.unwrap()
    }

    /// The secret of a new key of `user`'s with `scopes` (all by default).
    async fn secret(&self, user: &User, scopes: Option<Vec<String>>) -> String {
        let key = self.base.users.create_key(ADMIN, user.id, scopes).await;
        key.unwrap().secret
    }

    async fn exists(&self, user: &User) -> bool {
        let store = self.base.users.store();
        store.get_user(user.id).await.unwrap().is_some()
    }

    async fn record(&self, who: &Principal, names: &[&str]) -> Result<usize> {
        let events: Vec<(String, Value)> = names.iter().map(|n| ev(n)).collect();
        self.p.record_events(who, &events).await
    }

    /// Publishes the material terms `v1`.
    async fn publish_v1(&self) {
        let c = &self.consent;
        c.publish_terms(ADMIN, "v1", None, "", true).await.unwrap();
    }

    async fn accept_v1(&self, who: &Principal) {
        let (c, none) = (&self.consent, ClientInfo::default());
        c.accept_terms(who, None, "v1", none).await.unwrap();
    }

    async fn object(&self, who: &Principal, kind: &str, on: bool) {
        let c = &self.consent;
        c.set_objection(who, None, kind, on).await.unwrap();
    }

    async fn hold(&self, user: &User, reason: &str) -> Result<LegalHold> {
        self.p.set_legal_hold(ADMIN, user.id, reason).await
    }

    async fn set_policies(&self, body: Value) -> Result<RetentionPolicies> {
        self.p.set_retention_policies(ADMIN, &object(body)).await
    }

    /// A confirmed marketing consent of `email`.
    async fn subscribed(&self, email: &str, categories: &[&str]) {
        let cats: Vec<String> = categories.iter().map(|c| c.to_string()).collect();
        self.consent.subscribe(email, Some(&cats)).await.unwrap();
        let body = &self.mails_to(email).await[0].body;
        let token = body.split("token=").nth(1).unwrap();
        let token = token.split_whitespace().next().unwrap();
        self.consent.confirm_subscription(token).await.unwrap();
    }

    /// A screening record of `user`'s, blocked for a critical financial match.
    async fn screened(&self, user: &User, appeal: Option<AppealStatus>) {
        let m = screening::Match {
            term: "money laundering".into(),
            category: screening::Category::Financial,
            severity: screening::Severity::Critical,
            pointer: "/input/text".into(),
            because: None,
            learned: None,
        };
        let record = ScreeningRecord {
            id: Uuid::now_v7(),
            user_id: user.id,
            screening: screening::Screening {
                verdict: screening::Verdict::Block,
                matches: vec![m],
            },
            request: None,
            appeal_status: appeal,
            appeal_reason: None,
            decision_note: None,
            created_at: self.base.clock.now(),
            updated_at: self.base.clock.now(),
        };
        self.base.store.put_screening(&record).await.unwrap();
    }
}

// ---- areas ----

/// An area that exports the person's id and records what it was asked to erase.
#[derive(Default)]
struct Spy(Mutex<Vec<(String, Uuid)>>);

#[async_trait]
impl PersonalDataArea for Spy {
    fn name(&self) -> &'static str {
        "spy"
    }

    async fn export(&self, person: &Person) -> Result<Option<Value>> {
        Ok(Some(json!({"id": person.id})))
    }

    async fn erase(&self, person: &Person, tombstone: Uuid) -> Result<AreaErasure> {
        self.0
            .lock()
            .unwrap()
            .push((person.email.clone(), tombstone));
        Ok(AreaErasure {
            deleted: 2,
            pseudonymized: 1,
        })
    }
}

#[tokio::test]
async fn a_registered_area_is_exported_and_erased_from_then_on() {
    let w = world();
    let (ada, ada_key) = w.base.user("ada@example.com").await;
    let (bob, bob_key) = w.base.user("bob@example.com").await;
    let before = w.p.export_user(&ada_key, None).await.unwrap();
    assert!(!before.areas.contains(&"spy".to_string()));
    let spy = Arc::new(Spy::default());
    w.p.register_area(spy.clone());
    let export = w.p.export_user(&bob_key, None).await.unwrap();
    assert_eq!(export.areas.last().map(String::as_str), Some("spy"));
    let mail = w.mails_to(&bob.email).await.remove(0);
    let files = zip_files(&mail);
    let (name, data) = files.last().unwrap();
    assert_eq!((name.as_str(), data), ("spy.json", &json!({"id": bob.id})));
    let summary = w.p.erase_user(&ada_key, None).await.unwrap();
    let spied = &summary.areas["spy"];
    assert_eq!((spied.deleted, spied.pseudonymized), (2, 1));
    let erased = spy.0.lock().unwrap().clone();
    assert_eq!(erased, [(ada.email, summary.tombstone)]);
}

// ---- the audit log ----

#[tokio::test]
async fn the_audit_log_pages_newest_first_with_a_cursor() {
    let w = world();
    for i in 1..=5 {
        let action = format!("a{i}");
        let record = w.base.audit.record(Actor::System, &action, None, json!({}));
        record.await.unwrap();
    }
    let page = async |cursor: Option<String>| {
        let page = w.p.audit_log(ADMIN, Some(2), cursor.as_deref());
        let page = page.await.unwrap();
        let actions: Vec<String> = page.items.into_iter().map(|a| a.action).collect();
        (actions, page.next_cursor)
    };
    let (first, cursor) = page(None).await;
    assert_eq!(first, ["a5", "a4"]);
    let (second, cursor) = page(cursor).await;
    assert_eq!(second, ["a3", "a2"]);
    let (last, cursor) = page(cursor).await;
    assert_eq!((last, cursor), (vec!["a1".to_string()], None));
    let all = w.p.audit_log(ADMIN, None, None).await.unwrap();
    assert_eq!((all.items.len(), all.next_cursor), (5, None));
    let bad = w.p.audit_log(ADMIN, Some(0), Some("nope")).await;
    invalid_at(bad, &["/cursor", "/limit"]);
    invalid_at(w.p.audit_log(ADMIN, Some(101), None).await, &["/limit"]);
    let (_, key) = w.base.user("ada@example.com").await;
    refused(w.p.audit_log(&key, None, None).await, "admin_only");
}

// ---- analytics events ----

#[tokio::test]
async fn events_are_recorded_for_the_caller() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    let (bob, _) = w.base.user("bob@example.com").await;
    w.base.clock.advance(Duration::minutes(3));
    assert_eq!(w.record(&key, &["login", "page_view"]).await.unwrap(), 2);
    let events = w.events(&ada).await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["login", "page_view"]);
    assert_eq!(events[0].properties, json!({"page": "/pricing"}));
    assert_eq!(events[0].created_at, t0() + Duration::minutes(3));
    assert!(w.events(&bob).await.is_empty());
    let most: Vec<(String, Value)> = (0..1000).map(|_| ev(&"n".repeat(100))).collect();
    assert_eq!(w.p.record_events(&key, &most).await.unwrap(), 1000);
}

#[tokio::test]
async fn bad_events_are_refused_with_pointers_and_none_recorded() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    let batch = vec![
        ev(""),
        ("fine".to_string(), json!([1])),
        ev("bad\nname"),
        ev(&"n".repeat(101)),
        ev("fine"),
    ];
    let at = ["/events/0/name", "/events/1/properties", "/events/2/name"];
    let at = [&at[..], &["/events/3/name"]].concat();
    invalid_at(w.p.record_events(&key, &batch).await, &at);
    invalid_at(w.p.record_events(&key, &[]).await, &["/events"]);
    let many: Vec<(String, Value)> = (0..1001).map(|_| ev("x")).collect();
    invalid_at(w.p.record_events(&key, &many).await, &["/events"]);
    refused(w.record(ADMIN, &["x"]).await, "user_key_required");
    assert!(w.events(&ada).await.is_empty(), "none recorded");
}

#[tokio::test]
async fn limits_count_characters_not_bytes() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    let recorded = w.record(&key, &["é".repeat(100).as_str()]).await;
    let held = w.hold(&ada, &"é".repeat(500)).await;
    assert_eq!((recorded.ok(), held.is_ok()), (Some(1), true));
}

#[tokio::test]
async fn an_analytics_objection_stops_recording_at_once() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    assert_eq!(w.record(&key, &["a"]).await.unwrap(), 1);
    w.object(&key, "analytics", true).await;
    assert_eq!(w.record(&key, &["b", "c"]).await.unwrap(), 0);
    assert_eq!(w.events(&ada).await.len(), 1);
    w.object(&key, "analytics", false).await;
    assert_eq!(w.record(&key, &["d"]).await.unwrap(), 1);
    assert_eq!(w.events(&ada).await.len(), 2);
}

// ---- exports ----

#[tokio::test]
async fn an_export_emails_a_zip_with_one_file_per_area_holding_data() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    let secret = w.secret(&ada, None).await;
    w.publish_v1().await;
    w.accept_v1(&key).await;
    w.object(&key, "profiling", true).await;
    w.record(&key, &["login"]).await.unwrap();
    let record = w.p.export_user(&key, None).await.unwrap();
    let areas = ["profile", "keys", "consents", "objections", "terms"];
    let areas = [&areas[..], &["events"]].concat();
    assert_eq!(record.areas, areas);
    assert_eq!((record.user_id, record.created_at), (ada.id, t0()));
    assert_eq!(w.last_export(&ada).await, Some(record.clone()));
    let mail = w.mails_to(&ada.email).await.remove(0);
    assert_eq!(mail.subject, "Your data export");
    assert!(!mail.body.contains("http"), "no download link");
    let attachment = &mail.attachments[0];
    assert_eq!(attachment.filename, "levqor-export-20261102.zip");
    assert_eq!(attachment.content_type, "application/zip");
    assert_eq!(attachment.size as i64, record.bytes);
    let files = zip_files(&mail);
    let files_named: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<String> = areas.iter().map(|a| format!("{a}.json")).collect();
    assert_eq!(files_named, expected);
    assert_eq!(files[0].1["email"], "ada@example.com");
    assert_eq!(files[1].1.as_array().unwrap().len(), 2, "both keys");
    let text = serde_json::to_string(&files).unwrap();
    assert!(!text.contains(&secret), "no secrets");
    assert_eq!(files[2].1["ledger"].as_array().unwrap().len(), 2);
    assert_eq!(files[3].1[0]["kind"], "profiling");
    assert_eq!(files[4].1[0]["version"], "v1");
    assert_eq!(files[5].1[0]["name"], "login");
    let audit = w.audit("export.sent").await;
    assert_eq!(audit[0].subject, Some(audit_subject(ada.id)));
    assert_eq!(audit[0].detail["areas"], json!(areas));
    assert!(!audit[0].detail.to_string().contains(&ada.email));
}

#[tokio::test]
async fn exports_are_limited_to_one_a_day_for_user_and_admin_alike() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    w.p.export_user(&key, None).await.unwrap();
    let retry = |r: Result<ExportRecord>| {
        let e = r.unwrap_err();
        assert_eq!((e.kind, e.code), (ErrorKind::Limit, "export_rate_limited"));
        e.retry_after_secs
    };
    assert_eq!(retry(w.p.export_user(&key, None).await), Some(86_400));
    w.base.clock.advance(Duration::hours(23));
    assert_eq!(retry(w.p.export_user(&key, None).await), Some(3_600));
    let by_admin = w.p.export_user(ADMIN, Some(ada.id)).await;
    assert_eq!(retry(by_admin), Some(3_600), "the admin's counts too");
    assert_eq!(w.mails_to(&ada.email).await.len(), 1);
    assert_eq!(w.audit("export.sent").await.len(), 1);
    w.base.clock.advance(Duration::hours(1));
    let again = w.p.export_user(ADMIN, Some(ada.id)).await.unwrap();
    assert_eq!(again.created_at, t0() + EXPORT_INTERVAL);
    assert_eq!(w.mails_to(&ada.email).await.len(), 2);
}

#[tokio::test]
async fn an_export_reaches_only_the_callers_data() {
    let w = world();
    let (ada, ada_key) = w.base.user("ada@example.com").await;
    let (bob, _) = w.base.user("bob@example.com").await;
    refused(w.p.export_user(&ada_key, Some(bob.id)).await, "not_found");
    refused(w.p.export_user(ADMIN, None).await, "user_key_required");
    assert!(w.outbox().await.is_empty());
    assert!(w.last_export(&ada).await.is_none());
    assert!(w.last_export(&bob).await.is_none());
}

#[tokio::test]
async fn an_exports_email_is_written_with_its_record_not_through_the_notifier() {
    // A notifier that refuses everything: the export's email does not go through it, it is
    // written to the outbox in the transaction that records the export.
    let mut smtp = MockNotifier::new();
    smtp.expect_send_email()
        .returning(|_, _, _| Err(Error::unavailable("smtp down")));
    let store = Arc::new(MemoryStore::new());
    let w = on(Base::with_notifier(store.clone(), Arc::new(smtp)));
    let (ada, key) = w.base.user("ada@example.com").await;
    let record = w.p.export_user(&key, None).await.unwrap();
    assert_eq!(w.last_export(&ada).await, Some(record.clone()));
    let outbox = store.list_outbox(None, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].subject, "Your data export");
    assert_eq!(outbox[0].attachments[0].size as i64, record.bytes);
}

/// An area holding more than an email may carry, even compressed.
struct Huge;

#[async_trait]
impl PersonalDataArea for Huge {
    fn name(&self) -> &'static str {
        "huge"
    }

    async fn export(&self, _: &Person) -> Result<Option<Value>> {
        let mut noise = vec![0u8; 6 << 20];
        rand::rng().fill_bytes(&mut noise);
        let text = base64::engine::general_purpose::STANDARD.encode(noise);
        Ok(Some(Value::String(text)))
    }

    async fn erase(&self, _: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::default())
    }
}

#[tokio::test]
async fn an_export_over_5_mb_is_refused_and_not_counted() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    w.p.register_area(Arc::new(Huge));
    let denied = w.p.export_user(&key, None).await;
    assert_eq!(failure(denied), (ErrorKind::Invalid, "export_too_large"));
    assert!(w.outbox().await.is_empty());
    assert_eq!(w.last_export(&ada).await, None);
    assert!(w.audit("export.sent").await.is_empty());
}

// ---- erasure ----

/// Gives `user` data in every area: an acceptance, events, an objection, a confirmed consent,
/// a screening record and a sent export. The terms `v1` must be published.
async fn seed(w: &World, user: &User, key: &Principal) {
    let client = ClientInfo {
        ip: Some("192.0.2.7".into()),
        user_agent: Some("agent".into()),
    };
    w.consent
        .accept_terms(key, None, "v1", client)
        .await
        .unwrap();
    w.record(key, &["signup", "login"]).await.unwrap();
    w.object(key, "profiling", true).await;
    w.subscribed(&user.email, &["offers"]).await;
    w.screened(user, None).await;
    w.p.export_user(key, None).await.unwrap();
}

#[tokio::test]
async fn erasure_removes_the_person_from_every_area_and_revokes_their_keys() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    let secret = w.secret(&ada, None).await;
    let (bob, bob_key) = w.base.user("bob@example.com").await;
    w.publish_v1().await;
    seed(&w, &ada, &key).await;
    seed(&w, &bob, &bob_key).await;
    let ada_mails = w.mails_to(&ada.email).await.len() as u64;
    let bob_mails = w.mails_to(&bob.email).await;
    let ledger = w.consent.verify_ledger(ADMIN).await.unwrap().records;
    w.base.clock.advance(Duration::minutes(1));
    let summary = w.p.erase_user(&key, None).await.unwrap();
    assert!(summary.erased && summary.already_erased.is_none());
    assert_eq!(summary.erased_at, t0() + Duration::minutes(1));
    let area = |name: &str| summary.areas[name].clone();
    let deleted = |n| AreaErasure::deleted(n);
    assert_eq!((area("profile"), area("keys")), (deleted(1), deleted(2)));
    // The consent, the objection and the subject link go; the acceptance is kept.
    let consents = area("consents");
    assert_eq!((consents.deleted, consents.pseudonymized), (3, 1));
    assert_eq!(area("events"), deleted(2));
    assert_eq!(area("screenings"), deleted(1));
    assert_eq!(area("messages"), deleted(ada_mails));
    assert_eq!(area("exports"), deleted(1));
    let listed: Vec<&str> = summary.areas.keys().map(String::as_str).collect();
    for registered in w.base.areas.all() {
        assert!(listed.contains(&registered.name()), "{}", registered.name());
    }

    // Nothing of the person is left in any area, and their keys are dead.
    let email = ada.email.clone();
    let person = Person { id: ada.id, email };
    for registered in w.base.areas.all() {
        let left = registered.export(&person).await.unwrap();
        assert_eq!(left, None, "{}", registered.name());
    }
    assert!(!w.exists(&ada).await);
    refused(w.base.users.authenticate(&secret).await, "unauthenticated");
    assert!(w.mails_to(&ada.email).await.is_empty());
    refused(w.consent.subscription_status(&ada.email).await, "not_found");
    let store = w.consent.store();
    let kept = store.list_acceptances(summary.tombstone).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].ip.is_none() && kept[0].user_agent.is_none());
    assert!(w.consent.state(ada.id).await.unwrap().objections.is_empty());

    // Everyone else keeps everything; the ledger keeps its records and verifies.
    assert!(w.exists(&bob).await);
    assert_eq!(w.events(&bob).await.len(), 2);
    assert_eq!(w.mails_to(&bob.email).await, bob_mails);
    let bob_sub = w.consent.subscription_status(&bob.email).await.unwrap();
    assert_eq!(bob_sub.status, SubscriptionStatus::Subscribed);
    assert_eq!(store.list_acceptances(bob.id).await.unwrap().len(), 1);
    let verified = w.consent.verify_ledger(ADMIN).await.unwrap();
    assert_eq!((verified.ok, verified.records), (true, ledger));

    // The audit record holds the summary, under the hashed id, and no email.
    let audit = w.audit("user.erased").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].subject, Some(audit_subject(ada.id)));
    assert_eq!(audit[0].detail, serde_json::to_value(&summary).unwrap());
    let all = w.p.audit_log(ADMIN, Some(100), None).await.unwrap().items;
    assert!(!serde_json::to_string(&all).unwrap().contains(&ada.email));
}

#[tokio::test]
async fn a_second_erasure_returns_the_first_summary() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    w.record(&key, &["login"]).await.unwrap();
    let first = w.p.erase_user(&key, None).await.unwrap();
    w.base.clock.advance(Duration::hours(2));
    let again = w.p.erase_user(ADMIN, Some(ada.id)).await.unwrap();
    assert_eq!(again.already_erased, Some(true));
    let first = ErasureSummary {
        already_erased: Some(true),
        ..first
    };
    assert_eq!(again, first, "same tombstone, time and counts");
    assert_eq!(w.audit("user.erased").await.len(), 1);
    let never = w.p.erase_user(ADMIN, Some(Uuid::now_v7())).await;
    refused(never, "not_found");
}

#[tokio::test]
async fn a_legal_hold_refuses_erasure_until_it_is_cleared() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    let secret = w.secret(&ada, None).await;
    w.record(&key, &["login"]).await.unwrap();
    w.hold(&ada, "case 42").await.unwrap();
    for who in [&key, ADMIN] {
        let denied = w.p.erase_user(who, Some(ada.id)).await;
        assert_eq!(failure(denied), (ErrorKind::Conflict, "legal_hold"));
    }
    assert!(w.exists(&ada).await);
    assert_eq!(w.events(&ada).await.len(), 1);
    assert!(w.base.users.authenticate(&secret).await.is_ok());
    assert!(w.audit("user.erased").await.is_empty());
    w.p.clear_legal_hold(ADMIN, ada.id).await.unwrap();
    assert!(w.p.erase_user(&key, None).await.unwrap().erased);
    assert!(!w.exists(&ada).await);
}

#[tokio::test]
async fn an_erasure_reaches_only_the_callers_data() {
    let w = world();
    let (ada, ada_key) = w.base.user("ada@example.com").await;
    let (bob, _) = w.base.user("bob@example.com").await;
    let scopes = Some(vec!["jobs:read".to_string()]);
    let narrow = w.secret(&ada, scopes).await;
    let narrow = w.base.users.authenticate(&narrow).await.unwrap();
    refused(w.p.erase_user(&ada_key, Some(bob.id)).await, "not_found");
    refused(w.p.erase_user(&narrow, None).await, "insufficient_scope");
    refused(w.p.erase_user(ADMIN, None).await, "user_key_required");
    assert!(w.exists(&ada).await && w.exists(&bob).await);
    assert!(w.audit("user.erased").await.is_empty());
}

// ---- legal holds ----

#[tokio::test]
async fn legal_holds_are_for_the_admin_and_need_a_reason() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    let set = w.p.set_legal_hold(&key, ada.id, "case 42").await;
    refused(set, "admin_only");
    let unknown = w.p.set_legal_hold(ADMIN, Uuid::now_v7(), "case 42").await;
    refused(unknown, "not_found");
    let long = "x".repeat(501);
    for bad in ["", "   ", long.as_str()] {
        invalid_at(w.hold(&ada, bad).await, &["/reason"]);
    }
    assert!(w.holds().await.is_empty());
    assert!(w.audit("legal_hold.placed").await.is_empty());
    let hold = w.hold(&ada, " case 42 ").await.unwrap();
    assert_eq!((hold.reason.as_str(), hold.created_at), ("case 42", t0()));
    assert_eq!(w.holds().await, [hold]);
    let placed = w.audit("legal_hold.placed").await;
    assert_eq!(placed[0].subject, Some(audit_subject(ada.id)));
    w.hold(&ada, &"y".repeat(500)).await.unwrap();
    assert_eq!(w.holds().await.len(), 1, "a second hold replaces the first");
    refused(w.p.clear_legal_hold(&key, ada.id).await, "admin_only");
    w.p.clear_legal_hold(ADMIN, ada.id).await.unwrap();
    assert!(w.holds().await.is_empty());
    assert_eq!(w.audit("legal_hold.lifted").await.len(), 1);
    refused(w.p.clear_legal_hold(ADMIN, ada.id).await, "not_found");
}

// ---- retention ----

#[tokio::test]
async fn retention_is_for_the_admin_and_starts_at_the_defaults() {
    let w = world();
    let (_, key) = w.base.user("ada@example.com").await;
    let policies = w.p.retention_policies(ADMIN).await.unwrap();
    assert_eq!(policies, RetentionPolicies::default());
    assert_eq!(policies.days(DataClass::Audit), 2557);
    refused(w.p.retention_policies(&key).await, "admin_only");
    let body = object(json!({"events": 10}));
    refused(w.p.set_retention_policies(&key, &body).await, "admin_only");
    refused(w.p.sweep_retention(&key, true).await, "admin_only");
    assert_eq!(w.p.retention_policies(ADMIN).await.unwrap(), policies);
}

#[tokio::test]
async fn retention_policies_merge_and_every_bad_class_is_named() {
    let w = world();
    let p = w.set_policies(json!({"events": 30, "outbox": 1})).await;
    let p = p.unwrap();
    assert_eq!(p.days(DataClass::Events), 30);
    assert_eq!(p.days(DataClass::Outbox), 1);
    assert_eq!(p.days(DataClass::Jobs), 90, "left out, left as it was");
    let p = w.set_policies(json!({"jobs": 36500})).await.unwrap();
    assert_eq!(p.days(DataClass::Events), 30);
    assert_eq!(p.days(DataClass::Jobs), 36500);
    assert_eq!(w.p.retention_policies(ADMIN).await.unwrap(), p);
    assert_eq!(w.audit("retention.policies_changed").await.len(), 2);
    let bad = json!({"logs": 3, "events": 0, "jobs": 36501, "audit": "x", "tokens": 1.5});
    let every = ["/audit", "/events", "/jobs", "/logs", "/tokens"];
    invalid_at(w.set_policies(bad).await, &every);
    let unchanged = w.p.retention_policies(ADMIN).await.unwrap();
    assert_eq!(unchanged, p, "nothing changed");
    assert_eq!(w.audit("retention.policies_changed").await.len(), 2);
}

#[tokio::test]
async fn a_sweep_deletes_what_is_too_old_except_a_held_users_and_a_dry_run_only_counts() {
    let w = world();
    let (kept, kept_key) = w.base.user("kept@example.com").await;
    let (gone, gone_key) = w.base.user("gone@example.com").await;
    for key in [&kept_key, &gone_key] {
        w.record(key, &["a", "b"]).await.unwrap();
        w.p.export_user(key, None).await.unwrap();
    }
    w.screened(&kept, None).await;
    w.screened(&gone, None).await;
    w.screened(&gone, Some(AppealStatus::Pending)).await;
    let stranger = w.consent.subscribe("stranger@example.com", None);
    stranger.await.unwrap();
    w.hold(&kept, "case 42").await.unwrap();
    let policies = json!({"events": 30, "outbox": 30, "screenings": 30});
    w.set_policies(policies).await.unwrap();
    let old_mails = w.outbox().await.len() as u64;
    let kept_mails = w.mails_to(&kept.email).await.len() as u64;
    w.base.clock.advance(Duration::days(40));
    w.record(&gone_key, &["fresh"]).await.unwrap();
    let expected: BTreeMap<DataClass, u64> = [
        (DataClass::Events, 2),
        (DataClass::Exports, 1),
        (DataClass::Outbox, old_mails - kept_mails),
        (DataClass::Tokens, 1),
        (DataClass::Screenings, 1),
    ]
    .into_iter()
    .collect();
    let nonzero = |r: &SweepReport| -> BTreeMap<DataClass, u64> {
        r.classes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (*c, *n))
            .collect()
    };
    let dry = w.p.sweep_retention(ADMIN, true).await.unwrap();
    assert!(dry.dry_run && dry.at == t0() + Duration::days(40));
    assert_eq!((nonzero(&dry), dry.held_users), (expected.clone(), 1));
    assert_eq!(dry.classes.len(), DataClass::ALL.len());
    let again = w.p.sweep_retention(ADMIN, true).await.unwrap();
    assert_eq!(again.classes, dry.classes, "a dry run deletes nothing");
    assert!(w.audit("retention.swept").await.is_empty());
    let done = w.p.sweep_retention(ADMIN, false).await.unwrap();
    assert!(!done.dry_run);
    assert_eq!((nonzero(&done), done.held_users), (expected, 1));
    assert_eq!(w.audit("retention.swept").await.len(), 1);
    assert_eq!(w.events(&kept).await.len(), 2, "held");
    let fresh: Vec<String> = w.events(&gone).await.into_iter().map(|e| e.name).collect();
    assert_eq!(fresh, ["fresh"]);
    assert!(w.last_export(&kept).await.is_some() && w.last_export(&gone).await.is_none());
    assert_eq!(w.mails_to(&kept.email).await.len() as u64, kept_mails);
    assert!(w.mails_to(&gone.email).await.is_empty());
    let stranger = w.consent.subscription_status("stranger@example.com").await;
    refused(stranger, "not_found");
    let left = w.base.store.list_screenings(None, None, 100).await.unwrap();
    let left: Vec<_> = left.iter().map(|r| (r.user_id, r.appeal_status)).collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&(kept.id, None)), "held");
    let appealed = (gone.id, Some(AppealStatus::Pending));
    assert!(left.contains(&appealed), "appealed");
    let after = w.p.sweep_retention(ADMIN, true).await.unwrap();
    assert!(after.classes.values().all(|n| *n == 0));
}

// ---- the compliance dashboard ----

#[tokio::test]
async fn the_compliance_dashboard_counts_what_was_done() {
    let w = world();
    let empty = w.p.compliance(ADMIN).await.unwrap();
    assert_eq!((empty.terms.users, empty.terms.acceptance_rate), (0, 0.0));
    let (ada, ada_key) = w.base.user("ada@example.com").await;
    let (bob, bob_key) = w.base.user("bob@example.com").await;
    let (_, cyd_key) = w.base.user("cyd@example.com").await;
    w.publish_v1().await;
    w.accept_v1(&ada_key).await;
    w.accept_v1(&cyd_key).await;
    w.subscribed("x@example.com", &["offers", "events"]).await;
    w.consent.subscribe("p@example.com", None).await.unwrap();
    for (key, kind, on) in [
        (&ada_key, "profiling", true),
        (&bob_key, "profiling", true),
        (&bob_key, "analytics", true),
        (&bob_key, "analytics", false),
    ] {
        w.object(key, kind, on).await;
    }
    w.p.export_user(&ada_key, None).await.unwrap();
    w.p.export_user(&bob_key, None).await.unwrap();
    w.hold(&bob, "case 42").await.unwrap();
    w.p.erase_user(&cyd_key, None).await.unwrap();
    w.screened(&ada, Some(AppealStatus::Pending)).await;
    let d = w.p.compliance(ADMIN).await.unwrap();
    let terms = TermsCounts {
        current_version: Some("v1".into()),
        users: 2,
        accepted_current: 1,
        acceptance_rate: 0.5,
    };
    assert_eq!(d.terms, terms, "the erased user no longer counts");
    let counts = |pairs: &[(&str, u64)]| -> Counts {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    let by_category = &d.marketing.subscribed_by_category;
    assert_eq!((by_category["offers"], by_category["events"]), (1, 1));
    assert_eq!(by_category["technical"], 0);
    let by_status = counts(&[("pending", 1), ("subscribed", 1), ("unsubscribed", 0)]);
    assert_eq!(d.marketing.by_status, by_status);
    assert_eq!(d.objections["profiling"], 2);
    assert_eq!(d.objections["analytics"], 0, "withdrawn");
    assert_eq!((d.exports, d.erasures, d.legal_holds), (2, 1, 1));
    assert_eq!(d.screening.verdicts, counts(&[("block", 1)]));
    assert_eq!(d.screening.appeals, counts(&[("pending", 1)]));
    let matches = &d.screening.matches_by_category_and_severity;
    assert_eq!(matches["financial"], counts(&[("critical", 1)]));
    refused(w.p.compliance(&ada_key).await, "admin_only");
}
