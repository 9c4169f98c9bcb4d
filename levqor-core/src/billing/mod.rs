//! Billing: the [`PaymentProvider`] port (Stripe in production, behind the binary's `stripe`
//! feature), checkout for credit packs and tier subscriptions, the webhook (signature checked,
//! idempotent by event id), dunning, and the revenue that the profitability ledger reads.
//!
//! The core never names Stripe's SDK: it builds [`CheckoutRequest`]s and reads webhook events
//! as JSON, so any provider with the same shape plugs in.

//!
//! [`Billing`] holds the operations; dunning (and the intake stage that refuses suspended
//! accounts) is in `dunning`, the profitability ledger and the profit guard in `profit`.

mod area;
mod dunning;
#[cfg(test)]
mod dunning_tests;
mod profit;
mod provider;
mod service;
#[cfg(test)]
mod service_tests;
mod store;
#[cfg(test)]
mod test_world;

pub use crate::signature::{WEBHOOK_TOLERANCE_SECS, sign, verify_signature};
pub use area::BillingArea;
pub use dunning::SUSPENSION_CACHE_TTL;
pub(crate) use dunning::{DunningTask, SuspensionStage, Suspensions};
pub use profit::{AutoscaleDecision, ProfitFigures, ProfitLedger, ProfitPeriod};
pub use provider::PaymentProvider;
pub use service::{
    Billing, BillingStatus, CheckoutOrder, CheckoutResult, NewDiscounts, WebhookOutcome,
};
pub use store::BillingStore;

use crate::error::{Error, Result};
use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
