//! `levqor.v1.QuotasService` through the generated client: tiers, usage against the monthly
//! quota, and moving users between tiers.

mod support;

use chrono::Utc;
use levqor_core::quotas::Tier;
use levqor_grpc::pb;
use support::*;
use tonic::Code;
use tonic_types::StatusExt;

fn usage_of(user_id: Option<&str>) -> pb::GetUsageRequest {
    pb::GetUsageRequest {
        user_id: user_id.map(str::to_string),
    }
}

fn set_tier(user_id: &str, tier: &str) -> pb::SetTierRequest {
    pb::SetTierRequest {
        user_id: user_id.into(),
        tier: tier.into(),
    }
}

#[tokio::test]
async fn the_tiers_are_public() {
    let server = Server::start().await;
    let tiers = server
        .quotas()
        .list_tiers(pb::ListTiersRequest {})
        .await
        .unwrap()
        .into_inner()
        .tiers;
    assert_eq!(
        tiers,
        [
            pb::Tier {
                name: "sandbox".into(),
                monthly_calls: Some(1_000),
                price_cents: 0
            },
            pb::Tier {
                name: "pro".into(),
                monthly_calls: Some(10_000),
                price_cents: 1_900
            },
            pb::Tier {
                name: "enterprise".into(),
                monthly_calls: None,
                price_cents: 19_900
            },
        ]
    );
}

#[tokio::test]
async fn usage_counts_the_callers_calls_and_tiers_change_it() {
    let server = Server::start().await;
    let (id, key) = server.user("ada@example.com").await;
    let mut quotas = server.quotas();
    for _ in 0..2 {
        server
            .users()
            .get_me(as_(&key, pb::GetMeRequest {}))
            .await
            .unwrap();
    }
    let reply = quotas.get_usage(as_(&key, usage_of(None))).await.unwrap();
    assert_eq!(reply.metadata().get("x-ratelimit-limit").unwrap(), "1000");
    assert_eq!(
        reply.metadata().get("x-ratelimit-remaining").unwrap(),
        "997"
    );
    let usage = reply.into_inner();
    let now = Utc::now();
    assert_eq!(usage.month, now.format("%Y-%m").to_string());
    assert_eq!(
        (
            usage.tier.as_str(),
            usage.limit,
            usage.calls,
            usage.remaining
        ),
        ("sandbox", Some(1_000), 3, Some(997)),
        "this call counts too: {usage:?}"
    );
    assert_eq!(
        usage.days,
        [pb::DayUsage {
            date: now.format("%Y-%m-%d").to_string(),
            calls: 3
        }]
    );
    assert!(usage.reset.unwrap().seconds > now.timestamp());

    // The admin reads any user's usage without being counted, and moves them to a tier.
    let theirs = quotas
        .get_usage(as_(ADMIN, usage_of(Some(&id))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs.calls, 3);
    let moved = quotas
        .set_tier(as_(ADMIN, set_tier(&id, "enterprise")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        moved,
        pb::SetTierResponse {
            user_id: id.clone(),
            tier: Some(pb::Tier {
                name: "enterprise".into(),
                monthly_calls: None,
                price_cents: 19_900
            })
        }
    );
    let reply = quotas.get_usage(as_(&key, usage_of(None))).await.unwrap();
    assert_eq!(
        reply.metadata().get("x-ratelimit-limit").unwrap(),
        "unlimited"
    );
    let usage = reply.into_inner();
    assert_eq!(
        (
            usage.tier.as_str(),
            usage.limit,
            usage.calls,
            usage.remaining
        ),
        ("enterprise", None, 4, None)
    );
}

#[tokio::test]
async fn tiers_are_set_by_the_admin_to_known_tiers() {
    let server = Server::start().await;
    let (ada, key) = server.user("ada@example.com").await;
    let (_, bob) = server.user("bob@example.com").await;
    let mut quotas = server.quotas();
    let r = quotas.set_tier(as_(ADMIN, set_tier(&ada, "gold"))).await;
    assert_eq!(bad_fields(r), ["tier"]);
    let r = quotas
        .set_tier(as_(&key, set_tier(&ada, "enterprise")))
        .await;
    assert_eq!(refusal(r), (Code::PermissionDenied, "admin_only".into()));
    let r = quotas.set_tier(set_tier(&ada, "enterprise")).await;
    assert_eq!(
        refusal(r),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    for user in ["0190a000-0000-7000-8000-000000000000", "nobody"] {
        let r = quotas.set_tier(as_(ADMIN, set_tier(user, "pro"))).await;
        assert_eq!(refusal(r), (Code::NotFound, "not_found".into()), "{user}");
    }
    let usage = quotas
        .get_usage(as_(ADMIN, usage_of(Some(&ada))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.tier, "sandbox", "nothing changed");

    let r = quotas.get_usage(as_(&bob, usage_of(Some(&ada)))).await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let r = quotas.get_usage(as_(ADMIN, usage_of(None))).await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );
    let r = quotas.get_usage(usage_of(None)).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
}

#[tokio::test]
async fn calls_past_the_monthly_quota_are_refused_with_the_wait() {
    let server = Server::over(levqor(|b| {
        b.tiers(vec![
            Tier {
                name: "tiny".into(),
                monthly_calls: Some(3),
                price_cents: 0,
            },
            Tier {
                name: "big".into(),
                monthly_calls: None,
                price_cents: 100,
            },
        ])
        .default_tier("tiny")
    }))
    .await;
    let (id, key) = server.user("ada@example.com").await;
    let mut quotas = server.quotas();
    let tiers: Vec<String> = quotas
        .list_tiers(pb::ListTiersRequest {})
        .await
        .unwrap()
        .into_inner()
        .tiers
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(tiers, ["tiny", "big"], "the configured tiers");
    for left in (0..3).rev() {
        let reply = quotas.get_usage(as_(&key, usage_of(None))).await.unwrap();
        assert_eq!(
            reply.metadata().get("x-ratelimit-remaining").unwrap(),
            left.to_string().as_str()
        );
        assert_eq!(reply.into_inner().remaining, Some(left));
    }
    let status = quotas
        .get_usage(as_(&key, usage_of(None)))
        .await
        .expect_err("past the quota");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.metadata().get("x-ratelimit-remaining").unwrap(), "0");
    assert_eq!(status.metadata().get("x-ratelimit-limit").unwrap(), "3");
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "quota_exceeded");
    let wait = details
        .retry_info()
        .expect("a RetryInfo")
        .retry_delay
        .expect("a delay");
    let to_reset = levqor_core::quotas::next_month(Utc::now()) - Utc::now();
    assert!(
        wait.as_secs() > 0 && wait.as_secs() <= to_reset.num_seconds() as u64 + 1,
        "{wait:?}"
    );
    let r = server.users().get_me(as_(&key, pb::GetMeRequest {})).await;
    assert_eq!(
        refusal(r).0,
        Code::ResourceExhausted,
        "every RPC is metered"
    );

    // The admin is not metered; a bigger tier lifts the quota at once.
    let usage = quotas
        .get_usage(as_(ADMIN, usage_of(Some(&id))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (usage.tier.as_str(), usage.calls, usage.remaining),
        ("tiny", 5, Some(0))
    );
    quotas
        .set_tier(as_(ADMIN, set_tier(&id, "big")))
        .await
        .unwrap();
    let usage = quotas
        .get_usage(as_(&key, usage_of(None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((usage.tier.as_str(), usage.limit), ("big", None));
}
