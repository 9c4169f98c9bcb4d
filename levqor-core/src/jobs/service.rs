//! [`Jobs`]: submit, read, list and cancel jobs, approve held ones, and run the engine.

use super::engine::{self, EngineConfig, EngineHandle, EngineParts, EngineSignals};
use super::intake::{Intake, IntakeStage, SubmitRequest, Submitted, ValidateStage, fingerprint};
use super::model::{Job, JobStatus, StepRecord};
use super::steps::{StepRunner, callback_message};
use super::store::{JobFilter, JobStore, NewHold};
use super::workflow::{Workflow, WorkflowSchema};
use crate::audit::{Actor, AuditLog};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::{Error, Result, Violation};
use crate::notify::OutboxStore;
use crate::page::{Page, PageRequest, fail_on};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

/// One workflow step with its checkpoint, if it has one.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// The step's id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending` until recorded, then `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// The checkpoint, if any.
    #[serde(flatten)]
    pub record: Option<StepRecord>,
    /// Milliseconds it ran.
    pub duration_ms: Option<i64>,
}

/// Jobs and the engine that runs them.
pub struct Jobs {
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    schema: Arc<WorkflowSchema>,
    intake: Intake,
    runner: Arc<StepRunner>,
    signals: Arc<EngineSignals>,
    audit: Arc<AuditLog>,
    outbox: Option<Arc<dyn OutboxStore>>,
}

impl Jobs {
    /// Jobs in `store`, run by `runner`. Intake validates against `schema`, then runs `stages`
    /// in order; up to `parallel` admit batches are committed at once.
    pub fn new(
        store: Arc<dyn JobStore>,
        clock: Arc<dyn Clock>,
        runner: Arc<StepRunner>,
        schema: Arc<WorkflowSchema>,
        stages: Vec<Arc<dyn IntakeStage>>,
        parallel: usize,
        audit: Arc<AuditLog>,
    ) -> Self {
        let mut all: Vec<Arc<dyn IntakeStage>> = vec![Arc::new(ValidateStage::new(schema.clone()))];
        all.extend(stages);
        Self {
            intake: Intake::new(store.clone(), all, parallel),
            store,
            clock,
            schema,
            runner,
            signals: Arc::new(EngineSignals::default()),
            audit,
            outbox: None,
        }
    }

    /// Where the callback of a job canceled before it ran is written (the engine writes the
    /// others with the job's end).
    pub fn with_outbox(mut self, outbox: Arc<dyn OutboxStore>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// The signals between intake and this node's engine.
    pub fn signals(&self) -> &Arc<EngineSignals> {
        &self.signals
    }

    /// The compiled workflow schema.
    pub fn schema(&self) -> &Arc<WorkflowSchema> {
        &self.schema
    }

    /// The published workflow JSON Schema.
    pub fn workflow_schema(&self) -> &Value {
        self.schema.document()
    }

    /// The step runner (its system tasks, its notifier).
    pub fn runner(&self) -> &Arc<StepRunner> {
        &self.runner
    }

    /// Runs intake for the caller's job.
    pub async fn submit(&self, who: &Principal, request: SubmitRequest) -> Result<Submitted> {
        who.require_scope("jobs:write")?;
        let owner = who.user_id().ok_or_else(|| {
            Error::forbidden(
                "user_key_required",
                "jobs belong to users: submit with a user's key",
            )
        })?;
        let submitted = self
            .intake
            .submit(owner, request, self.clock.now_micros())
            .await?;
        self.signals.wake();
        Ok(submitted)
    }

    /// Admits a job that skipped intake's stages because an admin let it through (an approved
    /// appeal), under the id it was refused with.
    pub(crate) async fn admit_approved(
        &self,
        id: Uuid,
        owner_id: Uuid,
        request: SubmitRequest,
        hold: Option<NewHold>,
    ) -> Result<Job> {
        let hash = fingerprint(&request);
        let admitted = self
            .intake
            .admit(
                id,
                owner_id,
                request,
                (JobStatus::Queued, hold),
                hash,
                self.clock.now_micros(),
            )
            .await?;
        self.signals.wake();
        Ok(admitted.job().clone())
    }

    /// A job the caller may see.
    pub async fn get(&self, who: &Principal, id: Uuid) -> Result<Job> {
        who.require_scope("jobs:read")?;
        let job = self
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| Error::not_found("job"))?;
        who.check_owner(job.owner_id, "job")?;
        Ok(job)
    }

    /// The caller's jobs (every job for the admin), newest first.
    pub async fn list(
        &self,
        who: &Principal,
        status: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<Job>> {
        who.require_scope("jobs:read")?;
        let mut bad = Vec::new();
        let status = status.and_then(|s| {
            let parsed = JobStatus::parse(s);
            if parsed.is_none() {
                bad.push(Violation::new("/status", format!("unknown status {s:?}")));
            }
            parsed
        });
        let page = PageRequest::parse(limit, cursor, &mut bad);
        fail_on(bad)?;
        let filter = JobFilter {
            owner_id: who.user_id(),
            status,
            before: page.before,
            limit: page.limit + 1,
        };
        let items = self.store.list_jobs(&filter).await?;
        Ok(page.cut(items, |j| j.id))
    }

    /// Cancels a job: at once if it waits, at its next step boundary if it runs.
    pub async fn cancel(&self, who: &Principal, id: Uuid) -> Result<Job> {
        let job = self.get(who, id).await?;
        who.require_scope("jobs:write")?;
        if job.status.is_terminal() {
            return Err(Error::conflict(
                "invalid_transition",
                format!("the job is already {}", job.status.as_str()),
            ));
        }
        let job = self
            .store
            .cancel_job(id, self.clock.now_micros())
            .await?
            .ok_or_else(|| Error::not_found("job"))?;
        self.signals.cancel(id);
        self.signals.changed(id);
        self.call_back_if_ended(&job).await?;
        Ok(job)
    }

    /// A job canceled while it waited has ended without the engine: its `callback_url` (if
    /// any) is called back here. (A running job's cancel ends through the engine, which calls
    /// back with that end.)
    async fn call_back_if_ended(&self, job: &Job) -> Result<()> {
        let (Some(outbox), Some(url)) = (&self.outbox, job.workflow["callback_url"].as_str())
        else {
            return Ok(());
        };
        if job.status != JobStatus::Canceled {
            return Ok(());
        }
        let at = job.finished_at.unwrap_or(job.updated_at);
        outbox
            .push_outbox(&callback_message(
                job,
                url,
                job.status,
                None,
                job.error.as_deref(),
                at,
            ))
            .await
    }

    /// Cancels a job that waits or runs, whoever owns it (erasure).
    pub(crate) async fn cancel_any(&self, id: Uuid) -> Result<()> {
        self.store.cancel_job(id, self.clock.now_micros()).await?;
        self.signals.cancel(id);
        self.signals.changed(id);
        Ok(())
    }

    /// Every step of a job, with its checkpoint where it has one.
    pub async fn steps(&self, who: &Principal, id: Uuid) -> Result<Vec<StepView>> {
        let job = self.get(who, id).await?;
        self.steps_of(&job).await
    }

    /// The steps of a job already read.
    pub(super) async fn steps_of(&self, job: &Job) -> Result<Vec<StepView>> {
        let workflow = Workflow::parse(&job.workflow)?;
        let mut records = self.store.list_steps(job.id).await?;
        Ok(workflow
            .steps
            .into_iter()
            .map(|step| {
                let record = records
                    .iter()
                    .position(|r| r.step_id == step.id)
                    .map(|i| records.swap_remove(i));
                StepView {
                    id: step.id,
                    kind: step.kind,
                    status: record
                        .as_ref()
                        .map_or("pending", |r| r.status.as_str())
                        .to_string(),
                    duration_ms: record
                        .as_ref()
                        .map(|r| (r.finished_at - r.started_at).num_milliseconds()),
                    record,
                }
            })
            .collect())
    }

    /// Lets a job held for approval run (admin).
    pub async fn approve(&self, who: &Principal, id: Uuid) -> Result<Job> {
        who.require_admin()?;
        let (job, approved) = self
            .store
            .approve_job(id, self.clock.now_micros())
            .await?
            .ok_or_else(|| Error::not_found("job"))?;
        if !approved {
            return Err(Error::conflict(
                "invalid_transition",
                format!("a {} job cannot be approved", job.status.as_str()),
            ));
        }
        self.signals.wake();
        self.signals.changed(id);
        self.audit
            .record(
                Actor::Admin,
                "job.approved",
                Some(job.owner_id),
                json!({"job_id": id}),
            )
            .await?;
        Ok(job)
    }

    /// Runs up to `limit` due jobs' attempts on the calling task, one after another, without a
    /// worker pool (see [`engine::run_due`]); returns how many ran.
    pub async fn run_due(&self, config: EngineConfig, limit: usize) -> Result<usize> {
        engine::run_due(self.engine_parts(), config, limit).await
    }

    /// Starts a worker pool in this process.
    pub fn start_engine(&self, config: EngineConfig) -> EngineHandle {
        engine::start(self.engine_parts(), config)
    }

    fn engine_parts(&self) -> EngineParts {
        EngineParts {
            store: self.store.clone(),
            runner: self.runner.clone(),
            clock: self.clock.clone(),
            signals: self.signals.clone(),
        }
    }
}
