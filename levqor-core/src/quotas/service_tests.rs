//! The quotas service against its ports: tiers and the default tier, metering every call of a
//! user's key against the month's quota, usage reports, and moving a user between tiers.

use super::{QuotaStatus, QuotaStore, Quotas, Tier, default_tiers};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::ErrorKind;
use crate::testing::Base;
use chrono::{Duration, TimeZone, Utc};
use uuid::Uuid;

fn tier(name: &str, monthly_calls: Option<u64>, price_cents: i64) -> Tier {
    Tier {
        name: name.into(),
        monthly_calls,
        price_cents,
    }
}

/// Sandbox allows `n` calls a month; enterprise is unlimited.
fn small_tiers(n: u64) -> Vec<Tier> {
    vec![
        tier("sandbox", Some(n), 0),
        tier("enterprise", None, 19_900),
    ]
}

/// Quotas on a store that many nodes share: every call is written at once.
fn shared(base: &Base) -> Quotas {
    Quotas::new(
        base.store.clone(),
        4,
        base.users.clone(),
        base.audit.clone(),
        base.clock.clone(),
    )
}

/// Meters `n` calls of `who`; the status of the last.
async fn calls(quotas: &Quotas, who: &Principal, n: usize) -> QuotaStatus {
    let mut last = None;
    for _ in 0..n {
        last = quotas.meter(who).await.unwrap();
    }
    last.expect("a user is metered")
}

/// `(tier, limit, calls this month)` as the usage report shows them.
async fn standing(quotas: &Quotas, who: &Principal) -> (String, Option<u64>, u64) {
    let u = quotas.usage(who, None).await.unwrap();
    (u.tier, u.limit, u.calls)
}

/// Seconds from 2026-11-02 09:00 to 2026-12-01 00:00 UTC.
const TO_DECEMBER: u64 = 28 * 86_400 + 15 * 3_600;

#[tokio::test]
async fn tiers_are_sandbox_pro_and_enterprise_until_replaced() {
    let base = Base::new();
    let quotas = base.quotas();
    assert_eq!(quotas.tiers(), default_tiers());
    let names: Vec<String> = quotas.tiers().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["sandbox", "pro", "enterprise"]);
    assert_eq!(quotas.default_tier(), "sandbox");
    quotas.set_tiers(small_tiers(5));
    assert_eq!(quotas.tiers(), small_tiers(5));
    let (_, who) = base.user("configured@example.com").await;
    assert_eq!(
        standing(&quotas, &who).await,
        ("sandbox".into(), Some(5), 0),
        "the new tiers apply"
    );
}

#[tokio::test]
async fn every_call_of_a_users_key_is_counted_and_reported() {
    let base = Base::new();
    let quotas = base.quotas();
    let (_, who) = base.user("counted@example.com").await;
    let (_, other) = base.user("quiet@example.com").await;
    for n in 1..=3 {
        let s = calls(&quotas, &who, 1).await;
        assert_eq!((s.used, s.remaining()), (n, Some(1_000 - n)));
    }
    let s = calls(&quotas, &who, 1).await;
    assert_eq!(
        (s.tier.as_str(), s.limit, s.used),
        ("sandbox", Some(1_000), 4)
    );
    assert_eq!(s.reset, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
    assert_eq!(s.reset_in_secs, TO_DECEMBER);
    assert!(s.check().is_ok());

    let u = quotas.usage(&who, None).await.unwrap();
    assert_eq!(
        (u.month.as_str(), u.calls, u.remaining),
        ("2026-11", 4, Some(996))
    );
    assert_eq!(u.reset, s.reset);
    let days: Vec<(&str, u64)> = u.days.iter().map(|d| (d.date.as_str(), d.calls)).collect();
    assert_eq!(days, [("2026-11-02", 4)]);
    assert_eq!(standing(&quotas, &other).await.2, 0, "counts are per user");
}

#[tokio::test]
async fn the_call_past_the_quota_is_refused_until_the_month_resets() {
    let base = Base::new();
    let quotas = shared(&base);
    quotas.set_tiers(small_tiers(2));
    let (_, who) = base.user("capped@example.com").await;
    assert!(
        calls(&quotas, &who, 2).await.check().is_ok(),
        "the 2nd fits"
    );
    let past = calls(&quotas, &who, 1).await;
    assert_eq!(past.remaining(), Some(0));
    let e = past.check().unwrap_err();
    assert_eq!(
        (e.kind, e.code, e.retry_after_secs),
        (ErrorKind::Limit, "quota_exceeded", Some(TO_DECEMBER))
    );
    base.clock.advance(Duration::days(28));
    let e = calls(&quotas, &who, 1).await.check().unwrap_err();
    assert_eq!(
        e.retry_after_secs,
        Some(15 * 3_600),
        "the wait shrinks as the month ends"
    );
    base.clock
        .set(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
    let s = calls(&quotas, &who, 1).await;
    assert_eq!(s.used, 1, "a new month starts from zero");
    assert!(s.check().is_ok());
    assert_eq!(standing(&quotas, &who).await.2, 1);
}

#[tokio::test]
async fn calls_on_earlier_days_of_the_month_count_once_written() {
    let base = Base::new();
    let quotas = base.quotas();
    let (user, who) = base.user("daily@example.com").await;
    calls(&quotas, &who, 3).await;
    // The single writer keeps counts in memory and writes them each second.
    let month = "2026-11";
    let mut stored = 0;
    for _ in 0..100 {
        stored = base
            .store
            .usage_days(user.id, month)
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>();
        if stored == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stored, 3, "written within a few seconds");
    base.clock.advance(Duration::days(1));
    assert_eq!(calls(&quotas, &who, 1).await.used, 4);
    let days: Vec<u64> = quotas
        .usage(&who, None)
        .await
        .unwrap()
        .days
        .iter()
        .map(|d| d.calls)
        .collect();
    assert_eq!(days, [3, 1]);
}

#[tokio::test]
async fn calls_of_yesterday_not_yet_written_still_count_today() {
    let base = Base::new();
    let quotas = base.quotas();
    let (_, who) = base.user("midnight@example.com").await;
    calls(&quotas, &who, 3).await;
    base.clock.advance(Duration::days(1));
    // The usage report counts the unwritten calls; the meter must agree with it.
    let s = calls(&quotas, &who, 1).await;
    assert_eq!(standing(&quotas, &who).await.2, 4);
    assert_eq!(s.used, 4);
}

#[tokio::test]
async fn on_a_shared_store_every_call_is_written_at_once() {
    let base = Base::new();
    let quotas = shared(&base);
    let (user, who) = base.user("shared@example.com").await;
    assert_eq!(calls(&quotas, &who, 3).await.used, 3);
    let stored = base.store.usage_days(user.id, "2026-11").await.unwrap();
    assert_eq!(stored, [("2026-11-02".to_string(), 3)]);
    base.clock.advance(Duration::days(1));
    assert_eq!(calls(&quotas, &who, 1).await.used, 4, "the month adds up");
}

#[tokio::test]
async fn the_admin_is_never_metered() {
    let base = Base::new();
    let quotas = base.quotas();
    let (user, who) = base.user("watched@example.com").await;
    for _ in 0..3 {
        assert_eq!(quotas.meter(&Principal::Admin).await.unwrap(), None);
    }
    let u = quotas
        .usage(&Principal::Admin, Some(user.id))
        .await
        .unwrap();
    assert_eq!((u.calls, u.days.len()), (0, 0));
    assert_eq!(calls(&quotas, &who, 1).await.used, 1);
}

#[tokio::test]
async fn usage_is_the_callers_own_and_the_admin_names_the_user() {
    let base = Base::new();
    let quotas = base.quotas();
    let (user, who) = base.user("reported@example.com").await;
    let (_, other) = base.user("prying@example.com").await;
    calls(&quotas, &who, 2).await;
    let u = quotas
        .usage(&Principal::Admin, Some(user.id))
        .await
        .unwrap();
    assert_eq!((u.tier.as_str(), u.calls), ("sandbox", 2));
    let e = quotas.usage(&other, Some(user.id)).await.unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::NotFound, "not_found"));
    let e = quotas.usage(&Principal::Admin, None).await.unwrap_err();
    assert_eq!(e.code, "user_key_required");
    let e = quotas
        .usage(&Principal::Admin, Some(Uuid::now_v7()))
        .await
        .unwrap_err();
    assert_eq!(e.code, "not_found");
}

#[tokio::test]
async fn setting_a_tier_moves_the_user_at_once() {
    let base = Base::new();
    let quotas = base.quotas();
    quotas.set_tiers(small_tiers(2));
    let (user, who) = base.user("upgraded@example.com").await;
    assert!(calls(&quotas, &who, 3).await.check().is_err());
    let t = quotas
        .set_tier(&Principal::Admin, user.id, "enterprise")
        .await
        .unwrap();
    assert_eq!(t, tier("enterprise", None, 19_900));
    let s = calls(&quotas, &who, 1).await;
    assert_eq!((s.tier.as_str(), s.limit, s.used), ("enterprise", None, 4));
    assert_eq!(s.remaining(), None);
    assert!(s.check().is_ok(), "unlimited");
    let u = quotas.usage(&who, None).await.unwrap();
    assert_eq!(
        (u.tier.as_str(), u.limit, u.remaining),
        ("enterprise", None, None)
    );
    let audited = base
        .audit
        .store()
        .find_audit("tier.set", Some(&crate::audit::audit_subject(user.id)))
        .await
        .unwrap();
    assert_eq!(audited[0].detail["tier"], "enterprise");
}

#[tokio::test]
async fn a_bad_tier_change_is_refused_and_changes_nothing() {
    let base = Base::new();
    let quotas = base.quotas();
    let (user, who) = base.user("steady@example.com").await;
    quotas
        .set_tier(&Principal::Admin, user.id, "pro")
        .await
        .unwrap();
    let e = quotas
        .set_tier(&Principal::Admin, user.id, "gold")
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::Invalid, "validation_failed"));
    assert_eq!(e.violations.len(), 1);
    assert_eq!(e.violations[0].pointer, "/tier");
    assert!(
        e.violations[0].message.contains("sandbox, pro, enterprise"),
        "{}",
        e.violations[0].message
    );
    let e = quotas
        .set_tier(&who, user.id, "enterprise")
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::Forbidden, "admin_only"));
    let e = quotas
        .set_tier(&Principal::Admin, Uuid::now_v7(), "pro")
        .await
        .unwrap_err();
    assert_eq!(e.code, "not_found");
    assert_eq!(
        standing(&quotas, &who).await,
        ("pro".into(), Some(10_000), 0)
    );
    assert_eq!(
        base.store.tier_of(user.id).await.unwrap().as_deref(),
        Some("pro")
    );
}

#[tokio::test]
async fn an_unknown_or_removed_tier_reads_as_the_default() {
    let base = Base::new();
    let quotas = base.quotas();
    let (user, who) = base.user("orphaned@example.com").await;
    let (stray, stray_key) = base.user("stray@example.com").await;
    quotas
        .set_tier(&Principal::Admin, user.id, "pro")
        .await
        .unwrap();
    assert_eq!(standing(&quotas, &who).await.0, "pro");
    quotas.set_tiers(small_tiers(5));
    assert_eq!(
        standing(&quotas, &who).await,
        ("sandbox".into(), Some(5), 0),
        "pro was removed"
    );
    let s = calls(&quotas, &who, 6).await;
    assert_eq!(s.check().unwrap_err().code, "quota_exceeded");
    // A tier name the configuration never had, as a store may hold it.
    base.store
        .set_tier(stray.id, "gold", base.clock.now())
        .await
        .unwrap();
    assert_eq!(
        standing(&quotas, &stray_key).await,
        ("sandbox".into(), Some(5), 0)
    );
    quotas.set_default_tier("enterprise").unwrap();
    for key in [&who, &stray_key] {
        assert_eq!(
            standing(&quotas, key).await.0,
            "enterprise",
            "an unknown tier reads as the default in force"
        );
    }
}

#[tokio::test]
async fn the_default_tier_must_be_a_configured_one() {
    let base = Base::new();
    let quotas = base.quotas();
    let e = quotas.set_default_tier("gold").unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::Invalid, "unknown_tier"));
    assert_eq!(quotas.default_tier(), "sandbox", "unchanged");
    quotas.set_default_tier("pro").unwrap();
    assert_eq!(quotas.default_tier(), "pro");
    let (_, who) = base.user("defaulted@example.com").await;
    let (chosen, chosen_key) = base.user("chosen@example.com").await;
    quotas
        .set_tier(&Principal::Admin, chosen.id, "sandbox")
        .await
        .unwrap();
    let s = calls(&quotas, &who, 1).await;
    assert_eq!((s.tier.as_str(), s.limit), ("pro", Some(10_000)));
    assert_eq!(
        standing(&quotas, &chosen_key).await.0,
        "sandbox",
        "a tier set for the user stays"
    );
    quotas.set_tiers(small_tiers(5));
    assert_eq!(
        quotas.set_default_tier("pro").unwrap_err().code,
        "unknown_tier",
        "pro is no longer configured"
    );
}
