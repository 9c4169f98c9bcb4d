//! Credits: the append-only ledger, holds at admission, settlement at the actual cost, quotes.
//!
//! Every entry moves two numbers of one account: `credits` (the balance) and `held` (credits
//! reserved by holds). The balance is the sum of the entries' `credits`; what is held is the sum
//! of their `held`; what may be spent is `balance - held`, and no rule here lets it go below
//! zero. Positive entries open buckets (a grant, a purchase…) that spending consumes in a fixed
//! order: credits that expire first, then granted before purchased, by priority. Every entry has
//! an idempotency key per account: posting it again returns the first entry and changes nothing.

use crate::auth::Principal;
use crate::error::{Error, Result, Violation};
use crate::jobs::intake::{IntakeContext, IntakeStage};
use crate::jobs::model::{Job, JobStatus, StepStatus};
use crate::jobs::workflow::Workflow;
use crate::privacy::Actor;
use crate::service::{Levqor, Store};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use uuid::Uuid;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Credits given (by the admin, or at sign-up); may expire.
    Grant,
    /// Credits bought.
    Purchase,
    /// Credits reserved for an admitted job.
    Hold,
    /// A hold ended by charging the job's actual cost.
    Settle,
    /// A hold ended without a charge (the job failed, was canceled or the hold expired).
    Release,
    /// Credits given back.
    Refund,
    /// A referral reward.
    Referral,
    /// An admin's correction, up or down.
    Adjustment,
    /// Granted credits that expired unspent.
    Expiry,
}

impl EntryKind {
    /// Every kind.
    pub const ALL: [EntryKind; 9] = [
        EntryKind::Grant,
        EntryKind::Purchase,
        EntryKind::Hold,
        EntryKind::Settle,
        EntryKind::Release,
        EntryKind::Refund,
        EntryKind::Referral,
        EntryKind::Adjustment,
        EntryKind::Expiry,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Grant => "grant",
            EntryKind::Purchase => "purchase",
            EntryKind::Hold => "hold",
            EntryKind::Settle => "settle",
            EntryKind::Release => "release",
            EntryKind::Refund => "refund",
            EntryKind::Referral => "referral",
            EntryKind::Adjustment => "adjustment",
            EntryKind::Expiry => "expiry",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Where credits of a bucket opened by this kind stand in the spending order: granted
    /// credits (0) before purchased ones (1).
    pub fn spend_rank(self) -> u8 {
        match self {
            EntryKind::Purchase => 1,
            _ => 0,
        }
    }
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Stable, time-ordered id.
    pub id: Uuid,
    /// Whose account.
    pub user_id: Uuid,
    /// What it records.
    pub kind: EntryKind,
    /// Change to the balance.
    pub credits: i64,
    /// Change to the held credits.
    pub held: i64,
    /// The job it concerns, for holds, settles and releases.
    pub job_id: Option<Uuid>,
    /// Unique per account: posting the same key again changes nothing.
    pub idempotency_key: String,
    /// Why (an admin's reason, a Stripe event id…).
    pub reason: Option<String>,
    /// For buckets: spending priority among granted credits (higher first).
    pub priority: i32,
    /// For buckets: when the unspent rest expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An account's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Sum of the entries' credits.
    pub balance: i64,
    /// Credits reserved by open holds.
    pub held: i64,
}

impl Account {
    /// What may be spent or held now.
    pub fn available(&self) -> i64 {
        self.balance - self.held
    }
}

/// Credits to reserve when a job is admitted.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHold {
    /// How many.
    pub credits: i64,
    /// The quote it came from (prices per step type, factors), used to settle.
    pub quote: Value,
    /// When an unsettled hold is released by the sweep.
    pub expires_at: DateTime<Utc>,
}

/// An open or closed hold on a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// The job.
    pub job_id: Uuid,
    /// Whose account.
    pub user_id: Uuid,
    /// Credits reserved.
    pub credits: i64,
    /// The quote it came from.
    pub quote: Value,
    /// When the sweep releases it if it is still open.
    pub expires_at: DateTime<Utc>,
}

/// A positive entry to post (grant, purchase, refund, referral, adjustment) or a negative
/// adjustment.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// Whose account.
    pub user_id: Uuid,
    /// What it records.
    pub kind: EntryKind,
    /// Credits (negative only for an adjustment).
    pub credits: i64,
    /// Unique per account.
    pub idempotency_key: String,
    /// Why.
    pub reason: Option<String>,
    /// Spending priority of the bucket it opens.
    pub priority: i32,
    /// When the bucket's unspent rest expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When.
    pub now: DateTime<Utc>,
}

/// What posting an entry did.
#[derive(Debug, Clone, PartialEq)]
pub enum Posted {
    /// The entry was written.
    Created(Entry),
    /// The key was used before: the first entry, nothing changed.
    Replayed(Entry),
}

impl Posted {
    /// The entry, new or first.
    pub fn entry(&self) -> &Entry {
        match self {
            Posted::Created(e) | Posted::Replayed(e) => e,
        }
    }
}

/// Unspent credits opened by one positive entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The entry that opened it.
    pub id: Uuid,
    /// Granted (0) or purchased (1): granted credits are spent first.
    pub rank: u8,
    /// Among equals, higher is spent first.
    pub priority: i32,
    /// Expiring credits are spent first, soonest first.
    pub expires_at: Option<DateTime<Utc>>,
    /// What is left.
    pub remaining: i64,
}

/// Takes `amount` from `buckets` in spending order; returns what it took from each (by
/// index). Takes at most what the buckets hold.
pub fn spend(buckets: &[Bucket], amount: i64) -> Vec<(usize, i64)> {
    let mut order: Vec<usize> = (0..buckets.len())
        .filter(|&i| buckets[i].remaining > 0)
        .collect();
    order.sort_by_key(|&i| {
        let b = &buckets[i];
        (
            b.expires_at.is_none(),
            b.expires_at,
            b.rank,
            std::cmp::Reverse(b.priority),
            b.id,
        )
    });
    let mut left = amount.max(0);
    let mut taken = Vec::new();
    for i in order {
        if left == 0 {
            break;
        }
        let t = buckets[i].remaining.min(left);
        taken.push((i, t));
        left -= t;
    }
    taken
}

/// What expires of `buckets` at `now`: the unspent rest of each bucket past its expiry, but
/// never more than `available` in all, so open holds stay covered. By index.
pub fn expiring(buckets: &[Bucket], available: i64, now: DateTime<Utc>) -> Vec<(usize, i64)> {
    let mut left = available.max(0);
    let mut out = Vec::new();
    for (i, b) in buckets.iter().enumerate() {
        if left == 0 {
            break;
        }
        if b.remaining > 0 && b.expires_at.is_some_and(|t| t <= now) {
            let t = b.remaining.min(left);
            out.push((i, t));
            left -= t;
        }
    }
    out
}

/// Storage of the ledger. Each call is one transaction that keeps the account's totals equal to
/// the sums of its entries and never lets `available` go below zero.
#[async_trait]
pub trait CreditStore: Send + Sync {
    /// An account's totals (zero when it has no entry).
    async fn account(&self, user_id: Uuid) -> Result<Account>;
    /// Posts a grant, purchase, refund, referral or adjustment. A negative adjustment spends
    /// (bucket order) and is refused with `insufficient_credits` beyond what is available.
    async fn post_entry(&self, entry: &NewEntry) -> Result<Posted>;
    /// The account's entries, newest first, older than `before` when given.
    async fn list_entries(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Entry>>;
    /// Open holds to close now: their job ended (or is gone), or they expired before `now`.
    async fn holds_to_close(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Hold>>;
    /// Closes the hold on `job_id`, charging `actual` (0 releases it; never above the hold).
    /// `false` when it was closed already.
    async fn close_hold(&self, job_id: Uuid, actual: i64, now: DateTime<Utc>) -> Result<bool>;
    /// Expires the unspent rest of buckets whose expiry passed, never below what holds need;
    /// how many credits expired.
    async fn expire_credits(&self, now: DateTime<Utc>) -> Result<i64>;
    /// Moves a user's ledger (entries without their reasons, buckets, holds, totals) to
    /// `tombstone`, for erasure: the amounts stay, the person goes. How many entries moved.
    async fn pseudonymize_credits(&self, user_id: Uuid, tombstone: Uuid) -> Result<u64>;
}

/// What each step type costs, in credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prices {
    /// Per step type.
    pub steps: BTreeMap<String, i64>,
    /// For a type not listed (a connector).
    pub default_step: i64,
}

impl Default for Prices {
    fn default() -> Self {
        let steps = [
            ("log", 1),
            ("condition", 1),
            ("delay", 1),
            ("email", 5),
            ("http_request", 10),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self {
            steps,
            default_step: 10,
        }
    }
}

impl Prices {
    /// The price of one step of `kind`.
    pub fn of(&self, kind: &str) -> i64 {
        self.steps.get(kind).copied().unwrap_or(self.default_step)
    }
}

/// What the load factor and the performance bonus are measured against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricingPolicy {
    /// Prices per step type.
    pub prices: Prices,
    /// Queue depth at which the load factor starts to rise.
    pub queue_target: u64,
    /// p95 job latency (admission to end) at which the load factor starts to rise, in ms.
    pub latency_target_ms: i64,
    /// Highest load factor, in basis points (15,000 = 1.5).
    pub max_factor_bp: i64,
    /// The latency a user is promised for their runs, in ms.
    pub slo_ms: i64,
    /// Discount when the platform missed that SLO on the user's recent runs, in basis points.
    pub bonus_bp: i64,
    /// How long an unsettled hold lives.
    pub hold_ttl_hours: i64,
}

impl Default for PricingPolicy {
    fn default() -> Self {
        Self {
            prices: Prices::default(),
            queue_target: 10_000,
            latency_target_ms: 5_000,
            max_factor_bp: 15_000,
            slo_ms: 30_000,
            bonus_bp: 1_000,
            hold_ttl_hours: 24,
        }
    }
}

/// The platform's and the user's recent latency, which quotes depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Load {
    /// Jobs waiting to run.
    pub queue_depth: u64,
    /// p95 latency of recent jobs, ms.
    pub p95_ms: i64,
    /// p95 latency of the user's recent jobs, ms (0 without any).
    pub user_p95_ms: i64,
}

/// One line of a quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// What it is (`base:http_request`, `load_factor`, `performance_bonus`).
    pub name: String,
    /// Credits, for base lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<i64>,
    /// A multiplier, for factors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// In words.
    pub detail: String,
}

/// A price and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// What the job is held for.
    pub credits: i64,
    /// The lines.
    pub components: Vec<Component>,
    /// The price of one step per type, as quoted: settlement charges the steps that ran at
    /// these prices, times the same factor.
    pub step_prices: BTreeMap<String, i64>,
    /// The combined factor, in basis points.
    pub factor_bp: i64,
}

/// The load factor for `load`: 1.0 at or below both targets, rising linearly with the worse
/// overshoot, capped at `max_factor_bp`. In basis points.
pub fn load_factor_bp(policy: &PricingPolicy, load: &Load) -> i64 {
    let over = |value: f64, target: f64| {
        if target <= 0.0 {
            0.0
        } else {
            (value / target - 1.0).max(0.0)
        }
    };
    let worst = over(load.queue_depth as f64, policy.queue_target as f64)
        .max(over(load.p95_ms as f64, policy.latency_target_ms as f64))
        .min(1.0);
    let span = (policy.max_factor_bp - 10_000).max(0) as f64;
    10_000 + (worst * span).round() as i64
}

/// Prices `workflow` under `policy` and `load`: the sum of its steps' prices, times the load
/// factor, less the performance bonus when the user's recent runs missed the SLO; rounded up,
/// never below 1 for a workflow with steps.
pub fn quote(policy: &PricingPolicy, workflow: &Workflow, load: &Load) -> Quote {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for s in &workflow.steps {
        *counts.entry(s.kind.as_str()).or_default() += 1;
    }
    let mut components = Vec::new();
    let mut base = 0;
    let mut step_prices = BTreeMap::new();
    for (kind, n) in &counts {
        let price = policy.prices.of(kind);
        step_prices.insert(kind.to_string(), price);
        base += price * n;
        components.push(Component {
            name: format!("base:{kind}"),
            credits: Some(price * n),
            factor: None,
            detail: format!("{n} × {price} credits"),
        });
    }
    let load_bp = load_factor_bp(policy, load);
    components.push(Component {
        name: "load_factor".into(),
        credits: None,
        factor: Some(load_bp as f64 / 10_000.0),
        detail: format!(
            "queue depth {} (target {}), p95 latency {} ms (target {} ms); bounded 1.0–{}",
            load.queue_depth,
            policy.queue_target,
            load.p95_ms,
            policy.latency_target_ms,
            policy.max_factor_bp as f64 / 10_000.0
        ),
    });
    let missed = load.user_p95_ms > policy.slo_ms;
    let bonus_bp = if missed {
        policy.bonus_bp.clamp(0, 10_000)
    } else {
        0
    };
    components.push(Component {
        name: "performance_bonus".into(),
        credits: None,
        factor: Some((10_000 - bonus_bp) as f64 / 10_000.0),
        detail: if missed {
            format!(
                "your recent runs took {} ms at p95, over the {} ms objective",
                load.user_p95_ms, policy.slo_ms
            )
        } else {
            "the latency objective was met on your recent runs".into()
        },
    });
    let factor_bp = load_bp * (10_000 - bonus_bp) / 10_000;
    let credits = charge(base, factor_bp);
    Quote {
        credits,
        components,
        step_prices,
        factor_bp,
    }
}

/// `base × factor`, rounded up, at least 1 when `base` is positive.
pub fn charge(base: i64, factor_bp: i64) -> i64 {
    if base <= 0 {
        return 0;
    }
    ((base * factor_bp + 9_999) / 10_000).max(1)
}

/// The actual cost of a finished job: the steps that ran (succeeded), at the quoted prices and
/// factor; never above the hold. A job that did not succeed costs nothing.
pub fn actual_cost(
    hold: &Hold,
    job: Option<&Job>,
    steps: &[crate::jobs::model::StepRecord],
) -> i64 {
    let Some(job) = job.filter(|j| j.status == JobStatus::Succeeded) else {
        return 0;
    };
    let Ok(workflow) = Workflow::parse(&job.workflow) else {
        return 0;
    };
    let prices: BTreeMap<String, i64> =
        serde_json::from_value(hold.quote["step_prices"].clone()).unwrap_or_default();
    let factor_bp = hold.quote["factor_bp"].as_i64().unwrap_or(10_000);
    let base: i64 = steps
        .iter()
        .filter(|s| s.status == StepStatus::Succeeded)
        .filter_map(|s| workflow.steps.iter().find(|w| w.id == s.step_id))
        .map(|w| prices.get(&w.kind).copied().unwrap_or(0))
        .sum();
    charge(base, factor_bp).min(hold.credits)
}

/// Platform load, measured at most once a second per node.
pub(crate) struct LoadGauge {
    store: Arc<dyn Store>,
    cached: RwLock<Option<(Load, Instant)>>,
    /// One caller refreshes a stale reading; the others use it meanwhile.
    refreshing: std::sync::atomic::AtomicBool,
    users: RwLock<std::collections::HashMap<Uuid, (i64, Instant)>>,
}

const GAUGE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
const USER_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// p95 of the latencies (admission to end, ms) of `jobs` that finished.
fn p95(jobs: &[Job]) -> i64 {
    let mut ms: Vec<i64> = jobs
        .iter()
        .filter_map(|j| Some((j.finished_at? - j.created_at).num_milliseconds()))
        .collect();
    if ms.is_empty() {
        return 0;
    }
    ms.sort_unstable();
    ms[((ms.len() * 95).div_ceil(100)).saturating_sub(1)]
}

impl LoadGauge {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cached: RwLock::new(None),
            refreshing: std::sync::atomic::AtomicBool::new(false),
            users: RwLock::default(),
        }
    }

    pub(crate) async fn load(&self, user_id: Option<Uuid>, now: DateTime<Utc>) -> Result<Load> {
        use crate::jobs::store::JobFilter;
        use std::sync::atomic::Ordering;
        let cached = *self.cached.read().expect("gauge lock");
        let mut load = match cached {
            Some((l, at)) if at.elapsed() < GAUGE_TTL => l,
            Some((l, _)) if self.refreshing.swap(true, Ordering::AcqRel) => l,
            _ => {
                // The newest jobs, whatever their status: a bounded read on every backend
                // (by primary key), of which the finished ones give the latency.
                let recent = self
                    .store
                    .list_jobs(&JobFilter {
                        limit: 500,
                        ..Default::default()
                    })
                    .await;
                let depth = self.store.queue_depth(now).await;
                self.refreshing.store(false, Ordering::Release);
                let l = Load {
                    queue_depth: depth?,
                    p95_ms: p95(&recent?),
                    user_p95_ms: 0,
                };
                *self.cached.write().expect("gauge lock") = Some((l, Instant::now()));
                l
            }
        };
        if let Some(user) = user_id {
            let known = self.users.read().expect("gauge lock").get(&user).copied();
            load.user_p95_ms = match known {
                Some((ms, at)) if at.elapsed() < USER_TTL => ms,
                _ => {
                    let recent = self
                        .store
                        .list_jobs(&JobFilter {
                            owner_id: Some(user),
                            limit: 20,
                            ..Default::default()
                        })
                        .await?;
                    let ms = p95(&recent);
                    let mut users = self.users.write().expect("gauge lock");
                    if users.len() > 10_000 {
                        users.clear();
                    }
                    users.insert(user, (ms, Instant::now()));
                    ms
                }
            };
        }
        Ok(load)
    }
}

/// The intake stage that prices the job and asks admission to hold the price.
pub(crate) struct PriceStage {
    /// Shared with [`Levqor`]; replaced whole, so a reader clones only the `Arc`.
    pub(crate) policy: Arc<RwLock<Arc<PricingPolicy>>>,
    pub(crate) gauge: Arc<LoadGauge>,
}

#[async_trait]
impl IntakeStage for PriceStage {
    fn name(&self) -> &'static str {
        "price"
    }

    async fn check(&self, ctx: &mut IntakeContext) -> Result<()> {
        let Some(workflow) = &ctx.workflow else {
            return Ok(());
        };
        let policy = self.policy.read().expect("policy lock").clone();
        let load = self.gauge.load(Some(ctx.owner_id), ctx.now).await?;
        let q = quote(&policy, workflow, &load);
        let view = serde_json::to_value(&q).map_err(|e| Error::internal(e.to_string()))?;
        ctx.hold = Some(NewHold {
            credits: q.credits,
            quote: view.clone(),
            expires_at: ctx.now + Duration::hours(policy.hold_ttl_hours.max(1)),
        });
        ctx.quote = Some(view);
        Ok(())
    }
}

/// The idempotency key of the `hold` entry of `job_id`'s hold.
pub fn hold_key(job_id: Uuid) -> String {
    format!("hold:{job_id}")
}

/// The error of an admission whose hold does not fit.
pub fn insufficient() -> Error {
    Error::insufficient_credits("the account has too few credits for this job's quote")
}

impl Levqor {
    /// The caller's (or, for the admin, `user_id`'s) balance, available and held credits.
    pub async fn credits(&self, who: &Principal, user_id: Option<Uuid>) -> Result<Value> {
        let user = self.acting_user(who, user_id).await?;
        let a = self.store.account(user.id).await?;
        Ok(json!({"balance": a.balance, "available": a.available(), "held": a.held}))
    }

    /// The caller's ledger entries, newest first.
    pub async fn credit_entries(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<crate::Page<Entry>> {
        let user = self.acting_user(who, user_id).await?;
        let page = crate::service::PageRequest::parse_or_fail(limit, cursor)?;
        let items = self
            .store
            .list_entries(user.id, page.before, page.limit + 1)
            .await?;
        Ok(page.cut(items, |e| e.id))
    }

    /// Grants credits to a user (admin); the idempotency key makes a retry harmless.
    #[allow(clippy::too_many_arguments)]
    pub async fn grant_credits(
        &self,
        who: &Principal,
        user_id: Uuid,
        credits: i64,
        reason: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
        priority: i32,
        idempotency_key: &str,
    ) -> Result<(Entry, bool)> {
        who.require_admin()?;
        self.get_user(who, user_id).await?;
        let mut bad = Vec::new();
        if credits == 0 || credits.abs() > 1_000_000_000 {
            bad.push(Violation::new(
                "/credits",
                "must be a non-zero whole number up to 1e9",
            ));
        }
        if idempotency_key.is_empty() || idempotency_key.len() > 255 {
            bad.push(Violation::new(
                "/idempotency_key",
                "must be 1 to 255 characters",
            ));
        }
        let now = self.now();
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
                reason: reason.map(str::to_string),
                priority,
                expires_at,
                now,
            })
            .await?;
        let created = matches!(posted, Posted::Created(_));
        if created {
            self.audit(
                Actor::Admin,
                "credits.granted",
                Some(user_id),
                json!({"credits": credits, "entry_id": posted.entry().id}),
            )
            .await?;
        }
        Ok((posted.entry().clone(), created))
    }

    /// Prices a workflow for the caller without admitting anything; a discount code is
    /// checked (expired, exhausted, already redeemed by the caller) and shown, not redeemed.
    pub async fn quote(
        &self,
        who: &Principal,
        workflow: &Value,
        discount_code: Option<&str>,
    ) -> Result<Quote> {
        let user = self.acting_user(who, None).await?;
        let workflow = self.validate_workflow(workflow)?;
        let policy = self.pricing.read().expect("policy lock").clone();
        let load = self.gauge.load(Some(user.id), self.now()).await?;
        let mut q = quote(&policy, &workflow, &load);
        if let Some(code) = discount_code {
            let d = self.preview_discount(user.id, code).await?;
            let credit_micro_cents = self.billing_policy_credit_value();
            let before = q.credits;
            q.credits = match d.kind.as_str() {
                "percent" => d.apply(q.credits),
                _ => (q.credits - d.value * 1_000_000 / credit_micro_cents.max(1)).max(0),
            };
            q.components.push(Component {
                name: format!("discount:{}", d.code),
                credits: Some(q.credits - before),
                factor: None,
                detail: match d.kind.as_str() {
                    "percent" => format!("{}% off", d.value),
                    _ => format!("{} cents off", d.value),
                },
            });
        }
        Ok(q)
    }

    /// The hold for a job admitted outside intake's stages (an approved appeal).
    pub(crate) async fn hold_for(
        &self,
        workflow: &Value,
        user_id: Uuid,
    ) -> Result<Option<NewHold>> {
        let workflow = self.validate_workflow(workflow)?;
        let policy = self.pricing_policy();
        let now = self.now();
        let load = self.gauge.load(Some(user_id), now).await?;
        let q = quote(&policy, &workflow, &load);
        Ok(Some(NewHold {
            credits: q.credits,
            quote: serde_json::to_value(&q).map_err(|e| Error::internal(e.to_string()))?,
            expires_at: now + Duration::hours(policy.hold_ttl_hours.max(1)),
        }))
    }

    /// The pricing policy in force.
    pub fn pricing_policy(&self) -> PricingPolicy {
        PricingPolicy::clone(&self.pricing.read().expect("policy lock"))
    }

    /// Replaces the pricing policy (deployment configuration).
    pub fn set_pricing_policy(&self, policy: PricingPolicy) {
        *self.pricing.write().expect("policy lock") = Arc::new(policy);
    }

    /// Credits every new user is granted (0: none).
    pub fn set_signup_grant(&mut self, credits: i64) {
        self.signup_grant = credits.max(0);
    }

    /// Closes the holds whose job ended (charging what ran) or expired, and expires unspent
    /// credits; how many holds were closed.
    pub async fn settle_holds(&self) -> Result<usize> {
        settle(self.store.as_ref(), self.now()).await
    }
}

/// Closes what can be closed now; shared by [`Levqor::settle_holds`] and the engine's loop.
pub(crate) async fn settle(store: &dyn Store, now: DateTime<Utc>) -> Result<usize> {
    let mut closed = 0;
    loop {
        let holds = store.holds_to_close(now, 500).await?;
        if holds.is_empty() {
            break;
        }
        let n = holds.len();
        for hold in holds {
            let job = store.get_job(hold.job_id).await?;
            let ended = job.as_ref().is_none_or(|j| j.status.is_terminal());
            let actual = if ended {
                let steps = match &job {
                    Some(_) => store.list_steps(hold.job_id).await?,
                    None => Vec::new(),
                };
                actual_cost(&hold, job.as_ref(), &steps)
            } else {
                0 // expired while the job is stuck: release
            };
            if store.close_hold(hold.job_id, actual, now).await? {
                closed += 1;
            }
        }
        if n < 500 {
            break;
        }
    }
    store.expire_credits(now).await?;
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(kinds: &[&str]) -> Workflow {
        let steps: Vec<Value> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| json!({"id": format!("s{i}"), "type": k}))
            .collect();
        Workflow::parse(&json!({"name": "w", "steps": steps})).unwrap()
    }

    #[test]
    fn default_prices_follow_the_contract() {
        let q = quote(
            &PricingPolicy::default(),
            &wf(&["log", "condition", "delay", "email", "http_request"]),
            &Load::default(),
        );
        assert_eq!(q.credits, 18);
        assert_eq!(q.factor_bp, 10_000);
        assert_eq!(q.components[0].name, "base:condition");
    }

    #[test]
    fn load_raises_the_price_within_bounds() {
        let p = PricingPolicy::default();
        let calm = Load::default();
        assert_eq!(load_factor_bp(&p, &calm), 10_000);
        let busy = Load {
            queue_depth: 15_000,
            ..calm
        };
        assert_eq!(load_factor_bp(&p, &busy), 12_500);
        let swamped = Load {
            queue_depth: 1_000_000,
            p95_ms: 1_000_000,
            ..calm
        };
        assert_eq!(load_factor_bp(&p, &swamped), 15_000, "bounded at 1.5");
        assert_eq!(
            quote(&p, &wf(&["http_request"]), &busy).credits,
            13,
            "12.5 rounded up"
        );
    }

    #[test]
    fn a_missed_slo_discounts_the_user() {
        let p = PricingPolicy::default();
        let slow = Load {
            user_p95_ms: 60_000,
            ..Load::default()
        };
        let q = quote(&p, &wf(&["http_request", "http_request"]), &slow);
        assert_eq!(q.credits, 18);
        assert_eq!(q.components.last().unwrap().factor, Some(0.9));
    }

    #[test]
    fn charges_round_up_and_never_exceed_the_hold() {
        assert_eq!(charge(1, 10_001), 2);
        assert_eq!(charge(0, 15_000), 0);
        assert_eq!(charge(3, 9_000), 3);
    }
}
