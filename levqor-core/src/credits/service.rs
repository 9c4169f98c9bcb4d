//! [`Credits`]: balances, the ledger, admin grants, quotes and settlement; [`SignupGrant`],
//! the credits a new user starts with.

use super::stage::Pricing;
use super::{
    CreditStore, Entry, EntryKind, NewEntry, NewHold, Posted, PricingPolicy, Quote, actual_cost,
};
use crate::audit::{Actor, AuditLog};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::{Error, Result, Violation};
use crate::jobs::store::JobStore;
use crate::jobs::workflow::WorkflowSchema;
use crate::page::{Page, PageRequest};
use crate::users::{User, UserListener, Users};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// An account's balance as its owner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CreditBalance {
    /// Every credit on the account, held ones included.
    pub balance: i64,
    /// What may be spent or held now.
    pub available: i64,
    /// Reserved by the holds of admitted jobs.
    pub held: i64,
}

/// An admin's grant (or, negative, a correction).
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Credits: positive grants, negative corrects down.
    pub credits: i64,
    /// Why, for the ledger.
    pub reason: Option<String>,
    /// When the unspent rest expires (grants only).
    pub expires_at: Option<DateTime<Utc>>,
    /// Spending priority among granted credits (higher first).
    pub priority: i32,
    /// Makes a retried grant harmless: the same key returns the first entry.
    pub idempotency_key: String,
}

/// Credits, their ledger and the prices of jobs.
pub struct Credits {
    pub(crate) store: Arc<dyn CreditStore>,
    pub(crate) jobs: Arc<dyn JobStore>,
    pub(crate) users: Arc<Users>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) schema: Arc<WorkflowSchema>,
    pub(crate) pricing: Arc<Pricing>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Credits {
    /// The caller's (or, for the admin, `user_id`'s) balance, available and held credits.
    pub async fn balance(&self, who: &Principal, user_id: Option<Uuid>) -> Result<CreditBalance> {
        let user = self.users.acting(who, user_id).await?;
        let a = self.store.account(user.id).await?;
        Ok(CreditBalance {
            balance: a.balance,
            available: a.available(),
            held: a.held,
        })
    }

    /// The caller's (or `user_id`'s) ledger entries, newest first.
    pub async fn entries(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<Entry>> {
        let user = self.users.acting(who, user_id).await?;
        let page = PageRequest::parse_or_fail(limit, cursor)?;
        let items = self
            .store
            .list_entries(user.id, page.before, page.limit + 1)
            .await?;
        Ok(page.cut(items, |e| e.id))
    }

    /// Grants credits to a user (admin); the idempotency key makes a retry harmless. The entry
    /// and whether this call created it.
    pub async fn grant(
        &self,
        who: &Principal,
        user_id: Uuid,
        grant: Grant,
    ) -> Result<(Entry, bool)> {
        who.require_admin()?;
        self.users.get(who, user_id).await?;
        let Grant {
            credits,
            reason,
            expires_at,
            priority,
            idempotency_key,
        } = grant;
        let mut bad = Vec::new();
        if credits == 0 || credits.abs() > 1_000_000_000 {
            bad.push(Violation::new(
                "/credits",
                "must be a non-zero whole number up to 1e9",
            ));
        }
        if idempotency_key.is_empty() || idempotency_key.chars().count() > 255 {
            bad.push(Violation::new(
                "/idempotency_key",
                "must be 1 to 255 characters",
            ));
        }
        let now = self.clock.now_micros();
        if expires_at.is_some_and(|t| t <= now) {
            bad.push(Violation::new("/expires_at", "must be in the future"));
        }
        if credits < 0 && expires_at.is_some() {
            bad.push(Violation::new(
                "/expires_at",
                "a negative adjustment does not expire",
            ));
        }
        if !bad.is_empty() {
            return Err(Error::violations("validation_failed", "bad grant", bad));
        }
        let posted = self
            .store
            .post_entry(&NewEntry {
                user_id,
                kind: if credits > 0 {
                    EntryKind::Grant
                } else {
                    EntryKind::Adjustment
                },
                credits,
                idempotency_key: format!("admin:{idempotency_key}"),
                reason,
                priority,
                expires_at,
                now,
            })
            .await?;
        let created = matches!(posted, Posted::Created(_));
        if created {
            self.audit
                .record(
                    Actor::Admin,
                    "credits.granted",
                    Some(user_id),
                    json!({"credits": credits, "entry_id": posted.entry().id}),
                )
                .await?;
        }
        Ok((posted.entry().clone(), created))
    }

    /// Prices a workflow for the caller without admitting anything.
    pub async fn quote(&self, who: &Principal, workflow: &Value) -> Result<Quote> {
        let user = self.users.acting(who, None).await?;
        let workflow = self.schema.validate_field(workflow)?;
        self.pricing
            .quote(&workflow, user.id, self.clock.now_micros())
            .await
    }

    /// The hold for a job admitted outside intake's stages (an approved appeal).
    pub(crate) async fn hold_for(&self, workflow: &Value, user_id: Uuid) -> Result<NewHold> {
        let workflow = self.schema.validate_field(workflow)?;
        let (_, hold) = self
            .pricing
            .quote_and_hold(&workflow, user_id, self.clock.now_micros())
            .await?;
        Ok(hold)
    }

    /// The pricing policy in force.
    pub fn pricing_policy(&self) -> PricingPolicy {
        PricingPolicy::clone(&self.pricing.policy())
    }

    /// Replaces the pricing policy (deployment configuration).
    pub fn set_pricing_policy(&self, policy: PricingPolicy) {
        self.pricing.set_policy(policy);
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CreditStore> {
        &self.store
    }

    /// Closes the holds whose job ended (charging what ran) or expired, and expires unspent
    /// credits; how many holds were closed.
    pub async fn settle_holds(&self) -> Result<usize> {
        let now = self.clock.now_micros();
        let mut closed = 0;
        loop {
            let holds = self.store.holds_to_close(now, 500).await?;
            let n = holds.len();
            for hold in holds {
                let job = self.jobs.get_job(hold.job_id).await?;
                let actual = match &job {
                    Some(j) if !j.status.is_terminal() => 0, // expired while stuck: release
                    Some(_) => {
                        let steps = self.jobs.list_steps(hold.job_id).await?;
                        actual_cost(&hold, job.as_ref(), &steps)
                    }
                    None => actual_cost(&hold, None, &[]),
                };
                if self.store.close_hold(hold.job_id, actual, now).await? {
                    closed += 1;
                }
            }
            if n < 500 {
                break;
            }
        }
        self.store.expire_credits(now).await?;
        Ok(closed)
    }

    /// Settles holds about once a second, for as long as the engine runs.
    pub(crate) async fn settle_every_second(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = self.settle_holds().await {
                tracing::warn!(error = %e, "settling credit holds failed");
            }
        }
    }
}

/// The credits every new user is granted, keyed so that a retried create grants once.
pub struct SignupGrant {
    store: Arc<dyn CreditStore>,
    credits: i64,
}

impl SignupGrant {
    /// Grants `credits` to every new user.
    pub fn new(store: Arc<dyn CreditStore>, credits: i64) -> Self {
        Self { store, credits }
    }
}

#[async_trait]
impl UserListener for SignupGrant {
    async fn upserted(&self, user: &User, now: DateTime<Utc>) -> Result<()> {
        if self.credits <= 0 {
            return Ok(());
        }
        self.store
            .post_entry(&NewEntry {
                user_id: user.id,
                kind: EntryKind::Grant,
                credits: self.credits,
                idempotency_key: "signup".into(),
                reason: Some("sign-up grant".into()),
                priority: 0,
                expires_at: None,
                now,
            })
            .await?;
        Ok(())
    }
}
