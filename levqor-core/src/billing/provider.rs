//! The [`PaymentProvider`] port: Stripe in production (the binary's `stripe` feature).

use super::{CheckoutRequest, CheckoutSession};
use crate::error::Result;
use async_trait::async_trait;

/// A payment provider. Errors are `unavailable` (the provider could not be reached or refused
/// the call); nothing about them reaches the client beyond that.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Creates a customer for a user; called once per user, the id is stored.
    async fn create_customer(&self, user_id: uuid::Uuid, email: &str) -> Result<String>;
    /// Creates a checkout session.
    async fn create_checkout(&self, request: &CheckoutRequest) -> Result<CheckoutSession>;
}
