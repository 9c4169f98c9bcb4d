//! The world the billing service's tests run in: the service over the in-memory store, with a
//! scripted payment provider and a scripted notifier (either can be made to fail), and the
//! helpers the tests read it with. `service_tests` and `dunning_tests` use it.

pub(super) use super::provider::MockPaymentProvider;
pub(super) use super::{
    Billing, BillingConfig, BillingPolicy, BillingStore, CheckoutMode, CheckoutOrder,
    CheckoutRequest, CheckoutSession, DiscountCode, DunningState, NewDiscounts, Pack, ProfitLedger,
    Revenue, SuspensionStage, sign,
};
pub(super) use crate::auth::Principal;
pub(super) use crate::clock::Clock;
pub(super) use crate::credits::{CreditStore, EntryKind, NewEntry};
pub(super) use crate::error::{Error, ErrorKind, Result};
pub(super) use crate::jobs::intake::{IntakeContext, IntakeStage, SubmitRequest};
pub(super) use crate::jobs::model::{Job, JobStatus};
pub(super) use crate::jobs::store::{Claim, JobStore, NewJob};
pub(super) use crate::notify::OutboxStore;
pub(super) use crate::testing::Base;
pub(super) use chrono::{DateTime, Duration, TimeZone, Utc};
pub(super) use serde_json::{Value, json};
pub(super) use std::collections::{BTreeMap, HashSet};
pub(super) use std::sync::atomic::{AtomicBool, Ordering};
pub(super) use std::sync::{Arc, Mutex};
pub(super) use uuid::Uuid;

pub(super) const SECRET: &str = "whsec";
pub(super) const FAILED: &str = "Your payment failed";
pub(super) const ADMIN: &Principal = &Principal::Admin;

/// What the scripted provider was asked, in order.
#[derive(Default)]
pub(super) struct Calls {
    pub(super) customers: Mutex<Vec<Uuid>>,
    pub(super) checkouts: Mutex<Vec<CheckoutRequest>>,
}

/// A provider making customers `cus_<n>` and sessions `cs_<n>`; checkout fails while `down`.
pub(super) fn provider(calls: Arc<Calls>, down: Arc<AtomicBool>) -> MockPaymentProvider {
    let mut p = MockPaymentProvider::new();
    let c = calls.clone();
    p.expect_create_customer().returning(move |user_id, _| {
        let mut customers = c.customers.lock().unwrap();
        customers.push(user_id);
        Ok(format!("cus_{}", customers.len()))
    });
    p.expect_create_checkout().returning(move |request| {
        if down.load(Ordering::SeqCst) {
            return Err(Error::unavailable("provider down"));
        }
        let mut checkouts = calls.checkouts.lock().unwrap();
        checkouts.push(request.clone());
        let id = format!("cs_{}", checkouts.len());
        let url = format!("https://pay.example/{id}");
        Ok(CheckoutSession { id, url })
    });
    p
}

/// Billing configured with the scripted provider; email lands in the outbox.
pub(super) struct World {
    pub(super) base: Base,
    pub(super) billing: Billing,
    pub(super) calls: Arc<Calls>,
    pub(super) down: Arc<AtomicBool>,
}

impl World {
    pub(super) fn new() -> Self {
        let base = Base::new();
        let (calls, down) = (Arc::new(Calls::default()), Arc::new(AtomicBool::new(false)));
        let provider = Arc::new(provider(calls.clone(), down.clone()));
        let config = BillingConfig {
            provider,
            webhook_secret: SECRET.into(),
        };
        let billing = base.billing(Some(config));
        Self {
            base,
            billing,
            calls,
            down,
        }
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.base.clock.now_micros()
    }

    pub(super) fn advance(&self, days: i64) {
        self.base.clock.advance(Duration::days(days));
    }

    pub(super) async fn deliver(&self, event: &Value) -> Result<super::WebhookOutcome> {
        let body = event.to_string();
        let header = sign(body.as_bytes(), SECRET, self.now().timestamp());
        self.billing.handle_webhook(body.as_bytes(), &header).await
    }

    /// Delivers `event`, which must be accepted: `(duplicate, handled)`.
    pub(super) async fn ok(&self, event: Value) -> (Option<bool>, Option<bool>) {
        let out = self.deliver(&event).await.unwrap();
        (out.duplicate, out.handled)
    }

    pub(super) async fn tick(&self) -> usize {
        self.billing.dunning_tick().await.unwrap()
    }

    /// Checks `who` out of `pack` (or, prefixed `tier:`, a tier) with `code`: what is charged.
    pub(super) async fn buy(&self, who: &Principal, item: &str, code: Option<&str>) -> Result<i64> {
        let order = match item.strip_prefix("tier:") {
            Some(tier) => order(None, Some(tier), code),
            None => order(Some(item), None, code),
        };
        Ok(self.billing.checkout(who, order).await?.amount)
    }

    /// What the 1,000-credit pack costs `who` with `code`.
    pub(super) async fn paid(&self, who: &Principal, code: &str) -> Result<i64> {
        self.buy(who, "credits_1000", Some(code)).await
    }

    pub(super) fn sent(&self) -> Vec<CheckoutRequest> {
        self.calls.checkouts.lock().unwrap().clone()
    }

    pub(super) fn customers(&self) -> Vec<Uuid> {
        self.calls.customers.lock().unwrap().clone()
    }

    pub(super) async fn discounts(
        &self,
        who: &Principal,
        new: NewDiscounts,
    ) -> Result<Vec<DiscountCode>> {
        self.billing.create_discounts(who, new).await
    }

    pub(super) async fn discount(&self, code: &str, kind: &str, value: i64, max: Option<i64>) {
        let new = with(named(code, kind, value), |d| d.max_redemptions = max);
        self.discounts(ADMIN, new).await.unwrap();
    }

    pub(super) async fn code(&self, code: &str) -> Option<DiscountCode> {
        self.base.store.get_code(code).await.unwrap()
    }

    pub(super) async fn redemptions(&self, code: &str) -> i64 {
        self.code(code).await.expect("the code exists").redemptions
    }

    pub(super) async fn balance(&self, user_id: Uuid) -> i64 {
        self.base.store.account(user_id).await.unwrap().balance
    }

    pub(super) async fn state(&self, who: &Principal) -> DunningState {
        self.billing.status(who, None).await.unwrap().state
    }

    pub(super) async fn customer_known(&self, who: &Principal) -> bool {
        self.billing.status(who, None).await.unwrap().customer
    }

    pub(super) async fn tier(&self, who: &Principal) -> String {
        self.billing.quotas.usage(who, None).await.unwrap().tier
    }

    /// Revenue booked: `"<amount> <currency> <source> <user>"`.
    pub(super) async fn revenue(&self) -> Vec<String> {
        let from = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        let to = self.now() + Duration::days(1);
        let all = self.base.store.revenue_between(from, to).await.unwrap();
        let line = |r: &Revenue| {
            let user = r.user_id.map(|u| u.to_string()).unwrap_or_default();
            format!("{} {} {} {user}", r.amount_minor, r.currency, r.source)
        };
        all.iter().map(line).collect()
    }

    /// The bodies of the email to `to` with `subject` in the outbox, oldest first.
    pub(super) async fn mail(&self, to: &str, subject: &str) -> Vec<String> {
        let mut all = self.base.store.list_outbox(None, 1000).await.unwrap();
        all.reverse();
        all.into_iter()
            .filter(|m| m.to == to && m.subject == subject)
            .map(|m| m.body)
            .collect()
    }

    pub(super) async fn reminders(&self, to: &str) -> usize {
        self.mail(to, FAILED).await.len()
    }

    /// Whether the suspension stage lets `user_id` submit a job.
    pub(super) async fn intake(&self, user_id: Uuid) -> Result<()> {
        let request = SubmitRequest {
            workflow: json!({}),
            input: json!({}),
            max_attempts: None,
            run_after: None,
            idempotency_key: None,
        };
        let mut ctx = IntakeContext {
            job_id: Uuid::now_v7(),
            owner_id: user_id,
            request,
            workflow: None,
            status: JobStatus::Queued,
            warnings: Vec::new(),
            screening: None,
            quote: None,
            hold: None,
            now: self.now(),
        };
        let stage = SuspensionStage(self.billing.suspensions.clone());
        stage.check(&mut ctx).await
    }

    /// A user the provider knows as `cus_1`.
    pub(super) async fn customer(&self, email: &str) -> (Uuid, Principal) {
        let (user, who) = self.base.user(email).await;
        let store = &self.base.store;
        store.set_customer(user.id, "cus_1").await.unwrap();
        (user.id, who)
    }
}

/// The kind and code of a failure.
pub(super) fn err<T: std::fmt::Debug>(r: Result<T>) -> (ErrorKind, &'static str) {
    let e = r.unwrap_err();
    (e.kind, e.code)
}

pub(super) fn pointers(e: &Error) -> Vec<&str> {
    e.violations.iter().map(|v| v.pointer.as_str()).collect()
}

pub(super) fn order(pack: Option<&str>, tier: Option<&str>, code: Option<&str>) -> CheckoutOrder {
    CheckoutOrder {
        pack: pack.map(Into::into),
        tier: tier.map(Into::into),
        discount_code: code.map(Into::into),
        ..Default::default()
    }
}

pub(super) fn with<T>(mut value: T, change: impl FnOnce(&mut T)) -> T {
    change(&mut value);
    value
}

pub(super) fn named(code: &str, kind: &str, value: i64) -> NewDiscounts {
    NewDiscounts {
        code: Some(code.into()),
        kind: kind.into(),
        value,
        ..Default::default()
    }
}

pub(super) fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({"id": id, "type": kind, "data": {"object": object}})
}

pub(super) fn pack_paid(id: &str, user_id: Uuid, credits: i64, amount: i64) -> Value {
    let meta = json!({"levqor_user_id": user_id, "levqor_credits": credits.to_string()});
    let object = json!({"id": "cs_1", "amount_total": amount, "currency": "usd", "metadata": meta});
    event(id, "checkout.session.completed", object)
}

/// An `invoice.<what>` event of customer `cus_1`.
pub(super) fn invoice(id: &str, what: &str) -> Value {
    let object = json!({"customer": "cus_1", "amount_paid": 1900, "currency": "eur"});
    event(id, &format!("invoice.{what}"), object)
}

/// A `customer.subscription.<change>` event of customer `cus_1`.
pub(super) fn subscription(id: &str, change: &str, status: &str, tier: &str) -> Value {
    let meta = json!({"levqor_tier": tier});
    let object = json!({"customer": "cus_1", "status": status, "metadata": meta});
    event(id, &format!("customer.subscription.{change}"), object)
}
