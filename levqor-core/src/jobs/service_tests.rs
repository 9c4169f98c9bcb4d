//! The jobs service against its ports: intake (who may submit, validation, idempotency, the
//! stages in order), reading and listing jobs, canceling them, their steps, the admin's approval
//! of held jobs, and the published workflow schema. The engine is tested in `tests/engine.rs`.

use super::Jobs;
use super::intake::{IntakeContext, IntakeStage, SubmitRequest, Submitted};
use super::model::{Job, JobStatus, StepRecord, StepStatus};
use super::store::{Admission, Claim, JobStore, Lease, Write};
use crate::audit::audit_subject;
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::testing::{Base, t0};
use async_trait::async_trait;
use chrono::Duration;
use serde_json::{Value, json};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

const ADMIN: &Principal = &Principal::Admin;
const NOT_FOUND: (ErrorKind, &str) = (ErrorKind::NotFound, "not_found");
const NO_SCOPE: (ErrorKind, &str) = (ErrorKind::Forbidden, "insufficient_scope");

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

/// A one-step workflow with `input`.
fn request(input: Value) -> SubmitRequest {
    SubmitRequest {
        workflow: json!({"name": "t", "steps": [{"id": "a", "type": "log", "message": "hi"}]}),
        input,
        max_attempts: None,
        run_after: None,
        idempotency_key: None,
    }
}

fn keyed(key: &str, input: Value) -> SubmitRequest {
    SubmitRequest {
        idempotency_key: Some(key.into()),
        ..request(input)
    }
}

/// What a probe stage saw: its name, the job's id, and whether validation had run.
type Seen = (&'static str, Uuid, bool);

/// An intake stage that notes every request it sees and does what the request's input asks of
/// it under its name: `"refuse"`, `"hold"` for approval, `"warn"`, or nothing.
struct Probe {
    name: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[async_trait]
impl IntakeStage for Probe {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn check(&self, ctx: &mut IntakeContext) -> Result<()> {
        let seen = (self.name, ctx.job_id, ctx.workflow.is_some());
        self.seen.lock().unwrap().push(seen);
        match ctx.request.input[self.name].as_str() {
            Some("refuse") => return Err(Error::forbidden("probe_refused", self.name)),
            Some("hold") => ctx.status = JobStatus::AwaitingApproval,
            Some("warn") => ctx.warnings.push(super::intake::Warning {
                code: self.name,
                detail: "noted".into(),
            }),
            _ => {}
        }
        Ok(())
    }
}

struct World {
    base: Base,
    jobs: Jobs,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The jobs service with two probe stages, `first` then `second`.
fn world() -> World {
    let base = Base::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let probe = |name| -> Arc<dyn IntakeStage> {
        let seen = seen.clone();
        Arc::new(Probe { name, seen })
    };
    let jobs = base.jobs(vec![probe("first"), probe("second")]);
    World { base, jobs, seen }
}

impl World {
    async fn submit(&self, who: &Principal, input: Value) -> Result<Submitted> {
        self.jobs.submit(who, request(input)).await
    }

    /// Submits a job that must be created; the job.
    async fn job(&self, who: &Principal, input: Value) -> Job {
        let submitted = self.submit(who, input).await.unwrap();
        match submitted.admission {
            Admission::Created(job) => job,
            other => panic!("{other:?}"),
        }
    }

    /// A principal holding a key of `user_id` with `scopes`.
    async fn key(&self, user_id: Uuid, scopes: &[&str]) -> Principal {
        let scopes = scopes.iter().map(|s| s.to_string()).collect();
        let users = &self.base.users;
        let issued = users.create_key(ADMIN, user_id, Some(scopes)).await;
        users.authenticate(&issued.unwrap().secret).await.unwrap()
    }

    /// The ids of a listed page, and its cursor.
    async fn page(&self, who: &Principal, limit: usize, cursor: Option<&str>) -> PageIds {
        let page = self
            .jobs
            .list(who, None, Some(limit), cursor)
            .await
            .unwrap();
        let ids = page.items.iter().map(|j| j.id).collect();
        (ids, page.next_cursor)
    }

    async fn ids_in(&self, who: &Principal, status: &str) -> Vec<Uuid> {
        let page = self.jobs.list(who, Some(status), None, None).await.unwrap();
        page.items.iter().map(|j| j.id).collect()
    }

    async fn all_jobs(&self) -> Vec<Job> {
        let page = self.jobs.list(ADMIN, None, Some(100), None).await.unwrap();
        page.items
    }

    fn stages_seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many `job.approved` records the audit trail holds.
    async fn approvals(&self) -> usize {
        let store = self.base.audit.store();
        store.find_audit("job.approved", None).await.unwrap().len()
    }

    /// Claims every due job, as a worker would.
    async fn claim(&self) -> Vec<Lease> {
        let now = self.base.clock.now_micros();
        let token = Uuid::new_v4();
        let claim = Claim {
            token,
            worker: "w".into(),
            now,
            lease_until: now + Duration::seconds(30),
            limit: 100,
        };
        let claimed = self.base.store.claim_due(&claim).await.unwrap();
        let lease = |job_id| Lease { job_id, token };
        claimed.iter().map(|c| lease(c.job.id)).collect()
    }
}

type PageIds = (Vec<Uuid>, Option<String>);

#[tokio::test]
async fn a_submitted_job_is_queued_for_its_owner_as_it_was_sent() {
    let w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    let sent = request(json!({"who": "you"}));
    let submitted = w.jobs.submit(&who, sent.clone()).await.unwrap();
    let Admission::Created(job) = submitted.admission else {
        panic!("{:?}", submitted.admission)
    };
    assert_eq!(
        (job.owner_id, job.status, job.attempts, job.max_attempts),
        (ada.id, JobStatus::Queued, 0, 3)
    );
    assert_eq!((job.run_after, job.created_at), (t0(), t0()));
    assert_eq!((&job.workflow, &job.input), (&sent.workflow, &sent.input));
    assert_eq!(job.idempotency_key, None);
    assert!(submitted.warnings.is_empty());
    assert_eq!((submitted.screening, submitted.quote), (None, None));
    assert_eq!(w.jobs.get(&who, job.id).await.unwrap(), job, "stored");

    let later = t0() + Duration::hours(1);
    let asked = SubmitRequest {
        max_attempts: Some(25),
        run_after: Some(later),
        ..keyed("k-1", json!({}))
    };
    let job = w.jobs.submit(&who, asked).await.unwrap().admission;
    let job = job.job();
    assert_eq!((job.max_attempts, job.run_after), (25, later));
    assert_eq!(job.idempotency_key.as_deref(), Some("k-1"));
}

#[tokio::test]
async fn only_a_user_key_with_jobs_write_submits() {
    let w = world();
    let (ada, _) = w.base.user("ada@example.com").await;
    let r = w.submit(ADMIN, json!({})).await;
    assert_eq!(failure(r), (ErrorKind::Forbidden, "user_key_required"));
    let read_only = w.key(ada.id, &["jobs:read"]).await;
    assert_eq!(failure(w.submit(&read_only, json!({})).await), NO_SCOPE);
    assert!(w.all_jobs().await.is_empty(), "nothing admitted");
    assert!(w.stages_seen().is_empty(), "refused before intake");
    let write_only = w.key(ada.id, &["jobs:write"]).await;
    let job = w.job(&write_only, json!({})).await;
    assert_eq!(job.owner_id, ada.id);
}

#[tokio::test]
async fn a_bad_submission_reports_every_violation_and_reaches_no_stage() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let bad = SubmitRequest {
        workflow: json!({"name": "t", "steps": [
            {"id": "a", "type": "teleport"},
            {"id": "b", "type": "delay"},
            {"id": "c", "type": "http_request", "url": "https://x", "timeout_ms": 0}
        ]}),
        input: json!([1]),
        max_attempts: Some(99),
        run_after: None,
        idempotency_key: Some(String::new()),
    };
    let found = pointers(w.jobs.submit(&who, bad).await);
    for p in [
        "/workflow/steps/0/type",
        "/workflow/steps/1",
        "/workflow/steps/2/timeout_ms",
    ] {
        assert!(found.iter().any(|f| f == p), "{p} missing from {found:?}");
    }
    let (workflow, rest) = found.split_at(found.len() - 3);
    assert!(
        workflow.iter().all(|p| p.starts_with("/workflow/")),
        "{found:?}"
    );
    assert_eq!(rest, ["/input", "/max_attempts", "/idempotency_key"]);

    let no_workflow = SubmitRequest {
        workflow: Value::Null,
        ..request(json!({}))
    };
    let found = pointers(w.jobs.submit(&who, no_workflow).await);
    assert_eq!(found, ["/workflow"]);
    for attempts in [0, 26] {
        let r = SubmitRequest {
            max_attempts: Some(attempts),
            ..request(json!({}))
        };
        assert_eq!(pointers(w.jobs.submit(&who, r).await), ["/max_attempts"]);
    }
    for key in ["k".repeat(256), "é".repeat(256), "a\nb".into()] {
        let r = w.jobs.submit(&who, keyed(&key, json!({}))).await;
        assert_eq!(pointers(r), ["/idempotency_key"], "{key:?}");
    }
    assert!(w.all_jobs().await.is_empty(), "nothing admitted");
    assert!(w.stages_seen().is_empty(), "no stage saw a bad request");
    // The limit counts characters, not bytes.
    for longest in ["k".repeat(255), "é".repeat(255)] {
        let r = w.jobs.submit(&who, keyed(&longest, json!({})));
        assert!(r.await.is_ok(), "{longest:?}");
    }
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_job_and_refuses_another_body() {
    let w = world();
    let (_, ada) = w.base.user("ada@example.com").await;
    let (_, bob) = w.base.user("bob@example.com").await;
    let submit = |who, key, input| w.jobs.submit(who, keyed(key, input));
    let first = submit(&ada, "order-42", json!({"n": 1})).await.unwrap();
    let Admission::Created(job) = first.admission else {
        panic!("{:?}", first.admission)
    };
    w.base.clock.advance(Duration::minutes(1));
    let again = submit(&ada, "order-42", json!({"n": 1})).await.unwrap();
    assert_eq!(again.admission, Admission::Replayed(job.clone()));
    let r = submit(&ada, "order-42", json!({"n": 2})).await;
    assert_eq!(failure(r), (ErrorKind::Conflict, "idempotency_key_reused"));

    let other_key = submit(&ada, "order-43", json!({"n": 1})).await.unwrap();
    assert!(matches!(other_key.admission, Admission::Created(_)));
    let other_user = submit(&bob, "order-42", json!({"n": 2})).await.unwrap();
    assert!(
        matches!(other_user.admission, Admission::Created(_)),
        "keys are per user"
    );
    assert_eq!(w.all_jobs().await.len(), 3);
}

#[tokio::test]
async fn stages_run_in_order_after_validation_and_shape_the_admitted_job() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let input = json!({"first": "warn", "second": "hold"});
    let submitted = w.submit(&who, input).await.unwrap();
    let job = submitted.admission.job().clone();
    assert_eq!(job.status, JobStatus::AwaitingApproval, "the stage held it");
    let codes: Vec<_> = submitted.warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, ["first"]);
    assert_eq!(
        w.stages_seen(),
        [("first", job.id, true), ("second", job.id, true)],
        "in order, validated, under the id the job was admitted with"
    );
    let stored = w.jobs.get(&who, job.id).await.unwrap();
    assert_eq!(stored.status, JobStatus::AwaitingApproval);
}

#[tokio::test]
async fn a_stage_refusal_admits_nothing_and_stops_the_stages_after_it() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let r = w.submit(&who, json!({"first": "refuse", "second": "warn"}));
    assert_eq!(failure(r.await), (ErrorKind::Forbidden, "probe_refused"));
    let names: Vec<_> = w.stages_seen().iter().map(|s| s.0).collect();
    assert_eq!(names, ["first"]);
    assert!(w.all_jobs().await.is_empty());
    let r = w.submit(&who, json!({"second": "refuse"})).await;
    assert_eq!(failure(r), (ErrorKind::Forbidden, "probe_refused"));
    assert!(w.all_jobs().await.is_empty());
}

#[tokio::test]
async fn a_job_is_read_by_its_owner_and_the_admin_only() {
    let w = world();
    let (ada, ada_key) = w.base.user("ada@example.com").await;
    let (_, bob) = w.base.user("bob@example.com").await;
    let job = w.job(&ada_key, json!({})).await;
    assert_eq!(w.jobs.get(&ada_key, job.id).await.unwrap(), job);
    assert_eq!(w.jobs.get(ADMIN, job.id).await.unwrap(), job);
    assert_eq!(failure(w.jobs.get(&bob, job.id).await), NOT_FOUND);
    assert_eq!(failure(w.jobs.get(ADMIN, Uuid::now_v7()).await), NOT_FOUND);
    let write_only = w.key(ada.id, &["jobs:write"]).await;
    assert_eq!(failure(w.jobs.get(&write_only, job.id).await), NO_SCOPE);
    let read_only = w.key(ada.id, &["jobs:read"]).await;
    assert_eq!(w.jobs.get(&read_only, job.id).await.unwrap(), job);
}

#[tokio::test]
async fn jobs_are_listed_newest_first_a_page_at_a_time_to_their_owner() {
    let w = world();
    let (_, ada) = w.base.user("ada@example.com").await;
    let (_, bob) = w.base.user("bob@example.com").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(w.job(&ada, json!({"n": n})).await.id);
    }
    let bobs = w.job(&bob, json!({})).await.id;
    let (first, cursor) = w.page(&ada, 2, None).await;
    assert_eq!(first, [ids[4], ids[3]]);
    let (second, cursor) = w.page(&ada, 2, cursor.as_deref()).await;
    assert_eq!(second, [ids[2], ids[1]]);
    let (last, cursor) = w.page(&ada, 2, cursor.as_deref()).await;
    assert_eq!((last, cursor), (vec![ids[0]], None));
    let (theirs, _) = w.page(&bob, 100, None).await;
    assert_eq!(theirs, [bobs], "only one's own");
    let (everyone, _) = w.page(ADMIN, 100, None).await;
    assert_eq!(everyone, [bobs, ids[4], ids[3], ids[2], ids[1], ids[0]]);
}

#[tokio::test]
async fn the_list_filters_by_status_and_reports_every_bad_parameter() {
    let w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    let kept = w.job(&who, json!({})).await.id;
    let canceled = w.job(&who, json!({})).await.id;
    let held = w.job(&who, json!({"second": "hold"})).await.id;
    w.jobs.cancel(&who, canceled).await.unwrap();
    assert_eq!(w.ids_in(&who, "canceled").await, [canceled]);
    assert_eq!(w.ids_in(&who, "queued").await, [kept]);
    assert_eq!(w.ids_in(&who, "awaiting_approval").await, [held]);
    assert!(w.ids_in(&who, "succeeded").await.is_empty());

    let r = w
        .jobs
        .list(&who, Some("exploded"), Some(0), Some("zzz"))
        .await;
    assert_eq!(pointers(r), ["/status", "/limit", "/cursor"]);
    let r = w.jobs.list(&who, None, Some(101), None).await;
    assert_eq!(pointers(r), ["/limit"]);
    let write_only = w.key(ada.id, &["jobs:write"]).await;
    let r = w.jobs.list(&write_only, None, None, None).await;
    assert_eq!(failure(r), NO_SCOPE);
}

#[tokio::test]
async fn canceling_a_waiting_job_is_final() {
    let w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    let (_, bob) = w.base.user("bob@example.com").await;
    let queued = w.job(&who, json!({})).await;
    let held = w.job(&who, json!({"first": "hold"})).await;
    let r = w.jobs.cancel(&bob, queued.id).await;
    assert_eq!(failure(r), NOT_FOUND);
    let read_only = w.key(ada.id, &["jobs:read"]).await;
    assert_eq!(
        failure(w.jobs.cancel(&read_only, queued.id).await),
        NO_SCOPE
    );
    let unchanged = w.jobs.get(&who, queued.id).await.unwrap();
    assert_eq!(
        unchanged.status,
        JobStatus::Queued,
        "refusals change nothing"
    );

    w.base.clock.advance(Duration::minutes(7));
    let canceled = w.jobs.cancel(&who, queued.id).await.unwrap();
    let at = Some(t0() + Duration::minutes(7));
    assert_eq!(
        (canceled.status, canceled.finished_at),
        (JobStatus::Canceled, at)
    );
    assert_eq!(w.jobs.get(&who, queued.id).await.unwrap(), canceled);
    let r = w.jobs.cancel(&who, queued.id).await;
    assert_eq!(failure(r), (ErrorKind::Conflict, "invalid_transition"));
    let held = w.jobs.cancel(ADMIN, held.id).await.unwrap();
    assert_eq!(held.status, JobStatus::Canceled, "a held job too");
    let r = w.jobs.cancel(&who, Uuid::now_v7()).await;
    assert_eq!(failure(r), NOT_FOUND);
}

#[tokio::test]
async fn a_running_job_is_asked_to_stop_at_its_next_step() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let job = w.job(&who, json!({})).await;
    w.claim().await;
    let asked = w.jobs.cancel(&who, job.id).await.unwrap();
    assert_eq!(
        (asked.status, asked.cancel_requested, asked.finished_at),
        (JobStatus::Running, true, None)
    );
}

#[tokio::test]
async fn steps_are_pending_until_recorded() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let (_, bob) = w.base.user("bob@example.com").await;
    let three = SubmitRequest {
        workflow: json!({"name": "t", "steps": [
            {"id": "a", "type": "log", "message": "x"},
            {"id": "c", "type": "http_request", "url": "https://example.invalid/"},
            {"id": "d", "type": "log", "message": "y"}
        ]}),
        ..request(json!({}))
    };
    let job = w.jobs.submit(&who, three).await.unwrap().admission;
    let id = job.job().id;
    let view = |steps: Vec<super::StepView>| -> Vec<(String, String, String, Option<i64>)> {
        let row = |s: super::StepView| (s.id, s.kind, s.status, s.duration_ms);
        steps.into_iter().map(row).collect()
    };
    let row = |id: &str, kind: &str, status: &str, ms| {
        (id.to_string(), kind.to_string(), status.to_string(), ms)
    };
    let steps = w.jobs.steps(&who, id).await.unwrap();
    assert!(steps.iter().all(|s| s.record.is_none()));
    assert_eq!(
        view(steps),
        [
            row("a", "log", "pending", None),
            row("c", "http_request", "pending", None),
            row("d", "log", "pending", None)
        ]
    );

    let lease = w.claim().await[0];
    let record = |step: &str, position, status| StepRecord {
        job_id: id,
        step_id: step.into(),
        position,
        status,
        output: Value::Null,
        error: None,
        attempt: 1,
        started_at: t0(),
        finished_at: t0() + Duration::milliseconds(1500),
    };
    let steps = vec![
        record("a", 0, StepStatus::Succeeded),
        record("c", 1, StepStatus::Failed),
    ];
    let checkpoint = [Write::Checkpoint {
        lease,
        steps,
        messages: Vec::new(),
    }];
    assert_eq!(w.base.store.commit(&checkpoint).await.unwrap(), [true]);
    let steps = w.jobs.steps(&who, id).await.unwrap();
    assert_eq!(steps[0].record, Some(record("a", 0, StepStatus::Succeeded)));
    assert_eq!(
        view(steps),
        [
            row("a", "log", "succeeded", Some(1500)),
            row("c", "http_request", "failed", Some(1500)),
            row("d", "log", "pending", None)
        ]
    );
    assert_eq!(failure(w.jobs.steps(&bob, id).await), NOT_FOUND);
    assert_eq!(failure(w.jobs.steps(&who, Uuid::now_v7()).await), NOT_FOUND);
}

#[tokio::test]
async fn only_the_admin_approves_a_held_job_and_it_is_audited() {
    let w = world();
    let (ada, who) = w.base.user("ada@example.com").await;
    let held = w.job(&who, json!({"second": "hold"})).await;
    let r = w.jobs.approve(&who, held.id).await;
    assert_eq!(failure(r), (ErrorKind::Forbidden, "admin_only"));
    let still = w.jobs.get(&who, held.id).await.unwrap();
    assert_eq!(still.status, JobStatus::AwaitingApproval);
    assert_eq!(w.approvals().await, 0);

    w.base.clock.advance(Duration::minutes(2));
    let approved = w.jobs.approve(ADMIN, held.id).await.unwrap();
    assert_eq!(approved.status, JobStatus::Queued);
    assert_eq!(approved.updated_at, t0() + Duration::minutes(2));
    assert_eq!(w.jobs.get(&who, held.id).await.unwrap(), approved);
    let store = w.base.audit.store();
    let audited = store
        .find_audit("job.approved", Some(&audit_subject(ada.id)))
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].detail, json!({"job_id": held.id}));
    assert_eq!(audited[0].actor, crate::audit::Actor::Admin);
    let r = w.jobs.approve(ADMIN, Uuid::now_v7()).await;
    assert_eq!(failure(r), NOT_FOUND);
}

#[tokio::test]
async fn a_job_that_is_not_held_cannot_be_approved() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let canceled = w.job(&who, json!({"first": "hold"})).await;
    w.jobs.cancel(&who, canceled.id).await.unwrap();
    let r = w.jobs.approve(ADMIN, canceled.id).await;
    assert_eq!(failure(r), (ErrorKind::Conflict, "invalid_transition"));
    let running = w.job(&who, json!({})).await;
    w.claim().await;
    let r = w.jobs.approve(ADMIN, running.id).await;
    assert_eq!(failure(r), (ErrorKind::Conflict, "invalid_transition"));
    let status = w.jobs.get(&who, running.id).await.unwrap().status;
    assert_eq!(status, JobStatus::Running);
    assert_eq!(w.approvals().await, 0, "nothing approved");
}

#[tokio::test]
async fn a_queued_job_cannot_be_approved_again() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let held = w.job(&who, json!({"first": "hold"})).await;
    w.jobs.approve(ADMIN, held.id).await.unwrap();
    let r = w.jobs.approve(ADMIN, held.id).await;
    assert_eq!(failure(r), (ErrorKind::Conflict, "invalid_transition"));
    let never_held = w.job(&who, json!({})).await;
    let r = w.jobs.approve(ADMIN, never_held.id).await;
    assert_eq!(failure(r), (ErrorKind::Conflict, "invalid_transition"));
    assert_eq!(w.approvals().await, 1, "one approval, one record");
}

#[tokio::test]
async fn the_published_workflow_schema_is_the_one_intake_validates_against() {
    let w = world();
    let schema = w.jobs.workflow_schema();
    assert_eq!(schema["$id"], "urn:levqor:schema:workflow");
    assert!(schema["$defs"]["http_request"].is_object());
    assert_eq!(schema["$defs"]["log"]["required"], json!(["message"]));
    assert_eq!(schema, w.jobs.schema().document());
}

#[tokio::test]
async fn run_due_runs_the_due_jobs_to_their_end_and_no_more_than_asked() {
    let w = world();
    let (_, who) = w.base.user("ada@example.com").await;
    let first = w.job(&who, json!({})).await;
    let second = w.job(&who, json!({})).await;
    let config = crate::EngineConfig::default();
    assert_eq!(w.jobs.run_due(config.clone(), 0).await.unwrap(), 0);
    assert_eq!(w.jobs.run_due(config.clone(), 1).await.unwrap(), 1);
    let status = |job: Job| job.status;
    assert_eq!(
        status(w.jobs.get(&who, first.id).await.unwrap()),
        JobStatus::Succeeded,
        "the oldest due job ran first"
    );
    assert_eq!(
        status(w.jobs.get(&who, second.id).await.unwrap()),
        JobStatus::Queued
    );
    assert_eq!(w.jobs.run_due(config.clone(), 10).await.unwrap(), 1);
    assert_eq!(
        status(w.jobs.get(&who, second.id).await.unwrap()),
        JobStatus::Succeeded
    );
    assert_eq!(
        w.jobs.run_due(config, 10).await.unwrap(),
        0,
        "nothing is due"
    );
}
