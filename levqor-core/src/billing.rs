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
