//! Screening in intake and its follow-ups: the intake stage that screens every job's workflow
//! and input, the deployment's rule set (replaceable by the admin, shared by every node), the
//! approval of held jobs, and appeals against refusals. The matching itself is
//! [`screening`](crate::screening), which is pure.

use crate::auth::Principal;
use crate::error::{Error, Result, Violation};
use crate::jobs::intake::{IntakeContext, IntakeStage, SubmitRequest, fingerprint};
use crate::jobs::model::{Job, JobStatus};
use crate::notify::Email;
use crate::privacy::{Actor, AppealStatus, ScreeningRecord};
use crate::screening::{RuleSet, Screener, Screening, Verdict, default_rules};
use crate::service::{Levqor, Store};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

const RULES_KEY: &str = "screening_rules";
/// How often a node looks for rules another node stored.
pub const RULES_REFRESH: Duration = Duration::from_secs(5);

struct Loaded {
    screener: Arc<Screener>,
    /// The stored document the screener was built from (`None`: the default rules).
    stored: Option<Value>,
    checked: Instant,
}

/// The rule set in force: the stored one, else the default; re-read every [`RULES_REFRESH`].
pub(crate) struct ScreeningRules {
    store: Arc<dyn Store>,
    loaded: RwLock<Loaded>,
}

impl ScreeningRules {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        let screener = Screener::new(&default_rules()).expect("the default rules compile");
        Self {
            store,
            loaded: RwLock::new(Loaded {
                screener: Arc::new(screener),
                stored: None,
                // Stale at once, so the first screening reads what is stored.
                checked: Instant::now() - RULES_REFRESH * 2,
            }),
        }
    }

    /// The screener to use now.
    pub(crate) async fn current(&self) -> Result<Arc<Screener>> {
        {
            let l = self.loaded.read().expect("rules lock");
            if l.checked.elapsed() < RULES_REFRESH {
                return Ok(l.screener.clone());
            }
        }
        let stored = self.store.get_setting(RULES_KEY).await?;
        let mut l = self.loaded.write().expect("rules lock");
        if stored != l.stored {
            let rules = match &stored {
                Some(doc) => serde_json::from_value::<RuleSet>(doc.clone())
                    .map_err(|e| Error::internal(format!("stored screening rules: {e}")))?,
                None => default_rules(),
            };
            l.screener = Arc::new(Screener::new(&rules)?);
            l.stored = stored;
        }
        l.checked = Instant::now();
        Ok(l.screener.clone())
    }

    fn install(&self, screener: Screener, stored: Value) {
        *self.loaded.write().expect("rules lock") = Loaded {
            screener: Arc::new(screener),
            stored: Some(stored),
            checked: Instant::now(),
        };
    }
}

/// The intake stage right after validation: critical content is refused (and recorded so the
/// user may appeal), high holds the job for approval, medium admits it with a warning, low is
/// logged.
pub(crate) struct ScreenStage {
    rules: Arc<ScreeningRules>,
    store: Arc<dyn Store>,
}

impl ScreenStage {
    pub(crate) fn new(rules: Arc<ScreeningRules>, store: Arc<dyn Store>) -> Self {
        Self { rules, store }
    }
}

fn request_document(r: &SubmitRequest) -> Value {
    json!({
        "workflow": r.workflow,
        "input": r.input,
        "max_attempts": r.max_attempts,
        "run_after": r.run_after,
    })
}

#[async_trait]
impl IntakeStage for ScreenStage {
    fn name(&self) -> &'static str {
        "screen"
    }

    async fn check(&self, ctx: &mut IntakeContext) -> Result<()> {
        let screener = self.rules.current().await?;
        let screening = screener.screen(&[
            ("/workflow", &ctx.request.workflow),
            ("/input", &ctx.request.input),
        ]);
        if screening.matches.is_empty() {
            return Ok(());
        }
        let view = serde_json::to_value(&screening).map_err(|e| Error::internal(e.to_string()))?;
        let record = |request: Option<Value>| ScreeningRecord {
            id: ctx.job_id,
            user_id: ctx.owner_id,
            screening: screening.clone(),
            request,
            appeal_status: None,
            appeal_reason: None,
            decision_note: None,
            created_at: ctx.now,
            updated_at: ctx.now,
        };
        match screening.verdict {
            Verdict::Block => {
                self.store
                    .put_screening(&record(Some(request_document(&ctx.request))))
                    .await?;
                Err(Error::invalid(
                    "high_risk_content",
                    "the job holds content that is not allowed; you may appeal the refusal",
                )
                .with_details(json!({"job_id": ctx.job_id, "screening": view})))
            }
            Verdict::Hold => {
                self.store.put_screening(&record(None)).await?;
                ctx.status = JobStatus::AwaitingApproval;
                ctx.warnings.push(json!({
                    "code": "held_for_approval",
                    "detail": "the job holds sensitive content and waits for an admin's approval",
                }));
                ctx.screening = Some(view);
                Ok(())
            }
            Verdict::Warn => {
                self.store.put_screening(&record(None)).await?;
                ctx.warnings.push(json!({
                    "code": "high_risk_content",
                    "detail": "the job holds sensitive content; it was admitted",
                }));
                ctx.screening = Some(view);
                Ok(())
            }
            Verdict::Allow => {
                tracing::info!(job_id = %ctx.job_id, matches = screening.matches.len(), "low-risk content screened");
                ctx.screening = Some(view);
                Ok(())
            }
        }
    }
}

impl Levqor {
    /// Screens free text with the rules in force.
    pub async fn screen_text(&self, text: &str) -> Result<Screening> {
        let screener = self.screening.current().await?;
        let matches = screener.screen_text(text, "/text");
        let verdict = Verdict::for_severity(matches.iter().map(|m| m.severity).max());
        Ok(Screening { verdict, matches })
    }

    /// The rule set in force (admin).
    pub async fn screening_rules(&self, who: &Principal) -> Result<RuleSet> {
        who.require_admin()?;
        Ok(self.screening.current().await?.rules().clone())
    }

    /// Replaces the rule set (admin); every node uses it within [`RULES_REFRESH`].
    pub async fn set_screening_rules(&self, who: &Principal, rules: Value) -> Result<RuleSet> {
        who.require_admin()?;
        let rules: RuleSet = serde_json::from_value(rules).map_err(|e| {
            Error::violations(
                "validation_failed",
                "the rule set is not in the expected shape",
                vec![Violation::new("/rules", e.to_string())],
            )
        })?;
        let screener = Screener::new(&rules)?;
        let stored = serde_json::to_value(&rules).map_err(|e| Error::internal(e.to_string()))?;
        self.store.put_setting(RULES_KEY, &stored).await?;
        self.screening.install(screener, stored);
        self.audit(
            Actor::Admin,
            "screening.rules_replaced",
            None,
            json!({"rules": rules.rules.len()}),
        )
        .await?;
        Ok(rules)
    }

    /// Appeals a refused job (its owner).
    pub async fn appeal(
        &self,
        who: &Principal,
        job_id: Uuid,
        reason: &str,
    ) -> Result<ScreeningRecord> {
        who.require_scope("jobs:write")?;
        let mut record = self
            .store
            .get_screening(job_id)
            .await?
            .ok_or_else(|| Error::not_found("refused job"))?;
        who.check_owner(record.user_id, "refused job")?;
        if record.screening.verdict != Verdict::Block {
            return Err(Error::conflict(
                "not_appealable",
                "only a refused job can be appealed; a held job already waits for an admin",
            ));
        }
        if record.appeal_status.is_some() {
            return Err(Error::conflict(
                "already_appealed",
                "this refusal was already appealed",
            ));
        }
        if reason.trim().is_empty() || reason.len() > 2000 {
            return Err(Error::violations(
                "validation_failed",
                "an appeal needs a reason",
                vec![Violation::new("/reason", "must be 1 to 2000 characters")],
            ));
        }
        record.appeal_status = Some(AppealStatus::Pending);
        record.appeal_reason = Some(reason.trim().into());
        record.updated_at = self.now();
        self.store.put_screening(&record).await?;
        self.audit(
            Actor::User,
            "screening.appealed",
            Some(record.user_id),
            json!({"job_id": job_id}),
        )
        .await?;
        Ok(record)
    }

    /// Screening records with a pending appeal, newest first (admin).
    pub async fn pending_appeals(&self, who: &Principal) -> Result<Vec<ScreeningRecord>> {
        who.require_admin()?;
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let page = self.store.list_screenings(None, before, 500).await?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            out.extend(
                page.into_iter()
                    .filter(|r| r.appeal_status == Some(AppealStatus::Pending)),
            );
        }
        Ok(out)
    }

    /// Decides an appeal (admin): approving admits the job as it was submitted, under the id
    /// it was refused with; denying keeps the refusal. The user is told either way.
    pub async fn decide_appeal(
        &self,
        who: &Principal,
        job_id: Uuid,
        approve: bool,
        note: Option<&str>,
    ) -> Result<Value> {
        who.require_admin()?;
        let mut record = self
            .store
            .get_screening(job_id)
            .await?
            .ok_or_else(|| Error::not_found("appeal"))?;
        if record.appeal_status != Some(AppealStatus::Pending) {
            return Err(Error::conflict(
                "no_pending_appeal",
                "this job has no pending appeal",
            ));
        }
        let now = self.now();
        let mut job: Option<Job> = None;
        if approve {
            let doc = record.request.clone().unwrap_or_default();
            let request = SubmitRequest {
                workflow: doc["workflow"].clone(),
                input: doc["input"].clone(),
                max_attempts: doc["max_attempts"].as_i64().map(|n| n as i32),
                run_after: serde_json::from_value(doc["run_after"].clone())
                    .ok()
                    .flatten(),
                idempotency_key: None,
            };
            let hash = fingerprint(&request);
            let hold = self.hold_for(&request.workflow, record.user_id).await?;
            let admitted = self
                .intake
                .admit(
                    job_id,
                    record.user_id,
                    request,
                    (JobStatus::Queued, hold),
                    hash,
                    now,
                )
                .await?;
            job = Some(admitted.job().clone());
            self.signals.wake();
        }
        record.appeal_status = Some(if approve {
            AppealStatus::Approved
        } else {
            AppealStatus::Denied
        });
        record.decision_note = note.map(str::to_string);
        record.updated_at = now;
        self.store.put_screening(&record).await?;
        let action = if approve {
            "screening.appeal_approved"
        } else {
            "screening.appeal_denied"
        };
        self.audit(
            Actor::Admin,
            action,
            Some(record.user_id),
            json!({"job_id": job_id}),
        )
        .await?;
        if let Some(user) = self.store.get_user(record.user_id).await? {
            self.send_transactional(Email {
                to: user.email,
                subject: format!(
                    "Your appeal for job {job_id} was {}",
                    if approve { "approved" } else { "denied" }
                ),
                body: match (approve, note) {
                    (true, _) => "The job was admitted and will run.".to_string(),
                    (false, Some(n)) => format!("The refusal stands: {n}"),
                    (false, None) => "The refusal stands.".to_string(),
                },
                job_id: Some(job_id),
                attachments: Vec::new(),
            })
            .await?;
        }
        Ok(json!({"appeal": record, "job": job}))
    }

    /// Lets a held job run (admin).
    pub async fn approve_job(&self, who: &Principal, job_id: Uuid) -> Result<Job> {
        who.require_admin()?;
        let job = self
            .store
            .approve_job(job_id, self.now())
            .await?
            .ok_or_else(|| Error::not_found("job"))?;
        if job.status != JobStatus::Queued {
            return Err(Error::conflict(
                "invalid_transition",
                format!("a {} job cannot be approved", job.status.as_str()),
            ));
        }
        self.signals.wake();
        self.audit(
            Actor::Admin,
            "job.approved",
            Some(job.owner_id),
            json!({"job_id": job_id}),
        )
        .await?;
        Ok(job)
    }
}
