//! A fake of Stripe's API for tests, served on a local port: it reads the form-encoded bodies
//! and the bearer key as Stripe does, answers with Stripe-shaped objects (or the failures a
//! test asks for), and records what it received.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

pub const KEY: &str = "sk_test_51LevqorFakeKey0000000000";
pub const CREATED: i64 = 1_767_225_600;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: &'static str,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
}

impl Seen {
    /// The value of one form field (`metadata[levqor_user_id]`), if it was sent once.
    pub fn field(&self, name: &str) -> Option<&str> {
        let mut values = self.form.iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v.as_str());
        assert!(values.next().is_none(), "{name} sent twice");
        first
    }

    /// Every field under a prefix (`metadata[`), as `(name, value)`.
    pub fn fields_under(&self, prefix: &str) -> BTreeMap<String, String> {
        self.form
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Like Stripe on success.
    Succeed,
    /// A session without a `url` (as for an embedded checkout).
    NoUrl,
    /// A plain-text 500, as a proxy in front of Stripe might send.
    ServerError,
    /// A 400 with Stripe's error object.
    StripeError,
}

pub struct Fake {
    pub behaviour: Behaviour,
    pub seen: Mutex<Vec<Seen>>,
    pub answered: Mutex<Vec<Value>>,
}

pub type Shared = Arc<Fake>;

/// Serves the fake on 127.0.0.1 and returns its base URL (no trailing slash).
pub async fn start(behaviour: Behaviour) -> (String, Shared) {
    let fake = Arc::new(Fake {
        behaviour,
        seen: Mutex::new(Vec::new()),
        answered: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/v1/customers", post(customers))
        .route("/v1/checkout/sessions", post(checkout_sessions))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}"), fake)
}

/// Records the request; answers Stripe's 401 to a missing or wrong key.
fn record(
    fake: &Fake,
    path: &'static str,
    headers: &HeaderMap,
    form: Vec<(String, String)>,
) -> Option<Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let authorized = authorization.as_deref() == Some(&format!("Bearer {KEY}"));
    fake.seen.lock().unwrap().push(Seen {
        path,
        authorization,
        form,
    });
    if !authorized {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {
                    "message": "Invalid API Key provided: sk_test_****",
                    "type": "invalid_request_error"
                }})),
            )
                .into_response(),
        );
    }
    match fake.behaviour {
        Behaviour::Succeed | Behaviour::NoUrl => None,
        Behaviour::ServerError => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "upstream exploded: secret internals",
            )
                .into_response(),
        ),
        Behaviour::StripeError => Some(
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {
                    "code": "resource_missing",
                    "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                    "message": "No such customer: 'cus_missing' (ada@example.com)",
                    "param": "customer",
                    "request_log_url": "https://dashboard.stripe.com/test/logs/req_fake",
                    "type": "invalid_request_error"
                }})),
            )
                .into_response(),
        ),
    }
}

/// The `metadata[...]` fields of a form as Stripe stores them.
fn metadata_of(form: &[(String, String)], prefix: &str) -> Value {
    let map: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(prefix)?.strip_suffix(']')?;
            Some((key.to_string(), Value::from(v.as_str())))
        })
        .collect();
    Value::Object(map)
}

async fn customers(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(refusal) = record(&fake, "/v1/customers", &headers, form.clone()) {
        return refusal;
    }
    let mut answered = fake.answered.lock().unwrap();
    let id = format!("cus_Fake{:04}", answered.len() + 1);
    let email = form
        .iter()
        .find(|(k, _)| k == "email")
        .map(|(_, v)| v.clone());
    let customer = json!({
        "id": id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": CREATED,
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": null,
        "discount": null,
        "email": email,
        "invoice_prefix": "7D1F2A3B",
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null
        },
        "livemode": false,
        "metadata": metadata_of(&form, "metadata["),
        "name": null,
        "next_invoice_sequence": 1,
        "phone": null,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null
    });
    answered.push(customer.clone());
    Json(customer).into_response()
}

async fn checkout_sessions(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(refusal) = record(&fake, "/v1/checkout/sessions", &headers, form.clone()) {
        return refusal;
    }
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let amount: i64 = field("line_items[0][price_data][unit_amount]")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let mut answered = fake.answered.lock().unwrap();
    let id = format!(
        "cs_test_a1Fake{:04}KxYvQ2mZ8rT5wLpN3bHcD7eJ9gU",
        answered.len() + 1
    );
    let url = (fake.behaviour != Behaviour::NoUrl)
        .then(|| format!("https://checkout.stripe.com/c/pay/{id}#fidkdWxOYHwnPyd1blpxYHZxWjA0"));
    let mut session = json!({
        "id": id,
        "object": "checkout.session",
        "adaptive_pricing": null,
        "after_expiration": null,
        "allow_promotion_codes": null,
        "amount_subtotal": amount,
        "amount_total": amount,
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "billing_address_collection": null,
        "cancel_url": field("cancel_url"),
        "client_reference_id": null,
        "client_secret": null,
        "collected_information": null,
        "consent": null,
        "consent_collection": null,
        "created": CREATED,
        "currency": field("line_items[0][price_data][currency]"),
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": {
            "after_submit": null,
            "shipping_address": null,
            "submit": null,
            "terms_of_service_acceptance": null
        },
    });
    // Two literals: one would pass `json!`'s recursion limit.
    let rest = json!({
        "customer": field("customer"),
        "customer_creation": null,
        "customer_details": null,
        "customer_email": null,
        "discounts": [],
        "expires_at": CREATED + 86_400,
        "invoice": null,
        "invoice_creation": null,
        "livemode": false,
        "locale": null,
        "metadata": metadata_of(&form, "metadata["),
        "mode": field("mode"),
        "payment_intent": null,
        "payment_link": null,
        "payment_method_collection": "always",
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": false},
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": "open",
        "submit_type": null,
        "subscription": null,
        "success_url": field("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": url
    });
    let Value::Object(rest) = rest else {
        unreachable!()
    };
    session.as_object_mut().expect("object").extend(rest);
    answered.push(session.clone());
    Json(session).into_response()
}
