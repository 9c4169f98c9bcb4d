//! The users service against its ports: who a secret authenticates as and how long a key lookup
//! is trusted, users upserted by normalized email and the listeners told of it, reading and
//! changing users, who a call acts on, and API keys issued, listed, revoked and erased.

use super::*;
use crate::auth::Principal;
use crate::error::{ErrorKind, Result};
use crate::testing::{Base, t0};
use async_trait::async_trait;
use chrono::Duration;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const ADMIN: &Principal = &Principal::Admin;

/// The error's kind and code.
fn failure<T: Debug>(r: Result<T>) -> (ErrorKind, &'static str) {
    let e = r.unwrap_err();
    (e.kind, e.code)
}

/// The error's code and the pointers of its violations.
fn invalid<T: Debug>(r: Result<T>) -> (&'static str, Vec<String>) {
    let e = r.unwrap_err();
    (
        e.code,
        e.violations.into_iter().map(|v| v.pointer).collect(),
    )
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const NOT_FOUND: (ErrorKind, &str) = (ErrorKind::NotFound, "not_found");
const UNAUTHENTICATED: (ErrorKind, &str) = (ErrorKind::Unauthenticated, "unauthenticated");

/// A new key of `user_id` with `scopes` (all when empty), and who it authenticates as.
async fn key(users: &Users, user_id: Uuid, scopes: &[&str]) -> (IssuedKey, Principal) {
    let scopes = (!scopes.is_empty()).then(|| names(scopes));
    let issued = users.create_key(ADMIN, user_id, scopes).await.unwrap();
    let who = users.authenticate(&issued.secret).await.unwrap();
    (issued, who)
}

fn patch(email: Option<&str>, name: Option<Option<&str>>) -> UserPatch {
    UserPatch {
        email: email.map(str::to_string),
        name: name.map(|n| n.map(str::to_string)),
    }
}

/// Remembers every upsert it is told of; fails while `failing` is set.
#[derive(Default)]
struct Told {
    seen: Mutex<Vec<(Uuid, String, DateTime<Utc>)>>,
    failing: AtomicBool,
}

impl Told {
    fn seen(&self) -> Vec<(Uuid, String, DateTime<Utc>)> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl UserListener for Told {
    async fn upserted(&self, user: &User, now: DateTime<Utc>) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::unavailable("the ledger is down"));
        }
        let told = (user.id, user.email.clone(), now);
        self.seen.lock().unwrap().push(told);
        Ok(())
    }
}

#[tokio::test]
async fn the_admin_secret_and_live_user_keys_authenticate_and_nothing_else() {
    let base = Base::new();
    let users = &base.users;
    assert_eq!(users.authenticate("admin").await.unwrap(), Principal::Admin);
    assert_eq!(
        users.authenticate(" admin\n").await.unwrap(),
        Principal::Admin,
        "white space around a secret is not part of it"
    );
    let (ada, _) = base.user("ada@example.com").await;
    let issued = users
        .create_key(ADMIN, ada.id, Some(names(&["jobs:read"])))
        .await
        .unwrap();
    let expected = Principal::User {
        user_id: ada.id,
        key_id: issued.key.id,
        scopes: names(&["jobs:read"]),
    };
    assert_eq!(users.authenticate(&issued.secret).await.unwrap(), expected);
    for wrong in ["", "Admin", "admin2", "lq_nope", &issued.secret[..40]] {
        let r = users.authenticate(wrong).await;
        assert_eq!(failure(r), UNAUTHENTICATED, "{wrong:?}");
    }
}

#[tokio::test]
async fn a_deployment_without_an_admin_secret_has_no_admin() {
    let base = Base::new();
    for admin in [None, Some("")] {
        let users = Users::new(base.store.clone(), base.clock.clone(), admin);
        for secret in ["", "admin"] {
            let r = users.authenticate(secret).await;
            assert_eq!(failure(r), UNAUTHENTICATED, "{admin:?} {secret:?}");
        }
    }
}

#[tokio::test]
async fn a_revoked_key_stops_working_on_this_node_at_once() {
    let base = Base::new();
    let users = &base.users;
    let (ada, _) = base.user("ada@example.com").await;
    let (kept, kept_who) = key(users, ada.id, &[]).await;
    let (gone, gone_who) = key(users, ada.id, &[]).await;
    assert_eq!(users.authenticate(&gone.secret).await.unwrap(), gone_who);
    base.clock.advance(Duration::minutes(3));
    let revoked = users.revoke_key(&kept_who, gone.key.id).await.unwrap();
    assert_eq!(
        (revoked.id, revoked.revoked_at),
        (gone.key.id, Some(t0() + Duration::minutes(3)))
    );
    let r = users.authenticate(&gone.secret).await;
    assert_eq!(failure(r), UNAUTHENTICATED, "not even from the cache");
    assert_eq!(
        users.authenticate(&kept.secret).await.unwrap(),
        kept_who,
        "the user's other keys still work"
    );
}

#[tokio::test]
async fn a_key_revoked_through_another_node_is_trusted_here_only_for_the_cache_ttl() {
    let base = Base::new();
    let here = &base.users;
    let there = Users::new(base.store.clone(), base.clock.clone(), Some("admin"));
    let (ada, _) = base.user("ada@example.com").await;
    let (issued, who) = key(here, ada.id, &[]).await;
    there.revoke_key(ADMIN, issued.key.id).await.unwrap();
    let r = there.authenticate(&issued.secret).await;
    assert_eq!(failure(r), UNAUTHENTICATED);
    assert_eq!(
        here.authenticate(&issued.secret).await.unwrap(),
        who,
        "a lookup is trusted for a while"
    );
    tokio::time::sleep(KEY_CACHE_TTL + std::time::Duration::from_millis(100)).await;
    let r = here.authenticate(&issued.secret).await;
    assert_eq!(failure(r), UNAUTHENTICATED, "and no longer");
}

#[tokio::test]
async fn users_are_created_once_per_normalized_email() {
    let base = Base::new();
    let users = &base.users;
    let first = users
        .create(ADMIN, "  Ada@Example.COM ", Some("  Ada  "))
        .await
        .unwrap();
    let Upserted::Created(ada) = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        (ada.email.as_str(), ada.name.as_deref()),
        ("ada@example.com", Some("Ada"))
    );
    assert_eq!((ada.created_at, ada.updated_at), (t0(), t0()));
    base.clock.advance(Duration::hours(1));
    let again = users
        .create(ADMIN, "ADA@example.com", Some("Someone Else"))
        .await
        .unwrap();
    assert_eq!(
        again,
        Upserted::Existing(ada.clone()),
        "the first, unchanged"
    );
    assert_eq!(users.find(ADMIN, "ada@example.com").await.unwrap(), ada);
    let bob = users.create(ADMIN, "bob@example.com", None).await.unwrap();
    assert!(matches!(bob, Upserted::Created(_)), "{bob:?}");
    assert_eq!(bob.user().name, None);
    assert_ne!(bob.user().id, ada.id);
}

#[tokio::test]
async fn only_the_admin_creates_users_and_a_refused_create_stores_nothing() {
    let base = Base::new();
    let users = &base.users;
    let (_, who) = base.user("self@example.com").await;
    let r = users.create(&who, "new@example.com", None).await;
    assert_eq!(failure(r), (ErrorKind::Forbidden, "admin_only"));
    let r = users.create(ADMIN, "not-an-email", None).await;
    assert_eq!(invalid(r), ("validation_failed", names(&["/email"])));
    let long = "n".repeat(201);
    for bad in ["bell\u{7}", long.as_str()] {
        let r = users.create(ADMIN, "ok@example.com", Some(bad)).await;
        assert_eq!(invalid(r), ("validation_failed", names(&["/name"])));
    }
    for email in ["new@example.com", "ok@example.com"] {
        assert_eq!(failure(users.find(ADMIN, email).await), NOT_FOUND);
    }
    let longest = "n".repeat(200);
    let ok = users.create(ADMIN, "ok@example.com", Some(&longest)).await;
    assert_eq!(ok.unwrap().user().name, Some(longest));
}

#[tokio::test]
async fn every_listener_is_told_of_every_upsert_new_or_not() {
    let base = Base::new();
    let (a, b) = (Arc::new(Told::default()), Arc::new(Told::default()));
    let mut users = Users::new(base.store.clone(), base.clock.clone(), Some("admin"));
    users.listen(a.clone());
    users.listen(b.clone());
    let ada = users.create(ADMIN, "ada@example.com", None).await.unwrap();
    let ada = ada.user().clone();
    base.clock.advance(Duration::minutes(5));
    users.create(ADMIN, "ADA@example.com", None).await.unwrap();
    let _ = users.create(ADMIN, "broken", None).await.unwrap_err();
    let user = Principal::User {
        user_id: ada.id,
        key_id: Uuid::nil(),
        scopes: names(&["*"]),
    };
    let _ = users
        .create(&user, "bob@example.com", None)
        .await
        .unwrap_err();
    let email = "ada@example.com".to_string();
    let expected = vec![
        (ada.id, email.clone(), t0()),
        (ada.id, email, t0() + Duration::minutes(5)),
    ];
    assert_eq!(a.seen(), expected);
    assert_eq!(b.seen(), expected, "every listener");
}

#[tokio::test]
async fn a_failing_listener_fails_the_create_and_a_retry_tells_it_again() {
    let base = Base::new();
    let told = Arc::new(Told::default());
    let mut users = Users::new(base.store.clone(), base.clock.clone(), Some("admin"));
    users.listen(told.clone());
    told.failing.store(true, Ordering::SeqCst);
    let r = users.create(ADMIN, "ada@example.com", None).await;
    assert_eq!(failure(r), (ErrorKind::Unavailable, "unavailable"));
    told.failing.store(false, Ordering::SeqCst);
    let again = users.create(ADMIN, "ada@example.com", None).await.unwrap();
    assert!(matches!(again, Upserted::Existing(_)), "{again:?}");
    let seen = told.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, again.user().id, "the retry reaches the listener");
}

#[tokio::test]
async fn a_user_is_seen_by_themselves_and_by_the_admin_only() {
    let base = Base::new();
    let users = &base.users;
    let (ada, ada_key) = base.user("ada@example.com").await;
    let (bob, _) = base.user("bob@example.com").await;
    assert_eq!(users.get(&ada_key, ada.id).await.unwrap(), ada);
    assert_eq!(users.get(ADMIN, bob.id).await.unwrap(), bob);
    assert_eq!(failure(users.get(&ada_key, bob.id).await), NOT_FOUND);
    assert_eq!(failure(users.get(ADMIN, Uuid::now_v7()).await), NOT_FOUND);
}

#[tokio::test]
async fn a_user_is_found_by_email_by_themselves_and_by_the_admin_only() {
    let base = Base::new();
    let users = &base.users;
    let (ada, ada_key) = base.user("ada@example.com").await;
    let (bob, _) = base.user("bob@example.com").await;
    let found = users.find(&ada_key, " ADA@Example.com").await.unwrap();
    assert_eq!(found, ada);
    assert_eq!(users.find(ADMIN, "bob@example.com").await.unwrap(), bob);
    let r = users.find(&ada_key, "bob@example.com").await;
    assert_eq!(
        failure(r),
        NOT_FOUND,
        "another user's email reads as unknown"
    );
    let r = users.find(ADMIN, "nobody@example.com").await;
    assert_eq!(failure(r), NOT_FOUND);
    let r = users.find(ADMIN, "nobody").await;
    assert_eq!(invalid(r), ("validation_failed", names(&["/email"])));
}

#[tokio::test]
async fn an_update_changes_email_and_name_and_keeps_emails_unique() {
    let base = Base::new();
    let users = &base.users;
    let (ada, ada_key) = base.user("ada@example.com").await;
    let (bob, _) = base.user("bob@example.com").await;
    base.clock.advance(Duration::hours(2));
    let changes = patch(Some(" Ada.L@Example.com "), Some(Some(" Ada L ")));
    let updated = users.update(&ada_key, ada.id, changes).await.unwrap();
    assert_eq!(
        (updated.email.as_str(), updated.name.as_deref()),
        ("ada.l@example.com", Some("Ada L"))
    );
    assert_eq!(
        (updated.id, updated.created_at, updated.updated_at),
        (ada.id, t0(), t0() + Duration::hours(2))
    );
    assert_eq!(users.get(ADMIN, ada.id).await.unwrap(), updated, "stored");

    let taken = patch(Some("ADA.L@example.com"), None);
    let r = users.update(ADMIN, bob.id, taken).await;
    assert_eq!(failure(r), (ErrorKind::Conflict, "email_taken"));
    assert_eq!(users.get(ADMIN, bob.id).await.unwrap(), bob, "unchanged");
    let own = patch(Some("ada.l@example.com"), None);
    let same = users.update(&ada_key, ada.id, own).await.unwrap();
    assert_eq!(
        same.email, "ada.l@example.com",
        "one's own email is not taken"
    );
    let r = users.find(ADMIN, "ada@example.com").await;
    assert_eq!(failure(r), NOT_FOUND, "the old email is free");
}

#[tokio::test]
async fn an_update_clears_the_name_and_leaves_alone_what_it_does_not_name() {
    let base = Base::new();
    let users = &base.users;
    let (ada, who) = base.user("ada@example.com").await;
    assert_eq!(ada.name.as_deref(), Some("Test Person"));
    let cleared = users.update(&who, ada.id, patch(None, Some(None))).await;
    let cleared = cleared.unwrap();
    assert_eq!((cleared.name, cleared.email), (None, ada.email.clone()));
    let named = users.update(&who, ada.id, patch(None, Some(Some("Ada"))));
    assert_eq!(named.await.unwrap().name.as_deref(), Some("Ada"));
    let untouched = users.update(&who, ada.id, UserPatch::default()).await;
    assert_eq!(untouched.unwrap().name.as_deref(), Some("Ada"));
    let blank = users.update(&who, ada.id, patch(None, Some(Some("   "))));
    assert_eq!(blank.await.unwrap().name, None, "a blank name clears it");
}

#[tokio::test]
async fn a_bad_or_foreign_update_changes_nothing() {
    let base = Base::new();
    let users = &base.users;
    let (ada, ada_key) = base.user("ada@example.com").await;
    let (bob, _) = base.user("bob@example.com").await;
    let r = users.update(&ada_key, bob.id, patch(None, Some(Some("x"))));
    assert_eq!(failure(r.await), NOT_FOUND);
    let r = users.update(ADMIN, Uuid::now_v7(), patch(None, Some(None)));
    assert_eq!(failure(r.await), NOT_FOUND);
    let r = users.update(&ada_key, ada.id, patch(Some("nope"), Some(None)));
    assert_eq!(invalid(r.await), ("validation_failed", names(&["/email"])));
    let r = users.update(&ada_key, ada.id, patch(None, Some(Some("a\nb"))));
    assert_eq!(invalid(r.await), ("validation_failed", names(&["/name"])));
    assert_eq!(users.get(ADMIN, ada.id).await.unwrap(), ada);
    assert_eq!(users.get(ADMIN, bob.id).await.unwrap(), bob);
}

#[tokio::test]
async fn me_is_the_callers_own_user_and_the_admin_has_none() {
    let base = Base::new();
    let (ada, who) = base.user("ada@example.com").await;
    assert_eq!(base.users.me(&who).await.unwrap(), ada);
    let r = base.users.me(ADMIN).await;
    assert_eq!(failure(r), (ErrorKind::Forbidden, "user_key_required"));
}

#[tokio::test]
async fn a_call_acts_on_the_caller_or_on_the_user_the_admin_names() {
    let base = Base::new();
    let users = &base.users;
    let (ada, ada_key) = base.user("ada@example.com").await;
    let (bob, _) = base.user("bob@example.com").await;
    assert_eq!(users.acting(&ada_key, None).await.unwrap(), ada);
    assert_eq!(users.acting(&ada_key, Some(ada.id)).await.unwrap(), ada);
    assert_eq!(users.acting(ADMIN, Some(bob.id)).await.unwrap(), bob);
    let r = users.acting(&ada_key, Some(bob.id)).await;
    assert_eq!(failure(r), NOT_FOUND, "a user naming another");
    let r = users.acting(ADMIN, None).await;
    assert_eq!(failure(r), (ErrorKind::Forbidden, "user_key_required"));
    let r = users.acting(ADMIN, Some(Uuid::now_v7())).await;
    assert_eq!(failure(r), NOT_FOUND);

    assert_eq!(acting_id(&ada_key, None).unwrap(), ada.id);
    assert_eq!(acting_id(&ada_key, Some(bob.id)).unwrap(), bob.id);
    assert_eq!(acting_id(ADMIN, Some(bob.id)).unwrap(), bob.id);
    let r = acting_id(ADMIN, None);
    assert_eq!(failure(r), (ErrorKind::Forbidden, "user_key_required"));
}

#[tokio::test]
async fn a_key_carries_the_scopes_asked_for_or_every_scope() {
    let base = Base::new();
    let users = &base.users;
    let (ada, _) = base.user("ada@example.com").await;
    base.clock.advance(Duration::minutes(1));
    let all = users.create_key(ADMIN, ada.id, None).await.unwrap();
    assert_eq!(all.key.scopes, ["*"]);
    assert!(all.secret.starts_with("lq_") && all.secret.starts_with(&all.key.prefix));
    assert_eq!(
        (all.key.user_id, all.key.created_at, all.key.revoked_at),
        (ada.id, t0() + Duration::minutes(1), None)
    );
    let (narrow, who) = key(users, ada.id, &["jobs:read", "jobs:write"]).await;
    let expected = Principal::User {
        user_id: ada.id,
        key_id: narrow.key.id,
        scopes: names(&["jobs:read", "jobs:write"]),
    };
    assert_eq!(who, expected);
    assert_ne!(narrow.secret, all.secret);
}

#[tokio::test]
async fn bad_scopes_are_reported_by_position_and_issue_no_key() {
    let base = Base::new();
    let users = &base.users;
    let (ada, _) = base.user("ada@example.com").await;
    let scopes = names(&["jobs:read", "root", "jobs:delete"]);
    let r = users.create_key(ADMIN, ada.id, Some(scopes)).await;
    let at = names(&["/scopes/1", "/scopes/2"]);
    assert_eq!(invalid(r), ("validation_failed", at));
    let r = users.create_key(ADMIN, ada.id, Some(Vec::new())).await;
    assert_eq!(invalid(r), ("validation_failed", names(&["/scopes"])));
    let keys = users.list_keys(ADMIN, ada.id).await.unwrap();
    assert_eq!(keys.len(), 1, "only the fixture's key");
}

#[tokio::test]
async fn only_a_key_with_every_scope_makes_keys_and_only_for_its_own_user() {
    let base = Base::new();
    let users = &base.users;
    let (ada, ada_all) = base.user("ada@example.com").await;
    let (bob, _) = base.user("bob@example.com").await;
    let (_, narrow) = key(users, ada.id, &["jobs:read", "jobs:write"]).await;
    let insufficient = (ErrorKind::Forbidden, "insufficient_scope");
    let r = users.create_key(&narrow, ada.id, None).await;
    assert_eq!(failure(r), insufficient);
    let r = users.create_key(&narrow, ada.id, Some(names(&["jobs:read"])));
    assert_eq!(failure(r.await), insufficient, "not even a narrower key");
    let own = users.create_key(&ada_all, ada.id, Some(names(&["jobs:read"])));
    assert_eq!(own.await.unwrap().key.user_id, ada.id);
    let r = users.create_key(&ada_all, bob.id, None).await;
    assert_eq!(failure(r), NOT_FOUND);
    let r = users.create_key(ADMIN, Uuid::now_v7(), None).await;
    assert_eq!(failure(r), NOT_FOUND);
    assert_eq!(users.list_keys(ADMIN, ada.id).await.unwrap().len(), 3);
    assert_eq!(users.list_keys(ADMIN, bob.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn keys_are_listed_newest_first_with_revoked_ones_and_without_secrets() {
    let base = Base::new();
    let users = &base.users;
    let (ada, ada_key) = base.user("ada@example.com").await;
    let (_, bob_key) = base.user("bob@example.com").await;
    let (second, _) = key(users, ada.id, &["jobs:read"]).await;
    let (third, _) = key(users, ada.id, &[]).await;
    base.clock.advance(Duration::hours(1));
    users.revoke_key(ADMIN, second.key.id).await.unwrap();
    let listed = users.list_keys(&ada_key, ada.id).await.unwrap();
    let Principal::User { key_id: first, .. } = ada_key else {
        unreachable!()
    };
    let ids: Vec<Uuid> = listed.iter().map(|k| k.id).collect();
    assert_eq!(ids, [third.key.id, second.key.id, first]);
    let revoked: Vec<_> = listed.iter().map(|k| k.revoked_at).collect();
    assert_eq!(revoked, [None, Some(t0() + Duration::hours(1)), None]);
    assert_eq!(listed[1].scopes, ["jobs:read"]);
    let text = serde_json::to_string(&listed).unwrap();
    for secret in [&second.secret, &third.secret] {
        assert!(!text.contains(&secret[3..]), "no secret");
        assert!(!text.contains(&hash_secret(secret)), "no hash");
    }
    assert_eq!(users.list_keys(ADMIN, ada.id).await.unwrap(), listed);
    let r = users.list_keys(&bob_key, ada.id).await;
    assert_eq!(failure(r), NOT_FOUND);
}

#[tokio::test]
async fn another_users_key_reads_as_not_found_and_stays_live() {
    let base = Base::new();
    let users = &base.users;
    let (_, ada_all) = base.user("ada@example.com").await;
    let (bob, _) = base.user("bob@example.com").await;
    let (bobs, bob_who) = key(users, bob.id, &[]).await;
    let r = users.revoke_key(&ada_all, bobs.key.id).await;
    assert_eq!(failure(r), NOT_FOUND);
    let r = users.revoke_key(&ada_all, Uuid::now_v7()).await;
    assert_eq!(failure(r), NOT_FOUND);
    assert_eq!(users.authenticate(&bobs.secret).await.unwrap(), bob_who);
    let listed = users.list_keys(ADMIN, bob.id).await.unwrap();
    assert!(listed.iter().all(|k| k.revoked_at.is_none()));
    users.revoke_key(ADMIN, bobs.key.id).await.unwrap();
    let r = users.authenticate(&bobs.secret).await;
    assert_eq!(failure(r), UNAUTHENTICATED, "the admin revokes anyone's");
}

#[tokio::test]
async fn a_key_without_every_scope_cannot_revoke_and_a_revocation_keeps_its_first_time() {
    let base = Base::new();
    let users = &base.users;
    let (ada, ada_all) = base.user("ada@example.com").await;
    let (spare, spare_who) = key(users, ada.id, &["jobs:read"]).await;
    let (_, narrow) = key(users, ada.id, &["jobs:read", "jobs:write"]).await;
    let r = users.revoke_key(&narrow, spare.key.id).await;
    assert_eq!(failure(r), (ErrorKind::Forbidden, "insufficient_scope"));
    assert_eq!(users.authenticate(&spare.secret).await.unwrap(), spare_who);
    base.clock.advance(Duration::hours(1));
    let first = users.revoke_key(&ada_all, spare.key.id).await.unwrap();
    base.clock.advance(Duration::hours(1));
    let again = users.revoke_key(&ada_all, spare.key.id).await.unwrap();
    assert_eq!(first.revoked_at, Some(t0() + Duration::hours(1)));
    assert_eq!(again, first, "the first revocation stands");
}

#[tokio::test]
async fn deleting_a_user_revokes_every_key_at_once_and_removes_the_user() {
    let base = Base::new();
    let users = &base.users;
    let ada = users.create(ADMIN, "ada@example.com", None).await.unwrap();
    let ada = ada.user().clone();
    let (bob, _) = base.user("bob@example.com").await;
    let (one, _) = key(users, ada.id, &[]).await;
    let (two, _) = key(users, ada.id, &["jobs:read"]).await;
    let (bobs, bob_who) = key(users, bob.id, &[]).await;
    assert_eq!(users.delete(ada.id).await.unwrap(), 2, "how many keys");
    for secret in [&one.secret, &two.secret] {
        let r = users.authenticate(secret).await;
        assert_eq!(failure(r), UNAUTHENTICATED, "forgotten at once");
    }
    assert_eq!(failure(users.get(ADMIN, ada.id).await), NOT_FOUND);
    let r = users.find(ADMIN, "ada@example.com").await;
    assert_eq!(failure(r), NOT_FOUND);
    assert!(users.store().list_keys(ada.id).await.unwrap().is_empty());
    assert_eq!(users.get(ADMIN, bob.id).await.unwrap(), bob, "others stay");
    assert_eq!(users.authenticate(&bobs.secret).await.unwrap(), bob_who);
    let back = users.create(ADMIN, "ada@example.com", None).await.unwrap();
    assert!(
        matches!(back, Upserted::Created(_)),
        "the email is free again"
    );
    assert_ne!(back.user().id, ada.id);
}
