//! `levqor.v1.MessagesService` through the generated client: the outbox, as the admin reads
//! it.

mod support;

use levqor_grpc::pb;
use serde_json::json;
use support::*;
use tokio_stream::StreamExt;
use tonic::Code;

fn page(limit: Option<u32>, cursor: Option<&str>) -> pb::ListOutboxRequest {
    pb::ListOutboxRequest {
        limit,
        cursor: cursor.map(str::to_string),
    }
}

#[tokio::test]
async fn the_outbox_lists_every_email_newest_first_a_page_at_a_time() {
    let server = Server::start().await;
    let (ada, key) = server.user("ada@example.com").await;
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        server
            .consent()
            .subscribe(pb::SubscribeRequest {
                email: email.into(),
                categories: vec!["events".into()],
            })
            .await
            .unwrap();
    }
    let export = server
        .privacy()
        .export_data(as_(&key, pb::ExportDataRequest { user_id: None }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(export.user_id, ada);

    let mut messages = server.messages();
    let all = messages
        .list_outbox(as_(ADMIN, page(None, None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.next_cursor, None);
    let to: Vec<&str> = all.messages.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(
        to,
        [
            "ada@example.com",
            "c@example.com",
            "b@example.com",
            "a@example.com"
        ],
        "newest first"
    );
    for m in &all.messages {
        assert!(uuid::Uuid::parse_str(&m.id).is_ok(), "{m:?}");
        assert_eq!(
            (m.channel.as_str(), m.kind.as_str(), m.job_id.as_deref()),
            ("email", "transactional", None)
        );
        assert!(m.created_at.is_some());
    }
    let confirm = &all.messages[1];
    assert_eq!(confirm.subject, "Confirm your subscription");
    assert!(
        confirm.body.contains("/v1/marketing/confirm?token="),
        "{}",
        confirm.body
    );
    assert!(confirm.attachments.is_empty());
    let mail = &all.messages[0];
    assert_eq!(mail.subject, "Your data export");
    assert_eq!(mail.attachments.len(), 1);
    let zip = &mail.attachments[0];
    assert_eq!(zip.content_type, "application/zip");
    assert!(zip.filename.starts_with("levqor-export-") && zip.filename.ends_with(".zip"));
    assert_eq!(zip.size as i64, export.bytes);
    assert_eq!(
        zip.content_base64.len(),
        (zip.size as usize).div_ceil(3) * 4,
        "standard base64 of the bytes"
    );

    // Pages follow the cursor to the end.
    let first = messages
        .list_outbox(as_(ADMIN, page(Some(3), None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.messages, all.messages[..3]);
    assert_eq!(
        first.next_cursor.as_deref(),
        Some(all.messages[2].id.as_str())
    );
    let second = messages
        .list_outbox(as_(ADMIN, page(Some(3), first.next_cursor.as_deref())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.messages, all.messages[3..]);
    assert_eq!(second.next_cursor, None);
}

#[tokio::test]
async fn the_outbox_is_the_admins_and_bad_pages_name_their_fields() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut messages = server.messages();
    let r = messages.list_outbox(as_(&key, page(None, None))).await;
    assert_eq!(refusal(r), (Code::PermissionDenied, "admin_only".into()));
    let r = messages.list_outbox(page(None, None)).await;
    assert_eq!(
        refusal(r),
        (Code::Unauthenticated, "unauthenticated".into())
    );
    let r = messages
        .list_outbox(as_(ADMIN, page(Some(0), Some("zzz"))))
        .await;
    assert_eq!(bad_fields(r), ["limit", "cursor"]);
    let r = messages
        .list_outbox(as_(ADMIN, page(Some(101), None)))
        .await;
    assert_eq!(bad_fields(r), ["limit"]);
    let empty = messages
        .list_outbox(as_(ADMIN, page(Some(100), None)))
        .await
        .unwrap()
        .into_inner();
    assert!(empty.messages.is_empty() && empty.next_cursor.is_none());
}

#[tokio::test]
async fn an_email_step_lands_in_the_outbox_with_its_job() {
    let server = Server::with_engine().await;
    let (_, key) = server.user("ada@example.com").await;
    let workflow = object(json!({"name": "mail", "steps": [
        {"id": "a", "type": "log", "message": "start"},
        {"id": "e", "type": "email", "to": "{{input.to}}", "subject": "Hi {{input.name}}", "body": "started at {{steps.a.output.message}}"}
    ]}));
    let input = json!({"to": "vip@example.com", "name": "Vip"});
    let job = submitted_job(&mut server.jobs(), &key, workflow, Some(input)).await;
    let mut events = server.watch(&key, &job.id).await;
    let mut last = None;
    while let Some(event) = events.next().await {
        last = event.unwrap().job;
    }
    assert_eq!(last.map(|j| j.status), Some("succeeded".to_string()));

    let outbox = server
        .messages()
        .list_outbox(as_(ADMIN, page(None, None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outbox.messages.len(), 1, "{outbox:?}");
    let m = &outbox.messages[0];
    assert_eq!(
        (
            m.to.as_str(),
            m.subject.as_str(),
            m.body.as_str(),
            m.kind.as_str()
        ),
        (
            "vip@example.com",
            "Hi Vip",
            "started at start",
            "transactional"
        )
    );
    assert_eq!(m.job_id.as_deref(), Some(job.id.as_str()));
}

#[tokio::test]
async fn one_message_shows_its_delivery_and_a_failed_one_can_be_retried_once() {
    use levqor_core::notify::{DeliveryStatus, Email, EmailKind, OutboxMessage};
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut failed = OutboxMessage::email(
        &Email {
            to: "bounced@example.com".into(),
            subject: "s".into(),
            body: "b".into(),
            job_id: None,
            attachments: Vec::new(),
            ..Default::default()
        },
        EmailKind::Transactional,
        chrono::Utc::now(),
    );
    failed.delivery.status = DeliveryStatus::Failed;
    failed.delivery.attempts = 10;
    failed.delivery.last_error = Some("503 down".into());
    server.levqor.store().push_outbox(&failed).await.unwrap();
    let id = failed.id.to_string();

    let mut messages = server.messages();
    let entry = messages
        .get_outbox_message(as_(ADMIN, pb::GetOutboxMessageRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    let m = entry.message.unwrap();
    assert_eq!(
        (m.id.as_str(), m.status.as_str(), m.attempts),
        (id.as_str(), "failed", 10)
    );
    assert_eq!(m.last_error.as_deref(), Some("503 down"));
    assert!(m.next_attempt_at.is_some() && m.sent_at.is_none());
    assert!(entry.attempts.is_empty());

    let retried = messages
        .retry_outbox_message(as_(ADMIN, pb::RetryOutboxMessageRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.message.unwrap().status, "pending");
    let again = messages
        .retry_outbox_message(as_(ADMIN, pb::RetryOutboxMessageRequest { id: id.clone() }))
        .await;
    assert_eq!(refusal(again), (Code::Aborted, "not_retryable".into()));

    let r = messages
        .get_outbox_message(as_(&key, pb::GetOutboxMessageRequest { id: id.clone() }))
        .await;
    assert_eq!(refusal(r), (Code::PermissionDenied, "admin_only".into()));
    let r = messages
        .retry_outbox_message(pb::RetryOutboxMessageRequest { id: id.clone() })
        .await;
    assert_eq!(refusal(r).0, Code::Unauthenticated);
    let r = messages
        .get_outbox_message(as_(
            ADMIN,
            pb::GetOutboxMessageRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await;
    assert_eq!(refusal(r).0, Code::NotFound);
    let r = messages
        .get_outbox_message(as_(
            ADMIN,
            pb::GetOutboxMessageRequest { id: "nope".into() },
        ))
        .await;
    assert_eq!(refusal(r).0, Code::NotFound);
}

#[tokio::test]
async fn templates_are_listed_and_previewed_for_the_admin_only() {
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    let mut messages = server.messages();
    let list = messages
        .list_templates(as_(ADMIN, pb::ListTemplatesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(list.templates.contains(&"marketing".to_string()));
    assert!(list.overridden.is_empty());
    let preview = messages
        .preview_template(as_(
            ADMIN,
            pb::PreviewTemplateRequest {
                name: "marketing_confirm".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preview.subject, "Confirm your subscription");
    assert!(preview.text.contains("confirm?token=sample"));
    assert!(preview.html.contains("Confirm my subscription"));
    let r = messages
        .preview_template(as_(
            ADMIN,
            pb::PreviewTemplateRequest {
                name: "nope".into(),
            },
        ))
        .await;
    assert_eq!(refusal(r).0, Code::NotFound);
    let r = messages
        .list_templates(as_(&key, pb::ListTemplatesRequest {}))
        .await;
    assert_eq!(refusal(r), (Code::PermissionDenied, "admin_only".into()));
}

#[tokio::test]
async fn suppressions_are_listed_and_lifted_by_the_admin() {
    use levqor_core::notify::{Suppression, SuppressionReason};
    let server = Server::start().await;
    let (_, key) = server.user("ada@example.com").await;
    server
        .levqor
        .store()
        .suppress(&Suppression {
            id: uuid::Uuid::now_v7(),
            email: "gone@example.com".into(),
            reason: SuppressionReason::HardBounce,
            detail: Some("550 no such user".into()),
            event_id: Some("msg_1".into()),
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let mut messages = server.messages();
    let list = messages
        .list_suppressions(as_(
            ADMIN,
            pb::ListSuppressionsRequest {
                limit: None,
                cursor: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.suppressions.len(), 1);
    let s = &list.suppressions[0];
    assert_eq!(
        (s.email.as_str(), s.reason.as_str(), s.detail.as_deref()),
        ("gone@example.com", "hard_bounce", Some("550 no such user"))
    );
    let r = messages
        .list_suppressions(as_(
            &key,
            pb::ListSuppressionsRequest {
                limit: None,
                cursor: None,
            },
        ))
        .await;
    assert_eq!(refusal(r), (Code::PermissionDenied, "admin_only".into()));
    let lifted = messages
        .remove_suppression(as_(
            ADMIN,
            pb::RemoveSuppressionRequest {
                email: "Gone@Example.com".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lifted.reason, "hard_bounce");
    let r = messages
        .remove_suppression(as_(
            ADMIN,
            pb::RemoveSuppressionRequest {
                email: "gone@example.com".into(),
            },
        ))
        .await;
    assert_eq!(refusal(r).0, Code::NotFound);
    let r = messages
        .remove_suppression(as_(
            ADMIN,
            pb::RemoveSuppressionRequest {
                email: "nope".into(),
            },
        ))
        .await;
    assert_eq!(refusal(r).0, Code::InvalidArgument);
}
