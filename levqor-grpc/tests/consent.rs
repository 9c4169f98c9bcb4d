//! `levqor.v1.ConsentService` through the generated client: terms, marketing consent (double
//! opt-in, links read from the outbox), the preference center, objections and the ledger.

mod support;

use chrono::{Duration, Utc};
use levqor_grpc::pb;
use support::*;
use tonic::Code;
use tonic_types::StatusExt;

const CATEGORIES: [&str; 5] = [
    "product_updates",
    "offers",
    "technical",
    "events",
    "educational",
];

fn publish(version: &str, material: bool) -> pb::PublishTermsRequest {
    pb::PublishTermsRequest {
        version: version.into(),
        effective_at: None,
        changelog: "changes".into(),
        material,
    }
}

fn subscribe(email: &str, categories: &[&str]) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        email: email.into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
    }
}

fn status_of(email: &str) -> pb::GetMarketingStatusRequest {
    pb::GetMarketingStatusRequest {
        email: email.into(),
    }
}

fn send(category: &str, subject: &str, body: &str) -> pb::SendMarketingRequest {
    pb::SendMarketingRequest {
        category: category.into(),
        subject: subject.into(),
        body: body.into(),
    }
}

fn log_job() -> pb::SubmitRequest {
    pb::SubmitRequest {
        workflow: Some(log_workflow()),
        ..Default::default()
    }
}

/// Follows the confirmation link of the newest email to `to` (no key).
async fn confirm_newest_opt_in(server: &Server, to: &str) -> pb::SubscriptionView {
    let mails = server.outbox_to(to).await;
    let confirm = mails
        .iter()
        .find(|m| m.subject == "Confirm your subscription")
        .expect("a confirmation email");
    let token = token_in(&confirm.body, "/v1/marketing/confirm");
    server
        .consent()
        .confirm_subscription(pb::ConfirmSubscriptionRequest { token })
        .await
        .unwrap()
        .into_inner()
}

fn timestamp(t: chrono::DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

#[tokio::test]
async fn material_terms_are_published_listed_and_must_be_accepted() {
    let server = Server::start().await;
    let (ada_id, key) = server.user("ada@example.com").await;
    let mut consent = server.consent();
    let listed = consent
        .list_terms(pb::ListTermsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.versions.is_empty());
    let status = consent
        .get_terms_status(as_(&key, pb::GetTermsStatusRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status,
        pb::TermsStatus {
            current_version: None,
            accepted_version: None,
            must_accept: false
        }
    );

    let published = consent
        .publish_terms(as_(ADMIN, publish(" 2026-11 ", true)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            published.version.as_str(),
            published.changelog.as_str(),
            published.material
        ),
        ("2026-11", "changes", true)
    );
    assert!(published.published_at.is_some());
    assert_eq!(
        published.effective_at, published.published_at,
        "in effect now when unset"
    );
    assert!(
        server
            .outbox_to("ada@example.com")
            .await
            .iter()
            .any(|m| m.body.contains("version 2026-11")),
        "a material version is announced to every user"
    );

    // No key is needed to read the terms; the user must accept before submitting.
    let listed = consent
        .list_terms(pb::ListTermsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.versions, std::slice::from_ref(&published));
    let status = consent
        .get_terms_status(as_(&key, pb::GetTermsStatusRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            status.current_version.as_deref(),
            status.accepted_version.as_deref(),
            status.must_accept
        ),
        (Some("2026-11"), None, true)
    );
    let r = server.jobs().submit(as_(&key, log_job())).await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "terms_not_accepted".into())
    );
    let accepted = consent
        .accept_terms(as_(
            &key,
            pb::AcceptTermsRequest {
                version: "2026-11".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            accepted.current_version.as_deref(),
            accepted.accepted_version.as_deref(),
            accepted.must_accept
        ),
        (Some("2026-11"), Some("2026-11"), false)
    );
    server.jobs().submit(as_(&key, log_job())).await.unwrap();

    // A minor version needs no new acceptance; one not yet in effect cannot be accepted.
    consent
        .publish_terms(as_(ADMIN, publish("2026-11b", false)))
        .await
        .unwrap();
    let later = consent
        .publish_terms(as_(
            ADMIN,
            pb::PublishTermsRequest {
                effective_at: Some(timestamp(Utc::now() + Duration::days(365))),
                ..publish("2099-01", true)
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(later.effective_at.unwrap().seconds > later.published_at.unwrap().seconds);
    let status = consent
        .get_terms_status(as_(&key, pb::GetTermsStatusRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            status.current_version.as_deref(),
            status.accepted_version.as_deref(),
            status.must_accept
        ),
        (Some("2026-11b"), Some("2026-11"), false)
    );
    let r = consent
        .accept_terms(as_(
            &key,
            pb::AcceptTermsRequest {
                version: "2099-01".into(),
            },
        ))
        .await;
    assert_eq!(refusal(r), (Code::Aborted, "terms_not_in_effect".into()));
    let versions: Vec<String> = consent
        .list_terms(pb::ListTermsRequest {})
        .await
        .unwrap()
        .into_inner()
        .versions
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, ["2099-01", "2026-11b", "2026-11"], "newest first");

    // The history: the caller's own, or any user's for the admin.
    let mine = consent
        .get_terms_history(as_(&key, pb::GetTermsHistoryRequest { user_id: None }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.status, Some(status));
    assert_eq!(mine.acceptances.len(), 1);
    let a = &mine.acceptances[0];
    assert_eq!(
        (a.user_id.as_str(), a.version.as_str(), a.ip.as_deref()),
        (ada_id.as_str(), "2026-11", Some("127.0.0.1"))
    );
    assert!(a.accepted_at.is_some());
    let theirs = consent
        .get_terms_history(as_(
            ADMIN,
            pb::GetTermsHistoryRequest {
                user_id: Some(ada_id.clone()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs, mine);
}

#[tokio::test]
async fn terms_refuse_bad_versions_strangers_and_callers_without_a_key() {
    let server = Server::start().await;
    let (ada_id, ada) = server.user("ada@example.com").await;
    let (_, bob) = server.user("bob@example.com").await;
    let mut consent = server.consent();
    consent
        .publish_terms(as_(ADMIN, publish("2026-11", false)))
        .await
        .unwrap();

    let r = consent
        .publish_terms(as_(ADMIN, publish("2026-11", true)))
        .await;
    assert_eq!(
        refusal(r),
        (Code::AlreadyExists, "terms_version_exists".into())
    );
    let r = consent.publish_terms(as_(ADMIN, publish("  ", true))).await;
    assert_eq!(bad_fields(r), ["version"]);
    let r = consent
        .publish_terms(as_(
            ADMIN,
            pb::PublishTermsRequest {
                effective_at: Some(pbjson_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                ..publish("2027", false)
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["effective_at"]);
    let r = consent
        .accept_terms(as_(
            &ada,
            pb::AcceptTermsRequest {
                version: "1999".into(),
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["version"]);

    let r = consent
        .publish_terms(as_(&ada, publish("2027", false)))
        .await;
    assert_eq!(refusal(r), (Code::PermissionDenied, "admin_only".into()));
    let r = consent
        .get_terms_history(as_(
            &bob,
            pb::GetTermsHistoryRequest {
                user_id: Some(ada_id.clone()),
            },
        ))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let r = consent
        .get_terms_history(as_(ADMIN, pb::GetTermsHistoryRequest { user_id: None }))
        .await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );

    let unauthenticated = (Code::Unauthenticated, "unauthenticated".to_string());
    let r = consent.publish_terms(publish("2027", false)).await;
    assert_eq!(refusal(r), unauthenticated);
    let r = consent
        .accept_terms(pb::AcceptTermsRequest {
            version: "2026-11".into(),
        })
        .await;
    assert_eq!(refusal(r), unauthenticated);
    let r = consent.get_terms_status(pb::GetTermsStatusRequest {}).await;
    assert_eq!(refusal(r), unauthenticated);
    let r = consent
        .get_terms_history(pb::GetTermsHistoryRequest { user_id: None })
        .await;
    assert_eq!(refusal(r), unauthenticated);
    let listed = consent
        .list_terms(pb::ListTermsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.versions.len(), 1, "only the first was published");
}

#[tokio::test]
async fn double_opt_in_then_marketing_then_unsubscribe_by_link() {
    let server = Server::start().await;
    let mut consent = server.consent();
    let done = consent
        .subscribe(subscribe("Reader@Example.com", &["technical", "offers"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        done,
        pb::Subscribed {
            status: "pending".into(),
            confirmation_sent: true
        }
    );
    let status = consent
        .get_marketing_status(status_of("reader@example.com"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.status.as_str(), status.categories.as_slice()),
        (
            "pending",
            ["offers".to_string(), "technical".to_string()].as_slice()
        )
    );

    // Nothing reaches a pending consent; asking again sends no second link.
    let sent = consent
        .send_marketing(as_(ADMIN, send("offers", "Deal", "Half price")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        sent,
        pb::MarketingSent {
            category: "offers".into(),
            sent: 0,
            skipped: 0
        }
    );
    let again = consent
        .subscribe(subscribe("reader@example.com", &["offers", "technical"]))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.confirmation_sent);
    let mails = server.outbox_to("reader@example.com").await;
    assert_eq!(mails.len(), 1, "one confirmation email: {mails:?}");
    assert_eq!(
        (mails[0].subject.as_str(), mails[0].kind.as_str()),
        ("Confirm your subscription", "transactional")
    );
    let token = token_in(&mails[0].body, "/v1/marketing/confirm");

    let confirmed = consent
        .confirm_subscription(pb::ConfirmSubscriptionRequest {
            token: token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (confirmed.status.as_str(), confirmed.categories.as_slice()),
        (
            "subscribed",
            ["offers".to_string(), "technical".to_string()].as_slice()
        )
    );
    let r = consent
        .confirm_subscription(pb::ConfirmSubscriptionRequest { token })
        .await;
    assert_eq!(refusal(r), (Code::Aborted, "token_used".into()));
    let r = consent
        .confirm_subscription(pb::ConfirmSubscriptionRequest {
            token: "nope".into(),
        })
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "token_unknown".into()));

    // Marketing in a chosen category arrives with its unsubscribe link; others do not.
    let sent = consent
        .send_marketing(as_(ADMIN, send("offers", "Deal", "Half price")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((sent.sent, sent.skipped), (1, 0));
    let sent = consent
        .send_marketing(as_(ADMIN, send("events", "Meetup", "Come")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((sent.category.as_str(), sent.sent), ("events", 0));
    let deal = server
        .outbox_to("reader@example.com")
        .await
        .into_iter()
        .find(|m| m.subject == "Deal")
        .unwrap();
    assert_eq!(deal.kind, "marketing");
    assert!(deal.body.starts_with("Half price"), "{}", deal.body);
    let unsubscribe = token_in(&deal.body, "/v1/marketing/unsubscribe");

    let r = consent
        .unsubscribe(pb::UnsubscribeRequest {
            token: Some(format!("{unsubscribe}x")),
        })
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "token_unknown".into()));
    let ended = consent
        .unsubscribe(pb::UnsubscribeRequest {
            token: Some(unsubscribe.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.status, "unsubscribed");
    let status = consent
        .get_marketing_status(status_of("reader@example.com"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, "unsubscribed");
    assert!(
        server
            .outbox_to("reader@example.com")
            .await
            .iter()
            .any(|m| m.subject == "You are unsubscribed"),
        "the unsubscribe is confirmed by email"
    );
    let sent = consent
        .send_marketing(as_(ADMIN, send("offers", "Deal 2", "x")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.sent, 0, "no marketing after unsubscribing");
    let again = consent
        .unsubscribe(pb::UnsubscribeRequest {
            token: Some(unsubscribe),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again.status, "unsubscribed",
        "ending an ended consent is harmless"
    );

    // Every change is chained into the ledger, which verifies.
    let verified = consent
        .verify_ledger(as_(ADMIN, pb::VerifyLedgerRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    assert_eq!(
        verified.records,
        Some(3),
        "requested, confirmed, unsubscribed"
    );
    assert_eq!(verified.head.as_deref().map(str::len), Some(64));
    assert!(verified.broken.is_none() && verified.records_checked.is_none());
}

#[tokio::test]
async fn bad_subscriptions_and_sends_name_their_fields_and_change_nothing() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut consent = server.consent();
    let r = consent
        .subscribe(subscribe(
            "x@example.com",
            &["offers", "spam", "technical", "junk"],
        ))
        .await;
    assert_eq!(bad_fields(r), ["categories[1]", "categories[3]"]);
    let r = consent.subscribe(subscribe("nope", &[])).await;
    assert_eq!(bad_fields(r), ["email"]);
    let r = consent.get_marketing_status(status_of("nope")).await;
    assert_eq!(bad_fields(r), ["email"]);
    let r = consent
        .get_marketing_status(status_of("x@example.com"))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    assert!(server.outbox_to("x@example.com").await.is_empty());

    let r = consent
        .send_marketing(as_(ADMIN, send("spam", "s", "b")))
        .await;
    assert_eq!(bad_fields(r), ["category"]);
    let r = consent
        .send_marketing(as_(ADMIN, send("offers", " ", "b")))
        .await;
    assert_eq!(bad_fields(r), ["subject"]);
    let r = consent
        .send_marketing(as_(&key, send("offers", "s", "b")))
        .await;
    assert_eq!(refusal(r), (Code::PermissionDenied, "admin_only".into()));
    let r = consent.send_marketing(send("offers", "s", "b")).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = consent
        .verify_ledger(as_(&key, pb::VerifyLedgerRequest {}))
        .await;
    assert_eq!(refusal(r), (Code::PermissionDenied, "admin_only".into()));
    let r = consent.verify_ledger(pb::VerifyLedgerRequest {}).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let verified = consent
        .verify_ledger(as_(ADMIN, pb::VerifyLedgerRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (verified.ok, verified.records),
        (true, Some(0)),
        "nothing was recorded"
    );
}

#[tokio::test]
async fn the_public_rpcs_are_limited_per_client_address() {
    let server = Server::over(levqor(|b| b.public_rate_per_minute(2))).await;
    let mut consent = server.consent();
    consent
        .subscribe(subscribe("first@example.com", &["events"]))
        .await
        .unwrap();
    let status = consent
        .get_marketing_status(status_of("first@example.com"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, "pending");

    for r in [
        consent
            .subscribe(subscribe("second@example.com", &["events"]))
            .await
            .map(|_| ()),
        consent
            .get_marketing_status(status_of("first@example.com"))
            .await
            .map(|_| ()),
    ] {
        let status = r.expect_err("past the public rate");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "rate_limited");
        let wait = details
            .retry_info()
            .expect("a RetryInfo")
            .retry_delay
            .expect("a delay");
        assert!(
            wait >= std::time::Duration::from_secs(1) && wait <= std::time::Duration::from_secs(60),
            "{wait:?}"
        );
    }
    assert!(
        server.outbox_to("second@example.com").await.is_empty(),
        "a limited call does nothing"
    );
    // The other RPCs that need no key are not limited.
    let confirmed = confirm_newest_opt_in(&server, "first@example.com").await;
    assert_eq!(confirmed.status, "subscribed");
    let terms = consent
        .list_terms(pb::ListTermsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(terms.versions.is_empty());
}

#[tokio::test]
async fn the_preference_center_changes_categories_and_unsubscribes() {
    let server = Server::start().await;
    let (_, key) = server.user("prefs@example.com").await;
    let mut consent = server.consent();
    let prefs = consent
        .get_preferences(as_(&key, pb::GetPreferencesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        prefs,
        pb::Preferences {
            status: None,
            categories: vec![],
            available: CATEGORIES.map(String::from).to_vec(),
            confirmed_at: None,
        }
    );
    let prefs = consent
        .set_preferences(as_(
            &key,
            pb::SetPreferencesRequest {
                categories: vec!["educational".into()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (prefs.status.as_deref(), prefs.categories.as_slice()),
        (Some("pending"), ["educational".to_string()].as_slice()),
        "a first choice still needs the opt-in"
    );
    assert!(prefs.confirmed_at.is_none());
    confirm_newest_opt_in(&server, "prefs@example.com").await;
    let prefs = consent
        .get_preferences(as_(&key, pb::GetPreferencesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(prefs.status.as_deref(), Some("subscribed"));
    assert!(prefs.confirmed_at.is_some());

    let prefs = consent
        .set_preferences(as_(
            &key,
            pb::SetPreferencesRequest {
                categories: vec!["educational".into(), "offers".into()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (prefs.status.as_deref(), prefs.categories.as_slice()),
        (
            Some("subscribed"),
            ["offers".to_string(), "educational".to_string()].as_slice()
        ),
        "a confirmed consent changes at once"
    );
    let r = consent
        .set_preferences(as_(
            &key,
            pb::SetPreferencesRequest {
                categories: vec!["offers".into(), "gossip".into()],
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["categories[1]"]);

    // The caller unsubscribes with their key (no token); no categories is the same.
    let ended = consent
        .unsubscribe(as_(&key, pb::UnsubscribeRequest { token: None }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (ended.status.as_str(), ended.categories.len()),
        ("unsubscribed", 2)
    );
    let prefs = consent
        .set_preferences(as_(&key, pb::SetPreferencesRequest { categories: vec![] }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(prefs.status.as_deref(), Some("unsubscribed"));

    let r = consent
        .unsubscribe(pb::UnsubscribeRequest { token: None })
        .await;
    assert_eq!(
        refusal(r),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    let r = consent.get_preferences(pb::GetPreferencesRequest {}).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = consent
        .set_preferences(pb::SetPreferencesRequest {
            categories: vec!["offers".into()],
        })
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = consent
        .get_preferences(as_(ADMIN, pb::GetPreferencesRequest {}))
        .await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );
    // A user without any consent has nothing to unsubscribe.
    let (_, other) = server.user("other@example.com").await;
    let r = consent
        .unsubscribe(as_(&other, pb::UnsubscribeRequest { token: None }))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
}

#[tokio::test]
async fn objections_are_listed_set_and_enforced() {
    let server = Server::start().await;
    let (ada_id, ada) = server.user("ada@example.com").await;
    let (_, bob) = server.user("bob@example.com").await;
    let mut consent = server.consent();
    let kinds = |list: &pb::ListObjectionsResponse| -> Vec<(String, bool)> {
        list.objections
            .iter()
            .map(|o| (o.kind.clone(), o.objected))
            .collect()
    };
    let none = consent
        .list_objections(as_(&ada, pb::ListObjectionsRequest { user_id: None }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        kinds(&none),
        [
            ("marketing".to_string(), false),
            ("profiling".to_string(), false),
            ("automation".to_string(), false),
            ("analytics".to_string(), false)
        ]
    );
    assert!(none.objections.iter().all(|o| o.updated_at.is_some()));

    let set = consent
        .set_objection(as_(
            &ada,
            pb::SetObjectionRequest {
                user_id: None,
                kind: "automation".into(),
                objected: true,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kinds(&set)[2], ("automation".to_string(), true));
    let r = server.jobs().submit(as_(&ada, log_job())).await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "objection_automation".into())
    );
    consent
        .set_objection(as_(
            &ada,
            pb::SetObjectionRequest {
                user_id: None,
                kind: "automation".into(),
                objected: false,
            },
        ))
        .await
        .unwrap();
    server.jobs().submit(as_(&ada, log_job())).await.unwrap();

    // The admin sets and reads any user's objections.
    let theirs = consent
        .set_objection(as_(
            ADMIN,
            pb::SetObjectionRequest {
                user_id: Some(ada_id.clone()),
                kind: "profiling".into(),
                objected: true,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mine = consent
        .list_objections(as_(&ada, pb::ListObjectionsRequest { user_id: None }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine, theirs);
    let read = consent
        .list_objections(as_(
            ADMIN,
            pb::ListObjectionsRequest {
                user_id: Some(ada_id.clone()),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, mine);
    let objected: Vec<String> = mine
        .objections
        .iter()
        .filter(|o| o.objected)
        .map(|o| o.kind.clone())
        .collect();
    assert_eq!(objected, ["profiling"]);
    let confirmations = server
        .outbox_to("ada@example.com")
        .await
        .iter()
        .filter(|m| m.subject.contains("objection is recorded"))
        .count();
    assert_eq!(confirmations, 3);

    // Strangers, bad kinds, the admin without a user, and no key.
    let r = consent
        .list_objections(as_(
            &bob,
            pb::ListObjectionsRequest {
                user_id: Some(ada_id.clone()),
            },
        ))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let r = consent
        .set_objection(as_(
            &bob,
            pb::SetObjectionRequest {
                user_id: Some(ada_id.clone()),
                kind: "profiling".into(),
                objected: false,
            },
        ))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let r = consent
        .set_objection(as_(
            &ada,
            pb::SetObjectionRequest {
                user_id: None,
                kind: "everything".into(),
                objected: true,
            },
        ))
        .await;
    assert_eq!(bad_fields(r), ["kind"]);
    let r = consent
        .list_objections(as_(ADMIN, pb::ListObjectionsRequest { user_id: None }))
        .await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );
    let r = consent
        .list_objections(pb::ListObjectionsRequest { user_id: None })
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = consent
        .set_objection(pb::SetObjectionRequest {
            user_id: None,
            kind: "analytics".into(),
            objected: true,
        })
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let after = consent
        .list_objections(as_(&ada, pb::ListObjectionsRequest { user_id: None }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, mine, "nothing changed");
}

#[tokio::test]
async fn an_objection_to_marketing_skips_a_confirmed_consent() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut consent = server.consent();
    consent
        .subscribe(subscribe("ada@example.com", &["offers"]))
        .await
        .unwrap();
    confirm_newest_opt_in(&server, "ada@example.com").await;
    consent
        .set_objection(as_(
            &key,
            pb::SetObjectionRequest {
                user_id: None,
                kind: "marketing".into(),
                objected: true,
            },
        ))
        .await
        .unwrap();
    let sent = consent
        .send_marketing(as_(ADMIN, send("offers", "Deal", "x")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((sent.sent, sent.skipped), (0, 1));
}
