//! An in-memory [`Store`]: for tests and for embedders who want no database. It obeys the same
//! conformance suite as the SQL backends; nothing survives the process. One file per domain's
//! port; the state is one struct behind one lock.

mod billing;
mod consent;
mod credits;
mod jobs;
mod outbox;
mod privacy;
mod quotas;
mod screening;
mod users;

use crate::audit::AuditRecord;
use crate::billing::{DiscountCode, Dunning, Revenue};
use crate::clock::micros;
use crate::consent::{
    GENESIS_HASH, LedgerEntry, LedgerRecord, Objection, ObjectionKind, Subscription,
    TermsAcceptance, TermsVersion, seal,
};
use crate::credits::{Account, Bucket, Entry, EntryKind, Hold, hold_key, spend};
use crate::error::Result;
use crate::jobs::model::{Job, JobStatus, StepRecord};
use crate::jobs::store::{Lease, NewHold};
use crate::notify::OutboxMessage;
use crate::privacy::{Event, ExportRecord, LegalHold};
use crate::screening::ScreeningRecord;
use crate::store::Store;
use crate::users::{ApiKey, User};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use uuid::Uuid;

struct StoredJob {
    job: Job,
    request_hash: String,
    lease: Option<(Uuid, DateTime<Utc>)>,
}

#[derive(Default)]
struct State {
    users: BTreeMap<Uuid, User>,
    keys: BTreeMap<Uuid, (ApiKey, String)>,
    jobs: BTreeMap<Uuid, StoredJob>,
    idempotency: HashMap<(Uuid, String), Uuid>,
    steps: HashMap<Uuid, BTreeMap<String, StepRecord>>,
    outbox: BTreeMap<Uuid, OutboxMessage>,
    /// Per message being sent: the claim's token and when its lease ends.
    outbox_leases: HashMap<Uuid, (Uuid, DateTime<Utc>)>,
    outbox_attempts: HashMap<Uuid, Vec<crate::notify::Attempt>>,
    suppressions: BTreeMap<Uuid, crate::notify::Suppression>,
    terms: Vec<TermsVersion>,
    acceptances: BTreeMap<Uuid, TermsAcceptance>,
    subscriptions: BTreeMap<Uuid, Subscription>,
    objections: BTreeMap<(Uuid, ObjectionKind), Objection>,
    subjects: HashMap<Uuid, Uuid>,
    ledger: Vec<LedgerRecord>,
    settings: HashMap<String, Value>,
    audit: BTreeMap<Uuid, AuditRecord>,
    events: BTreeMap<Uuid, Event>,
    exports: BTreeMap<Uuid, ExportRecord>,
    holds: BTreeMap<Uuid, LegalHold>,
    screenings: BTreeMap<Uuid, ScreeningRecord>,
    accounts: HashMap<Uuid, Account>,
    entries: BTreeMap<Uuid, Entry>,
    entry_keys: HashMap<(Uuid, String), Uuid>,
    buckets: Vec<(Uuid, Bucket)>,
    credit_holds: BTreeMap<Uuid, (Hold, bool)>,
    tiers: HashMap<Uuid, String>,
    usage_days: BTreeMap<(Uuid, String), u64>,
    customers: HashMap<Uuid, String>,
    billing_events: HashMap<String, String>,
    dunning: HashMap<Uuid, Dunning>,
    revenue: BTreeMap<String, Revenue>,
    codes: BTreeMap<String, DiscountCode>,
    redemptions: HashSet<(String, Uuid)>,
}

impl State {
    fn push_entry(&mut self, entry: Entry) {
        let account = self.accounts.entry(entry.user_id).or_default();
        account.balance += entry.credits;
        account.held += entry.held;
        self.entry_keys
            .insert((entry.user_id, entry.idempotency_key.clone()), entry.id);
        self.entries.insert(entry.id, entry);
    }

    fn place_hold(&mut self, job: &Job, hold: &NewHold) {
        self.credit_holds.insert(
            job.id,
            (
                Hold {
                    job_id: job.id,
                    user_id: job.owner_id,
                    credits: hold.credits,
                    quote: hold.quote.clone(),
                    expires_at: hold.expires_at,
                },
                true,
            ),
        );
        self.push_entry(Entry {
            id: Uuid::now_v7(),
            user_id: job.owner_id,
            kind: EntryKind::Hold,
            credits: 0,
            held: hold.credits,
            job_id: Some(job.id),
            idempotency_key: hold_key(job.id),
            reason: None,
            priority: 0,
            expires_at: None,
            created_at: job.created_at,
        });
    }

    /// Takes `amount` from the user's buckets in spending order.
    fn spend(&mut self, user_id: Uuid, amount: i64) {
        let idx: Vec<usize> = (0..self.buckets.len())
            .filter(|&i| self.buckets[i].0 == user_id)
            .collect();
        let mine: Vec<Bucket> = idx.iter().map(|&i| self.buckets[i].1.clone()).collect();
        for (i, t) in spend(&mine, amount) {
            self.buckets[idx[i]].1.remaining -= t;
        }
    }

    /// Removes a job with its steps and its idempotency key.
    fn remove_job(&mut self, id: Uuid) {
        if let Some(stored) = self.jobs.remove(&id) {
            if let Some(key) = stored.job.idempotency_key {
                self.idempotency.remove(&(stored.job.owner_id, key));
            }
            self.steps.remove(&id);
        }
    }

    fn append_ledger(&mut self, entry: &LedgerEntry) {
        let (seq, prev) = self
            .ledger
            .last()
            .map_or((0, GENESIS_HASH.to_string()), |r| (r.seq, r.hash.clone()));
        let entry = LedgerEntry {
            at: micros(entry.at),
            ..entry.clone()
        };
        let hash = seal(seq + 1, &prev, &entry);
        self.ledger.push(LedgerRecord {
            seq: seq + 1,
            entry,
            prev_hash: prev,
            hash,
        });
    }
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memory store lock")
    }
}

fn holds(stored: &StoredJob, lease: &Lease) -> bool {
    stored.job.status == JobStatus::Running && stored.lease.is_some_and(|(t, _)| t == lease.token)
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
