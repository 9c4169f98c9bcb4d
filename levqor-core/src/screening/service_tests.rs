//! The screening service against its ports, with its intake stage in front of a jobs service:
//! free-text verdicts, the rule set in force and its replacement, what the stage does with
//! each severity, and appeals against refusals from the owner's request to the admin's decision.

use super::*;
use crate::audit::{Actor, AuditRecord, audit_subject};
use crate::auth::Principal;
use crate::credits::{Credits, Grant};
use crate::error::ErrorKind;
use crate::jobs::Jobs;
use crate::jobs::intake::{SubmitRequest, Submitted};
use crate::jobs::model::JobStatus;
use crate::notify::{OutboxMessage, OutboxStore};
use crate::settings::SettingsStore;
use crate::testing::{Base, t0};
use chrono::Duration;
use serde_json::{Value, json};
use std::fmt::Debug;
use std::sync::Arc;
use uuid::Uuid;

const ADMIN: &Principal = &Principal::Admin;
const NOT_FOUND: (ErrorKind, &str) = (ErrorKind::NotFound, "not_found");
const ADMIN_ONLY: (ErrorKind, &str) = (ErrorKind::Forbidden, "admin_only");
const NO_PENDING: (ErrorKind, &str) = (ErrorKind::Conflict, "no_pending_appeal");

/// The error's kind and code.
fn failure<T: Debug>(r: Result<T>) -> (ErrorKind, &'static str) {
    let e = r.unwrap_err();
    (e.kind, e.code)
}

/// The pointers of a `validation_failed` error's violations.
fn pointers<T: Debug>(r: Result<T>) -> Vec<String> {
    let e = r.unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::Invalid, "validation_failed"));
    e.violations.into_iter().map(|v| v.pointer).collect()
}

/// A workflow that logs `message`.
fn logs(message: &str) -> Value {
    json!({"name": "t", "steps": [{"id": "a", "type": "log", "message": message}]})
}

fn request(message: &str, input: Value) -> SubmitRequest {
    SubmitRequest {
        workflow: logs(message),
        input,
        max_attempts: None,
        run_after: None,
        idempotency_key: None,
    }
}

/// A rule set document of `(term, category, severity)`.
fn rule_set(rules: &[(&str, &str, &str)]) -> Value {
    let rules: Vec<Value> = rules
        .iter()
        .map(|(t, c, s)| json!({"term": t, "category": c, "severity": s}))
        .collect();
    json!({ "rules": rules })
}

/// One term of each severity.
fn custom() -> Value {
    rule_set(&[
        ("quantum widget", "financial", "critical"),
        ("gizmo", "legal", "high"),
        ("sprocket", "medical", "medium"),
        ("doohickey", "financial", "low"),
    ])
}

struct World {
    base: Base,
    s: Screenings,
    jobs: Arc<Jobs>,
    credits: Arc<Credits>,
}

/// The screening service, over a jobs service whose intake screens with the same rules.
fn world() -> World {
    let base = Base::new();
    let rules = Arc::new(RuleCache::new(base.store.clone()));
    let stage = Arc::new(ScreenStage::new(rules.clone(), base.store.clone()));
    let jobs = Arc::new(base.jobs(vec![stage]));
    let credits = Arc::new(base.credits());
    let s = Screenings {
        store: base.store.clone(),
        settings: base.store.clone(),
        rules,
        jobs: jobs.clone(),
        credits: credits.clone(),
        users: base.store.clone(),
        messages: base.messages.clone(),
        audit: base.audit.clone(),
        clock: base.clock.clone(),
    };
    World {
        base,
        s,
        jobs,
        credits,
    }
}

impl World {
    async fn submit(&self, who: &Principal, message: &str, input: Value) -> Result<Submitted> {
        self.jobs.submit(who, request(message, input)).await
    }

    /// Submits `request`, which screening refuses; the id the job would have had.
    async fn refuse(&self, who: &Principal, request: SubmitRequest) -> Uuid {
        let e = self.jobs.submit(who, request).await.unwrap_err();
        assert_eq!((e.kind, e.code), (ErrorKind::Invalid, "high_risk_content"));
        let id = e.details.unwrap()["job_id"].as_str().unwrap().to_string();
        id.parse().unwrap()
    }

    /// A refused job of `who`, appealed.
    async fn appealed(&self, who: &Principal) -> Uuid {
        let id = self.refuse(who, request("launder money", json!({}))).await;
        self.s.appeal(who, id, "a training course").await.unwrap();
        id
    }

    /// A job of `who` admitted with a screening record (`held` or warned).
    async fn screened(&self, who: &Principal, held: bool) -> Uuid {
        let text = if held { "oxycodone" } else { "mortgage" };
        let submitted = self.submit(who, text, json!({})).await.unwrap();
        submitted.admission.job().id
    }

    async fn record(&self, id: Uuid) -> Option<ScreeningRecord> {
        self.base.store.get_screening(id).await.unwrap()
    }

    async fn audit(&self, action: &str) -> Vec<AuditRecord> {
        let store = self.base.audit.store();
        store.find_audit(action, None).await.unwrap()
    }

    /// Emails to `to`, newest first.
    async fn mails_to(&self, to: &str) -> Vec<OutboxMessage> {
        let mut all = self.base.store.list_outbox(None, 1000).await.unwrap();
        all.retain(|m| m.to == to);
        all
    }

    async fn fund(&self, user_id: Uuid, credits: i64) {
        let grant = Grant {
            credits,
            reason: None,
            expires_at: None,
            priority: 0,
            idempotency_key: "fund".into(),
        };
        self.credits.grant(ADMIN, user_id, grant).await.unwrap();
    }

    async fn held(&self, who: &Principal) -> i64 {
        self.credits.balance(who, None).await.unwrap().held
    }

    async fn stored_rules(&self) -> Option<Value> {
        self.base
            .store
            .get_setting("screening_rules")
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn free_text_gets_the_verdict_of_its_worst_match() {
    let w = world();
    let cases = [
        ("I need a divorce lawyer", Verdict::Warn, 3),
        ("I saw my doctor", Verdict::Allow, 1),
        ("renew my oxycodone", Verdict::Hold, 1),
        ("my doctor says how to launder money", Verdict::Block, 3),
        ("lovely weather today", Verdict::Allow, 0),
    ];
    for (text, verdict, matches) in cases {
        let screening = w.s.screen_text(text).await.unwrap();
        assert_eq!(screening.verdict, verdict, "{text}");
        assert_eq!(screening.matches.len(), matches, "{text}");
        assert!(screening.matches.iter().all(|m| m.pointer == "/text"));
    }
    let divorce = w.s.screen_text("I need a divorce lawyer").await.unwrap();
    let found: Vec<_> = divorce.matches.iter().map(|m| m.term.as_str()).collect();
    assert_eq!(
        found,
        ["divorce", "legal.matter_for_a_professional", "lawyer"]
    );
    assert!(
        divorce
            .matches
            .iter()
            .all(|m| m.category == Category::Legal)
    );
}

#[tokio::test]
async fn only_the_admin_reads_or_replaces_the_rules() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    assert_eq!(w.s.rules(ADMIN).await.unwrap(), default_rules());
    assert_eq!(failure(w.s.rules(&who).await), ADMIN_ONLY);
    assert_eq!(failure(w.s.set_rules(&who, custom()).await), ADMIN_ONLY);
    assert_eq!(w.s.rules(ADMIN).await.unwrap(), default_rules());
    assert_eq!(w.stored_rules().await, None);
    assert!(w.audit("screening.rules_replaced").await.is_empty());
    let verdict = w.s.screen_text("a gizmo").await.unwrap().verdict;
    assert_eq!(verdict, Verdict::Allow, "the defaults still screen");
}

#[tokio::test]
async fn a_new_rule_set_is_used_at_once_by_the_stage_and_the_service_and_is_audited() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let before = w.s.screen_text("one sprocket please").await.unwrap();
    assert_eq!(before.verdict, Verdict::Allow, "the defaults, now read");
    let set = w.s.set_rules(ADMIN, custom()).await.unwrap();
    let expected: RuleSet = serde_json::from_value(custom()).unwrap();
    assert_eq!(set, expected);
    assert_eq!(w.s.rules(ADMIN).await.unwrap(), expected);
    assert_eq!(
        w.stored_rules().await,
        Some(custom()),
        "shared with every node"
    );
    let elsewhere = RuleCache::new(w.base.store.clone()).current().await;
    assert_eq!(elsewhere.unwrap().rules(), &expected);

    let audited = w.audit("screening.rules_replaced").await;
    assert_eq!(audited.len(), 1);
    let record = &audited[0];
    assert_eq!(
        (record.actor, record.subject.as_deref()),
        (Actor::Admin, None)
    );
    assert_eq!(record.detail, json!({"rules": 4, "lists": 0, "intents": 0}));

    let screening = w.s.screen_text("one sprocket please").await.unwrap();
    assert_eq!(screening.verdict, Verdict::Warn);
    let e = w.submit(&who, "sell the Quantum-Widget", json!({})).await;
    assert_eq!(failure(e), (ErrorKind::Invalid, "high_risk_content"));
    let old = w
        .submit(&who, "how to launder money", json!({}))
        .await
        .unwrap();
    assert_eq!(old.admission.job().status, JobStatus::Queued);
    assert_eq!(old.screening, None, "the old rules are gone");
}

#[tokio::test]
async fn a_bad_rule_set_is_refused_with_every_violation_and_changes_nothing() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    w.s.set_rules(ADMIN, custom()).await.unwrap();
    let long = "x".repeat(101);
    let bad = rule_set(&[
        ("", "legal", "low"),
        (&long, "legal", "low"),
        ("gizmo", "legal", "low"),
        (" GIZMO ", "medical", "high"),
    ]);
    let at = ["/rules/0/term", "/rules/1/term", "/rules/3/term"];
    assert_eq!(pointers(w.s.set_rules(ADMIN, bad).await), at);
    let astrology = rule_set(&[("x", "astrology", "low")]);
    assert_eq!(
        pointers(w.s.set_rules(ADMIN, astrology).await),
        ["/rules/0/category"]
    );
    assert_eq!(pointers(w.s.set_rules(ADMIN, json!([1])).await), ["/0"]);

    let expected: RuleSet = serde_json::from_value(custom()).unwrap();
    assert_eq!(w.s.rules(ADMIN).await.unwrap(), expected);
    assert_eq!(w.stored_rules().await, Some(custom()));
    assert_eq!(w.audit("screening.rules_replaced").await.len(), 1);
    let e = w.submit(&who, "a quantum widget", json!({})).await;
    assert_eq!(
        failure(e).1,
        "high_risk_content",
        "the set in force still screens"
    );
}

#[tokio::test]
async fn the_stage_refuses_critical_content_and_keeps_the_request_for_an_appeal() {
    let w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    let sent = SubmitRequest {
        max_attempts: Some(5),
        ..request("how to launder money offshore", json!({"a": 1}))
    };
    let e = w.jobs.submit(&who, sent.clone()).await.unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::Invalid, "high_risk_content"));
    let details = e.details.unwrap();
    let id: Uuid = details["job_id"].as_str().unwrap().parse().unwrap();
    let screening = &details["screening"];
    assert_eq!(screening["verdict"], "block");
    let m = &screening["matches"][0];
    assert_eq!(
        (&m["category"], &m["severity"], &m["pointer"]),
        (
            &json!("financial"),
            &json!("critical"),
            &json!("/workflow/steps/0/message")
        )
    );

    let record = w.record(id).await.expect("the refusal is recorded");
    assert_eq!((record.user_id, record.created_at), (ada.id, t0()));
    assert_eq!(record.screening.verdict, Verdict::Block);
    assert_eq!(record.appeal_status, None);
    let kept = json!({"workflow": sent.workflow, "input": {"a": 1}, "max_attempts": 5,
                      "run_after": null});
    assert_eq!(record.request, Some(kept));
    assert_eq!(
        failure(w.jobs.get(&who, id).await),
        NOT_FOUND,
        "not admitted"
    );
    let listed = w.jobs.list(ADMIN, None, None, None).await.unwrap();
    assert!(listed.items.is_empty());
}

#[tokio::test]
async fn the_stage_holds_high_content_for_approval() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let input = json!({"text": "renew my oxycodone prescription"});
    let submitted = w.submit(&who, "note", input).await.unwrap();
    let job = submitted.admission.job();
    assert_eq!(job.status, JobStatus::AwaitingApproval);
    let codes: Vec<_> = submitted.warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, ["held_for_approval"]);
    let screening = submitted.screening.unwrap();
    assert_eq!(screening["verdict"], "hold");
    assert_eq!(screening["matches"][0]["pointer"], "/input/text");
    let record = w.record(job.id).await.expect("recorded");
    assert_eq!(
        (record.screening.verdict, record.request),
        (Verdict::Hold, None)
    );
}

#[tokio::test]
async fn the_stage_admits_medium_content_with_a_warning() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let submitted = w.submit(&who, "ask about my mortgage", json!({})).await;
    let submitted = submitted.unwrap();
    let job = submitted.admission.job();
    assert_eq!(job.status, JobStatus::Queued);
    let codes: Vec<_> = submitted.warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, ["high_risk_content"]);
    assert_eq!(submitted.screening.unwrap()["verdict"], "warn");
    let record = w.record(job.id).await.expect("recorded");
    assert_eq!(record.screening.verdict, Verdict::Warn);
}

#[tokio::test]
async fn the_stage_allows_low_content_and_keeps_no_record() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let low = w.submit(&who, "I saw my doctor", json!({})).await.unwrap();
    let job = low.admission.job();
    assert_eq!(job.status, JobStatus::Queued);
    assert!(low.warnings.is_empty());
    assert_eq!(low.screening.unwrap()["verdict"], "allow");
    assert_eq!(w.record(job.id).await, None);
    let clean = w.submit(&who, "lovely weather", json!({})).await.unwrap();
    assert_eq!(clean.screening, None);
    assert_eq!(w.record(clean.admission.job().id).await, None);
}

#[tokio::test]
async fn the_owner_appeals_a_refusal_once() {
    let w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    let id = w.refuse(&who, request("launder money", json!({}))).await;
    w.base.clock.advance(Duration::minutes(10));
    let appealed = w.s.appeal(&who, id, "  it is training material ").await;
    let appealed = appealed.unwrap();
    assert_eq!(appealed.appeal_status, Some(AppealStatus::Pending));
    let reason = appealed.appeal_reason.as_deref();
    assert_eq!(reason, Some("it is training material"));
    assert_eq!(appealed.updated_at, t0() + Duration::minutes(10));
    assert_eq!(w.record(id).await, Some(appealed), "stored");
    let audited = w.audit("screening.appealed").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].subject, Some(audit_subject(ada.id)));
    assert_eq!(audited[0].detail, json!({"job_id": id}));
    let r = w.s.appeal(&who, id, "again").await;
    assert_eq!(failure(r), (ErrorKind::Conflict, "already_appealed"));
    assert_eq!(w.audit("screening.appealed").await.len(), 1);
}

#[tokio::test]
async fn only_the_owner_appeals_and_only_a_refusal() {
    let w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    let (_, bob) = w.base.user("bob@example.com").await;
    let id = w.refuse(&who, request("launder money", json!({}))).await;
    let reason = "a training course";
    assert_eq!(failure(w.s.appeal(&bob, id, reason).await), NOT_FOUND);
    let r = w.s.appeal(&who, Uuid::now_v7(), reason).await;
    assert_eq!(failure(r), NOT_FOUND);
    let users = &w.base.users;
    let issued = users.create_key(ADMIN, ada.id, Some(vec!["jobs:read".into()]));
    let read_only = users.authenticate(&issued.await.unwrap().secret).await;
    let r = w.s.appeal(&read_only.unwrap(), id, reason).await;
    assert_eq!(failure(r), (ErrorKind::Forbidden, "insufficient_scope"));
    assert_eq!(w.record(id).await.unwrap().appeal_status, None);
    for held in [true, false] {
        let screened = w.screened(&who, held).await;
        let r = w.s.appeal(&who, screened, reason).await;
        assert_eq!(failure(r), (ErrorKind::Conflict, "not_appealable"));
        assert_eq!(w.record(screened).await.unwrap().appeal_status, None);
    }
    assert!(w.audit("screening.appealed").await.is_empty());
}

#[tokio::test]
async fn an_appeal_needs_a_reason_of_1_to_2000_characters() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let id = w.refuse(&who, request("launder money", json!({}))).await;
    for bad in [String::new(), "   ".into(), "x".repeat(2001)] {
        let r = w.s.appeal(&who, id, &bad).await;
        assert_eq!(pointers(r), ["/reason"], "{} characters", bad.len());
    }
    assert_eq!(w.record(id).await.unwrap().appeal_status, None);
    let longest = "é".repeat(2000);
    let appealed = w.s.appeal(&who, id, &longest).await.unwrap();
    assert_eq!(
        appealed.appeal_reason,
        Some(longest),
        "characters, not bytes"
    );
}

#[tokio::test]
async fn pending_appeals_are_listed_to_the_admin_newest_first() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let first = w.appealed(&who).await;
    w.refuse(&who, request("launder money", json!({}))).await;
    w.screened(&who, true).await;
    let last = w.appealed(&who).await;
    let ids = |records: Vec<ScreeningRecord>| -> Vec<Uuid> {
        records.into_iter().map(|r| r.id).collect()
    };
    let pending = w.s.pending_appeals(ADMIN).await.unwrap();
    assert_eq!(ids(pending), [last, first]);
    assert_eq!(failure(w.s.pending_appeals(&who).await), ADMIN_ONLY);
    w.s.decide_appeal(ADMIN, last, false, None).await.unwrap();
    let pending = w.s.pending_appeals(ADMIN).await.unwrap();
    assert_eq!(
        ids(pending),
        [first],
        "a decided appeal is no longer pending"
    );
}

#[tokio::test]
async fn pending_appeals_are_found_among_any_number_of_records() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let oldest = w.appealed(&who).await;
    let template = w.record(oldest).await.unwrap();
    for _ in 0..1100 {
        let quiet = ScreeningRecord {
            id: Uuid::now_v7(),
            appeal_status: None,
            ..template.clone()
        };
        w.base.store.put_screening(&quiet).await.unwrap();
    }
    let newest = w.appealed(&who).await;
    let pending = w.s.pending_appeals(ADMIN).await.unwrap();
    let ids: Vec<Uuid> = pending.iter().map(|r| r.id).collect();
    assert_eq!(ids, [newest, oldest]);
}

#[tokio::test]
async fn approving_an_appeal_admits_the_refused_request_under_its_id_and_holds_its_price() {
    let w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    w.fund(ada.id, 100).await;
    let run_after = t0() + Duration::hours(2);
    let sent = SubmitRequest {
        max_attempts: Some(5),
        run_after: Some(run_after),
        ..request("how to launder money", json!({"a": 1}))
    };
    let id = w.refuse(&who, sent.clone()).await;
    w.s.appeal(&who, id, "a training course").await.unwrap();
    w.base.clock.advance(Duration::minutes(5));
    let note = Some("training material");
    let decision = w.s.decide_appeal(ADMIN, id, true, note).await.unwrap();
    let appeal = &decision.appeal;
    assert_eq!(appeal.appeal_status, Some(AppealStatus::Approved));
    assert_eq!(appeal.decision_note.as_deref(), note);
    assert_eq!(w.record(id).await.as_ref(), Some(appeal), "stored");

    let job = decision.job.expect("admitted");
    assert_eq!(
        (job.id, job.owner_id, job.status),
        (id, ada.id, JobStatus::Queued)
    );
    assert_eq!((&job.workflow, &job.input), (&sent.workflow, &sent.input));
    assert_eq!((job.max_attempts, job.run_after), (5, run_after));
    assert_eq!(w.jobs.get(&who, id).await.unwrap(), job);
    let price = w.credits.quote(&who, &sent.workflow).await.unwrap().credits;
    assert!(price > 0);
    assert_eq!(w.held(&who).await, price, "its price is held");

    let audited = w.audit("screening.appeal_approved").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].subject, Some(audit_subject(ada.id)));
    let mails = w.mails_to("ada@example.com").await;
    assert_eq!(mails.len(), 1);
    let subject = format!("Your appeal for job {id} was approved");
    assert_eq!((&mails[0].subject, mails[0].job_id), (&subject, Some(id)));
    assert_eq!(mails[0].body, "The job was admitted and will run.");

    let r = w.s.decide_appeal(ADMIN, id, false, None).await;
    assert_eq!(failure(r), NO_PENDING);
    assert_eq!(
        w.jobs.get(&who, id).await.unwrap().status,
        JobStatus::Queued
    );
    assert_eq!(w.mails_to("ada@example.com").await.len(), 1);
    assert!(w.s.pending_appeals(ADMIN).await.unwrap().is_empty());
}

#[tokio::test]
async fn denying_an_appeal_keeps_the_refusal_and_tells_the_user_why() {
    let w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    w.fund(ada.id, 100).await;
    for (note, body) in [
        (
            Some("not allowed here"),
            "The refusal stands: not allowed here",
        ),
        (None, "The refusal stands."),
    ] {
        let id = w.appealed(&who).await;
        let decision = w.s.decide_appeal(ADMIN, id, false, note).await.unwrap();
        let appeal = &decision.appeal;
        assert_eq!(appeal.appeal_status, Some(AppealStatus::Denied));
        assert_eq!(appeal.decision_note.as_deref(), note);
        assert_eq!(decision.job, None);
        assert_eq!(w.record(id).await.as_ref(), Some(appeal));
        assert_eq!(failure(w.jobs.get(&who, id).await), NOT_FOUND);
        let mail = w.mails_to("ada@example.com").await.remove(0);
        let subject = format!("Your appeal for job {id} was denied");
        assert_eq!((mail.subject, mail.body.as_str()), (subject, body));
        let r = w.s.decide_appeal(ADMIN, id, true, None).await;
        assert_eq!(failure(r), NO_PENDING);
    }
    assert_eq!(w.held(&who).await, 0, "nothing held");
    assert_eq!(w.audit("screening.appeal_denied").await.len(), 2);
    assert!(w.audit("screening.appeal_approved").await.is_empty());
}

#[tokio::test]
async fn only_the_admin_decides_and_only_a_pending_appeal() {
    let w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    w.fund(ada.id, 100).await;
    let pending = w.appealed(&who).await;
    let r = w.s.decide_appeal(&who, pending, true, None).await;
    assert_eq!(failure(r), ADMIN_ONLY);
    let status = w.record(pending).await.unwrap().appeal_status;
    assert_eq!(status, Some(AppealStatus::Pending));
    let r = w.s.decide_appeal(ADMIN, Uuid::now_v7(), true, None).await;
    assert_eq!(failure(r), NOT_FOUND);
    let unappealed = w.refuse(&who, request("launder money", json!({}))).await;
    let held = w.screened(&who, true).await;
    for id in [unappealed, held] {
        let r = w.s.decide_appeal(ADMIN, id, true, None).await;
        assert_eq!(failure(r), NO_PENDING);
    }
    assert_eq!(failure(w.jobs.get(&who, unappealed).await), NOT_FOUND);
    assert!(w.mails_to("ada@example.com").await.is_empty());
}

#[tokio::test]
async fn an_approval_the_user_cannot_pay_for_admits_nothing_and_stays_pending() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let id = w.appealed(&who).await;
    let r = w.s.decide_appeal(ADMIN, id, true, None).await;
    let insufficient = (ErrorKind::InsufficientCredits, "insufficient_credits");
    assert_eq!(failure(r), insufficient);
    let status = w.record(id).await.unwrap().appeal_status;
    assert_eq!(status, Some(AppealStatus::Pending));
    assert_eq!(failure(w.jobs.get(&who, id).await), NOT_FOUND);
    assert!(w.mails_to("ada@example.com").await.is_empty());
    assert!(w.audit("screening.appeal_approved").await.is_empty());
}

/// A screening store that answers reads with a record as it was before (what a second admin's
/// read of an appeal returns while the first admin's decision is being stored).
struct StaleReads {
    inner: Arc<dyn ScreeningStore>,
    before: ScreeningRecord,
}

#[async_trait::async_trait]
impl ScreeningStore for StaleReads {
    async fn put_screening(&self, record: &ScreeningRecord) -> crate::error::Result<()> {
        self.inner.put_screening(record).await
    }
    async fn move_appeal(
        &self,
        record: &ScreeningRecord,
        from: AppealStatus,
    ) -> crate::error::Result<bool> {
        self.inner.move_appeal(record, from).await
    }
    async fn get_screening(&self, _: Uuid) -> crate::error::Result<Option<ScreeningRecord>> {
        Ok(Some(self.before.clone()))
    }
    async fn list_screenings(
        &self,
        user_id: Option<Uuid>,
        before: Option<Uuid>,
        limit: usize,
    ) -> crate::error::Result<Vec<ScreeningRecord>> {
        self.inner.list_screenings(user_id, before, limit).await
    }
    async fn erase_screenings(&self, user_id: Uuid) -> crate::error::Result<u64> {
        self.inner.erase_screenings(user_id).await
    }
}

#[tokio::test]
async fn of_two_admins_deciding_one_appeal_at_once_only_the_first_decision_counts() {
    let mut w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    w.fund(ada.id, 100).await;
    let id = w.appealed(&who).await;
    let before = w.record(id).await.unwrap();
    w.s.decide_appeal(ADMIN, id, false, Some("no"))
        .await
        .unwrap();
    // The second admin read the appeal while it was pending, and approves it.
    w.s.store = Arc::new(StaleReads {
        inner: w.base.store.clone(),
        before,
    });
    let r = w.s.decide_appeal(ADMIN, id, true, Some("yes")).await;
    assert_eq!(failure(r), NO_PENDING);
    let record = w.record(id).await.unwrap();
    assert_eq!(record.appeal_status, Some(AppealStatus::Denied));
    assert_eq!(record.decision_note.as_deref(), Some("no"));
    assert_eq!(failure(w.jobs.get(&who, id).await), NOT_FOUND);
    assert_eq!(w.held(&who).await, 0, "nothing held");
    assert_eq!(w.mails_to("ada@example.com").await.len(), 1, "one email");
    assert_eq!(w.audit("screening.appeal_denied").await.len(), 1);
    assert!(w.audit("screening.appeal_approved").await.is_empty());
}

#[tokio::test]
async fn a_node_reads_the_rule_document_again_only_when_its_version_changes() {
    use super::stage::{RULES_KEY, RULES_VERSION_KEY};
    let w = world();
    w.s.set_rules(ADMIN, custom()).await.unwrap();
    let node = RuleCache::new(w.base.store.clone());
    let expected: RuleSet = serde_json::from_value(custom()).unwrap();
    assert_eq!(node.current().await.unwrap().rules(), &expected);
    // A document written without a new version is not read: the version is all a node
    // compares.
    let store = &w.base.store;
    let other = json!({"rules": [{"term": "gizmo", "category": "legal", "severity": "low"}]});
    store.put_setting(RULES_KEY, &other).await.unwrap();
    node.expire();
    assert_eq!(node.current().await.unwrap().rules(), &expected);
    // A new version is, and the node builds the document it names.
    store
        .put_setting(RULES_VERSION_KEY, &json!("another"))
        .await
        .unwrap();
    assert_eq!(
        node.current().await.unwrap().rules(),
        &expected,
        "not yet stale"
    );
    node.expire();
    let now: RuleSet = serde_json::from_value(other).unwrap();
    assert_eq!(node.current().await.unwrap().rules(), &now);
}

/// A settings store over another that counts the settings read through it, and whose reads
/// wait at a gate while it is closed.
struct WatchedSettings {
    inner: Arc<dyn SettingsStore>,
    reads: std::sync::atomic::AtomicUsize,
    closed: std::sync::atomic::AtomicBool,
    open: tokio::sync::Notify,
}

impl WatchedSettings {
    fn over(inner: Arc<dyn SettingsStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            reads: Default::default(),
            closed: Default::default(),
            open: tokio::sync::Notify::new(),
        })
    }
}

#[async_trait::async_trait]
impl SettingsStore for WatchedSettings {
    async fn get_setting(&self, key: &str) -> crate::error::Result<Option<Value>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        while self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            self.open.notified().await;
        }
        self.inner.get_setting(key).await
    }
    async fn put_setting(&self, key: &str, value: &Value) -> crate::error::Result<()> {
        self.inner.put_setting(key, value).await
    }
    async fn put_setting_if_absent(&self, key: &str, value: &Value) -> crate::error::Result<()> {
        self.inner.put_setting_if_absent(key, value).await
    }
}

#[tokio::test]
async fn concurrent_first_screenings_read_the_store_once_and_keep_the_compiled_defaults() {
    let w = world();
    let settings = WatchedSettings::over(w.base.store.clone());
    let node = Arc::new(RuleCache::new(settings.clone()));
    let calls = (0..16).map(|_| {
        let node = node.clone();
        tokio::spawn(async move { node.current().await.unwrap() })
    });
    let screeners: Vec<Arc<Screener>> = futures::future::try_join_all(calls).await.unwrap();
    let reads = settings.reads.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(reads, 2, "the version and the (absent) document, once");
    assert!(
        screeners.iter().all(|s| Arc::ptr_eq(s, &screeners[0])),
        "one screener, the defaults compiled when the cache was made"
    );
    assert_eq!(screeners[0].rules(), &default_rules());
}

#[tokio::test]
async fn screening_goes_on_with_the_rules_in_force_while_one_caller_refreshes_them() {
    use std::sync::atomic::Ordering::SeqCst;
    let w = world();
    w.s.set_rules(ADMIN, custom()).await.unwrap();
    let settings = WatchedSettings::over(w.base.store.clone());
    let node = Arc::new(RuleCache::new(settings.clone()));
    let custom_rules: RuleSet = serde_json::from_value(custom()).unwrap();
    assert_eq!(node.current().await.unwrap().rules(), &custom_rules);
    // The store stalls; the rules are due for a check and one caller is stuck reading them.
    settings.closed.store(true, SeqCst);
    node.expire();
    let stuck = tokio::spawn({
        let node = node.clone();
        async move { node.current().await.unwrap() }
    });
    tokio::task::yield_now().await;
    let meanwhile = tokio::time::timeout(std::time::Duration::from_secs(5), node.current());
    let meanwhile = meanwhile.await.expect("not kept waiting").unwrap();
    assert_eq!(meanwhile.rules(), &custom_rules, "the rules in force");
    settings.closed.store(false, SeqCst);
    settings.open.notify_waiters();
    assert_eq!(stuck.await.unwrap().rules(), &custom_rules);
}
