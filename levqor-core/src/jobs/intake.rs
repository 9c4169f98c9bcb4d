//! Intake: the one path every job takes in, as ordered stages (validate -> … -> admit). Later
//! capabilities (screening, consent, pricing, quotas) are stages inserted before admit; the
//! admit itself is one group-committed store call, so many requests share a transaction.

use super::model::{Job, JobStatus};
use super::store::{Admission, JobStore, NewHold, NewJob};
use super::workflow::{Workflow, WorkflowSchema};
use crate::batch::Batcher;
use crate::error::{Error, Result, Violation};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS_LIMIT: i32 = 25;
/// Attempts when the request names none.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// A request to run a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitRequest {
    /// The workflow document.
    pub workflow: Value,
    /// The input document (an object; `{}` when absent).
    pub input: Value,
    /// Attempts allowed (1..=25; default 3).
    pub max_attempts: Option<i32>,
    /// Not before this instant.
    pub run_after: Option<DateTime<Utc>>,
    /// Makes a retried request return the first job.
    pub idempotency_key: Option<String>,
}

/// What intake stages read and annotate on the way to admission.
#[derive(Debug)]
pub struct IntakeContext {
    /// The id the job will have (a refused job's records name it too).
    pub job_id: Uuid,
    /// The owner of the job.
    pub owner_id: Uuid,
    /// The request as received.
    pub request: SubmitRequest,
    /// Set by the validate stage.
    pub workflow: Option<Workflow>,
    /// The status the job is admitted in (`queued`, or `awaiting_approval` when a stage holds it).
    pub status: JobStatus,
    /// Warnings returned to the caller with the job.
    pub warnings: Vec<Warning>,
    /// What content screening found, when it found anything.
    pub screening: Option<Value>,
    /// The job's price, set by the pricing stage.
    pub quote: Option<Value>,
    /// Credits admission must hold, set by the pricing stage.
    pub hold: Option<NewHold>,
    /// When.
    pub now: DateTime<Utc>,
}

/// Something a stage wants the caller to know about an admitted job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// Stable machine code, e.g. `held_for_approval`.
    pub code: &'static str,
    /// In words.
    pub detail: String,
}

/// One stage of intake. A stage refuses by returning an error; nothing is written until admit.
#[async_trait]
pub trait IntakeStage: Send + Sync {
    /// The stage's name, for logs.
    fn name(&self) -> &'static str;
    /// Checks or annotates the request.
    async fn check(&self, ctx: &mut IntakeContext) -> Result<()>;
}

/// The first stage: the workflow against its schema, and the request's own fields.
pub struct ValidateStage {
    schema: Arc<WorkflowSchema>,
}

impl ValidateStage {
    /// Validates against `schema`.
    pub fn new(schema: Arc<WorkflowSchema>) -> Self {
        Self { schema }
    }
}

#[async_trait]
impl IntakeStage for ValidateStage {
    fn name(&self) -> &'static str {
        "validate"
    }

    async fn check(&self, ctx: &mut IntakeContext) -> Result<()> {
        let mut violations = Vec::new();
        let workflow = match self.schema.validate_field(&ctx.request.workflow) {
            Ok(w) => Some(w),
            Err(e) => {
                violations.extend(e.violations);
                None
            }
        };
        if !ctx.request.input.is_object() {
            violations.push(Violation::new("/input", "must be a JSON object"));
        }
        if let Some(n) = ctx.request.max_attempts
            && !(1..=MAX_ATTEMPTS_LIMIT).contains(&n)
        {
            violations.push(Violation::new(
                "/max_attempts",
                format!("must be between 1 and {MAX_ATTEMPTS_LIMIT}"),
            ));
        }
        if let Some(key) = &ctx.request.idempotency_key
            && (key.is_empty()
                || key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN
                || key.chars().any(char::is_control))
        {
            violations.push(Violation::new(
                "/idempotency_key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable characters"),
            ));
        }
        if !violations.is_empty() {
            return Err(Error::violations(
                "validation_failed",
                format!("the job has {} problem(s)", violations.len()),
                violations,
            ));
        }
        ctx.workflow = workflow;
        Ok(())
    }
}

/// The ordered stages and the group-committed admit.
pub struct Intake {
    stages: Vec<Arc<dyn IntakeStage>>,
    admit: Batcher<NewJob, Result<Admission>>,
}

/// An admitted job and what the stages had to say.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// Created or replayed.
    pub admission: Admission,
    /// Warnings from the stages.
    pub warnings: Vec<Warning>,
    /// What content screening found, when it found anything.
    pub screening: Option<Value>,
    /// The price the job is held for.
    pub quote: Option<Value>,
}

/// As REST answers a submission: the job's fields, `warnings`, and `screening` and `quote`
/// when a stage attached them.
impl serde::Serialize for Submitted {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            #[serde(flatten)]
            job: &'a Job,
            warnings: &'a [Warning],
            #[serde(skip_serializing_if = "Option::is_none")]
            screening: Option<&'a Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            quote: Option<&'a Value>,
        }
        Body {
            job: self.admission.job(),
            warnings: &self.warnings,
            screening: self.screening.as_ref(),
            quote: self.quote.as_ref(),
        }
        .serialize(serializer)
    }
}

impl Intake {
    /// Intake with `stages` (the validate stage first) committing to `store`; up to `parallel`
    /// admit batches are in flight at once (1 for a single-writer database).
    pub fn new(
        store: Arc<dyn JobStore>,
        stages: Vec<Arc<dyn IntakeStage>>,
        parallel: usize,
    ) -> Self {
        let admit = Batcher::spawn(512, parallel, move |jobs: Vec<NewJob>| {
            let store = store.clone();
            async move { store.admit_batch(jobs).await }
        });
        Self { stages, admit }
    }

    /// Adds a stage just before admit.
    pub fn push_stage(&mut self, stage: Arc<dyn IntakeStage>) {
        self.stages.push(stage);
    }

    /// Runs every stage, then admits.
    pub async fn submit(
        &self,
        owner_id: Uuid,
        request: SubmitRequest,
        now: DateTime<Utc>,
    ) -> Result<Submitted> {
        let request_hash = fingerprint(&request);
        let mut ctx = IntakeContext {
            job_id: Uuid::now_v7(),
            owner_id,
            request,
            workflow: None,
            status: JobStatus::Queued,
            warnings: Vec::new(),
            screening: None,
            quote: None,
            hold: None,
            now,
        };
        for stage in &self.stages {
            stage.check(&mut ctx).await.inspect_err(|e| {
                tracing::debug!(stage = stage.name(), code = e.code, "intake refused");
            })?;
        }
        let admission = self
            .admit(
                ctx.job_id,
                owner_id,
                ctx.request,
                (ctx.status, ctx.hold),
                request_hash,
                now,
            )
            .await?;
        Ok(Submitted {
            admission,
            warnings: ctx.warnings,
            screening: ctx.screening,
            quote: ctx.quote,
        })
    }

    /// Admits a job that passed its stages (or that an admin let through), group-committed.
    pub async fn admit(
        &self,
        id: Uuid,
        owner_id: Uuid,
        r: SubmitRequest,
        (status, hold): (JobStatus, Option<NewHold>),
        request_hash: String,
        now: DateTime<Utc>,
    ) -> Result<Admission> {
        let job = Job {
            id,
            owner_id,
            workflow: r.workflow,
            input: r.input,
            status,
            attempts: 0,
            max_attempts: r.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            run_after: r.run_after.unwrap_or(now),
            result: None,
            error: None,
            cancel_requested: false,
            idempotency_key: r.idempotency_key,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        };
        self.admit
            .submit(NewJob {
                job,
                request_hash,
                hold,
            })
            .await?
    }
}

/// SHA-256 of the request's canonical JSON (serde_json sorts object keys), so the same body
/// with its keys in another order is the same request.
pub fn fingerprint(r: &SubmitRequest) -> String {
    /// The fields in key order, as an object of them serializes (without copying them).
    #[derive(serde::Serialize)]
    struct Canonical<'a> {
        input: &'a Value,
        max_attempts: &'a Option<i32>,
        run_after: &'a Option<DateTime<Utc>>,
        workflow: &'a Value,
    }
    let canonical = Canonical {
        input: &r.input,
        max_attempts: &r.max_attempts,
        run_after: &r.run_after,
        workflow: &r.workflow,
    };
    let bytes = serde_json::to_vec(&canonical).expect("JSON values serialize");
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    /// Stored request hashes stay valid: the fingerprint is the hash of the same bytes as an
    /// object of the four fields, keys sorted.
    #[test]
    fn fingerprint_hashes_the_sorted_object_of_the_request() {
        for (max_attempts, run_after) in [
            (None, None),
            (
                Some(3),
                Some(Utc.with_ymd_and_hms(2026, 5, 6, 7, 8, 9).unwrap()),
            ),
        ] {
            let r = SubmitRequest {
                workflow: json!({"steps": [{"type": "log", "id": "a", "message": "é \"q\""}], "name": "w"}),
                input: json!({"z": 1, "a": [true, null, 1.5]}),
                max_attempts,
                run_after,
                idempotency_key: None,
            };
            let object = json!({
                "workflow": r.workflow, "input": r.input, "max_attempts": r.max_attempts,
                "run_after": r.run_after,
            });
            assert_eq!(
                fingerprint(&r),
                hex::encode(Sha256::digest(object.to_string().as_bytes()))
            );
        }
    }
}
