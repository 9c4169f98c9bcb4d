//! The consent service's rules, against [`Consent`] itself over the in-memory store and a
//! clock that stands still: terms and their acceptance, double opt-in, unsubscribe links, the
//! preference center, marketing sends, objections, and the ledger that records every change.

use super::*;
use crate::audit::AuditRecord;
use crate::error::ErrorKind;
use crate::memory::MemoryStore;
use crate::notify::{EmailKind, MockNotifier, OutboxMessage, OutboxStore};
use crate::personal_data::{AreaErasure, Person, PersonalDataArea};
use crate::testing::{Base, t0};
use crate::users::User;
use SubscriptionStatus::{Pending, Subscribed as Confirmed, Unsubscribed};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

const ADMIN: &Principal = &Principal::Admin;

struct World {
    base: Base,
    c: Consent,
}

fn world() -> World {
    let base = Base::new();
    let c = base.consent();
    World { base, c }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The error's kind and code.
fn failure<T: Debug>(r: Result<T>) -> (ErrorKind, &'static str) {
    let e = r.unwrap_err();
    (e.kind, e.code)
}

/// The error's code and the pointers of its violations.
fn invalid<T: Debug>(r: Result<T>) -> (&'static str, Vec<String>) {
    let e = r.unwrap_err();
    let pointers = e.violations.into_iter().map(|v| v.pointer).collect();
    (e.code, pointers)
}

fn code<T: Debug>(r: Result<T>) -> &'static str {
    r.unwrap_err().code
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

/// The token of the `path` link in an email body.
fn token_in(body: &str, path: &str) -> String {
    let at = body.find(path).expect("the link") + path.len();
    let rest = &body[at..];
    let start = rest.find("token=").expect("a token") + 6;
    let token = rest[start..].split(char::is_whitespace).next();
    token.unwrap().to_string()
}

impl World {
    async fn outbox(&self) -> Vec<OutboxMessage> {
        self.base.store.list_outbox(None, 10_000).await.unwrap()
    }

    /// Emails to `to`, newest first.
    async fn mails_to(&self, to: &str) -> Vec<OutboxMessage> {
        let mut all = self.outbox().await;
        all.retain(|m| m.to == to);
        all
    }

    async fn ledger(&self) -> Vec<LedgerRecord> {
        let store = self.c.store();
        store.ledger_after(0, usize::MAX).await.unwrap()
    }

    async fn actions(&self) -> Vec<String> {
        let records = self.ledger().await;
        records.into_iter().map(|r| r.entry.action).collect()
    }

    /// Emails sent and ledger records: what a refused call must leave as they were.
    async fn counts(&self) -> (usize, usize) {
        (self.outbox().await.len(), self.ledger().await.len())
    }

    async fn audit(&self, action: &str) -> Vec<AuditRecord> {
        let store = self.base.audit.store();
        store.find_audit(action, None).await.unwrap()
    }

    /// The confirmation token of the newest email to `to`.
    async fn token(&self, to: &str) -> String {
        let mails = self.mails_to(to).await;
        token_in(&mails[0].body, "/v1/marketing/confirm")
    }

    async fn subscribe(&self, email: &str, categories: &[&str]) -> Result<Subscribed> {
        self.c.subscribe(email, Some(&names(categories))).await
    }

    /// A confirmed consent of `email` to `categories`.
    async fn subscribed(&self, email: &str, categories: &[&str]) -> Subscription {
        let r = self.subscribe(email, categories).await.unwrap();
        assert!(r.confirmation_sent);
        let token = self.token(email).await;
        self.c.confirm_subscription(&token).await.unwrap()
    }

    async fn unsubscribe_link(&self, email: &str) -> String {
        let sub = self.c.subscription_status(email).await.unwrap();
        self.c.unsubscribe_token(sub.id).await.unwrap()
    }

    async fn status(&self, email: &str) -> Option<SubscriptionStatus> {
        let sub = self.c.subscription_status(email).await;
        sub.ok().map(|s| s.status)
    }

    async fn categories(&self, email: &str) -> Vec<Category> {
        let sub = self.c.subscription_status(email).await.unwrap();
        sub.categories
    }

    /// Sends marketing of `category`: (sent, skipped).
    async fn send(&self, category: &str) -> (u64, u64) {
        let r = self.c.send_marketing(ADMIN, category, "Deal", "Half price");
        let r = r.await.unwrap();
        (r.sent, r.skipped)
    }

    async fn publish(&self, version: &str, material: bool) -> Result<TermsVersion> {
        let c = &self.c;
        c.publish_terms(ADMIN, version, None, "", material).await
    }

    async fn accept(&self, who: &Principal, version: &str) -> Result<TermsStatus> {
        let none = ClientInfo::default();
        self.c.accept_terms(who, None, version, none).await
    }

    async fn object(&self, who: &Principal, kind: &str, on: bool) -> Result<Vec<Objection>> {
        self.c.set_objection(who, None, kind, on).await
    }

    async fn must_accept(&self, user: &User) -> bool {
        self.c.state(user.id).await.unwrap().must_accept_terms
    }

    async fn objecting(&self, user: &User) -> Vec<ObjectionKind> {
        self.c.state(user.id).await.unwrap().objections
    }
}

// ---- terms ----

#[tokio::test]
async fn publishing_material_terms_emails_every_user_and_requires_acceptance() {
    let w = world();
    let (ada, ada_key) = w.base.user("ada@example.com").await;
    let (bob, _) = w.base.user("bob@example.com").await;
    assert!(!w.must_accept(&ada).await, "no terms yet (now cached)");
    let c = &w.c;
    let v = c.publish_terms(ADMIN, " 2026-11 ", None, "New fees", true);
    let v = v.await.unwrap();
    assert_eq!((v.version.as_str(), v.effective_at), ("2026-11", t0()));
    for user in [&ada, &bob] {
        let mails = w.mails_to(&user.email).await;
        assert_eq!(mails.len(), 1, "{}", user.email);
        assert!(mails[0].body.contains("2026-11") && mails[0].body.contains("New fees"));
        assert_eq!(mails[0].kind, EmailKind::Transactional);
        assert!(w.must_accept(user).await, "seen at once");
    }
    let status = w.c.terms_status(&ada_key, None).await.unwrap();
    assert_eq!(status.current_version.as_deref(), Some("2026-11"));
    assert!(status.must_accept && status.accepted_version.is_none());
    assert_eq!(w.actions().await, ["terms.published"]);
    assert_eq!(w.audit("terms.published").await.len(), 1);
}

#[tokio::test]
async fn accepting_the_terms_clears_must_accept_at_once_and_is_kept_in_history() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    w.publish("v1", true).await.unwrap();
    assert!(w.must_accept(&ada).await, "cached as must accept");
    let client = ClientInfo {
        ip: Some("192.0.2.1".into()),
        user_agent: Some("curl".into()),
    };
    let status = w.c.accept_terms(&key, None, "v1", client).await.unwrap();
    assert!(!status.must_accept);
    assert_eq!(status.accepted_version.as_deref(), Some("v1"));
    assert!(!w.must_accept(&ada).await, "seen at once");

    // A minor version emails nobody and needs no acceptance.
    let mails = w.outbox().await.len();
    w.publish("v1.1", false).await.unwrap();
    assert_eq!(w.outbox().await.len(), mails);
    let status = w.c.terms_status(&key, None).await.unwrap();
    assert_eq!(status.current_version.as_deref(), Some("v1.1"));
    assert!(!status.must_accept && !w.must_accept(&ada).await);

    // A second material version must be accepted again; history keeps both, newest first.
    w.base.clock.advance(Duration::hours(1));
    w.publish("v2", true).await.unwrap();
    assert!(w.must_accept(&ada).await);
    w.accept(&key, "v2").await.unwrap();
    let history = w.c.terms_history(&key, None).await.unwrap();
    let versions: Vec<&str> = history.iter().map(|a| a.version.as_str()).collect();
    assert_eq!(versions, ["v2", "v1"]);
    assert_eq!(history[1].ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(history[1].user_agent.as_deref(), Some("curl"));
    assert_eq!(history[0].accepted_at, t0() + Duration::hours(1));

    // The ledger names the person by an opaque subject, never by their id or email.
    let ledger = w.ledger().await;
    let accepted: Vec<Uuid> = ledger
        .iter()
        .filter(|r| r.entry.action == "terms.accepted")
        .map(|r| r.entry.subject)
        .collect();
    assert_eq!(accepted.len(), 2);
    assert!(accepted[0] == accepted[1] && accepted[0] != ada.id);
    let text = serde_json::to_string(&ledger).unwrap();
    assert!(!text.contains(&ada.id.to_string()) && !text.contains(&ada.email));
}

#[tokio::test]
async fn terms_not_yet_in_effect_cannot_be_accepted_until_they_are() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    let effective = t0() + Duration::days(30);
    let c = &w.c;
    let published = c.publish_terms(ADMIN, "2027", Some(effective), "", true);
    published.await.unwrap();
    assert_eq!(w.mails_to(&ada.email).await.len(), 1, "announced");
    assert!(!w.must_accept(&ada).await, "not in effect yet");
    let before = w.counts().await;
    let denied = w.accept(&key, "2027").await;
    let conflict = (ErrorKind::Conflict, "terms_not_in_effect");
    assert_eq!(failure(denied), conflict);
    assert!(c.terms_history(&key, None).await.unwrap().is_empty());
    assert_eq!(w.counts().await, before);
    w.base.clock.set(effective);
    // The facts are cached for a second of real time: a fresh node reads them at once.
    let fresh = w.base.consent();
    assert!(fresh.state(ada.id).await.unwrap().must_accept_terms);
    assert!(!w.accept(&key, "2027").await.unwrap().must_accept);
    assert!(!w.must_accept(&ada).await);
}

#[tokio::test]
async fn terms_are_listed_newest_in_effect_first() {
    let w = world();
    let (ada, _) = w.base.user("ada@example.com").await;
    for (version, days) in [("middle", -10), ("future", 20), ("oldest", -30)] {
        let at = Some(t0() + Duration::days(days));
        let published = w.c.publish_terms(ADMIN, version, at, "", false);
        published.await.unwrap();
    }
    let listed = w.c.list_terms().await.unwrap();
    let versions: Vec<&str> = listed.iter().map(|t| t.version.as_str()).collect();
    assert_eq!(versions, ["future", "middle", "oldest"]);
    assert!(listed.iter().all(|t| t.published_at == t0()));
    let status = w.c.terms_status(ADMIN, Some(ada.id)).await.unwrap();
    assert_eq!(status.current_version.as_deref(), Some("middle"));
}

#[tokio::test]
async fn publish_terms_is_for_the_admin_and_refuses_bad_versions() {
    let w = world();
    let (_, key) = w.base.user("ada@example.com").await;
    w.publish("v1", true).await.unwrap();
    let terms = w.c.list_terms().await.unwrap();
    let before = w.counts().await;
    let by_user = w.c.publish_terms(&key, "v2", None, "", true).await;
    refused(by_user, "admin_only");
    let long = "x".repeat(65);
    for bad in ["", "   ", long.as_str(), "v\n2"] {
        let denied = invalid(w.publish(bad, true).await);
        assert_eq!(denied.0, "validation_failed");
        assert_eq!(denied.1, ["/version"], "{bad:?}");
    }
    let taken = failure(w.publish("v1", false).await);
    assert_eq!(taken, (ErrorKind::Conflict, "terms_version_exists"));
    assert_eq!(w.c.list_terms().await.unwrap(), terms, "nothing published");
    assert_eq!(w.counts().await, before, "nobody emailed, nothing recorded");
    assert!(w.publish(&"x".repeat(64), false).await.is_ok());
}

#[tokio::test]
async fn a_terms_version_may_have_64_characters_in_any_script() {
    let w = world();
    let version = "é".repeat(64);
    let published = w.publish(&version, false).await;
    assert_eq!(published.map(|t| t.version).ok(), Some(version));
}

#[tokio::test]
async fn accepting_unknown_terms_or_for_someone_else_changes_nothing() {
    let w = world();
    let (_, ada) = w.base.user("ada@example.com").await;
    let (bob, bob_key) = w.base.user("bob@example.com").await;
    w.publish("v1", true).await.unwrap();
    let before = w.counts().await;
    let c = &w.c;
    let none = ClientInfo::default;
    invalid_at(w.accept(&ada, "1999").await, &["/version"]);
    let theirs = c.accept_terms(&ada, Some(bob.id), "v1", none()).await;
    refused(theirs, "not_found");
    refused(c.terms_status(&ada, Some(bob.id)).await, "not_found");
    refused(c.terms_history(&ada, Some(bob.id)).await, "not_found");
    refused(w.accept(ADMIN, "v1").await, "user_key_required");
    assert_eq!(w.counts().await, before);
    assert!(c.terms_status(&bob_key, None).await.unwrap().must_accept);

    // The admin may record an acceptance for a user.
    let status = c.accept_terms(ADMIN, Some(bob.id), "v1", none()).await;
    assert!(!status.unwrap().must_accept);
    assert_eq!(c.terms_history(&bob_key, None).await.unwrap().len(), 1);
    assert!(c.terms_history(&ada, None).await.unwrap().is_empty());
}

// ---- double opt-in ----

#[tokio::test]
async fn subscribing_stores_a_pending_consent_and_emails_a_confirmation_link() {
    let w = world();
    let r = w.subscribe(" Reader@Example.COM ", &["technical", "offers"]);
    let r = r.await.unwrap();
    assert_eq!((r.status, r.confirmation_sent), (Pending, true));
    let sub = w.c.subscription_status("reader@example.com").await.unwrap();
    assert_eq!(sub.status, Pending);
    assert_eq!(sub.categories, [Category::Offers, Category::Technical]);
    assert_eq!((sub.confirmed_at, sub.last_sent_at), (None, Some(t0())));
    let mails = w.mails_to("reader@example.com").await;
    assert_eq!((mails.len(), mails[0].kind), (1, EmailKind::Transactional));
    let link = "https://levqor.test/v1/marketing/confirm?token=";
    assert!(mails[0].body.contains(link));
    assert_eq!(w.actions().await, ["marketing.requested"]);
    assert_eq!(w.send("offers").await, (0, 0), "nothing while pending");

    // With no categories named, every category is asked for.
    w.c.subscribe("all@example.com", None).await.unwrap();
    assert_eq!(w.categories("all@example.com").await, Category::ALL);
}

#[tokio::test]
async fn bad_subscriptions_change_nothing() {
    let w = world();
    let email = "x@example.com";
    invalid_at(w.subscribe("nope", &["offers"]).await, &["/email"]);
    let (_, bad) = invalid(w.subscribe(email, &["offers", "spam", "ham"]).await);
    assert_eq!(bad, ["/categories/1", "/categories/2"]);
    let (_, none) = invalid(w.subscribe(email, &[]).await);
    assert_eq!(none, ["/categories"]);
    refused(w.c.subscription_status(email).await, "not_found");
    invalid_at(w.c.subscription_status("x@").await, &["/email"]);
    assert_eq!(w.counts().await, (0, 0));
}

#[tokio::test]
async fn the_emailed_token_confirms_the_consent_once() {
    let w = world();
    w.subscribe("r@example.com", &["events"]).await.unwrap();
    let token = w.token("r@example.com").await;
    w.base.clock.advance(Duration::minutes(5));
    let padded = format!(" {token} ");
    let sub = w.c.confirm_subscription(&padded).await.unwrap();
    assert_eq!(sub.status, Confirmed);
    assert_eq!(sub.confirmed_at, Some(t0() + Duration::minutes(5)));
    assert_eq!(w.status("r@example.com").await, Some(Confirmed));
    let actions = ["marketing.requested", "marketing.confirmed"];
    assert_eq!(w.actions().await, actions);
    assert_eq!(w.send("events").await, (1, 0));
    let reused = w.c.confirm_subscription(&token).await;
    assert_eq!(failure(reused), (ErrorKind::Conflict, "token_used"));
    let unknown = w.c.confirm_subscription("nope").await;
    assert_eq!(failure(unknown), (ErrorKind::NotFound, "token_unknown"));
    assert_eq!(w.actions().await, actions);
}

#[tokio::test]
async fn a_confirmation_link_works_for_seven_days() {
    let w = world();
    for email in ["early@example.com", "late@example.com"] {
        w.c.subscribe(email, None).await.unwrap();
    }
    let early = w.token("early@example.com").await;
    let late = w.token("late@example.com").await;
    w.base.clock.advance(TOKEN_TTL - Duration::seconds(1));
    assert!(w.c.confirm_subscription(&early).await.is_ok());
    w.base.clock.advance(Duration::seconds(1));
    let expired = w.c.confirm_subscription(&late).await;
    assert_eq!(failure(expired), (ErrorKind::Invalid, "token_expired"));
    assert_eq!(w.status("late@example.com").await, Some(Pending));
    assert_eq!(w.ledger().await.len(), 3, "two requests, one confirmation");
}

#[tokio::test]
async fn the_link_is_resent_at_most_once_an_hour_and_replaces_the_old_one() {
    let w = world();
    let email = "r@example.com";
    w.c.subscribe(email, None).await.unwrap();
    let first = w.token(email).await;
    w.base.clock.advance(RESEND_INTERVAL - Duration::seconds(1));
    let r = w.c.subscribe(email, None).await.unwrap();
    assert_eq!((r.status, r.confirmation_sent), (Pending, false));
    assert_eq!(w.counts().await, (1, 1), "nothing sent or recorded");
    w.base.clock.advance(Duration::seconds(1));
    assert!(w.c.subscribe(email, None).await.unwrap().confirmation_sent);
    assert_eq!(w.mails_to(email).await.len(), 2);
    let fresh = w.token(email).await;
    assert_ne!(fresh, first);
    let old = w.c.confirm_subscription(&first).await;
    assert_eq!(code(old), "token_unknown", "the old link was replaced");
    assert!(w.c.confirm_subscription(&fresh).await.is_ok());
    let actions = w.actions().await;
    let requested = "marketing.requested";
    assert_eq!(actions, [requested, requested, "marketing.confirmed"]);
    let sub = w.c.subscription_status(email).await.unwrap();
    assert_eq!(sub.created_at, t0(), "still the one consent");
}

#[tokio::test]
async fn a_confirmed_address_is_left_as_it_is_by_subscribe() {
    let w = world();
    let email = "careful@example.com";
    w.subscribed(email, &["technical"]).await;
    let before = w.counts().await;
    let r = w.subscribe(email, &["offers"]).await.unwrap();
    assert_eq!((r.status, r.confirmation_sent), (Confirmed, false));
    assert_eq!(w.categories(email).await, [Category::Technical]);
    assert_eq!(w.counts().await, before);
    assert_eq!(w.send("offers").await, (0, 0));
}

#[tokio::test]
async fn confirming_subscribes_to_the_categories_the_email_named() {
    let w = world();
    let email = "victim@example.com";
    w.subscribe(email, &["technical"]).await.unwrap();
    let mail = w.mails_to(email).await.remove(0);
    assert!(mail.body.contains("technical") && !mail.body.contains("offers"));
    // Anyone may call subscribe: a stranger asks for offers within the hour.
    w.subscribe(email, &["offers"]).await.unwrap();
    let token = token_in(&mail.body, "/v1/marketing/confirm");
    let sub = w.c.confirm_subscription(&token).await.unwrap();
    assert_eq!(sub.categories, [Category::Technical], "as emailed");
}

#[tokio::test]
async fn the_confirmation_is_written_with_the_request_not_through_the_notifier() {
    // A notifier that refuses everything: the consent's own emails do not go through it, they
    // are written to the outbox in the transaction that records the request.
    let mut smtp = MockNotifier::new();
    smtp.expect_send_email()
        .returning(|_, _, _| Err(Error::unavailable("smtp down")));
    let store = Arc::new(MemoryStore::new());
    let base = Base::with_notifier(store.clone(), Arc::new(smtp));
    let c = base.consent();
    let r = c.subscribe("r@example.com", None).await.unwrap();
    assert!(r.confirmation_sent);
    let outbox = store.list_outbox(None, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].subject, "Confirm your subscription");
    assert_eq!(
        outbox[0].delivery.status,
        crate::notify::DeliveryStatus::Pending
    );
    let again = c.subscribe("r@example.com", None).await.unwrap();
    assert!(
        !again.confirmation_sent,
        "within the hour: not written twice"
    );
    assert_eq!(store.list_outbox(None, 10).await.unwrap().len(), 1);
}

// ---- unsubscribe ----

#[tokio::test]
async fn the_unsubscribe_link_of_a_marketing_email_ends_the_consent() {
    let w = world();
    let email = "reader@example.com";
    w.subscribed(email, &["offers"]).await;
    assert_eq!(w.send("offers").await, (1, 0));
    let mail = w.mails_to(email).await.remove(0);
    assert_eq!((mail.kind, &*mail.subject), (EmailKind::Marketing, "Deal"));
    assert!(mail.body.starts_with("Half price"));
    let token = token_in(&mail.body, "/v1/marketing/unsubscribe");
    let ledger = w.ledger().await.len();
    let ended = w.c.unsubscribe(Unsubscribe::Token(&token)).await.unwrap();
    assert_eq!(ended.status, Unsubscribed);
    assert_eq!(w.status(email).await, Some(Unsubscribed));
    assert_eq!(w.mails_to(email).await[0].subject, "You are unsubscribed");
    assert_eq!(w.ledger().await.len(), ledger + 1);
    assert_eq!(w.actions().await.last().unwrap(), "marketing.unsubscribed");
    assert_eq!(w.send("offers").await, (0, 0), "no more marketing");

    // The link keeps working and changes nothing more.
    let before = w.counts().await;
    let again = w.c.unsubscribe(Unsubscribe::Token(&token)).await.unwrap();
    assert_eq!(again.status, Unsubscribed);
    assert_eq!(w.counts().await, before);

    // Subscribing again needs a new opt-in, which confirms the same consent.
    let r = w.c.subscribe(email, None).await.unwrap();
    assert_eq!((r.status, r.confirmation_sent), (Pending, true));
    assert_eq!(w.send("offers").await, (0, 0));
    let token = w.token(email).await;
    let again = w.c.confirm_subscription(&token).await.unwrap();
    assert_eq!((again.id, again.status), (ended.id, Confirmed));
    assert_eq!(w.send("offers").await, (1, 0));
}

#[tokio::test]
async fn forged_unsubscribe_tokens_are_refused() {
    let w = world();
    w.subscribed("a@example.com", &["offers"]).await;
    let b = w.subscribed("b@example.com", &["offers"]).await;
    let token = w.unsubscribe_link("a@example.com").await;
    let (id, mac) = token.split_once('.').unwrap();
    let before = w.counts().await;
    let forged = [
        format!("{token}x"),
        format!("{}.{mac}", b.id.simple()),
        format!("{id}."),
        "garbage".to_string(),
    ];
    for bad in &forged {
        let denied = w.c.unsubscribe(Unsubscribe::Token(bad)).await;
        let unknown = (ErrorKind::NotFound, "token_unknown");
        assert_eq!(failure(denied), unknown, "{bad}");
    }
    for email in ["a@example.com", "b@example.com"] {
        assert_eq!(w.status(email).await, Some(Confirmed));
    }
    assert_eq!(w.counts().await, before);
}

#[tokio::test]
async fn a_signed_in_user_unsubscribes_their_own_address() {
    let w = world();
    let (ada, ada_key) = w.base.user("ada@example.com").await;
    let (_, bob_key) = w.base.user("bob@example.com").await;
    w.subscribed(&ada.email, &["events"]).await;
    let bob = w.c.unsubscribe(Unsubscribe::User(&bob_key)).await;
    assert_eq!(code(bob), "not_found", "bob has no consent");
    let admin = w.c.unsubscribe(Unsubscribe::User(ADMIN)).await;
    refused(admin, "user_key_required");
    assert_eq!(w.status(&ada.email).await, Some(Confirmed));
    let ended = w.c.unsubscribe(Unsubscribe::User(&ada_key)).await.unwrap();
    assert_eq!((ended.email, ended.status), (ada.email, Unsubscribed));
    assert_eq!(w.send("events").await, (0, 0));
}

// ---- the preference center ----

#[tokio::test]
async fn the_preference_center_starts_the_opt_in_then_changes_categories_at_once() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    let c = &w.c;
    let p = c.preferences(&key).await.unwrap();
    let counts = (p.categories.len(), p.available.len());
    assert_eq!((p.status, counts), (None, (0, 5)));
    let first = names(&["educational"]);
    let p = c.set_preferences(&key, &first).await.unwrap();
    assert_eq!(p.status, Some(Pending), "a first choice needs the opt-in");
    assert_eq!(p.categories, [Category::Educational]);
    let token = w.token(&ada.email).await;
    c.confirm_subscription(&token).await.unwrap();
    let p = c.preferences(&key).await.unwrap();
    assert_eq!(p.status, Some(Confirmed));
    assert_eq!(p.confirmed_at, Some(Some(t0())));
    let (mails, ledger) = w.counts().await;
    let wanted = names(&["offers", "educational"]);
    let p = c.set_preferences(&key, &wanted).await.unwrap();
    assert_eq!(p.status, Some(Confirmed));
    assert_eq!(p.categories, [Category::Offers, Category::Educational]);
    assert_eq!(c.preferences(&key).await.unwrap(), p);
    assert_eq!(w.counts().await, (mails, ledger + 1), "no new opt-in");
    assert_eq!(w.actions().await.last().unwrap(), "marketing.categories");
    assert_eq!(w.send("offers").await, (1, 0));
    let p = c.set_preferences(&key, &[]).await.unwrap();
    assert_eq!(p.status, Some(Unsubscribed));
    assert_eq!(w.send("educational").await, (0, 0));
}

#[tokio::test]
async fn bad_preferences_change_nothing() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    let (_, bob) = w.base.user("bob@example.com").await;
    w.subscribed(&ada.email, &["technical"]).await;
    let before = w.counts().await;
    let c = &w.c;
    let bad = c.set_preferences(&key, &names(&["offers", "spam"])).await;
    invalid_at(bad, &["/categories/1"]);
    assert_eq!(w.categories(&ada.email).await, [Category::Technical]);
    refused(c.preferences(ADMIN).await, "user_key_required");
    let admin = c.set_preferences(ADMIN, &names(&["offers"])).await;
    refused(admin, "user_key_required");

    // Emptying the choice of someone who never subscribed stores and sends nothing.
    let p = c.set_preferences(&bob, &[]).await.unwrap();
    assert_eq!(p, Preferences::of(None));
    assert_eq!(w.status("bob@example.com").await, None);
    assert_eq!(w.counts().await, before);
}

// ---- marketing ----

#[tokio::test]
async fn marketing_goes_only_to_confirmed_consents_of_its_category_without_objection() {
    let w = world();
    let (eve, eve_key) = w.base.user("eve@example.com").await;
    w.subscribed("yes@example.com", &["offers", "events"]).await;
    w.subscribed("other@example.com", &["technical"]).await;
    w.subscribed(&eve.email, &["offers"]).await;
    w.c.subscribe("pending@example.com", None).await.unwrap();
    w.subscribed("gone@example.com", &["offers"]).await;
    let link = w.unsubscribe_link("gone@example.com").await;
    w.c.unsubscribe(Unsubscribe::Token(&link)).await.unwrap();
    w.object(&eve_key, "marketing", true).await.unwrap();
    assert_eq!(w.send("offers").await, (1, 1), "eve objects");
    let outbox = w.outbox().await;
    let marketing: Vec<&OutboxMessage> = outbox
        .iter()
        .filter(|m| m.kind == EmailKind::Marketing)
        .collect();
    assert_eq!((marketing.len(), &*marketing[0].to), (1, "yes@example.com"));
    let audit = w.audit("marketing.sent").await;
    let detail = json!({"category": "offers", "sent": 1, "skipped": 1});
    assert_eq!(audit[0].detail, detail);
    w.object(&eve_key, "marketing", false).await.unwrap();
    assert_eq!(w.send("offers").await, (2, 0));
    assert_eq!(w.send("technical").await, (1, 0));
    assert_eq!(w.send("educational").await, (0, 0));
}

#[tokio::test]
async fn send_marketing_is_for_the_admin_and_needs_a_category_subject_and_body() {
    let w = world();
    let (_, key) = w.base.user("ada@example.com").await;
    w.subscribed("yes@example.com", &["offers"]).await;
    let before = w.counts().await;
    let c = &w.c;
    let by_user = c.send_marketing(&key, "offers", "s", "b").await;
    refused(by_user, "admin_only");
    let unknown = c.send_marketing(ADMIN, "spam", "s", "b").await;
    invalid_at(unknown, &["/category"]);
    for (subject, body) in [("", "b"), ("s", "  ")] {
        let empty = c.send_marketing(ADMIN, "offers", subject, body).await;
        assert_eq!(invalid(empty).1, ["/subject"]);
    }
    assert_eq!(w.counts().await, before, "nothing sent");
    assert!(w.audit("marketing.sent").await.is_empty());
}

// ---- objections ----

#[tokio::test]
async fn an_objection_takes_effect_at_once_and_is_confirmed_by_email() {
    let w = world();
    let (ada, key) = w.base.user("ada@example.com").await;
    assert!(w.objecting(&ada).await.is_empty(), "cached as none");
    w.base.clock.advance(Duration::minutes(1));
    let list = w.object(&key, "automation", true).await.unwrap();
    let set: Vec<_> = list.iter().filter(|o| o.objected).collect();
    assert_eq!((set.len(), set[0].kind), (1, ObjectionKind::Automation));
    assert_eq!(set[0].updated_at, t0() + Duration::minutes(1));
    assert_eq!(w.objecting(&ada).await, [ObjectionKind::Automation]);
    let mail = w.mails_to(&ada.email).await.remove(0);
    assert_eq!(mail.subject, "Your automation objection is recorded");
    let ledger = w.ledger().await;
    let detail = json!({"kind": "automation", "objected": true});
    assert_eq!((ledger.len(), &ledger[0].entry.detail), (1, &detail));
    let c = &w.c;
    let list = c.set_objection(ADMIN, Some(ada.id), "automation", false);
    assert!(list.await.unwrap().iter().all(|o| !o.objected));
    assert!(w.objecting(&ada).await.is_empty());
    assert_eq!(w.mails_to(&ada.email).await.len(), 2);
    assert_eq!(w.ledger().await.len(), 2);
}

/// An area that records the profiling objections it was told about.
#[derive(Default)]
struct Profiles(Mutex<Vec<Uuid>>);

#[async_trait]
impl PersonalDataArea for Profiles {
    fn name(&self) -> &'static str {
        "profiles"
    }

    async fn export(&self, _: &Person) -> Result<Option<Value>> {
        Ok(None)
    }

    async fn erase(&self, _: &Person, _: Uuid) -> Result<AreaErasure> {
        Ok(AreaErasure::default())
    }

    async fn on_profiling_objection(&self, user_id: Uuid) -> Result<u64> {
        self.0.lock().unwrap().push(user_id);
        Ok(1)
    }
}

#[tokio::test]
async fn a_profiling_objection_stops_scoring_and_deletes_derived_profiles() {
    let w = world();
    let profiles = Arc::new(Profiles::default());
    w.base.areas.register(profiles.clone());
    let (ada, key) = w.base.user("ada@example.com").await;
    let (bob, _) = w.base.user("bob@example.com").await;
    let allowed = w.c.check_profiling_allowed(ada.id).await;
    assert!(allowed.is_ok(), "now cached");
    w.object(&key, "profiling", true).await.unwrap();
    let denied = w.c.check_profiling_allowed(ada.id).await;
    let forbidden = (ErrorKind::Forbidden, "objection_profiling");
    assert_eq!(failure(denied), forbidden);
    assert!(w.c.check_profiling_allowed(bob.id).await.is_ok());
    assert_eq!(*profiles.0.lock().unwrap(), [ada.id]);
    w.object(&key, "profiling", false).await.unwrap();
    assert!(w.c.check_profiling_allowed(ada.id).await.is_ok());
    let told = profiles.0.lock().unwrap().len();
    assert_eq!(told, 1, "withdrawing deletes nothing");
}

#[tokio::test]
async fn bad_objections_change_nothing() {
    let w = world();
    let (ada, ada_key) = w.base.user("ada@example.com").await;
    let (bob, bob_key) = w.base.user("bob@example.com").await;
    let c = &w.c;
    invalid_at(w.object(&ada_key, "everything", true).await, &["/kind"]);
    let theirs = c.set_objection(&ada_key, Some(bob.id), "analytics", true);
    refused(theirs.await, "not_found");
    refused(c.objections(&ada_key, Some(bob.id)).await, "not_found");
    let admin = w.object(ADMIN, "analytics", true).await;
    refused(admin, "user_key_required");
    assert_eq!(w.counts().await, (0, 0));
    // Every kind is listed, unobjected since the user was created; the admin sees the same.
    let list = c.objections(&ada_key, None).await.unwrap();
    let kinds: Vec<ObjectionKind> = list.iter().map(|o| o.kind).collect();
    assert_eq!(kinds, ObjectionKind::ALL);
    assert_eq!(c.objections(ADMIN, Some(ada.id)).await.unwrap(), list);
    refused(c.objections(ADMIN, None).await, "user_key_required");
    for (user, key) in [(&ada, &ada_key), (&bob, &bob_key)] {
        let list = c.objections(key, None).await.unwrap();
        let since = user.created_at;
        assert!(list.iter().all(|o| !o.objected && o.updated_at == since));
        assert!(w.objecting(user).await.is_empty());
    }
}

// ---- the ledger ----

#[tokio::test]
async fn every_consent_change_is_one_ledger_record_and_the_ledger_verifies() {
    let w = world();
    let empty = w.c.verify_ledger(ADMIN).await.unwrap();
    assert_eq!((empty.ok, empty.records), (true, Some(0)));
    assert_eq!(empty.head.as_deref(), Some(GENESIS_HASH));
    let (ada, key) = w.base.user("ada@example.com").await;
    let c = &w.c;
    let mut expected = 0;
    let mut verified = async |what: &str| {
        expected += 1;
        let v = c.verify_ledger(ADMIN).await.unwrap();
        assert_eq!((v.ok, v.records), (true, Some(expected)), "after {what}");
        let last = w.ledger().await.pop().unwrap();
        assert_eq!(v.head, Some(last.hash), "after {what}");
    };
    w.publish("v1", true).await.unwrap();
    verified("publish").await;
    w.accept(&key, "v1").await.unwrap();
    verified("accept").await;
    w.subscribe(&ada.email, &["offers"]).await.unwrap();
    verified("subscribe").await;
    let token = w.token(&ada.email).await;
    c.confirm_subscription(&token).await.unwrap();
    verified("confirm").await;
    c.set_preferences(&key, &names(&["events"])).await.unwrap();
    verified("preferences").await;
    w.object(&key, "analytics", true).await.unwrap();
    verified("objection").await;
    c.unsubscribe(Unsubscribe::User(&key)).await.unwrap();
    verified("unsubscribe").await;
    let text = serde_json::to_string(&w.ledger().await).unwrap();
    assert!(!text.contains(&ada.email) && !text.contains(&ada.id.to_string()));
    refused(c.verify_ledger(&key).await, "admin_only");
}

/// The memory store, except that the ledger record at `seq` reads back altered.
struct Tampered(Arc<MemoryStore>, i64);

#[rustfmt::skip]
#[async_trait]
impl ConsentStore for Tampered {
    async fn publish_terms(&self, t: &TermsVersion, e: &LedgerEntry, m: &[OutboxMessage]) -> Result<()> { self.0.publish_terms(t, e, m).await }
    async fn list_terms(&self) -> Result<Vec<TermsVersion>> { self.0.list_terms().await }
    async fn accept_terms(&self, a: &TermsAcceptance, e: &LedgerEntry) -> Result<()> { self.0.accept_terms(a, e).await }
    async fn list_acceptances(&self, u: Uuid) -> Result<Vec<TermsAcceptance>> { self.0.list_acceptances(u).await }
    async fn subscription_by_email(&self, e: &str) -> Result<Option<Subscription>> { self.0.subscription_by_email(e).await }
    async fn subscription_by_token(&self, h: &str) -> Result<Option<Subscription>> { self.0.subscription_by_token(h).await }
    async fn get_subscription(&self, id: Uuid) -> Result<Option<Subscription>> { self.0.get_subscription(id).await }
    async fn put_subscription(&self, s: &Subscription, e: Option<&LedgerEntry>, m: &[OutboxMessage]) -> Result<()> { self.0.put_subscription(s, e, m).await }
    async fn list_subscribed(&self, c: Category, a: Option<Uuid>, n: usize) -> Result<Vec<Subscription>> { self.0.list_subscribed(c, a, n).await }
    async fn set_objection(&self, u: Uuid, o: &Objection, e: &LedgerEntry, m: &[OutboxMessage]) -> Result<()> { self.0.set_objection(u, o, e, m).await }
    async fn list_objections(&self, u: Uuid) -> Result<Vec<Objection>> { self.0.list_objections(u).await }
    async fn objects_by_email(&self, e: &str, k: ObjectionKind) -> Result<bool> { self.0.objects_by_email(e, k).await }
    async fn subject_of(&self, u: Uuid) -> Result<Uuid> { self.0.subject_of(u).await }
    async fn erase_consents(&self, u: Uuid, e: &str, t: Uuid) -> Result<ConsentErasure> { self.0.erase_consents(u, e, t).await }
    async fn consent_stats(&self, v: Option<&str>) -> Result<ConsentStats> { self.0.consent_stats(v).await }
    async fn ledger_after(&self, after: i64, limit: usize) -> Result<Vec<LedgerRecord>> {
        let mut page = self.0.ledger_after(after, limit).await?;
        for r in page.iter_mut().filter(|r| r.seq == self.1) {
            r.entry.detail = json!({"version": "forged"});
        }
        Ok(page)
    }
}

#[tokio::test]
async fn verify_ledger_names_the_first_altered_record_across_pages() {
    let w = world();
    for i in 0..1001 {
        w.publish(&format!("v{i}"), false).await.unwrap();
    }
    let ok = w.c.verify_ledger(ADMIN).await.unwrap();
    assert_eq!((ok.ok, ok.records, ok.broken), (true, Some(1001), None));
    let ledger = w.ledger().await;
    for seq in [3, 1001] {
        let mut tampered = w.base.consent();
        tampered.store = Arc::new(Tampered(w.base.store.clone(), seq));
        let v = tampered.verify_ledger(ADMIN).await.unwrap();
        assert!(!v.ok && v.records.is_none() && v.head.is_none());
        assert_eq!(v.records_checked, Some(seq - 1));
        let broken = v.broken.unwrap();
        let id = ledger[seq as usize - 1].entry.id;
        assert_eq!((broken.seq, broken.id), (seq, id));
    }
}
