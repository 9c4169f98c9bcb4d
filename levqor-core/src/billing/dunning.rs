//! Dunning: a failed payment starts a ladder of reminders, and at the end of the grace period
//! the account is suspended: intake refuses its jobs ([`SuspensionStage`]) while reads and
//! exports keep working. Paying restores it. The ladder advances as a system job
//! ([`DunningTask`]), once per period across every node.

use super::{Billing, BillingStore, Dunning, DunningState};
use crate::audit::Actor;
use crate::cache::TtlCache;
use crate::error::{Error, Result};
use crate::jobs::intake::{IntakeContext, IntakeStage};
use crate::jobs::steps::{StepFailure, SystemTask};
use crate::notify::EmailKind;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

impl Billing {
    /// Sends the reminders that are due and suspends at the end of the grace period.
    pub(crate) async fn advance_dunning(&self, mut d: Dunning, now: DateTime<Utc>) -> Result<()> {
        if d.state != DunningState::PastDue {
            return Ok(());
        }
        let policy = self.policy();
        let days = (now - d.since).num_days();
        let Some(user) = self.users.store().get_user(d.user_id).await? else {
            return Ok(());
        };
        let due = policy
            .reminder_days
            .iter()
            .filter(|&&day| day <= days)
            .count() as i32;
        while d.reminders_sent < due {
            let day = policy.reminder_days[d.reminders_sent as usize];
            let email = self.messages.compose(
                "payment_failed",
                &user.email,
                json!({"day": day, "grace_days": policy.grace_days}),
            )?;
            // Each reminder is written with the count that records it, in one transaction: a
            // crash between the two can neither lose it nor let the next tick write it again.
            let previous = d.clone();
            d.reminders_sent += 1;
            d.updated_at = now;
            let message = self.messages.queue(&email, EmailKind::Transactional);
            if !self
                .store
                .put_dunning(&d, Some(&previous), &[message])
                .await?
            {
                return Ok(()); // moved in between (paid, or reminded by another delivery)
            }
        }
        if days >= policy.grace_days {
            // The notice is written with the suspension, in one transaction.
            let email = self
                .messages
                .compose("account_suspended", &user.email, json!({}))?;
            let previous = d.clone();
            d.state = DunningState::Suspended;
            d.updated_at = now;
            let message = self.messages.queue(&email, EmailKind::Transactional);
            if !self
                .store
                .put_dunning(&d, Some(&previous), &[message])
                .await?
            {
                return Ok(());
            }
            self.suspensions.forget(d.user_id);
            self.audit
                .record(
                    Actor::System,
                    "dunning.suspended",
                    Some(d.user_id),
                    json!({}),
                )
                .await?;
        }
        Ok(())
    }

    /// One dunning tick: every past-due account advances (the engine runs it as a system job).
    /// An account that fails does not hold up the others: each is tried, and the tick then
    /// fails with the first error and how many failed, so the system job retries it (an
    /// account that advanced is not advanced twice: its reminders are counted in its record).
    pub async fn dunning_tick(&self) -> Result<usize> {
        let now = self.clock.now_micros();
        let due = self.store.past_due().await?;
        let n = due.len();
        let mut failed = 0;
        let mut first = None;
        for d in due {
            let user_id = d.user_id;
            if let Err(e) = self.advance_dunning(d, now).await {
                tracing::warn!(%user_id, code = e.code, "dunning could not advance an account");
                failed += 1;
                first.get_or_insert(e);
            }
        }
        match first {
            None => Ok(n),
            Some(mut e) => {
                e.message = format!(
                    "{failed} of {n} past-due accounts failed; the first: {}",
                    e.message
                );
                Err(e)
            }
        }
    }
}

/// How long intake trusts that an account is (not) suspended. A change made through this node
/// is seen at once; one made through another node within this time.
pub const SUSPENSION_CACHE_TTL: Duration = Duration::from_secs(1);

/// Whether accounts are suspended, as intake sees it (cached for [`SUSPENSION_CACHE_TTL`]).
pub(crate) struct Suspensions {
    store: Arc<dyn BillingStore>,
    cache: TtlCache<Uuid, bool>,
}

impl Suspensions {
    pub(crate) fn new(store: Arc<dyn BillingStore>) -> Self {
        Self {
            store,
            cache: TtlCache::new(SUSPENSION_CACHE_TTL, 10_000),
        }
    }

    /// Whether the user's account is suspended.
    pub(crate) async fn suspended(&self, user_id: Uuid) -> Result<bool> {
        if let Some(s) = self.cache.get(&user_id) {
            return Ok(s);
        }
        let suspended = self
            .store
            .dunning(user_id)
            .await?
            .is_some_and(|d| d.state == DunningState::Suspended);
        self.cache.insert(user_id, suspended);
        Ok(suspended)
    }

    /// Drops what is known of the user (their dunning state changed).
    pub(crate) fn forget(&self, user_id: Uuid) {
        self.cache.remove(&user_id);
    }
}

/// The intake stage that refuses the jobs of a suspended account.
pub(crate) struct SuspensionStage(pub(crate) Arc<Suspensions>);

#[async_trait]
impl IntakeStage for SuspensionStage {
    fn name(&self) -> &'static str {
        "suspension"
    }

    async fn check(&self, ctx: &mut IntakeContext) -> Result<()> {
        if self.0.suspended(ctx.owner_id).await? {
            return Err(Error::forbidden(
                "account_suspended",
                "the account is suspended for an unpaid invoice; paying it restores intake",
            ));
        }
        Ok(())
    }
}

/// The dunning tick as a system task: the engine admits one job per period, across nodes.
pub(crate) struct DunningTask {
    pub(crate) billing: Arc<Billing>,
    pub(crate) period: Duration,
}

#[async_trait]
impl SystemTask for DunningTask {
    fn name(&self) -> &'static str {
        "dunning"
    }

    fn period(&self) -> Duration {
        self.period
    }

    async fn run(&self, _now: DateTime<Utc>) -> std::result::Result<Value, StepFailure> {
        let n = self
            .billing
            .dunning_tick()
            .await
            .map_err(|e| StepFailure::retryable(format!("dunning: {}", e.message)))?;
        Ok(json!({"past_due_accounts": n}))
    }
}
