//! Credits: the append-only ledger, holds at admission, settlement at the actual cost, quotes.
//!
//! Every entry moves two numbers of one account: `credits` (the balance) and `held` (credits
//! reserved by holds). The balance is the sum of the entries' `credits`; what is held is the sum
//! of their `held`; what may be spent is `balance - held`, and no rule here lets it go below
//! zero. Positive entries open buckets (a grant, a purchase…) that spending consumes in a fixed
//! order: credits that expire first, then granted before purchased, by priority. Every entry has
//! an idempotency key per account: posting it again returns the first entry and changes nothing.
//!
//! [`Credits`] holds the operations; the price of a job is [`quote`](quote::quote)d at intake by
//! the price stage and held by admission in the job's own transaction.

mod area;
mod gauge;
pub mod quote;
mod service;
#[cfg(test)]
mod service_tests;
mod stage;
mod store;

pub use crate::jobs::store::{NewHold, hold_key, insufficient_credits};
pub use area::CreditsArea;
pub(crate) use gauge::LoadGauge;
pub use quote::{
    Component, Load, Prices, PricingPolicy, Quote, actual_cost, charge, load_factor_bp,
};
pub use service::{CreditBalance, Credits, Grant, SignupGrant};
pub(crate) use stage::{PriceStage, Pricing};
pub use store::CreditStore;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
