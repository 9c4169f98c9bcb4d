//! Pricing at intake: the policy in force and the load it applies to ([`Pricing`], shared with
//! the credits service), and the stage that prices each job and asks admission to hold it.

use super::{LoadGauge, NewHold, PricingPolicy, Quote, quote::quote};
use crate::error::{Error, Result};
use crate::jobs::intake::{IntakeContext, IntakeStage};
use crate::jobs::store::JobStore;
use crate::jobs::workflow::Workflow;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// The pricing policy in force and the platform's load.
pub(crate) struct Pricing {
    /// Replaced whole, so a reader clones only the `Arc`.
    policy: RwLock<Arc<PricingPolicy>>,
    gauge: LoadGauge,
}

impl Pricing {
    pub(crate) fn new(jobs: Arc<dyn JobStore>) -> Self {
        Self {
            policy: RwLock::new(Arc::new(PricingPolicy::default())),
            gauge: LoadGauge::new(jobs),
        }
    }

    pub(crate) fn policy(&self) -> Arc<PricingPolicy> {
        self.policy.read().expect("policy lock").clone()
    }

    pub(crate) fn set_policy(&self, policy: PricingPolicy) {
        *self.policy.write().expect("policy lock") = Arc::new(policy);
    }

    /// What `workflow` costs `user_id` now.
    pub(crate) async fn quote(
        &self,
        workflow: &Workflow,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Quote> {
        Ok(self.quote_and_hold(workflow, user_id, now).await?.0)
    }

    /// What `workflow` costs `user_id` now, and the hold admission places for it.
    pub(crate) async fn quote_and_hold(
        &self,
        workflow: &Workflow,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(Quote, NewHold)> {
        let policy = self.policy();
        let load = self.gauge.load(Some(user_id), now).await?;
        let q = quote(&policy, workflow, &load);
        let hold = NewHold {
            credits: q.credits,
            quote: serde_json::to_value(&q).map_err(|e| Error::internal(e.to_string()))?,
            expires_at: now + Duration::hours(policy.hold_ttl_hours.max(1)),
        };
        Ok((q, hold))
    }
}

/// The intake stage that prices the job and asks admission to hold the price.
pub(crate) struct PriceStage(pub(crate) Arc<Pricing>);

#[async_trait]
impl IntakeStage for PriceStage {
    fn name(&self) -> &'static str {
        "price"
    }

    async fn check(&self, ctx: &mut IntakeContext) -> Result<()> {
        let Some(workflow) = &ctx.workflow else {
            return Ok(());
        };
        let (_, hold) = self
            .0
            .quote_and_hold(workflow, ctx.owner_id, ctx.now)
            .await?;
        ctx.quote = Some(hold.quote.clone());
        ctx.hold = Some(hold);
        Ok(())
    }
}
