//! [`Billing`]: checkout, the provider's webhook, billing status, discount codes and the
//! discounted quote.

use super::dunning::Suspensions;
use super::{
    BillingConfig, BillingPolicy, BillingStore, CheckoutMode, CheckoutRequest, DiscountCode,
    Dunning, DunningState, Revenue, verify_signature,
};
use crate::audit::{Actor, AuditLog};
use crate::auth::Principal;
use crate::clock::{Clock, micros};
use crate::credits::{Component, Credits, EntryKind, NewEntry, Quote};
use crate::error::{Error, Result, Violation};
use crate::notify::Messages;
use crate::quotas::Quotas;
use crate::secrets::new_token;
use crate::users::Users;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// What a checkout asks for: exactly one of a credit pack or a paid tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutOrder {
    /// A credit pack's name.
    pub pack: Option<String>,
    /// A paid tier's name (a monthly subscription).
    pub tier: Option<String>,
    /// A discount code to redeem.
    pub discount_code: Option<String>,
    /// Where the payer lands after paying (default: `<public url>/billing/success`).
    pub success_url: Option<String>,
    /// Where the payer lands after giving up (default: `<public url>/billing/cancel`).
    pub cancel_url: Option<String>,
}

/// A checkout session to send the payer to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckoutResult {
    /// The provider's session id.
    pub id: String,
    /// The payment page.
    pub url: String,
    /// What is charged, in minor units, after any discount.
    pub amount: i64,
    /// The currency.
    pub currency: String,
}

/// What a webhook delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WebhookOutcome {
    /// Always true: the delivery was accepted.
    pub received: bool,
    /// The event was applied before; nothing changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// Whether the event was one Levqor acts on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled: Option<bool>,
}

/// An account's billing state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillingStatus {
    /// Where the account is in the dunning ladder.
    pub state: DunningState,
    /// Since when it is not active.
    pub since: Option<DateTime<Utc>>,
    /// Whether the provider knows the user as a customer.
    pub customer: bool,
}

/// Discount codes to create: one named `code`, or `count` generated ones with `prefix`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewDiscounts {
    /// One code, by name.
    pub code: Option<String>,
    /// Or this many generated codes.
    pub count: Option<usize>,
    /// The generated codes' prefix (default `LQ`).
    pub prefix: Option<String>,
    /// `percent` or `fixed`.
    pub kind: String,
    /// 1–100 for `percent`, cents for `fixed`.
    pub value: i64,
    /// Unusable after this.
    pub expires_at: Option<DateTime<Utc>>,
    /// How many users may redeem each code.
    pub max_redemptions: Option<i64>,
}

/// Billing: checkout, webhooks, dunning, discounts, the profitability ledger.
pub struct Billing {
    pub(crate) store: Arc<dyn BillingStore>,
    pub(crate) credits: Arc<Credits>,
    pub(crate) quotas: Arc<Quotas>,
    pub(crate) users: Arc<Users>,
    pub(crate) messages: Arc<Messages>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) suspensions: Arc<Suspensions>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Option<BillingConfig>,
    pub(crate) policy: RwLock<BillingPolicy>,
    /// The base URL of the default checkout return pages.
    pub(crate) public_url: String,
}

fn not_configured() -> Error {
    Error::unavailable("billing is not configured on this deployment")
        .with_code("billing_not_configured")
}

fn meta<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"][key].as_str()
}

/// An account's billing state from the store.
pub(crate) async fn status_of(store: &dyn BillingStore, user_id: Uuid) -> Result<BillingStatus> {
    let d = store.dunning(user_id).await?;
    Ok(BillingStatus {
        state: d.as_ref().map_or(DunningState::Active, |d| d.state),
        since: d
            .as_ref()
            .filter(|d| d.state != DunningState::Active)
            .map(|d| d.since),
        customer: store.customer_of(user_id).await?.is_some(),
    })
}

impl Billing {
    /// Replaces the billing policy.
    pub fn set_policy(&self, policy: BillingPolicy) {
        *self.policy.write().expect("billing lock") = policy;
    }

    /// The billing policy in force.
    pub fn policy(&self) -> BillingPolicy {
        self.policy.read().expect("billing lock").clone()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BillingStore> {
        &self.store
    }

    /// Starts a checkout for a credit pack or a tier subscription; returns the payment page.
    pub async fn checkout(&self, who: &Principal, order: CheckoutOrder) -> Result<CheckoutResult> {
        let billing = self.config.as_ref().ok_or_else(not_configured)?;
        let CheckoutOrder {
            pack,
            tier,
            discount_code,
            success_url,
            cancel_url,
        } = order;
        let user = self.users.acting(who, None).await?;
        let policy = self.policy();
        let mut metadata = BTreeMap::from([("levqor_user_id".to_string(), user.id.to_string())]);
        let (mode, name, amount) = match (pack.as_deref(), tier.as_deref()) {
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
                    .quotas
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
        // A discount is checked now and redeemed only once the provider has taken the order,
        // so a provider that fails leaves the code for the user's retry.
        let discount = match discount_code.as_deref() {
            Some(code) => Some(self.preview_discount(user.id, code).await?),
            None => None,
        };
        if let Some(d) = &discount {
            metadata.insert("levqor_discount_code".into(), d.code.clone());
        }
        let amount = discount.as_ref().map_or(amount, |d| d.apply(amount));
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
                success_url: success_url
                    .unwrap_or_else(|| format!("{}/billing/success", self.public_url)),
                cancel_url: cancel_url
                    .unwrap_or_else(|| format!("{}/billing/cancel", self.public_url)),
            })
            .await?;
        if let Some(d) = &discount {
            // Atomic: a code used up (or redeemed by this user) since the check is refused here,
            // and the session just made is never shown, so it expires unpaid.
            self.store
                .redeem(&d.code, user.id, self.clock.now_micros())
                .await?;
        }
        Ok(CheckoutResult {
            id: session.id,
            url: session.url,
            amount,
            currency: policy.currency,
        })
    }

    /// Handles a webhook delivery: checks its signature, then applies the event once.
    pub async fn handle_webhook(&self, payload: &[u8], signature: &str) -> Result<WebhookOutcome> {
        let billing = self.config.as_ref().ok_or_else(not_configured)?;
        let now = self.clock.now_micros();
        verify_signature(payload, signature, &billing.webhook_secret, now)?;
        let event: Value = serde_json::from_slice(payload)
            .map_err(|_| Error::invalid("bad_signature", "the webhook body is not JSON"))?;
        let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
            return Err(Error::invalid("bad_event", "the event has no id or type"));
        };
        if self.store.event_recorded(id).await? {
            return Ok(WebhookOutcome {
                received: true,
                duplicate: Some(true),
                handled: None,
            });
        }
        let object = &event["data"]["object"];
        let handled = self.apply_event(id, kind, object, now).await?;
        // Recorded once applied: a delivery that fails halfway is applied again by the
        // provider's retry, and every step of it is idempotent (the credits and the revenue are
        // keyed by the event id, tiers and dunning states are set, not added).
        self.store.record_event(id, kind, now).await?;
        Ok(WebhookOutcome {
            received: true,
            duplicate: None,
            handled: Some(handled),
        })
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
                    self.credits
                        .store()
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
                    _ => self.quotas.default_tier(),
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
        if self.users.store().get_user(user_id).await?.is_none() {
            return Ok(());
        }
        match self.quotas.set_tier(&Principal::Admin, user_id, tier).await {
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
        if !self.store.put_dunning(&d, current.as_ref(), &[]).await? {
            return Ok(()); // another delivery of the failure started it
        }
        self.audit
            .record(Actor::System, "dunning.past_due", Some(user_id), json!({}))
            .await?;
        self.advance_dunning(d, now).await
    }

    async fn restore_account(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<()> {
        // Read again while the record moves under the write (a reminder sent in between): the
        // payment must not be lost to it.
        loop {
            let Some(d) = self.store.dunning(user_id).await? else {
                return Ok(());
            };
            if d.state == DunningState::Active {
                return Ok(()); // never past due, or another delivery restored it
            }
            // The confirmation is written with the restored state, in one transaction.
            let confirmation = match self.users.store().get_user(user_id).await? {
                Some(user) => vec![
                    self.messages.queue(
                        &self
                            .messages
                            .compose("payment_received", &user.email, json!({}))?,
                        crate::notify::EmailKind::Transactional,
                    ),
                ],
                None => Vec::new(),
            };
            let restored = Dunning {
                state: DunningState::Active,
                reminders_sent: 0,
                updated_at: now,
                ..d.clone()
            };
            if self
                .store
                .put_dunning(&restored, Some(&d), &confirmation)
                .await?
            {
                break;
            }
        }
        self.suspensions.forget(user_id);
        self.audit
            .record(Actor::System, "dunning.active", Some(user_id), json!({}))
            .await?;
        Ok(())
    }

    /// A user's billing state (the caller's own, or any for the admin).
    pub async fn status(&self, who: &Principal, user_id: Option<Uuid>) -> Result<BillingStatus> {
        let user = self.users.acting(who, user_id).await?;
        status_of(self.store.as_ref(), user.id).await
    }

    /// Creates discount codes (admin): one named `code`, or `count` generated ones with
    /// `prefix`.
    pub async fn create_discounts(
        &self,
        who: &Principal,
        new: NewDiscounts,
    ) -> Result<Vec<DiscountCode>> {
        who.require_admin()?;
        let NewDiscounts {
            code,
            count,
            prefix,
            kind,
            value,
            expires_at,
            max_redemptions,
        } = new;
        let kind = kind.as_str();
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
        let now = self.clock.now_micros();
        if expires_at.is_some_and(|t| t <= now) {
            bad.push(Violation::new("/expires_at", "must be in the future"));
        }
        let codes: Vec<String> = match (code.as_deref(), count) {
            (Some(c), None) => {
                if prefix.is_some() {
                    bad.push(Violation::new(
                        "/prefix",
                        "a prefix is for generated codes: send a count instead of a code",
                    ));
                }
                let c = c.trim().to_uppercase();
                if !code_like(&c, 4..=64) {
                    bad.push(Violation::new(
                        "/code",
                        "must be 4 to 64 letters, digits, - or _",
                    ));
                }
                vec![c]
            }
            (None, Some(n)) if (1..=10_000).contains(&n) => {
                let prefix = prefix.as_deref().unwrap_or("LQ").trim().to_uppercase();
                if !code_like(&prefix, 1..=20) {
                    bad.push(Violation::new(
                        "/prefix",
                        "must be 1 to 20 letters, digits, - or _",
                    ));
                }
                (0..n)
                    .map(|_| {
                        let (token, _) = new_token();
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
                expires_at: expires_at.map(micros),
                max_redemptions,
                redemptions: 0,
                created_at: now,
            })
            .collect();
        self.store.create_codes(&made).await?;
        self.audit
            .record(
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
        found.check(self.clock.now_micros())?;
        if self.store.redeemed(&code, user_id).await? {
            return Err(Error::conflict(
                "discount_already_redeemed",
                "you already redeemed this code",
            ));
        }
        Ok(found)
    }

    /// Prices a workflow for the caller without admitting anything; a discount code is
    /// checked (expired, exhausted, already redeemed by the caller) and shown, not redeemed.
    pub async fn quote(
        &self,
        who: &Principal,
        workflow: &Value,
        discount_code: Option<&str>,
    ) -> Result<Quote> {
        let mut q = self.credits.quote(who, workflow).await?;
        let (Some(code), Some(user_id)) = (discount_code, who.user_id()) else {
            return Ok(q);
        };
        let d = self.preview_discount(user_id, code).await?;
        let credit_micro_cents = self.policy().credit_micro_cents;
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
        Ok(q)
    }
}

/// Whether `s` has a length in `len` and only letters, digits, `-` or `_` (what a customer can
/// type as a discount code).
fn code_like(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len())
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
}
