//! The credits service against its ports: balances and the ledger as their owner sees them,
//! admin grants, quotes and the pricing policy, settlement of holds at what ran, expiry, and
//! the sign-up grant.

use super::{CreditStore, Credits, EntryKind, Grant, NewHold, PricingPolicy, SignupGrant};
use crate::audit::audit_subject;
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::ErrorKind;
use crate::jobs::model::{Job, JobStatus, StepRecord, StepStatus};
use crate::jobs::store::{Claim, Finish, JobStore, Lease, NewJob, Write};
use crate::testing::Base;
use crate::users::{User, UserListener, Users};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

fn grant(credits: i64, key: &str) -> Grant {
    Grant {
        credits,
        reason: Some("welcome".into()),
        expires_at: None,
        priority: 0,
        idempotency_key: key.into(),
    }
}

/// `(balance, available, held)` as the owner sees them.
async fn totals(credits: &Credits, who: &Principal) -> (i64, i64, i64) {
    let b = credits.balance(who, None).await.unwrap();
    (b.balance, b.available, b.held)
}

/// The owner's ledger, newest first: `(kind, credits, held)`.
async fn ledger(credits: &Credits, who: &Principal) -> Vec<(EntryKind, i64, i64)> {
    let page = credits.entries(who, None, Some(100), None).await.unwrap();
    page.items
        .iter()
        .map(|e| (e.kind, e.credits, e.held))
        .collect()
}

fn pointers(e: &crate::Error) -> Vec<&str> {
    e.violations.iter().map(|v| v.pointer.as_str()).collect()
}

/// 1 (log) + 10 (http_request) + 1 (log) = 12 credits at a calm load.
fn workflow() -> Value {
    json!({"name": "w", "steps": [
        {"id": "a", "type": "log", "message": "x"},
        {"id": "c", "type": "http_request", "url": "https://example.invalid/"},
        {"id": "d", "type": "log", "message": "y"}
    ]})
}

/// A user with `credits` granted by the admin.
async fn funded(base: &Base, credits: &Credits, email: &str, n: i64) -> (User, Principal) {
    let (user, who) = base.user(email).await;
    credits
        .grant(&Principal::Admin, user.id, grant(n, "fund"))
        .await
        .unwrap();
    (user, who)
}

/// Admits a job of `owner` running `workflow`, holding what `credits` quotes for it.
async fn admit(base: &Base, credits: &Credits, owner: Uuid, workflow: Value) -> Uuid {
    let hold = credits.hold_for(&workflow, owner).await.unwrap();
    admit_with(base, owner, workflow, hold).await
}

async fn admit_with(base: &Base, owner: Uuid, workflow: Value, hold: NewHold) -> Uuid {
    let now = base.clock.now_micros();
    let job = Job {
        id: Uuid::now_v7(),
        owner_id: owner,
        workflow,
        input: json!({}),
        status: JobStatus::Queued,
        attempts: 0,
        max_attempts: 3,
        run_after: now,
        result: None,
        error: None,
        cancel_requested: false,
        idempotency_key: None,
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
    };
    let out = base
        .store
        .admit_batch(vec![NewJob {
            job,
            request_hash: "h".into(),
            hold: Some(hold),
        }])
        .await
        .unwrap();
    out[0].as_ref().expect("admitted").job().id
}

/// Claims every due job; the leases by job.
async fn claim_all(base: &Base) -> Vec<Lease> {
    let now = base.clock.now_micros();
    let token = Uuid::new_v4();
    let claim = Claim {
        token,
        worker: "w".into(),
        now,
        lease_until: now + Duration::seconds(30),
        limit: 100,
    };
    let claimed = base.store.claim_due(&claim).await.unwrap();
    claimed
        .iter()
        .map(|c| Lease {
            job_id: c.job.id,
            token,
        })
        .collect()
}

/// Ends a claimed job as `status` with `steps` recorded.
async fn finish(base: &Base, lease: Lease, status: JobStatus, steps: &[(&str, StepStatus)]) {
    let now = base.clock.now_micros();
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, (id, st))| StepRecord {
            job_id: lease.job_id,
            step_id: id.to_string(),
            position: i as i32,
            status: *st,
            output: Value::Null,
            error: None,
            attempt: 1,
            started_at: now,
            finished_at: now,
        })
        .collect();
    let done = base
        .store
        .commit(&[Write::Finish(Finish {
            lease,
            status,
            run_after: None,
            result: None,
            error: None,
            steps,
            messages: Vec::new(),
            attempts_delta: 0,
            now: now + Duration::seconds(1),
        })])
        .await
        .unwrap();
    assert_eq!(done, [true]);
}

fn later(base: &Base, hours: i64) -> DateTime<Utc> {
    base.clock.now_micros() + Duration::hours(hours)
}

#[tokio::test]
async fn a_balance_is_the_callers_own_and_the_admin_names_the_user() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = base.user("owner@example.com").await;
    let (_, other) = base.user("other@example.com").await;
    assert_eq!(totals(&credits, &who).await, (0, 0, 0), "a new account");
    credits
        .grant(&Principal::Admin, user.id, grant(50, "g"))
        .await
        .unwrap();
    assert_eq!(totals(&credits, &who).await, (50, 50, 0));
    let seen = credits
        .balance(&Principal::Admin, Some(user.id))
        .await
        .unwrap();
    assert_eq!((seen.balance, seen.available, seen.held), (50, 50, 0));
    assert_eq!(
        credits.store().account(user.id).await.unwrap().balance,
        50,
        "the store is the ledger the service writes"
    );

    let e = credits.balance(&other, Some(user.id)).await.unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::NotFound, "not_found"));
    let e = credits.balance(&Principal::Admin, None).await.unwrap_err();
    assert_eq!(e.code, "user_key_required");
    let e = credits
        .balance(&Principal::Admin, Some(Uuid::now_v7()))
        .await
        .unwrap_err();
    assert_eq!(e.code, "not_found");
}

#[tokio::test]
async fn entries_are_listed_newest_first_a_page_at_a_time() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = base.user("pages@example.com").await;
    let (_, other) = base.user("nosy@example.com").await;
    for (n, key) in [(1, "a"), (2, "b"), (3, "c")] {
        credits
            .grant(&Principal::Admin, user.id, grant(n, key))
            .await
            .unwrap();
    }
    let first = credits.entries(&who, None, Some(2), None).await.unwrap();
    let amounts: Vec<i64> = first.items.iter().map(|e| e.credits).collect();
    assert_eq!(amounts, [3, 2]);
    let cursor = first.next_cursor.expect("a second page");
    let rest = credits
        .entries(&who, None, Some(2), Some(&cursor))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(
        (rest.items[0].credits, rest.next_cursor),
        (1, None),
        "the last page"
    );
    let as_admin = credits
        .entries(&Principal::Admin, Some(user.id), None, None)
        .await
        .unwrap();
    assert_eq!(as_admin.items.len(), 3);

    let e = credits
        .entries(&who, None, Some(0), Some("nope"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, pointers(&e)),
        ("validation_failed", vec!["/limit", "/cursor"])
    );
    let e = credits
        .entries(&other, Some(user.id), None, None)
        .await
        .unwrap_err();
    assert_eq!(e.code, "not_found");
}

#[tokio::test]
async fn a_grant_credits_the_account_and_is_audited() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = base.user("granted@example.com").await;
    let (entry, created) = credits
        .grant(&Principal::Admin, user.id, grant(100, "welcome-1"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (entry.kind, entry.credits, entry.reason.as_deref()),
        (EntryKind::Grant, 100, Some("welcome"))
    );
    assert_eq!(entry.created_at, base.clock.now_micros());
    assert_eq!(totals(&credits, &who).await, (100, 100, 0));
    let audited = base
        .audit
        .store()
        .find_audit("credits.granted", Some(&audit_subject(user.id)))
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].detail["credits"], 100);
}

#[tokio::test]
async fn a_retried_grant_returns_the_first_entry_and_changes_nothing() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = base.user("retry@example.com").await;
    let (other, other_key) = base.user("same-key@example.com").await;
    let (first, _) = credits
        .grant(&Principal::Admin, user.id, grant(100, "k"))
        .await
        .unwrap();
    let (again, created) = credits
        .grant(&Principal::Admin, user.id, grant(999, "k"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first, "the first entry");
    assert_eq!(totals(&credits, &who).await, (100, 100, 0));
    assert_eq!(ledger(&credits, &who).await.len(), 1);
    let audited = base
        .audit
        .store()
        .find_audit("credits.granted", Some(&audit_subject(user.id)))
        .await
        .unwrap();
    assert_eq!(audited.len(), 1, "a replay is not audited again");

    // The key is per account.
    let (_, created) = credits
        .grant(&Principal::Admin, other.id, grant(7, "k"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(totals(&credits, &other_key).await.0, 7);
}

#[tokio::test]
async fn an_admin_grant_key_never_replays_the_sign_up_grant() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = base.user("keys@example.com").await;
    SignupGrant::new(base.store.clone(), 25)
        .upserted(&user, base.clock.now_micros())
        .await
        .unwrap();
    let (_, created) = credits
        .grant(&Principal::Admin, user.id, grant(10, "signup"))
        .await
        .unwrap();
    assert!(created, "admin keys live apart from the system's");
    assert_eq!(totals(&credits, &who).await.0, 35);
}

#[tokio::test]
async fn only_the_admin_grants_and_only_to_a_user_who_exists() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = base.user("self-serve@example.com").await;
    let e = credits
        .grant(&who, user.id, grant(5, "x"))
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::Forbidden, "admin_only"));
    let e = credits
        .grant(&Principal::Admin, Uuid::now_v7(), grant(5, "x"))
        .await
        .unwrap_err();
    assert_eq!(e.code, "not_found");
    assert_eq!(totals(&credits, &who).await, (0, 0, 0));
    assert!(ledger(&credits, &who).await.is_empty());
}

#[tokio::test]
async fn a_bad_grant_names_every_violation_and_changes_nothing() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = funded(&base, &credits, "strict@example.com", 10).await;
    let now = base.clock.now_micros();
    let cases: Vec<(Grant, Vec<&str>)> = vec![
        (grant(0, ""), vec!["/credits", "/idempotency_key"]),
        (grant(1_000_000_001, "a"), vec!["/credits"]),
        (grant(-1_000_000_001, "a"), vec!["/credits"]),
        (grant(5, &"k".repeat(256)), vec!["/idempotency_key"]),
        (grant(5, &"é".repeat(256)), vec!["/idempotency_key"]),
        (
            Grant {
                expires_at: Some(now),
                ..grant(5, "b")
            },
            vec!["/expires_at"],
        ),
        (
            Grant {
                expires_at: Some(now + Duration::days(1)),
                ..grant(-5, "c")
            },
            vec!["/expires_at"],
        ),
    ];
    for (bad, expected) in cases {
        let e = credits
            .grant(&Principal::Admin, user.id, bad)
            .await
            .unwrap_err();
        assert_eq!((e.kind, e.code), (ErrorKind::Invalid, "validation_failed"));
        assert_eq!(pointers(&e), expected);
    }
    assert_eq!(totals(&credits, &who).await, (10, 10, 0));
    assert_eq!(ledger(&credits, &who).await.len(), 1, "only the funding");
    // The longest key counts characters, not bytes.
    let (e, _) = credits
        .grant(&Principal::Admin, user.id, grant(5, &"é".repeat(255)))
        .await
        .unwrap();
    assert!(e.idempotency_key.ends_with(&"é".repeat(255)));
    // The largest grant allowed is 1e9.
    let (e, _) = credits
        .grant(&Principal::Admin, user.id, grant(1_000_000_000, "max"))
        .await
        .unwrap();
    assert_eq!(e.credits, 1_000_000_000);
}

#[tokio::test]
async fn a_negative_adjustment_corrects_down_but_never_overdraws() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = funded(&base, &credits, "corrected@example.com", 50).await;
    let (entry, _) = credits
        .grant(&Principal::Admin, user.id, grant(-20, "fix-1"))
        .await
        .unwrap();
    assert_eq!((entry.kind, entry.credits), (EntryKind::Adjustment, -20));
    assert_eq!(totals(&credits, &who).await, (30, 30, 0));
    let e = credits
        .grant(&Principal::Admin, user.id, grant(-31, "fix-2"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code),
        (ErrorKind::InsufficientCredits, "insufficient_credits")
    );
    // Held credits are not available to take back either.
    admit(&base, &credits, user.id, workflow()).await;
    assert_eq!(totals(&credits, &who).await, (30, 18, 12));
    let e = credits
        .grant(&Principal::Admin, user.id, grant(-19, "fix-3"))
        .await
        .unwrap_err();
    assert_eq!(e.code, "insufficient_credits");
    assert_eq!(totals(&credits, &who).await, (30, 18, 12));
    assert_eq!(ledger(&credits, &who).await.len(), 3, "fund, fix-1, hold");
    credits
        .grant(&Principal::Admin, user.id, grant(-18, "fix-4"))
        .await
        .unwrap();
    assert_eq!(totals(&credits, &who).await, (12, 0, 12));
}

#[tokio::test]
async fn a_quote_prices_the_callers_workflow() {
    let base = Base::new();
    let credits = base.credits();
    let (_, who) = base.user("quoted@example.com").await;
    let q = credits.quote(&who, &workflow()).await.unwrap();
    assert_eq!((q.credits, q.factor_bp), (12, 10_000));
    let names: Vec<&str> = q.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "base:http_request",
            "base:log",
            "load_factor",
            "performance_bonus"
        ]
    );
    assert_eq!(q.step_prices["log"], 1);

    let e = credits
        .quote(&who, &json!({"steps": "no"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "validation_failed");
    assert!(!e.violations.is_empty());
    assert!(
        e.violations
            .iter()
            .all(|v| v.pointer.starts_with("/workflow")),
        "{:?}",
        e.violations
    );
    let e = credits
        .quote(&Principal::Admin, &workflow())
        .await
        .unwrap_err();
    assert_eq!(e.code, "user_key_required");
}

#[tokio::test]
async fn the_pricing_policy_in_force_prices_new_quotes() {
    let base = Base::new();
    let credits = base.credits();
    let (_, who) = base.user("policy@example.com").await;
    assert_eq!(credits.pricing_policy(), PricingPolicy::default());
    let mut policy = PricingPolicy::default();
    policy.prices.steps.insert("http_request".into(), 20);
    policy.hold_ttl_hours = 2;
    credits.set_pricing_policy(policy.clone());
    assert_eq!(credits.pricing_policy(), policy);
    assert_eq!(credits.quote(&who, &workflow()).await.unwrap().credits, 22);
    let hold = credits.hold_for(&workflow(), Uuid::now_v7()).await.unwrap();
    assert_eq!(
        (hold.credits, hold.expires_at),
        (22, later(&base, 2)),
        "the hold lives as long as the policy says"
    );
}

#[tokio::test]
async fn settlement_charges_the_steps_that_succeeded_at_the_quoted_prices() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = funded(&base, &credits, "settled@example.com", 100).await;
    let job = admit(&base, &credits, user.id, workflow()).await;
    assert_eq!(totals(&credits, &who).await, (100, 88, 12));
    assert_eq!(credits.settle_holds().await.unwrap(), 0, "the job waits");

    // Prices rise after the quote: the job still settles at what it was quoted.
    let mut dearer = PricingPolicy::default();
    dearer.prices.steps.insert("log".into(), 50);
    credits.set_pricing_policy(dearer);
    let lease = claim_all(&base).await;
    assert_eq!(credits.settle_holds().await.unwrap(), 0, "the job runs");
    finish(
        &base,
        lease[0],
        JobStatus::Succeeded,
        &[
            ("a", StepStatus::Succeeded),
            ("c", StepStatus::Skipped),
            ("d", StepStatus::Succeeded),
        ],
    )
    .await;
    assert_eq!(credits.settle_holds().await.unwrap(), 1);
    assert_eq!(totals(&credits, &who).await, (98, 98, 0), "1 + 1 charged");
    let entries = credits.entries(&who, None, None, None).await.unwrap().items;
    assert_eq!(
        (entries[0].kind, entries[0].credits, entries[0].job_id),
        (EntryKind::Settle, -2, Some(job))
    );
    assert_eq!(
        credits.settle_holds().await.unwrap(),
        0,
        "a hold closes once"
    );
    assert_eq!(totals(&credits, &who).await, (98, 98, 0));
}

#[tokio::test]
async fn failed_and_canceled_jobs_release_their_holds_without_a_charge() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = funded(&base, &credits, "refunded@example.com", 100).await;
    let dead = admit(&base, &credits, user.id, workflow()).await;
    let leases = claim_all(&base).await;
    let canceled = admit(&base, &credits, user.id, workflow()).await;
    assert_eq!(totals(&credits, &who).await, (100, 76, 24));
    base.store
        .cancel_job(canceled, base.clock.now_micros())
        .await
        .unwrap();
    // The dead job ran a step before failing for good: it still costs nothing.
    assert_eq!(leases[0].job_id, dead);
    finish(
        &base,
        leases[0],
        JobStatus::Dead,
        &[("a", StepStatus::Succeeded), ("c", StepStatus::Failed)],
    )
    .await;
    assert_eq!(credits.settle_holds().await.unwrap(), 2);
    assert_eq!(totals(&credits, &who).await, (100, 100, 0));
    let released: Vec<_> = ledger(&credits, &who).await.into_iter().take(2).collect();
    assert_eq!(
        released,
        [(EntryKind::Release, 0, -12), (EntryKind::Release, 0, -12)]
    );
}

#[tokio::test]
async fn a_hold_whose_job_is_stuck_is_released_when_it_expires() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = funded(&base, &credits, "stuck@example.com", 100).await;
    admit(&base, &credits, user.id, workflow()).await;
    let lease = claim_all(&base).await;
    base.clock.advance(Duration::hours(24));
    assert_eq!(credits.settle_holds().await.unwrap(), 0, "not yet expired");
    assert_eq!(totals(&credits, &who).await.2, 12);
    base.clock.advance(Duration::seconds(1));
    assert_eq!(credits.settle_holds().await.unwrap(), 1);
    assert_eq!(totals(&credits, &who).await, (100, 100, 0));
    // The job finishing later charges nothing: its hold is closed.
    finish(
        &base,
        lease[0],
        JobStatus::Succeeded,
        &[("a", StepStatus::Succeeded)],
    )
    .await;
    assert_eq!(credits.settle_holds().await.unwrap(), 0);
    assert_eq!(totals(&credits, &who).await, (100, 100, 0));
}

#[tokio::test]
async fn granted_credits_expire_but_never_below_what_open_holds_need() {
    let base = Base::new();
    let credits = base.credits();
    let (user, who) = base.user("expiring@example.com").await;
    let soon = later(&base, 1);
    let expiring = Grant {
        expires_at: Some(soon),
        ..grant(10, "promo")
    };
    credits
        .grant(&Principal::Admin, user.id, expiring)
        .await
        .unwrap();
    credits
        .grant(&Principal::Admin, user.id, grant(5, "lasting"))
        .await
        .unwrap();
    let job = admit(&base, &credits, user.id, workflow()).await;
    assert_eq!(totals(&credits, &who).await, (15, 3, 12));
    credits.settle_holds().await.unwrap();
    assert_eq!(
        totals(&credits, &who).await,
        (15, 3, 12),
        "nothing expires early"
    );

    base.clock.set(soon);
    credits.settle_holds().await.unwrap();
    assert_eq!(
        totals(&credits, &who).await,
        (12, 0, 12),
        "only what the hold does not need expires"
    );
    assert_eq!(ledger(&credits, &who).await[0], (EntryKind::Expiry, -3, 0));

    // Once the job is canceled, its hold is released and the rest of the grant expires.
    base.store
        .cancel_job(job, base.clock.now_micros())
        .await
        .unwrap();
    credits.settle_holds().await.unwrap();
    assert_eq!(totals(&credits, &who).await, (5, 5, 0));
    credits.settle_holds().await.unwrap();
    assert_eq!(totals(&credits, &who).await, (5, 5, 0), "nothing twice");
}

#[tokio::test]
async fn the_sign_up_grant_is_posted_once_even_when_the_user_is_created_twice() {
    let base = Base::new();
    let mut users = Users::new(base.store.clone(), base.clock.clone(), Some("admin"));
    users.listen(Arc::new(SignupGrant::new(base.store.clone(), 100)));
    let first = users
        .create(&Principal::Admin, "new@example.com", None)
        .await
        .unwrap();
    let again = users
        .create(&Principal::Admin, "new@example.com", None)
        .await
        .unwrap();
    let id = first.user().id;
    assert_eq!(again.user().id, id, "the same user");
    assert_eq!(base.store.account(id).await.unwrap().balance, 100);
    let entries = base.store.list_entries(id, None, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].kind, entries[0].reason.as_deref()),
        (EntryKind::Grant, Some("sign-up grant"))
    );
}

#[tokio::test]
async fn no_sign_up_grant_is_posted_when_it_is_zero() {
    let base = Base::new();
    let (user, _) = base.user("free@example.com").await;
    SignupGrant::new(base.store.clone(), 0)
        .upserted(&user, base.clock.now_micros())
        .await
        .unwrap();
    assert!(
        base.store
            .list_entries(user.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
