//! Screening in intake: the deployment's rule set (replaceable by the admin, shared by every
//! node through the settings) and the stage that screens every job's workflow and input.

use super::{RuleSet, Screener, ScreeningRecord, ScreeningStore, Verdict, default_rules};
use crate::error::{Error, Result};
use crate::jobs::intake::{IntakeContext, IntakeStage, SubmitRequest, Warning};
use crate::jobs::model::JobStatus;
use crate::settings::SettingsStore;
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub(crate) const RULES_KEY: &str = "screening_rules";
/// A new value each time the rules are stored: what a node compares to know whether the
/// (large) rule document changed, without reading it.
pub(crate) const RULES_VERSION_KEY: &str = "screening_rules_version";
/// How often a node looks for rules another node stored.
pub const RULES_REFRESH: Duration = Duration::from_secs(5);

struct Loaded {
    screener: Arc<Screener>,
    /// The stored version the screener was built at: `None` until the store was first read,
    /// `Some(None)` when no version is stored (the default rules, or rules stored before
    /// versions were).
    version: Option<Option<Value>>,
    checked: Instant,
}

/// The rule set in force: the stored one, else the default. Every [`RULES_REFRESH`] one caller
/// reads the stored version (the others keep screening with the rules they have; before the
/// first read, they wait for it), and the document only when the version changed; the screener
/// is built outside the lock.
pub(crate) struct RuleCache {
    settings: Arc<dyn SettingsStore>,
    loaded: RwLock<Loaded>,
    /// The default rules, compiled once (used whenever no document is stored).
    defaults: Arc<Screener>,
    /// Held by the caller that refreshes, so that the store is read once per refresh.
    refreshing: tokio::sync::Mutex<()>,
}

impl RuleCache {
    pub(crate) fn new(settings: Arc<dyn SettingsStore>) -> Self {
        let defaults =
            Arc::new(Screener::new(&default_rules()).expect("the default rules compile"));
        Self {
            settings,
            loaded: RwLock::new(Loaded {
                screener: defaults.clone(),
                // Never read, and stale at once: the first screening reads what is stored.
                version: None,
                checked: Instant::now() - RULES_REFRESH * 2,
            }),
            defaults,
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The screener in force, unless it is due to be checked against the store.
    fn fresh(&self) -> Option<Arc<Screener>> {
        let l = self.loaded.read().expect("rules lock");
        (l.checked.elapsed() < RULES_REFRESH).then(|| l.screener.clone())
    }

    /// The screener in force, if the store was read before.
    fn read_before(&self) -> Option<Arc<Screener>> {
        let l = self.loaded.read().expect("rules lock");
        l.version.is_some().then(|| l.screener.clone())
    }

    /// The screener to use now.
    pub(crate) async fn current(&self) -> Result<Arc<Screener>> {
        if let Some(screener) = self.fresh() {
            return Ok(screener);
        }
        let _one = match self.refreshing.try_lock() {
            Ok(one) => one,
            Err(_) => {
                if let Some(screener) = self.read_before() {
                    return Ok(screener); // another caller is refreshing
                }
                self.refreshing.lock().await // nothing read yet: wait for the first read
            }
        };
        if let Some(screener) = self.fresh() {
            return Ok(screener); // refreshed by the caller this one waited for
        }
        let version = self.settings.get_setting(RULES_VERSION_KEY).await?;
        {
            let mut l = self.loaded.write().expect("rules lock");
            if l.version.as_ref() == Some(&version) {
                l.checked = Instant::now();
                return Ok(l.screener.clone());
            }
        }
        let screener = match self.settings.get_setting(RULES_KEY).await? {
            Some(doc) => {
                let rules = serde_json::from_value::<RuleSet>(doc)
                    .map_err(|e| Error::internal(format!("stored screening rules: {e}")))?;
                Arc::new(Screener::new(&rules)?)
            }
            None => self.defaults.clone(),
        };
        let mut l = self.loaded.write().expect("rules lock");
        l.screener = screener.clone();
        l.version = Some(version);
        l.checked = Instant::now();
        Ok(screener)
    }

    /// Makes the next screening look at the store again (tests: no waiting out the refresh).
    #[cfg(test)]
    pub(crate) fn expire(&self) {
        self.loaded.write().expect("rules lock").checked = Instant::now() - RULES_REFRESH * 2;
    }

    /// Uses `screener` at once on this node (it was stored at `version`).
    pub(crate) fn install(&self, screener: Screener, version: Value) {
        *self.loaded.write().expect("rules lock") = Loaded {
            screener: Arc::new(screener),
            version: Some(Some(version)),
            checked: Instant::now(),
        };
    }
}

/// The intake stage right after validation: critical content is refused (and recorded so the
/// user may appeal), high holds the job for approval, medium admits it with a warning, low is
/// logged.
pub(crate) struct ScreenStage {
    rules: Arc<RuleCache>,
    store: Arc<dyn ScreeningStore>,
}

impl ScreenStage {
    pub(crate) fn new(rules: Arc<RuleCache>, store: Arc<dyn ScreeningStore>) -> Self {
        Self { rules, store }
    }
}

/// The request as stored with a refusal, so that an approved appeal can admit it.
pub(crate) fn request_document(r: &SubmitRequest) -> Value {
    json!({
        "workflow": r.workflow,
        "input": r.input,
        "max_attempts": r.max_attempts,
        "run_after": r.run_after,
    })
}

/// The request an approved appeal admits: what [`request_document`] stored.
pub(crate) fn request_from_document(doc: &Value) -> SubmitRequest {
    SubmitRequest {
        workflow: doc["workflow"].clone(),
        input: doc["input"].clone(),
        max_attempts: doc["max_attempts"].as_i64().map(|n| n as i32),
        run_after: serde_json::from_value(doc["run_after"].clone())
            .ok()
            .flatten(),
        idempotency_key: None,
    }
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
                ctx.warnings.push(Warning {
                    code: "held_for_approval",
                    detail: "the job holds sensitive content and waits for an admin's approval"
                        .into(),
                });
                ctx.screening = Some(view);
                Ok(())
            }
            Verdict::Warn => {
                self.store.put_screening(&record(None)).await?;
                ctx.warnings.push(Warning {
                    code: "high_risk_content",
                    detail: "the job holds sensitive content; it was admitted".into(),
                });
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
