//! `levqor.v1.CreditsService` through the generated client: balances, the ledger, the
//! admin's grants and quotes.

mod support;

use chrono::{Duration, Utc};
use levqor_grpc::pb;
use serde_json::json;
use support::*;
use tonic::Code;

fn grant(user_id: &str, credits: i64, key: &str) -> pb::GrantRequest {
    pb::GrantRequest {
        user_id: user_id.into(),
        credits,
        reason: None,
        expires_at: None,
        idempotency_key: key.into(),
        priority: 0,
    }
}

fn balance_of(user_id: Option<&str>) -> pb::GetBalanceRequest {
    pb::GetBalanceRequest {
        user_id: user_id.map(str::to_string),
    }
}

fn entries(limit: Option<u32>, cursor: Option<&str>) -> pb::ListEntriesRequest {
    pb::ListEntriesRequest {
        limit,
        cursor: cursor.map(str::to_string),
    }
}

fn timestamp(t: chrono::DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

/// Two HTTP requests: 10 credits each at the calm load factor.
fn two_requests() -> pbjson_types::Struct {
    object(json!({"name": "w", "steps": [
        {"id": "a", "type": "http_request", "url": "https://example.com"},
        {"id": "b", "type": "http_request", "url": "https://example.com"}
    ]}))
}

fn quote(workflow: Option<pbjson_types::Struct>, code: Option<&str>) -> pb::GetQuoteRequest {
    pb::GetQuoteRequest {
        workflow,
        discount_code: code.map(str::to_string),
    }
}

#[tokio::test]
async fn balances_entries_and_grants() {
    let server = Server::start().await;
    let (id, key) = server.user("ada@example.com").await;
    let mut credits = server.credits();
    let b = credits
        .get_balance(as_(&key, balance_of(None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        b,
        pb::CreditBalance {
            balance: 1_000_000,
            available: 1_000_000,
            held: 0
        },
        "the sign-up grant"
    );
    let listed = credits
        .list_entries(as_(&key, entries(None, None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.entries.len(), 1);
    assert_eq!(listed.next_cursor, None);
    let signup = &listed.entries[0];
    assert_eq!(
        (
            signup.user_id.as_str(),
            signup.kind.as_str(),
            signup.credits,
            signup.reason.as_deref()
        ),
        (id.as_str(), "grant", 1_000_000, Some("sign-up grant"))
    );

    // The admin grants; replaying the idempotency key returns the first entry.
    let expires = Utc::now() + Duration::days(30);
    let request = pb::GrantRequest {
        reason: Some("welcome".into()),
        expires_at: Some(timestamp(expires)),
        priority: 5,
        ..grant(&id, 20, "welcome-1")
    };
    let first = credits
        .grant(as_(ADMIN, request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(first.created);
    let entry = first.entry.unwrap();
    assert_eq!(
        (
            entry.user_id.as_str(),
            entry.kind.as_str(),
            entry.credits,
            entry.reason.as_deref(),
            entry.priority
        ),
        (id.as_str(), "grant", 20, Some("welcome"), 5)
    );
    assert_eq!(entry.expires_at.unwrap().seconds, expires.timestamp());
    assert!(
        entry.idempotency_key.ends_with("welcome-1"),
        "{}",
        entry.idempotency_key
    );
    let replay = credits
        .grant(as_(ADMIN, request))
        .await
        .unwrap()
        .into_inner();
    assert!(!replay.created);
    assert_eq!(replay.entry.unwrap(), entry);
    let correction = credits
        .grant(as_(ADMIN, grant(&id, -5, "fix-1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        correction.entry.map(|e| (e.kind, e.credits)),
        Some(("adjustment".to_string(), -5))
    );

    // A job's hold shows as held, not spent.
    let job = server
        .jobs()
        .submit(as_(
            &key,
            pb::SubmitRequest {
                workflow: Some(log_workflow()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let held = job.quote.unwrap().credits;
    assert!(held > 0);
    let b = credits
        .get_balance(as_(&key, balance_of(None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (b.balance, b.held, b.available),
        (1_000_015, held, 1_000_015 - held)
    );
    let theirs = credits
        .get_balance(as_(ADMIN, balance_of(Some(&id))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs, b);

    // Entries come newest first, a page at a time.
    let page = credits
        .list_entries(as_(&key, entries(Some(2), None)))
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<&str> = page.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["hold", "adjustment"]);
    assert_eq!(page.entries[0].job_id, job.job.map(|j| j.id));
    let rest = credits
        .list_entries(as_(&key, entries(Some(2), page.next_cursor.as_deref())))
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<(&str, i64)> = rest
        .entries
        .iter()
        .map(|e| (e.kind.as_str(), e.credits))
        .collect();
    assert_eq!(kinds, [("grant", 20), ("grant", 1_000_000)]);
    assert_eq!(rest.next_cursor, None);
}

#[tokio::test]
async fn grants_are_the_admins_and_bad_ones_name_their_fields() {
    let server = Server::start().await;
    let (id, key) = server.user("ada@example.com").await;
    let mut credits = server.credits();
    let r = credits.grant(as_(&key, grant(&id, 5, "x"))).await;
    assert_eq!(refusal(r), (Code::PermissionDenied, "admin_only".into()));
    let r = credits.grant(grant(&id, 5, "x")).await;
    assert_eq!(
        refusal(r),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    let r = credits.grant(as_(ADMIN, grant(&id, 0, ""))).await;
    assert_eq!(bad_fields(r), ["credits", "idempotency_key"]);
    let r = credits
        .grant(as_(
            ADMIN,
            pb::GrantRequest {
                expires_at: Some(timestamp(Utc::now() - Duration::days(1))),
                ..grant(&id, 5, "late")
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["expires_at"]);
    let r = credits
        .grant(as_(
            ADMIN,
            pb::GrantRequest {
                expires_at: Some(pbjson_types::Timestamp {
                    seconds: 0,
                    nanos: 2_000_000_000,
                }),
                ..grant(&id, 5, "bad-time")
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["expires_at"]);
    let r = credits
        .grant(as_(ADMIN, grant(&id, 2_000_000_000, "too-much")))
        .await;
    assert_eq!(bad_fields(r), ["credits"]);
    for user in ["0190a000-0000-7000-8000-000000000000", "not-an-id"] {
        let r = credits.grant(as_(ADMIN, grant(user, 5, "nobody"))).await;
        assert_eq!(refusal(r), (Code::NotFound, "not_found".into()), "{user}");
    }
    let b = credits
        .get_balance(as_(&key, balance_of(None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.balance, 1_000_000, "nothing was granted");
}

#[tokio::test]
async fn balances_are_the_callers_own_and_pages_are_checked() {
    let server = Server::start().await;
    let (ada, _) = server.user("ada@example.com").await;
    let (_, bob) = server.user("bob@example.com").await;
    let mut credits = server.credits();
    let r = credits.get_balance(as_(&bob, balance_of(Some(&ada)))).await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let r = credits.get_balance(as_(ADMIN, balance_of(None))).await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );
    let r = credits.list_entries(as_(ADMIN, entries(None, None))).await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );
    let r = credits.get_balance(balance_of(None)).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = credits.list_entries(entries(None, None)).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);

    let r = credits
        .list_entries(as_(&bob, entries(Some(0), Some("zzz"))))
        .await;
    assert_eq!(bad_fields(r), ["limit", "cursor"]);
    let r = credits
        .list_entries(as_(&bob, entries(Some(101), None)))
        .await;
    assert_eq!(bad_fields(r), ["limit"]);
    let mine = credits
        .list_entries(as_(&bob, entries(Some(100), None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.entries.len(), 1, "bob sees only his own entries");
    assert_ne!(mine.entries[0].user_id, ada);
}

#[tokio::test]
async fn quotes_price_a_workflow_and_preview_a_discount() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut credits = server.credits();
    let q = credits
        .get_quote(as_(&key, quote(Some(two_requests()), None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(q.credits, 20, "{q:?}");
    assert_eq!(q.factor_bp, 10_000);
    assert_eq!(q.step_prices.get("http_request"), Some(&10));
    let names: Vec<&str> = q.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["base:http_request", "load_factor", "performance_bonus"]
    );
    assert_eq!(q.components[0].credits, Some(20));
    assert_eq!(q.components[1].factor, Some(1.0));

    // A discount code is checked and shown, not redeemed.
    server
        .billing()
        .create_discounts(as_(
            ADMIN,
            pb::CreateDiscountsRequest {
                code: Some("launch25".into()),
                kind: "percent".into(),
                value: 25,
                max_redemptions: Some(1),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    for _ in 0..2 {
        let q = credits
            .get_quote(as_(&key, quote(Some(two_requests()), Some("launch25"))))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(q.credits, 15, "{q:?}");
        let last = q.components.last().unwrap();
        assert_eq!(
            (last.name.as_str(), last.credits, last.detail.as_str()),
            ("discount:LAUNCH25", Some(-5), "25% off")
        );
    }
    let r = credits
        .get_quote(as_(&key, quote(Some(two_requests()), Some("NOPE"))))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "discount_unknown".into()));
    let log = credits
        .get_quote(as_(&key, quote(Some(log_workflow()), None)))
        .await
        .unwrap()
        .into_inner();
    assert!(
        log.credits > 0 && log.step_prices.contains_key("log"),
        "{log:?}"
    );

    // A bad workflow names its fields under `workflow`.
    let r = credits
        .get_quote(as_(
            &key,
            quote(
                Some(object(
                    json!({"name": "t", "steps": [{"id": "a", "type": "log", "message": "x"}, {"id": "b", "type": "teleport"}]}),
                )),
                None,
            ),
        ))
        .await;
    assert_eq!(bad_fields(r), ["workflow.steps[1].type"]);
    let r = credits.get_quote(as_(&key, quote(None, None))).await;
    assert_eq!(bad_fields(r), ["workflow"]);

    let r = credits.get_quote(quote(Some(two_requests()), None)).await;
    assert_eq!(
        refusal(r),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    let r = credits
        .get_quote(as_(ADMIN, quote(Some(two_requests()), None)))
        .await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );
}
