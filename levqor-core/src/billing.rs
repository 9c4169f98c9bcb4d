//! Billing: the [`PaymentProvider`] port (Stripe in production, behind the binary's `stripe`
//! feature), checkout for credit packs and tier subscriptions, the webhook (signature checked,
//! idempotent by event id), dunning, and the revenue that the profitability ledger reads.
//!
//! The core never names Stripe's SDK: it builds [`CheckoutRequest`]s and reads webhook events
//! as JSON, so any provider with the same shape plugs in.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::Result;

/// What a checkout sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutMode {
    /// A one-off payment (a credit pack).
    Payment,
    /// A monthly subscription (a tier).
    Subscription,
}

/// A checkout session to create at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckoutRequest {
    /// The provider's customer id of the user.
    pub customer_id: String,
    /// One-off or monthly.
    pub mode: CheckoutMode,
    /// What the line item is called on the payment page.
    pub product_name: String,
    /// Its price in the currency's minor units (cents), per month for a subscription.
    pub amount_minor: i64,
    /// ISO currency code, lower case (`usd`).
    pub currency: String,
    /// Carried back by the provider's events: `levqor_user_id`, `levqor_credits`,
    /// `levqor_tier`.
    pub metadata: BTreeMap<String, String>,
    /// Where the payer lands after paying.
    pub success_url: String,
    /// Where the payer lands after giving up.
    pub cancel_url: String,
}

/// A checkout session the provider created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutSession {
    /// The provider's id of the session.
    pub id: String,
    /// The payment page to send the user to.
    pub url: String,
}

/// A payment provider. Errors are `unavailable` (the provider could not be reached or refused
/// the call); nothing about them reaches the client beyond that.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Creates a customer for a user; called once per user, the id is stored.
    async fn create_customer(&self, user_id: uuid::Uuid, email: &str) -> Result<String>;
    /// Creates a checkout session.
    async fn create_checkout(&self, request: &CheckoutRequest) -> Result<CheckoutSession>;
}

use crate::auth::Principal;
use crate::error::{Error, Violation};
use crate::notify::Email;
use crate::pricing::{EntryKind, NewEntry};
use crate::privacy::Actor;
use crate::service::Levqor;
use chrono::{DateTime, Datelike, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let key: Vec<u8> = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, b) in key.iter().enumerate() {
        ipad[i] ^= b;
        opad[i] ^= b;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// How old a webhook's timestamp may be.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// Checks a `Stripe-Signature` header (`t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload">`,
/// possibly several `v1`) against `secret`: the signature must match and the timestamp be
/// within [`WEBHOOK_TOLERANCE_SECS`] of `now`. `Invalid` `bad_signature` otherwise.
pub fn verify_signature(
    payload: &[u8],
    header: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let bad = |why: &str| Error::invalid("bad_signature", format!("the webhook signature {why}"));
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| bad("has no timestamp"))?;
    if sigs.is_empty() {
        return Err(bad("has no v1 signature"));
    }
    if (now.timestamp() - t).abs() > WEBHOOK_TOLERANCE_SECS {
        return Err(bad("is too old or from the future"));
    }
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(payload);
    let expected = hex::encode(hmac_sha256(secret.as_bytes(), &signed));
    if sigs
        .iter()
        .any(|s| crate::service::constant_time_eq(s.as_bytes(), expected.as_bytes()))
    {
        Ok(())
    } else {
        Err(bad("does not match"))
    }
}

/// Signs `payload` as Stripe does, for tests and for tools that replay events.
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(payload);
    format!(
        "t={t},v1={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &signed))
    )
}

/// Where an account is in the dunning ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DunningState {
    /// Paid up.
    Active,
    /// A payment failed; reminders go out; everything still works.
    PastDue,
    /// The grace period ended unpaid: intake refuses jobs; reads and exports still work.
    Suspended,
}

impl DunningState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DunningState::Active => "active",
            DunningState::PastDue => "past_due",
            DunningState::Suspended => "suspended",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::PastDue, Self::Suspended]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// An account's dunning record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dunning {
    /// The user.
    pub user_id: Uuid,
    /// Where they are.
    pub state: DunningState,
    /// When the current failure began.
    pub since: DateTime<Utc>,
    /// Reminders sent for it.
    pub reminders_sent: i32,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Money received, as the provider reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revenue {
    /// The provider's event id.
    pub id: String,
    /// The paying user, when known.
    pub user_id: Option<Uuid>,
    /// Minor units (cents).
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// `checkout` or `invoice`.
    pub source: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A discount code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscountCode {
    /// The code, upper case.
    pub code: String,
    /// `percent` (value 1–100) or `fixed` (value in cents).
    pub kind: String,
    /// How much.
    pub value: i64,
    /// Unusable after this.
    pub expires_at: Option<DateTime<Utc>>,
    /// How many users may redeem it (`None`: no limit).
    pub max_redemptions: Option<i64>,
    /// How many did.
    pub redemptions: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl DiscountCode {
    /// `amount` after this discount, never below zero.
    pub fn apply(&self, amount: i64) -> i64 {
        match self.kind.as_str() {
            "percent" => amount - amount * self.value / 100,
            _ => (amount - self.value).max(0),
        }
    }

    /// Why it cannot be used at `now` (expired, exhausted), if it cannot.
    pub fn check(&self, now: DateTime<Utc>) -> Result<()> {
        if self.expires_at.is_some_and(|t| t <= now) {
            return Err(Error::conflict(
                "discount_expired",
                "this discount code has expired",
            ));
        }
        if self.max_redemptions.is_some_and(|m| self.redemptions >= m) {
            return Err(Error::conflict(
                "discount_exhausted",
                "this discount code was redeemed as often as it may be",
            ));
        }
        Ok(())
    }
}

/// Storage of billing: customers, processed events, dunning, revenue, discount codes.
#[async_trait]
pub trait BillingStore: Send + Sync {
    /// The provider's customer id of a user.
    async fn customer_of(&self, user_id: Uuid) -> Result<Option<String>>;
    /// Stores a user's customer id unless one is stored; returns the stored one.
    async fn set_customer(&self, user_id: Uuid, customer_id: &str) -> Result<String>;
    /// The user of a customer id.
    async fn user_of_customer(&self, customer_id: &str) -> Result<Option<Uuid>>;
    /// Records an event id; `false` when it was recorded before.
    async fn record_event(&self, id: &str, kind: &str, now: DateTime<Utc>) -> Result<bool>;
    /// A user's dunning record.
    async fn dunning(&self, user_id: Uuid) -> Result<Option<Dunning>>;
    /// Inserts or replaces a dunning record.
    async fn put_dunning(&self, dunning: &Dunning) -> Result<()>;
    /// Every record that is past due.
    async fn past_due(&self) -> Result<Vec<Dunning>>;
    /// Records revenue (idempotent by id).
    async fn record_revenue(&self, revenue: &Revenue) -> Result<()>;
    /// Revenue received in `[from, to)`.
    async fn revenue_between(&self, from: DateTime<Utc>, to: DateTime<Utc>)
    -> Result<Vec<Revenue>>;
    /// `(finished_at, milliseconds run)` of jobs that ended in `[from, to)`.
    async fn job_runtimes_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>>;
    /// `(created_at, credits)` of the ledger entries of `kind` in `[from, to)`.
    async fn entries_between(
        &self,
        kind: EntryKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>>;
    /// Stores new codes; `Conflict` `discount_code_exists` when one is taken (none is stored).
    async fn create_codes(&self, codes: &[DiscountCode]) -> Result<()>;
    /// A code.
    async fn get_code(&self, code: &str) -> Result<Option<DiscountCode>>;
    /// Whether the user redeemed the code.
    async fn redeemed(&self, code: &str, user_id: Uuid) -> Result<bool>;
    /// Redeems a code for a user in one transaction: refused when expired, exhausted or
    /// already redeemed by the user.
    async fn redeem(&self, code: &str, user_id: Uuid, now: DateTime<Utc>) -> Result<DiscountCode>;
    /// Deletes a user's customer link and dunning record; pseudonymizes their revenue.
    async fn erase_billing(&self, user_id: Uuid, tombstone: Uuid) -> Result<u64>;
}

/// A credit pack for sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pack {
    /// Its name, e.g. `credits_1000`.
    pub name: String,
    /// Credits granted when paid.
    pub credits: i64,
    /// Price in cents.
    pub price_cents: i64,
}

/// Billing configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingPolicy {
    /// Credit packs.
    pub packs: Vec<Pack>,
    /// Currency of every price.
    pub currency: String,
    /// Days after a failed payment on which a reminder goes out.
    pub reminder_days: Vec<i64>,
    /// Days after a failed payment before the account is suspended.
    pub grace_days: i64,
    /// What a second of job runtime costs the platform, in millionths of a cent.
    pub compute_micro_cents_per_sec: i64,
    /// What one credit is worth, in millionths of a cent (for referral payouts).
    pub credit_micro_cents: i64,
    /// Scaling up is refused below this trailing margin, in percent.
    pub min_margin_pct: f64,
    /// The trailing window of the profit guard, in days.
    pub margin_window_days: i64,
}

impl Default for BillingPolicy {
    fn default() -> Self {
        Self {
            packs: vec![
                Pack {
                    name: "credits_1000".into(),
                    credits: 1_000,
                    price_cents: 1_000,
                },
                Pack {
                    name: "credits_5500".into(),
                    credits: 5_500,
                    price_cents: 5_000,
                },
                Pack {
                    name: "credits_12000".into(),
                    credits: 12_000,
                    price_cents: 10_000,
                },
            ],
            currency: "usd".into(),
            reminder_days: vec![0, 3, 7],
            grace_days: 14,
            compute_micro_cents_per_sec: 1_400,
            credit_micro_cents: 1_000_000,
            min_margin_pct: 10.0,
            margin_window_days: 30,
        }
    }
}

/// The payment provider and the webhook secret, when billing is configured.
pub struct BillingConfig {
    /// The provider.
    pub provider: Arc<dyn PaymentProvider>,
    /// The webhook signing secret.
    pub webhook_secret: String,
}

fn not_configured() -> Error {
    Error::unavailable("billing is not configured on this deployment")
        .with_code("billing_not_configured")
}

fn meta<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"][key].as_str()
}

/// The start of the period `t` falls in: its day, its ISO week's Monday, or its month.
pub fn period_start(t: DateTime<Utc>, group_by: &str) -> DateTime<Utc> {
    let day = t.date_naive();
    let start = match group_by {
        "week" => day - Duration::days(day.weekday().num_days_from_monday() as i64),
        "month" => day.with_day(1).unwrap_or(day),
        _ => day,
    };
    start
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

impl Levqor {
    /// Configures billing (the binary does when `LEVQOR_STRIPE_*` are set).
    pub fn set_billing(&mut self, billing: BillingConfig) {
        self.billing = Some(billing);
    }

    /// Replaces the billing policy.
    pub fn set_billing_policy(&self, policy: BillingPolicy) {
        *self.billing_policy.write().expect("billing lock") = policy;
    }

    pub(crate) fn billing_policy_credit_value(&self) -> i64 {
        self.billing_policy
            .read()
            .expect("billing lock")
            .credit_micro_cents
    }

    fn billing_policy(&self) -> BillingPolicy {
        self.billing_policy.read().expect("billing lock").clone()
    }

    /// Starts a checkout for a credit pack or a tier subscription; returns the payment page.
    pub async fn checkout(
        &self,
        who: &Principal,
        pack: Option<&str>,
        tier: Option<&str>,
        discount_code: Option<&str>,
        success_url: &str,
        cancel_url: &str,
    ) -> Result<Value> {
        let billing = self.billing.as_ref().ok_or_else(not_configured)?;
        let user = self.acting_user(who, None).await?;
        let policy = self.billing_policy();
        let mut metadata = BTreeMap::from([("levqor_user_id".to_string(), user.id.to_string())]);
        let (mode, name, amount) = match (pack, tier) {
            (Some(p), None) => {
                let pack = policy.packs.iter().find(|x| x.name == p).ok_or_else(|| {
                    Error::violations(
                        "validation_failed",
                        "unknown pack",
                        vec![Violation::new(
                            "/pack",
                            format!(
                                "must be one of {}",
                                policy
                                    .packs
                                    .iter()
                                    .map(|p| p.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )],
                    )
                })?;
                metadata.insert("levqor_credits".into(), pack.credits.to_string());
                (
                    CheckoutMode::Payment,
                    format!("{} Levqor credits", pack.credits),
                    pack.price_cents,
                )
            }
            (None, Some(t)) => {
                let tier = self
                    .tiers()
                    .into_iter()
                    .find(|x| x.name == t && x.price_cents > 0)
                    .ok_or_else(|| {
                        Error::violations(
                            "validation_failed",
                            "unknown tier",
                            vec![Violation::new("/tier", "must be a paid tier")],
                        )
                    })?;
                metadata.insert("levqor_tier".into(), tier.name.clone());
                (
                    CheckoutMode::Subscription,
                    format!("Levqor {}", tier.name),
                    tier.price_cents,
                )
            }
            _ => {
                return Err(Error::violations(
                    "validation_failed",
                    "name a pack or a tier",
                    vec![Violation::new("", "send exactly one of pack and tier")],
                ));
            }
        };
        let now = self.now();
        let amount = match discount_code {
            Some(code) => {
                let redeemed = self
                    .store
                    .redeem(&code.trim().to_uppercase(), user.id, now)
                    .await?;
                metadata.insert("levqor_discount_code".into(), redeemed.code.clone());
                redeemed.apply(amount)
            }
            None => amount,
        };
        let customer = match self.store.customer_of(user.id).await? {
            Some(c) => c,
            None => {
                let created = billing
                    .provider
                    .create_customer(user.id, &user.email)
                    .await?;
                self.store.set_customer(user.id, &created).await?
            }
        };
        let session = billing
            .provider
            .create_checkout(&CheckoutRequest {
                customer_id: customer,
                mode,
                product_name: name,
                amount_minor: amount,
                currency: policy.currency.clone(),
                metadata,
                success_url: success_url.to_string(),
                cancel_url: cancel_url.to_string(),
            })
            .await?;
        Ok(
            json!({"id": session.id, "url": session.url, "amount": amount, "currency": policy.currency}),
        )
    }

    /// Handles a webhook delivery: checks its signature, then applies the event once.
    pub async fn handle_webhook(&self, payload: &[u8], signature: &str) -> Result<Value> {
        let billing = self.billing.as_ref().ok_or_else(not_configured)?;
        let now = self.now();
        verify_signature(payload, signature, &billing.webhook_secret, now)?;
        let event: Value = serde_json::from_slice(payload)
            .map_err(|_| Error::invalid("bad_signature", "the webhook body is not JSON"))?;
        let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
            return Err(Error::invalid("bad_event", "the event has no id or type"));
        };
        if !self.store.record_event(id, kind, now).await? {
            return Ok(json!({"received": true, "duplicate": true}));
        }
        let object = &event["data"]["object"];
        let handled = self.apply_event(id, kind, object, now).await?;
        Ok(json!({"received": true, "handled": handled}))
    }

    async fn user_of(&self, object: &Value) -> Result<Option<Uuid>> {
        if let Some(id) = meta(object, "levqor_user_id").and_then(|s| Uuid::parse_str(s).ok()) {
            return Ok(Some(id));
        }
        match object["customer"].as_str() {
            Some(c) => self.store.user_of_customer(c).await,
            None => Ok(None),
        }
    }

    async fn apply_event(
        &self,
        id: &str,
        kind: &str,
        object: &Value,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        match kind {
            "checkout.session.completed" => {
                let Some(user_id) = self.user_of(object).await? else {
                    return Ok(false);
                };
                if let Some(credits) =
                    meta(object, "levqor_credits").and_then(|c| c.parse::<i64>().ok())
                {
                    self.store
                        .post_entry(&NewEntry {
                            user_id,
                            kind: EntryKind::Purchase,
                            credits,
                            idempotency_key: format!("stripe:{id}"),
                            reason: Some(format!(
                                "checkout {}",
                                object["id"].as_str().unwrap_or_default()
                            )),
                            priority: 0,
                            expires_at: None,
                            now,
                        })
                        .await?;
                    self.record_revenue(
                        id,
                        Some(user_id),
                        object["amount_total"].as_i64(),
                        object,
                        "checkout",
                        now,
                    )
                    .await?;
                }
                if let Some(tier) = meta(object, "levqor_tier") {
                    self.apply_tier(user_id, tier).await?;
                }
                Ok(true)
            }
            "invoice.paid" => {
                let Some(user_id) = self.user_of(object).await? else {
                    return Ok(false);
                };
                self.record_revenue(
                    id,
                    Some(user_id),
                    object["amount_paid"].as_i64(),
                    object,
                    "invoice",
                    now,
                )
                .await?;
                self.restore_account(user_id, now).await?;
                Ok(true)
            }
            "invoice.payment_failed" => {
                let Some(user_id) = self.user_of(object).await? else {
                    return Ok(false);
                };
                self.start_dunning(user_id, now).await?;
                Ok(true)
            }
            "customer.subscription.updated" | "customer.subscription.deleted" => {
                let Some(user_id) = self.user_of(object).await? else {
                    return Ok(false);
                };
                let active = kind == "customer.subscription.updated"
                    && matches!(
                        object["status"].as_str(),
                        Some("active" | "trialing" | "past_due")
                    );
                let tier = match (active, meta(object, "levqor_tier")) {
                    (true, Some(t)) => t.to_string(),
                    _ => self.quotas.default_tier.read().expect("tier lock").clone(),
                };
                self.apply_tier(user_id, &tier).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_revenue(
        &self,
        id: &str,
        user_id: Option<Uuid>,
        amount: Option<i64>,
        object: &Value,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(amount) = amount else { return Ok(()) };
        self.store
            .record_revenue(&Revenue {
                id: id.to_string(),
                user_id,
                amount_minor: amount,
                currency: object["currency"].as_str().unwrap_or("usd").to_string(),
                source: source.into(),
                at: now,
            })
            .await
    }

    async fn apply_tier(&self, user_id: Uuid, tier: &str) -> Result<()> {
        if self.store.get_user(user_id).await?.is_none() {
            return Ok(());
        }
        match self.set_tier(&Principal::Admin, user_id, tier).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == "validation_failed" => {
                tracing::warn!(%user_id, "a billing event named an unknown tier");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn start_dunning(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<()> {
        let current = self.store.dunning(user_id).await?;
        if current
            .as_ref()
            .is_some_and(|d| d.state != DunningState::Active)
        {
            return Ok(()); // already in the ladder: the first failure's clock runs on
        }
        let d = Dunning {
            user_id,
            state: DunningState::PastDue,
            since: now,
            reminders_sent: 0,
            updated_at: now,
        };
        self.store.put_dunning(&d).await?;
        self.audit(Actor::System, "dunning.past_due", Some(user_id), json!({}))
            .await?;
        self.advance_dunning(d, now).await
    }

    async fn restore_account(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<()> {
        let Some(d) = self.store.dunning(user_id).await? else {
            return Ok(());
        };
        if d.state == DunningState::Active {
            return Ok(());
        }
        self.store
            .put_dunning(&Dunning {
                state: DunningState::Active,
                reminders_sent: 0,
                updated_at: now,
                ..d
            })
            .await?;
        self.consent_cache.forget(user_id);
        self.audit(Actor::System, "dunning.active", Some(user_id), json!({}))
            .await?;
        if let Some(user) = self.store.get_user(user_id).await? {
            self.send_transactional(Email {
                to: user.email,
                subject: "Your payment was received".into(),
                body: "Thank you: your account is in good standing again.".into(),
                job_id: None,
                attachments: Vec::new(),
            })
            .await?;
        }
        Ok(())
    }

    /// Sends the reminders that are due and suspends at the end of the grace period.
    pub(crate) async fn advance_dunning(&self, mut d: Dunning, now: DateTime<Utc>) -> Result<()> {
        if d.state != DunningState::PastDue {
            return Ok(());
        }
        let policy = self.billing_policy();
        let days = (now - d.since).num_days();
        let Some(user) = self.store.get_user(d.user_id).await? else {
            return Ok(());
        };
        let due = policy
            .reminder_days
            .iter()
            .filter(|&&day| day <= days)
            .count() as i32;
        let mut changed = false;
        while d.reminders_sent < due {
            let day = policy.reminder_days[d.reminders_sent as usize];
            self.send_transactional(Email {
                to: user.email.clone(),
                subject: "Your payment failed".into(),
                body: format!(
                    "We could not collect your last payment (day {day}). Please update your payment method: your account will be suspended {} days after the failure if it stays unpaid.",
                    policy.grace_days
                ),
                job_id: None,
                attachments: Vec::new(),
            })
            .await?;
            d.reminders_sent += 1;
            changed = true;
        }
        if days >= policy.grace_days {
            d.state = DunningState::Suspended;
            changed = true;
            self.send_transactional(Email {
                to: user.email.clone(),
                subject: "Your account is suspended".into(),
                body: "Your payment is still outstanding, so new jobs are refused. Your data stays readable and exportable; paying the invoice restores the account.".into(),
                job_id: None,
                attachments: Vec::new(),
            })
            .await?;
            self.audit(
                Actor::System,
                "dunning.suspended",
                Some(d.user_id),
                json!({}),
            )
            .await?;
        }
        if changed {
            d.updated_at = now;
            self.store.put_dunning(&d).await?;
            self.consent_cache.forget(d.user_id);
        }
        Ok(())
    }

    /// One dunning tick: every past-due account advances (the engine runs it as a system job).
    pub async fn dunning_tick(&self) -> Result<usize> {
        let now = self.now();
        let due = self.store.past_due().await?;
        let n = due.len();
        for d in due {
            self.advance_dunning(d, now).await?;
        }
        Ok(n)
    }

    /// A user's billing state (the caller's own, or any for the admin).
    pub async fn billing_status(&self, who: &Principal, user_id: Option<Uuid>) -> Result<Value> {
        let user = self.acting_user(who, user_id).await?;
        let d = self.store.dunning(user.id).await?;
        Ok(json!({
            "state": d.as_ref().map_or("active", |d| d.state.as_str()),
            "since": d.as_ref().filter(|d| d.state != DunningState::Active).map(|d| d.since),
            "customer": self.store.customer_of(user.id).await?.is_some(),
        }))
    }

    /// Creates discount codes (admin): one named `code`, or `count` generated ones with
    /// `prefix`.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_discounts(
        &self,
        who: &Principal,
        code: Option<&str>,
        count: Option<usize>,
        prefix: Option<&str>,
        kind: &str,
        value: i64,
        expires_at: Option<DateTime<Utc>>,
        max_redemptions: Option<i64>,
    ) -> Result<Vec<DiscountCode>> {
        who.require_admin()?;
        let mut bad = Vec::new();
        match kind {
            "percent" if !(1..=100).contains(&value) => {
                bad.push(Violation::new("/value", "a percentage is 1 to 100"))
            }
            "fixed" if value <= 0 => bad.push(Violation::new(
                "/value",
                "a fixed discount is a positive amount of cents",
            )),
            "percent" | "fixed" => {}
            _ => bad.push(Violation::new("/kind", "must be percent or fixed")),
        }
        if max_redemptions.is_some_and(|m| m < 1) {
            bad.push(Violation::new("/max_redemptions", "must be at least 1"));
        }
        let now = self.now();
        if expires_at.is_some_and(|t| t <= now) {
            bad.push(Violation::new("/expires_at", "must be in the future"));
        }
        let codes: Vec<String> = match (code, count) {
            (Some(c), None) => {
                let c = c.trim().to_uppercase();
                if c.len() < 4
                    || c.len() > 64
                    || !c
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
                {
                    bad.push(Violation::new(
                        "/code",
                        "must be 4 to 64 letters, digits, - or _",
                    ));
                }
                vec![c]
            }
            (None, Some(n)) if (1..=10_000).contains(&n) => {
                let prefix = prefix.unwrap_or("LQ").trim().to_uppercase();
                (0..n)
                    .map(|_| {
                        let (token, _) = crate::consent::new_token();
                        format!("{prefix}-{}", token[..10].to_uppercase())
                    })
                    .collect()
            }
            _ => {
                bad.push(Violation::new(
                    "",
                    "send a code, or a count (1 to 10000) to generate",
                ));
                Vec::new()
            }
        };
        if !bad.is_empty() {
            return Err(Error::violations("validation_failed", "bad discount", bad));
        }
        let made: Vec<DiscountCode> = codes
            .into_iter()
            .map(|code| DiscountCode {
                code,
                kind: kind.into(),
                value,
                expires_at: expires_at.map(crate::service::micros),
                max_redemptions,
                redemptions: 0,
                created_at: now,
            })
            .collect();
        self.store.create_codes(&made).await?;
        self.audit(
            Actor::Admin,
            "discounts.created",
            None,
            json!({"count": made.len(), "kind": kind, "value": value}),
        )
        .await?;
        Ok(made)
    }

    /// Checks a code for the caller without redeeming it (for a quote).
    pub(crate) async fn preview_discount(&self, user_id: Uuid, code: &str) -> Result<DiscountCode> {
        let code = code.trim().to_uppercase();
        let found = self
            .store
            .get_code(&code)
            .await?
            .ok_or_else(|| Error::not_found("discount code").with_code("discount_unknown"))?;
        found.check(self.now())?;
        if self.store.redeemed(&code, user_id).await? {
            return Err(Error::conflict(
                "discount_already_redeemed",
                "you already redeemed this code",
            ));
        }
        Ok(found)
    }

    /// The profitability ledger (admin): revenue, compute costs, referral payouts and margin
    /// per day, week or month of `[from, to)`.
    pub async fn profit_ledger(
        &self,
        who: &Principal,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        group_by: &str,
    ) -> Result<Value> {
        who.require_admin()?;
        if !["day", "week", "month"].contains(&group_by)
            || to <= from
            || to - from > Duration::days(3_660)
        {
            return Err(Error::violations(
                "validation_failed",
                "bad ledger range",
                vec![Violation::new(
                    "/group_by",
                    "day, week or month, over a range of at most 10 years with from < to",
                )],
            ));
        }
        let policy = self.billing_policy();
        let mut rows: BTreeMap<DateTime<Utc>, [i64; 3]> = BTreeMap::new();
        for r in self.store.revenue_between(from, to).await? {
            rows.entry(period_start(r.at, group_by)).or_default()[0] += r.amount_minor * 1_000_000;
        }
        for (at, ms) in self.store.job_runtimes_between(from, to).await? {
            rows.entry(period_start(at, group_by)).or_default()[1] +=
                ms * policy.compute_micro_cents_per_sec / 1_000;
        }
        for (at, credits) in self
            .store
            .entries_between(EntryKind::Referral, from, to)
            .await?
        {
            rows.entry(period_start(at, group_by)).or_default()[2] +=
                credits * policy.credit_micro_cents;
        }
        let view = |[revenue, cost, payouts]: [i64; 3]| {
            let margin = revenue - cost - payouts;
            json!({
                "revenue_cents": revenue as f64 / 1e6,
                "cost_cents": cost as f64 / 1e6,
                "payouts_cents": payouts as f64 / 1e6,
                "margin_cents": margin as f64 / 1e6,
                "margin_pct": if revenue > 0 { Some(margin as f64 * 100.0 / revenue as f64) } else { None },
            })
        };
        let mut total = [0i64; 3];
        let periods: Vec<Value> = rows
            .iter()
            .map(|(start, v)| {
                for i in 0..3 {
                    total[i] += v[i];
                }
                let mut row = view(*v);
                row["period"] = json!(start);
                row
            })
            .collect();
        Ok(
            json!({"from": from, "to": to, "group_by": group_by, "periods": periods, "total": view(total)}),
        )
    }

    /// The profit guard (admin): scaling up is allowed only while the trailing margin is at
    /// least the configured minimum; the figures that decided are included.
    pub async fn autoscale(&self, who: &Principal) -> Result<Value> {
        let policy = self.billing_policy();
        let now = self.now();
        let from = now - Duration::days(policy.margin_window_days.max(1));
        // Up to and including this instant.
        let ledger = self
            .profit_ledger(who, from, now + Duration::microseconds(1), "month")
            .await?;
        let t = &ledger["total"];
        let margin = t["margin_pct"].as_f64();
        let allowed = margin.is_some_and(|m| m >= policy.min_margin_pct);
        Ok(json!({
            "allowed": allowed,
            "reason": match margin {
                None => "no revenue in the window: scaling up would run at a loss".to_string(),
                Some(m) if allowed => format!("trailing margin {m:.1}% is at least {:.1}%", policy.min_margin_pct),
                Some(m) => format!("trailing margin {m:.1}% is below {:.1}%", policy.min_margin_pct),
            },
            "margin_pct": margin,
            "threshold_pct": policy.min_margin_pct,
            "window_days": policy.margin_window_days,
            "revenue_cents": t["revenue_cents"],
            "cost_cents": t["cost_cents"],
            "payouts_cents": t["payouts_cents"],
        }))
    }
}

/// The dunning tick as a system task: the engine admits one job per period, across nodes.
pub(crate) struct DunningTask {
    pub(crate) levqor: std::sync::Weak<Levqor>,
    pub(crate) period: std::time::Duration,
}

#[async_trait]
impl crate::jobs::steps::SystemTask for DunningTask {
    fn name(&self) -> &'static str {
        "dunning"
    }

    fn period(&self) -> std::time::Duration {
        self.period
    }

    async fn run(
        &self,
        _now: DateTime<Utc>,
    ) -> std::result::Result<Value, crate::jobs::steps::StepFailure> {
        let Some(levqor) = self.levqor.upgrade() else {
            return Err(crate::jobs::steps::StepFailure::retryable(
                "the service is shutting down",
            ));
        };
        let n = levqor.dunning_tick().await.map_err(|e| {
            crate::jobs::steps::StepFailure::retryable(format!("dunning: {}", e.message))
        })?;
        Ok(json!({"past_due_accounts": n}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn signatures_are_checked_like_stripe_does() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let header = sign(body, "whsec_test", now.timestamp());
        assert!(verify_signature(body, &header, "whsec_test", now).is_ok());
        assert_eq!(
            verify_signature(body, &header, "whsec_other", now)
                .unwrap_err()
                .code,
            "bad_signature"
        );
        assert!(
            verify_signature(b"{}", &header, "whsec_test", now).is_err(),
            "another body"
        );
        let late = now + Duration::seconds(WEBHOOK_TOLERANCE_SECS + 1);
        assert!(
            verify_signature(body, &header, "whsec_test", late).is_err(),
            "stale"
        );
        assert!(verify_signature(body, "v1=abc", "whsec_test", now).is_err());
        let two = format!("{header},v1=deadbeef");
        assert!(
            verify_signature(body, &two, "whsec_test", now).is_ok(),
            "any v1 may match"
        );
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn discounts_apply_and_check() {
        let now = Utc::now();
        let mut d = DiscountCode {
            code: "X".into(),
            kind: "percent".into(),
            value: 25,
            expires_at: None,
            max_redemptions: Some(1),
            redemptions: 0,
            created_at: now,
        };
        assert_eq!(d.apply(1_000), 750);
        assert!(d.check(now).is_ok());
        d.redemptions = 1;
        assert_eq!(d.check(now).unwrap_err().code, "discount_exhausted");
        d.kind = "fixed".into();
        d.value = 2_000;
        assert_eq!(d.apply(1_000), 0);
        d.expires_at = Some(now - Duration::seconds(1));
        d.redemptions = 0;
        assert_eq!(d.check(now).unwrap_err().code, "discount_expired");
    }

    #[test]
    fn periods_start_on_days_mondays_and_firsts() {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 15, 0, 0).unwrap(); // a Thursday
        assert_eq!(
            period_start(t, "day"),
            Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()
        );
        assert_eq!(
            period_start(t, "week"),
            Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
        );
        assert_eq!(
            period_start(t, "month"),
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
        );
    }
}
