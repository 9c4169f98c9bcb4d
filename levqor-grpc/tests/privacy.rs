//! `levqor.v1.PrivacyService` through the generated client: analytics events, exports,
//! erasure, legal holds, retention, the compliance dashboard and the audit log.

mod support;

use chrono::{Duration, Utc};
use levqor_core::ManualClock;
use levqor_grpc::pb;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use support::*;
use tonic::Code;
use tonic_types::StatusExt;

fn event(name: &str, properties: Option<serde_json::Value>) -> pb::EventInput {
    pb::EventInput {
        name: name.into(),
        properties: properties.map(value),
    }
}

fn events(list: Vec<pb::EventInput>) -> pb::RecordEventsRequest {
    pb::RecordEventsRequest { events: list }
}

fn export_of(user_id: Option<&str>) -> pb::ExportDataRequest {
    pb::ExportDataRequest {
        user_id: user_id.map(str::to_string),
    }
}

fn erase_of(user_id: Option<&str>) -> pb::EraseDataRequest {
    pb::EraseDataRequest {
        user_id: user_id.map(str::to_string),
    }
}

fn hold(user_id: &str, reason: &str) -> pb::SetLegalHoldRequest {
    pb::SetLegalHoldRequest {
        user_id: user_id.into(),
        reason: reason.into(),
    }
}

fn unhold(user_id: &str) -> pb::ClearLegalHoldRequest {
    pb::ClearLegalHoldRequest {
        user_id: user_id.into(),
    }
}

fn audit(limit: Option<u32>, cursor: Option<&str>) -> pb::ListAuditRequest {
    pb::ListAuditRequest {
        limit,
        cursor: cursor.map(str::to_string),
    }
}

async fn object_to(server: &Server, key: &str, kind: &str) {
    server
        .consent()
        .set_objection(as_(
            key,
            pb::SetObjectionRequest {
                user_id: None,
                kind: kind.into(),
                objected: true,
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn events_are_recorded_unless_the_user_objects_to_analytics() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut privacy = server.privacy();
    let done = privacy
        .record_events(as_(
            &key,
            events(vec![
                event("page_view", Some(json!({"page": "/pricing", "n": 2}))),
                event("login", None),
            ]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.recorded, 2);

    let r = privacy
        .record_events(as_(
            &key,
            events(vec![
                event("", None),
                event("ok", Some(json!(5))),
                event("fine", Some(json!({}))),
                event("bad\u{1}", Some(json!(["x"]))),
            ]),
        ))
        .await;
    assert_eq!(
        bad_fields(r),
        [
            "events[0].name",
            "events[1].properties",
            "events[3].name",
            "events[3].properties"
        ]
    );
    let r = privacy.record_events(as_(&key, events(vec![]))).await;
    assert_eq!(bad_fields(r), ["events"]);
    let r = privacy
        .record_events(as_(
            &key,
            events((0..1001).map(|_| event("e", None)).collect()),
        ))
        .await;
    assert_eq!(bad_fields(r), ["events"]);

    let r = privacy
        .record_events(events(vec![event("login", None)]))
        .await;
    assert_eq!(
        refusal(r),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    let r = privacy
        .record_events(as_(ADMIN, events(vec![event("login", None)])))
        .await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );

    object_to(&server, &key, "analytics").await;
    let done = privacy
        .record_events(as_(&key, events(vec![event("page_view", None)])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.recorded, 0, "nothing is recorded after the objection");
}

#[tokio::test]
async fn exports_are_emailed_as_a_zip_once_a_day() {
    let server = Server::start().await;
    let (ada, key) = server.user("ada@example.com").await;
    let (bob, bob_key) = server.user("bob@example.com").await;
    let mut privacy = server.privacy();
    privacy
        .record_events(as_(&key, events(vec![event("login", None)])))
        .await
        .unwrap();

    let record = privacy
        .export_data(as_(&key, export_of(None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.user_id, ada);
    assert!(record.bytes > 0 && record.created_at.is_some());
    assert_eq!(record.areas.first().map(String::as_str), Some("profile"));
    assert!(
        record.areas.iter().any(|a| a == "events"),
        "{:?}",
        record.areas
    );
    let mail = server
        .outbox_to("ada@example.com")
        .await
        .into_iter()
        .find(|m| m.subject == "Your data export")
        .expect("the export is emailed");
    assert_eq!(mail.attachments.len(), 1);
    let zip = &mail.attachments[0];
    assert_eq!(zip.content_type, "application/zip");
    assert!(zip.filename.ends_with(".zip"), "{}", zip.filename);
    assert_eq!(zip.size as i64, record.bytes);
    assert!(
        zip.content_base64.starts_with("UEsDB"),
        "a ZIP file (PK\\x03\\x04)"
    );
    assert!(!mail.body.contains("http"), "no download link");

    // One a day, whoever asks.
    for r in [
        privacy.export_data(as_(&key, export_of(None))).await,
        privacy.export_data(as_(ADMIN, export_of(Some(&ada)))).await,
    ] {
        let status = r.expect_err("a second export within the day");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "export_rate_limited");
        let wait = details
            .retry_info()
            .expect("a RetryInfo")
            .retry_delay
            .expect("a delay")
            .as_secs();
        assert!((86_000..=86_400).contains(&wait), "{wait}");
    }

    // The admin exports any user; a user only themselves.
    let r = privacy
        .export_data(as_(&bob_key, export_of(Some(&ada))))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let r = privacy.export_data(as_(ADMIN, export_of(None))).await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );
    let r = privacy.export_data(export_of(None)).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let theirs = privacy
        .export_data(as_(ADMIN, export_of(Some(&bob))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs.user_id, bob);

    let records = privacy
        .list_audit(as_(ADMIN, audit(None, None)))
        .await
        .unwrap()
        .into_inner()
        .records;
    let exports: Vec<&str> = records
        .iter()
        .filter(|a| a.action == "export.sent")
        .map(|a| a.actor.as_str())
        .collect();
    assert_eq!(exports, ["admin", "user"], "newest first");
}

#[tokio::test]
async fn a_legal_hold_blocks_erasure_until_it_is_lifted() {
    let server = Server::start().await;
    let (ada, key) = server.user("ada@example.com").await;
    let (_, bob) = server.user("bob@example.com").await;
    let mut privacy = server.privacy();
    let placed = privacy
        .set_legal_hold(as_(ADMIN, hold(&ada, " case 42 ")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (placed.user_id.as_str(), placed.reason.as_str()),
        (ada.as_str(), "case 42")
    );
    assert!(placed.created_at.is_some());
    let r = privacy.erase_data(as_(&key, erase_of(None))).await;
    assert_eq!(refusal(r), (Code::Aborted, "legal_hold".into()));
    let me = server
        .users()
        .get_me(as_(&key, pb::GetMeRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.id, ada, "nothing was erased");

    // Holds are the admin's, need a reason and a user.
    let r = privacy.set_legal_hold(as_(ADMIN, hold(&ada, "  "))).await;
    assert_eq!(bad_fields(r), ["reason"]);
    let r = privacy
        .set_legal_hold(as_(ADMIN, hold(&ada, &"x".repeat(501))))
        .await;
    assert_eq!(bad_fields(r), ["reason"]);
    for user in ["0190a000-0000-7000-8000-000000000000", "nobody"] {
        let r = privacy.set_legal_hold(as_(ADMIN, hold(user, "case"))).await;
        assert_eq!(refusal(r), (Code::NotFound, "not_found".into()), "{user}");
    }
    let admin_only = (Code::PermissionDenied, "admin_only".to_string());
    let r = privacy.set_legal_hold(as_(&bob, hold(&ada, "mine"))).await;
    assert_eq!(refusal(r), admin_only);
    let r = privacy.clear_legal_hold(as_(&key, unhold(&ada))).await;
    assert_eq!(refusal(r), admin_only);
    let r = privacy.set_legal_hold(hold(&ada, "case")).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = privacy.clear_legal_hold(unhold(&ada)).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);

    let cleared = privacy
        .clear_legal_hold(as_(ADMIN, unhold(&ada)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared, pb::ClearLegalHoldResponse {});
    let r = privacy.clear_legal_hold(as_(ADMIN, unhold(&ada))).await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let erased = privacy
        .erase_data(as_(&key, erase_of(None)))
        .await
        .unwrap()
        .into_inner();
    assert!(erased.erased);
    assert_eq!(erased.areas["profile"].deleted, 1);
}

#[tokio::test]
async fn erasure_is_the_users_own_idempotent_and_kills_the_keys() {
    let server = Server::start().await;
    let (ada, key) = server.user("ada@example.com").await;
    let (bob, bob_key) = server.user("bob@example.com").await;
    let mut privacy = server.privacy();
    privacy
        .record_events(as_(&key, events(vec![event("a", None), event("b", None)])))
        .await
        .unwrap();
    let read_only = server
        .users()
        .create_key(as_(
            ADMIN,
            pb::CreateKeyRequest {
                user_id: ada.clone(),
                scopes: vec!["jobs:read".into(), "jobs:write".into()],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;

    let r = privacy
        .erase_data(as_(&bob_key, erase_of(Some(&ada))))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let r = privacy.erase_data(as_(&read_only, erase_of(None))).await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "insufficient_scope".into())
    );
    let r = privacy.erase_data(as_(ADMIN, erase_of(None))).await;
    assert_eq!(
        refusal(r),
        (Code::PermissionDenied, "user_key_required".into())
    );
    let r = privacy.erase_data(erase_of(None)).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);

    let erased = privacy
        .erase_data(as_(&key, erase_of(None)))
        .await
        .unwrap()
        .into_inner();
    assert!(erased.erased && erased.already_erased.is_none());
    assert_eq!(erased.tombstone.len(), 36);
    assert_ne!(erased.tombstone, ada);
    assert!(erased.erased_at.is_some());
    assert_eq!(
        (
            erased.areas["profile"].deleted,
            erased.areas["keys"].deleted
        ),
        (1, 2)
    );
    assert_eq!(erased.areas["events"].deleted, 2, "{:?}", erased.areas);
    for k in [&key, &read_only] {
        let r = server.users().get_me(as_(k, pb::GetMeRequest {})).await;
        assert_eq!(
            refusal(r).0,
            Code::Unauthenticated,
            "the keys died with the user"
        );
    }
    let again = privacy
        .erase_data(as_(ADMIN, erase_of(Some(&ada))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.already_erased, Some(true));
    assert_eq!(
        (again.tombstone.as_str(), again.areas.len()),
        (erased.tombstone.as_str(), erased.areas.len()),
        "the first erasure's summary"
    );
    let r = privacy
        .erase_data(as_(
            ADMIN,
            erase_of(Some("0190a000-0000-7000-8000-000000000000")),
        ))
        .await;
    assert_eq!(refusal(r), (Code::NotFound, "not_found".into()));
    let me = server
        .users()
        .get_me(as_(&bob_key, pb::GetMeRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.id, bob, "the others are untouched");
}

#[tokio::test]
async fn retention_sweeps_old_data_except_under_legal_hold() {
    let start = Utc::now();
    let clock = Arc::new(ManualClock::new(start));
    let server = Server::over(levqor(|b| b.clock(clock.clone()))).await;
    let (kept, kept_key) = server.user("kept@example.com").await;
    let (_, gone_key) = server.user("gone@example.com").await;
    let mut privacy = server.privacy();
    for key in [&kept_key, &gone_key] {
        privacy
            .record_events(as_(key, events(vec![event("a", None), event("b", None)])))
            .await
            .unwrap();
    }

    let defaults = privacy
        .get_retention_policies(as_(ADMIN, pb::GetRetentionPoliciesRequest {}))
        .await
        .unwrap()
        .into_inner();
    let expected: HashMap<String, i64> = [
        ("jobs", 90),
        ("step_outputs", 30),
        ("events", 365),
        ("audit", 2557),
        ("exports", 30),
        ("tokens", 30),
        ("outbox", 90),
        ("screenings", 365),
    ]
    .into_iter()
    .map(|(c, d)| (c.to_string(), d))
    .collect();
    assert_eq!(defaults.days, expected);
    let set = privacy
        .set_retention_policies(as_(
            ADMIN,
            pb::SetRetentionPoliciesRequest {
                days: HashMap::from([("events".to_string(), 30)]),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.days["events"], 30);
    assert_eq!(set.days["jobs"], 90, "classes left out keep their days");
    let r = privacy
        .set_retention_policies(as_(
            ADMIN,
            pb::SetRetentionPoliciesRequest {
                days: HashMap::from([
                    ("logs".to_string(), 3),
                    ("jobs".to_string(), 0),
                    ("outbox".to_string(), 40_000),
                ]),
            },
        ))
        .await;
    let mut fields = bad_fields(r);
    fields.sort();
    assert_eq!(fields, ["jobs", "logs", "outbox"]);
    let got = privacy
        .get_retention_policies(as_(ADMIN, pb::GetRetentionPoliciesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, set, "a refused change changes nothing");

    privacy
        .set_legal_hold(as_(ADMIN, hold(&kept, "case 42")))
        .await
        .unwrap();
    clock.advance(Duration::days(31));
    let dry = privacy
        .sweep_retention(as_(ADMIN, pb::SweepRetentionRequest { dry_run: true }))
        .await
        .unwrap()
        .into_inner();
    assert!(dry.dry_run);
    assert_eq!(dry.classes["events"], 2, "{dry:?}");
    assert_eq!(dry.classes.len(), 8);
    let again = privacy
        .sweep_retention(as_(ADMIN, pb::SweepRetentionRequest { dry_run: true }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.classes, dry.classes, "a dry run deletes nothing");
    let done = privacy
        .sweep_retention(as_(ADMIN, pb::SweepRetentionRequest { dry_run: false }))
        .await
        .unwrap()
        .into_inner();
    assert!(!done.dry_run);
    assert_eq!((done.classes["events"], done.held_users), (2, 1));
    assert_eq!(
        done.at.unwrap().seconds,
        (start + Duration::days(31)).timestamp(),
        "at the service's clock"
    );
    let after = privacy
        .sweep_retention(as_(ADMIN, pb::SweepRetentionRequest { dry_run: true }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.classes["events"], 0);

    let admin_only = (Code::PermissionDenied, "admin_only".to_string());
    let r = privacy
        .get_retention_policies(as_(&kept_key, pb::GetRetentionPoliciesRequest {}))
        .await;
    assert_eq!(refusal(r), admin_only);
    let r = privacy
        .set_retention_policies(as_(
            &kept_key,
            pb::SetRetentionPoliciesRequest {
                days: HashMap::from([("events".to_string(), 1)]),
            },
        ))
        .await;
    assert_eq!(refusal(r), admin_only);
    let r = privacy
        .sweep_retention(as_(&kept_key, pb::SweepRetentionRequest { dry_run: false }))
        .await;
    assert_eq!(refusal(r), admin_only);
    let r = privacy
        .sweep_retention(pb::SweepRetentionRequest { dry_run: true })
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = privacy
        .get_retention_policies(pb::GetRetentionPoliciesRequest {})
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = privacy
        .set_retention_policies(pb::SetRetentionPoliciesRequest {
            days: HashMap::from([("events".to_string(), 1)]),
        })
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
}

#[tokio::test]
async fn the_compliance_dashboard_and_the_audit_log() {
    let server = Server::start().await;
    let (ada, ada_key) = server.user("ada@example.com").await;
    let (bob, _) = server.user("bob@example.com").await;
    let (_, carol_key) = server.user("carol@example.com").await;
    let mut privacy = server.privacy();
    let mut consent = server.consent();
    consent
        .publish_terms(as_(
            ADMIN,
            pb::PublishTermsRequest {
                version: "v1".into(),
                changelog: "first".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    consent
        .accept_terms(as_(
            &ada_key,
            pb::AcceptTermsRequest {
                version: "v1".into(),
            },
        ))
        .await
        .unwrap();
    consent
        .subscribe(pb::SubscribeRequest {
            email: "ada@example.com".into(),
            categories: vec!["offers".into()],
        })
        .await
        .unwrap();
    object_to(&server, &ada_key, "profiling").await;
    let refused = server
        .jobs()
        .submit(as_(
            &ada_key,
            pb::SubmitRequest {
                workflow: Some(object(
                    json!({"name": "t", "steps": [{"id": "a", "type": "log", "message": "how to launder money"}]}),
                )),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(refusal(refused).1, "high_risk_content");
    privacy
        .export_data(as_(&ada_key, export_of(None)))
        .await
        .unwrap();
    privacy
        .set_legal_hold(as_(ADMIN, hold(&bob, "case 7")))
        .await
        .unwrap();
    privacy
        .erase_data(as_(&carol_key, erase_of(None)))
        .await
        .unwrap();

    let d = privacy
        .get_compliance(as_(ADMIN, pb::GetComplianceRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        d.terms,
        Some(pb::TermsCounts {
            current_version: Some("v1".into()),
            users: 2,
            accepted_current: 1,
            acceptance_rate: 0.5
        })
    );
    let marketing = d.marketing.unwrap();
    assert_eq!(marketing.by_status.get("pending"), Some(&1));
    assert_eq!(
        marketing
            .subscribed_by_category
            .get("offers")
            .copied()
            .unwrap_or_default(),
        0,
        "not confirmed"
    );
    assert_eq!(d.objections.get("profiling"), Some(&1));
    let screening = d.screening.unwrap();
    assert_eq!(screening.verdicts.get("block"), Some(&1));
    assert_eq!(
        json(&screening.matches_by_category_and_severity.unwrap()),
        json!({"financial": {"critical": 2.0}})
    );
    assert_eq!((d.exports, d.erasures, d.legal_holds), (1, 1, 1));

    // The audit log, newest first, a page at a time, with no personal data.
    let first = privacy
        .list_audit(as_(ADMIN, audit(Some(2), None)))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<(&str, &str)> = first
        .records
        .iter()
        .map(|a| (a.action.as_str(), a.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("user.erased", "user"), ("legal_hold.placed", "admin")]
    );
    assert!(
        first.records[0]
            .subject
            .as_ref()
            .is_some_and(|s| s.len() == 64)
    );
    let erased = json(first.records[0].detail.as_ref().unwrap());
    assert_eq!(erased["erased"], true, "{erased}");
    let rest = privacy
        .list_audit(as_(ADMIN, audit(Some(100), first.next_cursor.as_deref())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.next_cursor, None);
    let actions: Vec<&str> = rest.records.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["export.sent", "terms.published"], "{actions:?}");
    let all = format!("{}{}", json(&first), json(&rest));
    assert!(!all.contains("@example.com"), "no email in the audit log");
    assert!(!all.contains(&ada), "no user id in the audit log");

    let r = privacy
        .list_audit(as_(ADMIN, audit(Some(101), Some("zzz"))))
        .await;
    assert_eq!(bad_fields(r), ["limit", "cursor"]);
    let admin_only = (Code::PermissionDenied, "admin_only".to_string());
    let r = privacy
        .get_compliance(as_(&ada_key, pb::GetComplianceRequest {}))
        .await;
    assert_eq!(refusal(r), admin_only);
    let r = privacy.list_audit(as_(&ada_key, audit(None, None))).await;
    assert_eq!(refusal(r), admin_only);
    let r = privacy.get_compliance(pb::GetComplianceRequest {}).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = privacy.list_audit(audit(None, None)).await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
}
