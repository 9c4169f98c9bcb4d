//! [`Screenings`]: free-text screening, the rule set in force, appeals against refusals and
//! their decisions. What happens to a job at intake is the [stage](super::ScreenStage).

use super::stage::{RULES_KEY, RULES_VERSION_KEY, RuleCache, request_from_document};
use super::{AppealStatus, RuleSet, Screener, Screening, ScreeningRecord, ScreeningStore, Verdict};
use crate::audit::{Actor, AuditLog};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::credits::Credits;
use crate::error::{Error, Result, Violation};
use crate::jobs::Jobs;
use crate::jobs::model::Job;
use crate::notify::Messages;
use crate::settings::SettingsStore;
use crate::users::UserStore;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

/// An admin's decision on an appeal, and the job it admitted if approved.
#[derive(Debug, Clone, Serialize)]
pub struct AppealDecision {
    /// The screening record with its decided appeal.
    pub appeal: ScreeningRecord,
    /// The job, admitted under the id it was refused with, when the appeal was approved.
    pub job: Option<Job>,
}

/// Screening rules, free-text screening and appeals.
pub struct Screenings {
    pub(crate) store: Arc<dyn ScreeningStore>,
    pub(crate) settings: Arc<dyn SettingsStore>,
    pub(crate) rules: Arc<RuleCache>,
    pub(crate) jobs: Arc<Jobs>,
    pub(crate) credits: Arc<Credits>,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) messages: Arc<Messages>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Screenings {
    /// Screens free text with the rules in force.
    pub async fn screen_text(&self, text: &str) -> Result<Screening> {
        let screener = self.rules.current().await?;
        let matches = screener.screen_text(text, "/text");
        let verdict = Verdict::for_severity(matches.iter().map(|m| m.severity).max());
        Ok(Screening { verdict, matches })
    }

    /// The rule set in force (admin).
    pub async fn rules(&self, who: &Principal) -> Result<RuleSet> {
        who.require_admin()?;
        Ok(self.rules.current().await?.rules().clone())
    }

    /// Replaces the rule set (admin); every node uses it within
    /// [`RULES_REFRESH`](super::RULES_REFRESH).
    pub async fn set_rules(&self, who: &Principal, rules: Value) -> Result<RuleSet> {
        who.require_admin()?;
        let rules = RuleSet::from_json(rules)?;
        let screener = Screener::new(&rules)?;
        let stored = serde_json::to_value(&rules).map_err(|e| Error::internal(e.to_string()))?;
        // The document first, then its new version: a node that sees the version reads the
        // document it names (or a later one).
        self.settings.put_setting(RULES_KEY, &stored).await?;
        let version = json!(Uuid::now_v7().to_string());
        self.settings
            .put_setting(RULES_VERSION_KEY, &version)
            .await?;
        self.rules.install(screener, version);
        self.audit
            .record(
                Actor::Admin,
                "screening.rules_replaced",
                None,
                json!({
                    "rules": rules.rules.len(),
                    "lists": rules.lists.len(),
                    "intents": rules.intents.len(),
                }),
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
        if reason.trim().is_empty() || reason.chars().count() > 2000 {
            return Err(Error::violations(
                "validation_failed",
                "an appeal needs a reason",
                vec![Violation::new("/reason", "must be 1 to 2000 characters")],
            ));
        }
        record.appeal_status = Some(AppealStatus::Pending);
        record.appeal_reason = Some(reason.trim().into());
        record.updated_at = self.clock.now_micros();
        self.store.put_screening(&record).await?;
        self.audit
            .record(
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
    /// it was refused with, holding its price; denying keeps the refusal. The user is told
    /// either way. An appeal is decided once: a second decision, even one taken at the same
    /// moment on another node, is refused (`no_pending_appeal`) and changes nothing.
    pub async fn decide_appeal(
        &self,
        who: &Principal,
        job_id: Uuid,
        approve: bool,
        note: Option<&str>,
    ) -> Result<AppealDecision> {
        who.require_admin()?;
        let pending = self
            .store
            .get_screening(job_id)
            .await?
            .ok_or_else(|| Error::not_found("appeal"))?;
        let no_pending = || Error::conflict("no_pending_appeal", "this job has no pending appeal");
        if pending.appeal_status != Some(AppealStatus::Pending) {
            return Err(no_pending());
        }
        let decided = if approve {
            AppealStatus::Approved
        } else {
            AppealStatus::Denied
        };
        let record = ScreeningRecord {
            appeal_status: Some(decided),
            decision_note: note.map(str::to_string),
            updated_at: self.clock.now_micros(),
            ..pending.clone()
        };
        // The decision is taken before anything is admitted or sent: of two admins deciding at
        // once, the one whose decision moves the appeal out of pending goes on.
        if !self
            .store
            .move_appeal(&record, AppealStatus::Pending)
            .await?
        {
            return Err(no_pending());
        }
        let job = if approve {
            match self.admit_appealed(&record).await {
                Ok(job) => Some(job),
                Err(e) => {
                    // Nothing was admitted (credits, quota, the store): the appeal is pending
                    // again, as it was.
                    self.store
                        .move_appeal(&pending, AppealStatus::Approved)
                        .await?;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let action = if approve {
            "screening.appeal_approved"
        } else {
            "screening.appeal_denied"
        };
        self.audit
            .record(
                Actor::Admin,
                action,
                Some(record.user_id),
                json!({"job_id": job_id}),
            )
            .await?;
        if let Some(user) = self.users.get_user(record.user_id).await? {
            let mut email = self.messages.compose(
                "appeal_decided",
                &user.email,
                json!({"job_id": job_id, "approved": approve, "note": note}),
            )?;
            email.job_id = Some(job_id);
            self.messages.send_transactional(email).await?;
        }
        Ok(AppealDecision {
            appeal: record,
            job,
        })
    }

    /// Admits a refused request whose appeal was approved, under the id it was refused with,
    /// holding its price.
    async fn admit_appealed(&self, record: &ScreeningRecord) -> Result<Job> {
        let request = request_from_document(&record.request.clone().unwrap_or_default());
        let hold = self
            .credits
            .hold_for(&request.workflow, record.user_id)
            .await?;
        self.jobs
            .admit_approved(record.id, record.user_id, request, Some(hold))
            .await
    }
}
