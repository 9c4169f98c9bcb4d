//! The Stripe adapter: [`StripeProvider`] implements the core's
//! [`PaymentProvider`] port with the async-stripe 1.0 crates (customers and Checkout Sessions
//! with inline prices, so no product or price has to exist in the Stripe account).
//!
//! It owns the translation between [`CheckoutRequest`] and Stripe's form parameters. It must
//! never hand Stripe's messages to a client nor log an email: every failure becomes the core's
//! `unavailable`, and the log line carries only Stripe's status, error type, code and parameter.

use std::collections::HashMap;
use std::time::Duration;

use ::stripe::{Client, ClientBuilder, StripeError};
use async_trait::async_trait;
use levqor_core::billing::{CheckoutMode, CheckoutRequest, CheckoutSession, PaymentProvider};
use levqor_core::{Error, Result};
use stripe_checkout::CheckoutSessionMode;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionLineItemsPriceDataRecurring,
    CreateCheckoutSessionLineItemsPriceDataRecurringInterval,
    CreateCheckoutSessionSubscriptionData, ProductData,
};
use stripe_core::customer::CreateCustomer;
use stripe_types::Currency;

/// How long one call to Stripe may take; the SDK's async client has no timeout of its own.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The metadata key that ties a Stripe customer to its Levqor user.
const USER_ID_KEY: &str = "levqor_user_id";

/// The [`PaymentProvider`] backed by Stripe's API.
///
/// Cheap to clone (the HTTP client is shared); requests are sent once, without retries, so a
/// failed call never creates a second customer or session behind the caller's back.
#[derive(Clone)]
pub struct StripeProvider {
    client: Client,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Nothing of the client is worth printing, and its key must never be.
        f.debug_struct("StripeProvider").finish_non_exhaustive()
    }
}

impl StripeProvider {
    /// A provider calling Stripe with `secret_key` (`sk_live_…`, `sk_test_…` or a restricted
    /// `rk_…` key). `api_base` replaces `https://api.stripe.com` (for a local fake or
    /// stripe-mock, e.g. `http://127.0.0.1:12111`); requests go to `{api_base}/v1/…`.
    ///
    /// # Errors
    /// A message (never containing the key) when the key is empty or not a valid header
    /// value, or when `api_base` is not an `http://` or `https://` URL.
    pub fn new(secret_key: &str, api_base: Option<&str>) -> std::result::Result<Self, String> {
        if secret_key.trim().is_empty() {
            return Err("the Stripe secret key is empty".into());
        }
        let mut builder = ClientBuilder::new(secret_key)
            .app_info("levqor", Some(env!("CARGO_PKG_VERSION").into()), None)
            .timeout(REQUEST_TIMEOUT);
        if let Some(base) = api_base {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(format!(
                    "the Stripe API base {base:?} is not an http:// or https:// URL"
                ));
            }
            // The SDK appends `v1/…` to the base as written, so it must end with a slash.
            let base = format!("{}/", base.trim_end_matches('/'));
            builder = builder.url(base);
        }
        let client = builder
            .build()
            .map_err(|e| format!("the Stripe client could not be built: {e}"))?;
        Ok(Self { client })
    }
}

#[async_trait]
impl PaymentProvider for StripeProvider {
    async fn create_customer(&self, user_id: uuid::Uuid, email: &str) -> Result<String> {
        let metadata = HashMap::from([(USER_ID_KEY.to_string(), user_id.to_string())]);
        let customer = CreateCustomer::new()
            .email(email)
            .metadata(metadata)
            .send(&self.client)
            .await
            .map_err(|e| {
                log_failure("create_customer", &e);
                tracing::warn!(%user_id, "could not create the Stripe customer");
                Error::unavailable("the payment provider could not create the customer")
            })?;
        Ok(customer.id.to_string())
    }

    async fn create_checkout(&self, request: &CheckoutRequest) -> Result<CheckoutSession> {
        let session = checkout_params(request)
            .send(&self.client)
            .await
            .map_err(|e| {
                log_failure("create_checkout", &e);
                Error::unavailable("the payment provider could not start the checkout")
            })?;
        let Some(url) = session.url else {
            tracing::warn!(session = %session.id, "the Stripe checkout session has no url");
            return Err(Error::unavailable(
                "the payment provider returned a checkout without a payment page",
            ));
        };
        Ok(CheckoutSession {
            id: session.id.to_string(),
            url,
        })
    }
}

/// The Checkout Session parameters for `request`: one line item with an inline price (monthly
/// for a subscription), the metadata on the session and, for a subscription, also on the
/// subscription it creates (its invoices' events carry only the subscription's metadata).
fn checkout_params(request: &CheckoutRequest) -> CreateCheckoutSession {
    let metadata: HashMap<String, String> = request
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let currency: Currency = request
        .currency
        .to_ascii_lowercase()
        .parse()
        .unwrap_or_else(|never| match never {});
    let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency);
    price.unit_amount = Some(request.amount_minor);
    price.product_data = Some(ProductData::new(request.product_name.as_str()));

    let mut session = CreateCheckoutSession::new()
        .customer(request.customer_id.as_str())
        .success_url(request.success_url.as_str())
        .cancel_url(request.cancel_url.as_str())
        .metadata(metadata.clone());
    session = match request.mode {
        CheckoutMode::Payment => session.mode(CheckoutSessionMode::Payment),
        CheckoutMode::Subscription => {
            price.recurring = Some(CreateCheckoutSessionLineItemsPriceDataRecurring::new(
                CreateCheckoutSessionLineItemsPriceDataRecurringInterval::Month,
            ));
            let mut subscription = CreateCheckoutSessionSubscriptionData::new();
            subscription.metadata = Some(metadata);
            session
                .mode(CheckoutSessionMode::Subscription)
                .subscription_data(subscription)
        }
    };
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price_data = Some(price);
    item.quantity = Some(1);
    session.line_items(vec![item])
}

/// Logs why a call failed. Stripe's own message is left out: it may quote what was sent (an
/// email), and its type, code and parameter name say enough.
fn log_failure(call: &'static str, err: &StripeError) {
    match err {
        StripeError::Stripe(api, status) => tracing::warn!(
            call,
            status,
            error_type = api.type_.as_str(),
            code = api.code.as_ref().map(|c| c.as_str()),
            param = api.param.as_deref(),
            "Stripe refused the call"
        ),
        StripeError::JSONDeserialize(cause) => {
            tracing::warn!(call, %cause, "Stripe's answer could not be read")
        }
        StripeError::ClientError(cause) => {
            tracing::warn!(call, %cause, "Stripe could not be reached")
        }
        StripeError::ConfigError(cause) => {
            tracing::warn!(call, %cause, "the Stripe client is misconfigured")
        }
        StripeError::Timeout => tracing::warn!(call, "Stripe did not answer in time"),
    }
}
