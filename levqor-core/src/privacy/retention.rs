//! Retention: the policies in force (a setting shared by every node) and the sweep, run by the
//! admin's route and as a daily system job. Per class, what is older than its retention goes,
//! except what belongs to a user under a legal hold.

use super::{DataClass, Held, PrivacyStore, RetentionPolicies, SweepReport};
use crate::audit::{Actor, AuditLog};
use crate::error::{Error, Result, to_json};
use crate::jobs::steps::{StepFailure, SystemTask};
use crate::settings::SettingsStore;
use crate::users::UserStore;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

const POLICIES_KEY: &str = "retention_policies";

/// Retention policies and the sweep.
pub(crate) struct Retention {
    pub(crate) store: Arc<dyn PrivacyStore>,
    pub(crate) settings: Arc<dyn SettingsStore>,
    pub(crate) users: Arc<dyn UserStore>,
}

impl Retention {
    /// The policies in force: the stored ones over the defaults.
    pub(crate) async fn policies(&self) -> Result<RetentionPolicies> {
        Ok(match self.settings.get_setting(POLICIES_KEY).await? {
            Some(Value::Object(map)) => RetentionPolicies::default().merged(&map)?,
            _ => RetentionPolicies::default(),
        })
    }

    /// Stores `policies` for every node.
    pub(crate) async fn set_policies(&self, policies: &RetentionPolicies) -> Result<Value> {
        let value = to_json(policies)?;
        self.settings.put_setting(POLICIES_KEY, &value).await?;
        Ok(value)
    }

    /// Sweeps every class at `now` (with `dry_run`, only counts).
    pub(crate) async fn sweep(&self, now: DateTime<Utc>, dry_run: bool) -> Result<SweepReport> {
        let policies = self.policies().await?;
        let holds = self.store.legal_holds().await?;
        let mut held = Held::default();
        for h in &holds {
            held.user_ids.push(h.user_id);
            if let Some(u) = self.users.get_user(h.user_id).await? {
                held.emails.push(u.email);
            }
        }
        let mut classes = BTreeMap::new();
        for class in DataClass::ALL {
            let cutoff = now - Duration::days(policies.days(class));
            classes.insert(
                class,
                self.store.sweep(class, cutoff, &held, dry_run).await?,
            );
        }
        Ok(SweepReport {
            dry_run,
            at: now,
            classes,
            held_users: holds.len(),
        })
    }
}

/// The daily retention sweep, run by the engine as a system job.
pub(crate) struct RetentionSweepTask {
    pub(crate) retention: Arc<Retention>,
    pub(crate) audit: Arc<AuditLog>,
}

#[async_trait]
impl SystemTask for RetentionSweepTask {
    fn name(&self) -> &'static str {
        "retention_sweep"
    }

    fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(24 * 3600)
    }

    async fn run(&self, now: DateTime<Utc>) -> std::result::Result<Value, StepFailure> {
        let failed = |e: Error| StepFailure::retryable(format!("retention sweep: {}", e.message));
        let report = self.retention.sweep(now, false).await.map_err(failed)?;
        let detail = to_json(&report).map_err(|e| StepFailure::permanent(e.message))?;
        self.audit
            .record(Actor::System, "retention.swept", None, detail.clone())
            .await
            .map_err(failed)?;
        Ok(detail)
    }
}
