//! An in-memory [`Store`]: for tests and for embedders who want no database. It obeys the same
//! conformance suite as the SQL backends; nothing survives the process.

use crate::consent::{
    Category, ConsentErasure, ConsentStats, ConsentStore, GENESIS_HASH, LedgerEntry, LedgerRecord,
    Objection, ObjectionKind, Subscription, SubscriptionStatus, TermsAcceptance, TermsVersion,
    seal,
};
use crate::error::{Error, Result};
use crate::jobs::model::{Job, JobStatus, StepRecord};
use crate::jobs::store::{
    Admission, Claim, ClaimedJob, JobFilter, JobStore, Lease, NewJob, Reaped, Write,
};
use crate::notify::{OutboxMessage, OutboxStore};
use crate::pricing::{
    Account, Bucket, CreditStore, Entry, EntryKind, Hold, NewEntry, NewHold, Posted,
};
use crate::privacy::{
    AppealStatus, AuditRecord, DataClass, Event, ExportRecord, Held, LegalHold, PrivacyStore,
    ScreeningRecord, StoredArea,
};
use crate::service::Store;
use crate::users::{ApiKey, Upserted, User, UserStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
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
    dunning: HashMap<Uuid, crate::billing::Dunning>,
    revenue: BTreeMap<String, crate::billing::Revenue>,
    codes: BTreeMap<String, crate::billing::DiscountCode>,
    redemptions: std::collections::HashSet<(String, Uuid)>,
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
            idempotency_key: crate::pricing::hold_key(job.id),
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
        for (i, t) in crate::pricing::spend(&mine, amount) {
            self.buckets[idx[i]].1.remaining -= t;
        }
    }

    fn append_ledger(&mut self, entry: &LedgerEntry) {
        let (seq, prev) = self
            .ledger
            .last()
            .map_or((0, GENESIS_HASH.to_string()), |r| (r.seq, r.hash.clone()));
        let entry = LedgerEntry {
            at: crate::service::micros(entry.at),
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
impl JobStore for MemoryStore {
    async fn admit_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Result<Admission>>> {
        let mut s = self.lock();
        Ok(jobs
            .into_iter()
            .map(|new| {
                if let Some(key) = &new.job.idempotency_key
                    && let Some(first) = s.idempotency.get(&(new.job.owner_id, key.clone()))
                {
                    let first = &s.jobs[first];
                    return if first.request_hash == new.request_hash {
                        Ok(Admission::Replayed(first.job.clone()))
                    } else {
                        Err(Error::conflict(
                            "idempotency_key_reused",
                            "this Idempotency-Key was used with another request",
                        ))
                    };
                }
                if let Some(hold) = &new.hold {
                    let account = s
                        .accounts
                        .get(&new.job.owner_id)
                        .copied()
                        .unwrap_or_default();
                    if account.available() < hold.credits {
                        return Err(crate::pricing::insufficient());
                    }
                    s.place_hold(&new.job, hold);
                }
                if let Some(key) = &new.job.idempotency_key {
                    s.idempotency
                        .insert((new.job.owner_id, key.clone()), new.job.id);
                }
                let job = new.job.clone();
                s.jobs.insert(
                    job.id,
                    StoredJob {
                        job: new.job,
                        request_hash: new.request_hash,
                        lease: None,
                    },
                );
                Ok(Admission::Created(job))
            })
            .collect())
    }

    async fn claim_due(&self, claim: &Claim) -> Result<Vec<ClaimedJob>> {
        let mut s = self.lock();
        let mut due: Vec<(DateTime<Utc>, Uuid)> = s
            .jobs
            .values()
            .filter(|j| {
                matches!(j.job.status, JobStatus::Queued | JobStatus::Failed)
                    && j.job.run_after <= claim.now
            })
            .map(|j| (j.job.run_after, j.job.id))
            .collect();
        due.sort();
        due.truncate(claim.limit);
        let mut out = Vec::with_capacity(due.len());
        for (_, id) in due {
            let stored = s.jobs.get_mut(&id).expect("due job exists");
            stored.job.status = JobStatus::Running;
            stored.job.attempts += 1;
            stored.job.started_at.get_or_insert(claim.now);
            stored.job.updated_at = claim.now;
            stored.lease = Some((claim.token, claim.lease_until));
            let job = stored.job.clone();
            let steps = s
                .steps
                .get(&id)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            out.push(ClaimedJob { job, steps });
        }
        Ok(out)
    }

    async fn commit(&self, writes: &[Write]) -> Result<Vec<bool>> {
        let mut s = self.lock();
        Ok(writes
            .iter()
            .map(|w| {
                let (lease, steps) = match w {
                    Write::Checkpoint { lease, steps } => (lease, steps),
                    Write::Finish(f) => (&f.lease, &f.steps),
                };
                if !s.jobs.get(&lease.job_id).is_some_and(|j| holds(j, lease)) {
                    return false;
                }
                let recorded = s.steps.entry(lease.job_id).or_default();
                for step in steps {
                    recorded.insert(step.step_id.clone(), step.clone());
                }
                if let Write::Finish(f) = w {
                    let stored = s.jobs.get_mut(&lease.job_id).expect("held job exists");
                    let job = &mut stored.job;
                    job.status = f.status;
                    job.attempts += f.attempts_delta;
                    if let Some(at) = f.run_after {
                        job.run_after = at;
                    }
                    job.result = f.result.clone().or(job.result.take());
                    job.error = f.error.clone();
                    job.updated_at = f.now;
                    if f.status.is_terminal() {
                        job.finished_at = Some(f.now);
                    }
                    stored.lease = None;
                }
                true
            })
            .collect())
    }

    async fn extend_leases(&self, leases: &[Lease], until: DateTime<Utc>) -> Result<Vec<Uuid>> {
        let mut s = self.lock();
        let mut canceled = Vec::new();
        for lease in leases {
            if let Some(stored) = s.jobs.get_mut(&lease.job_id)
                && holds(stored, lease)
            {
                stored.lease = Some((lease.token, until));
                if stored.job.cancel_requested {
                    canceled.push(lease.job_id);
                }
            }
        }
        Ok(canceled)
    }

    async fn reap_expired(&self, now: DateTime<Utc>) -> Result<Reaped> {
        let mut s = self.lock();
        let mut reaped = Reaped::default();
        for stored in s.jobs.values_mut() {
            let expired = stored.job.status == JobStatus::Running
                && stored.lease.is_some_and(|(_, until)| until < now);
            if !expired {
                continue;
            }
            stored.lease = None;
            stored.job.updated_at = now;
            stored.job.error = Some("the worker running this job was lost (lease expired)".into());
            if stored.job.attempts >= stored.job.max_attempts {
                stored.job.status = JobStatus::Dead;
                stored.job.finished_at = Some(now);
                reaped.dead += 1;
            } else {
                stored.job.status = JobStatus::Failed;
                stored.job.run_after = now;
                reaped.retried += 1;
            }
        }
        Ok(reaped)
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>> {
        Ok(self.lock().jobs.get(&id).map(|j| j.job.clone()))
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let s = self.lock();
        Ok(s.jobs
            .values()
            .rev()
            .map(|j| &j.job)
            .filter(|j| filter.owner_id.is_none_or(|o| j.owner_id == o))
            .filter(|j| filter.status.is_none_or(|st| j.status == st))
            .filter(|j| filter.before.is_none_or(|b| j.id < b))
            .take(filter.limit)
            .cloned()
            .collect())
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Job>> {
        let mut s = self.lock();
        let Some(stored) = s.jobs.get_mut(&id) else {
            return Ok(None);
        };
        let job = &mut stored.job;
        match job.status {
            JobStatus::Running => job.cancel_requested = true,
            st if st.is_terminal() => return Ok(Some(job.clone())),
            _ => {
                job.status = JobStatus::Canceled;
                job.finished_at = Some(now);
            }
        }
        job.updated_at = now;
        Ok(Some(job.clone()))
    }

    async fn approve_job(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Job>> {
        let mut s = self.lock();
        let Some(stored) = s.jobs.get_mut(&id) else {
            return Ok(None);
        };
        if stored.job.status == JobStatus::AwaitingApproval {
            stored.job.status = JobStatus::Queued;
            stored.job.updated_at = now;
        }
        Ok(Some(stored.job.clone()))
    }

    async fn list_steps(&self, job_id: Uuid) -> Result<Vec<StepRecord>> {
        let mut steps: Vec<StepRecord> = self
            .lock()
            .steps
            .get(&job_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        steps.sort_by_key(|s| s.position);
        Ok(steps)
    }

    async fn queue_depth(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(self
            .lock()
            .jobs
            .values()
            .filter(|j| {
                matches!(j.job.status, JobStatus::Queued | JobStatus::Failed)
                    && j.job.run_after <= now
            })
            .count() as u64)
    }

    async fn count_jobs(&self, status: JobStatus) -> Result<u64> {
        Ok(self
            .lock()
            .jobs
            .values()
            .filter(|j| j.job.status == status)
            .count() as u64)
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn upsert_user(&self, user: User) -> Result<Upserted> {
        let mut s = self.lock();
        if let Some(existing) = s.users.values().find(|u| u.email == user.email) {
            return Ok(Upserted::Existing(existing.clone()));
        }
        s.users.insert(user.id, user.clone());
        Ok(Upserted::Created(user))
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<User>> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        Ok(self
            .lock()
            .users
            .values()
            .find(|u| u.email == email)
            .cloned())
    }

    async fn update_user(&self, user: &User) -> Result<Option<User>> {
        let mut s = self.lock();
        if !s.users.contains_key(&user.id) {
            return Ok(None);
        }
        if s.users
            .values()
            .any(|u| u.email == user.email && u.id != user.id)
        {
            return Err(Error::conflict(
                "email_taken",
                "another user has this email",
            ));
        }
        match s.users.get_mut(&user.id) {
            Some(stored) => {
                *stored = user.clone();
                Ok(Some(user.clone()))
            }
            None => Ok(None),
        }
    }

    async fn insert_key(&self, key: &ApiKey, secret_hash: &str) -> Result<()> {
        self.lock()
            .keys
            .insert(key.id, (key.clone(), secret_hash.to_string()));
        Ok(())
    }

    async fn list_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>> {
        Ok(self
            .lock()
            .keys
            .values()
            .rev()
            .filter(|(k, _)| k.user_id == user_id)
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn get_key(&self, id: Uuid) -> Result<Option<ApiKey>> {
        Ok(self.lock().keys.get(&id).map(|(k, _)| k.clone()))
    }

    async fn revoke_key(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<ApiKey>> {
        let mut s = self.lock();
        Ok(s.keys.get_mut(&id).map(|(k, _)| {
            k.revoked_at.get_or_insert(now);
            k.clone()
        }))
    }

    async fn list_users(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<User>> {
        Ok(self
            .lock()
            .users
            .values()
            .filter(|u| after.is_none_or(|a| u.id > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn delete_user(&self, id: Uuid) -> Result<bool> {
        let mut s = self.lock();
        s.keys.retain(|_, (k, _)| k.user_id != id);
        Ok(s.users.remove(&id).is_some())
    }

    async fn find_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKey>> {
        Ok(self
            .lock()
            .keys
            .values()
            .find(|(k, h)| h == secret_hash && k.revoked_at.is_none())
            .map(|(k, _)| k.clone()))
    }
}

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn publish_terms(&self, terms: &TermsVersion, entry: &LedgerEntry) -> Result<()> {
        let mut s = self.lock();
        if s.terms.iter().any(|t| t.version == terms.version) {
            return Err(Error::conflict(
                "terms_version_exists",
                "a terms version with this name was already published",
            ));
        }
        s.terms.push(terms.clone());
        s.append_ledger(entry);
        Ok(())
    }

    async fn list_terms(&self) -> Result<Vec<TermsVersion>> {
        Ok(self.lock().terms.clone())
    }

    async fn accept_terms(&self, acceptance: &TermsAcceptance, entry: &LedgerEntry) -> Result<()> {
        let mut s = self.lock();
        s.acceptances.insert(acceptance.id, acceptance.clone());
        s.append_ledger(entry);
        Ok(())
    }

    async fn list_acceptances(&self, user_id: Uuid) -> Result<Vec<TermsAcceptance>> {
        Ok(self
            .lock()
            .acceptances
            .values()
            .rev()
            .filter(|a| a.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn subscription_by_email(&self, email: &str) -> Result<Option<Subscription>> {
        Ok(self
            .lock()
            .subscriptions
            .values()
            .find(|s| s.email == email)
            .cloned())
    }

    async fn subscription_by_token(&self, token_hash: &str) -> Result<Option<Subscription>> {
        Ok(self
            .lock()
            .subscriptions
            .values()
            .find(|s| s.token_hash.as_deref() == Some(token_hash))
            .cloned())
    }

    async fn get_subscription(&self, id: Uuid) -> Result<Option<Subscription>> {
        Ok(self.lock().subscriptions.get(&id).cloned())
    }

    async fn put_subscription(
        &self,
        sub: &Subscription,
        entry: Option<&LedgerEntry>,
    ) -> Result<()> {
        let mut s = self.lock();
        if s.subscriptions
            .values()
            .any(|o| o.email == sub.email && o.id != sub.id)
        {
            return Err(Error::conflict(
                "subscription_exists",
                "another subscription has this email",
            ));
        }
        s.subscriptions.insert(sub.id, sub.clone());
        if let Some(e) = entry {
            s.append_ledger(e);
        }
        Ok(())
    }

    async fn list_subscribed(
        &self,
        category: Category,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Subscription>> {
        Ok(self
            .lock()
            .subscriptions
            .values()
            .filter(|s| after.is_none_or(|a| s.id > a))
            .filter(|s| {
                s.status == SubscriptionStatus::Subscribed && s.categories.contains(&category)
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn set_objection(
        &self,
        user_id: Uuid,
        objection: &Objection,
        entry: &LedgerEntry,
    ) -> Result<()> {
        let mut s = self.lock();
        s.objections
            .insert((user_id, objection.kind), objection.clone());
        s.append_ledger(entry);
        Ok(())
    }

    async fn list_objections(&self, user_id: Uuid) -> Result<Vec<Objection>> {
        Ok(self
            .lock()
            .objections
            .iter()
            .filter(|((u, _), _)| *u == user_id)
            .map(|(_, o)| o.clone())
            .collect())
    }

    async fn objects_by_email(&self, email: &str, kind: ObjectionKind) -> Result<bool> {
        let s = self.lock();
        Ok(s.users
            .values()
            .find(|u| u.email == email)
            .is_some_and(|u| s.objections.get(&(u.id, kind)).is_some_and(|o| o.objected)))
    }

    async fn subject_of(&self, user_id: Uuid) -> Result<Uuid> {
        Ok(*self
            .lock()
            .subjects
            .entry(user_id)
            .or_insert_with(Uuid::new_v4))
    }

    async fn ledger_after(&self, after: i64, limit: usize) -> Result<Vec<LedgerRecord>> {
        Ok(self
            .lock()
            .ledger
            .iter()
            .filter(|r| r.seq > after)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn erase_consents(
        &self,
        user_id: Uuid,
        email: &str,
        tombstone: Uuid,
    ) -> Result<ConsentErasure> {
        let mut s = self.lock();
        let mut out = ConsentErasure::default();
        let subs = s.subscriptions.len();
        s.subscriptions.retain(|_, sub| sub.email != email);
        out.deleted += (subs - s.subscriptions.len()) as u64;
        let objections = s.objections.len();
        s.objections.retain(|(u, _), _| *u != user_id);
        out.deleted += (objections - s.objections.len()) as u64;
        out.deleted += u64::from(s.subjects.remove(&user_id).is_some());
        for a in s.acceptances.values_mut().filter(|a| a.user_id == user_id) {
            a.user_id = tombstone;
            a.ip = None;
            a.user_agent = None;
            out.pseudonymized += 1;
        }
        Ok(out)
    }

    async fn consent_stats(&self, current: Option<&str>) -> Result<ConsentStats> {
        let s = self.lock();
        let accepted: std::collections::HashSet<Uuid> = s
            .acceptances
            .values()
            .filter(|a| Some(a.version.as_str()) == current && s.users.contains_key(&a.user_id))
            .map(|a| a.user_id)
            .collect();
        Ok(ConsentStats {
            users: s.users.len() as u64,
            accepted_current: accepted.len() as u64,
            subscribed_by_category: Category::ALL
                .into_iter()
                .map(|c| {
                    let n = s
                        .subscriptions
                        .values()
                        .filter(|sub| {
                            sub.status == SubscriptionStatus::Subscribed
                                && sub.categories.contains(&c)
                        })
                        .count();
                    (c, n as u64)
                })
                .collect(),
            subscriptions_by_status: [
                SubscriptionStatus::Pending,
                SubscriptionStatus::Subscribed,
                SubscriptionStatus::Unsubscribed,
            ]
            .into_iter()
            .map(|st| {
                let n = s
                    .subscriptions
                    .values()
                    .filter(|sub| sub.status == st)
                    .count();
                (st, n as u64)
            })
            .collect(),
            objections_by_kind: ObjectionKind::ALL
                .into_iter()
                .map(|k| {
                    let n = s
                        .objections
                        .iter()
                        .filter(|((_, kind), o)| *kind == k && o.objected)
                        .count();
                    (k, n as u64)
                })
                .collect(),
        })
    }
}

#[async_trait]
impl CreditStore for MemoryStore {
    async fn account(&self, user_id: Uuid) -> Result<Account> {
        Ok(self
            .lock()
            .accounts
            .get(&user_id)
            .copied()
            .unwrap_or_default())
    }

    async fn post_entry(&self, new: &NewEntry) -> Result<Posted> {
        let mut s = self.lock();
        if let Some(id) = s
            .entry_keys
            .get(&(new.user_id, new.idempotency_key.clone()))
        {
            return Ok(Posted::Replayed(s.entries[id].clone()));
        }
        if new.credits < 0 {
            let available = s
                .accounts
                .get(&new.user_id)
                .copied()
                .unwrap_or_default()
                .available();
            if available < -new.credits {
                return Err(crate::pricing::insufficient());
            }
            s.spend(new.user_id, -new.credits);
        }
        let entry = Entry {
            id: Uuid::now_v7(),
            user_id: new.user_id,
            kind: new.kind,
            credits: new.credits,
            held: 0,
            job_id: None,
            idempotency_key: new.idempotency_key.clone(),
            reason: new.reason.clone(),
            priority: new.priority,
            expires_at: new.expires_at.map(crate::service::micros),
            created_at: crate::service::micros(new.now),
        };
        if new.credits > 0 {
            s.buckets.push((
                new.user_id,
                Bucket {
                    id: entry.id,
                    rank: new.kind.spend_rank(),
                    priority: new.priority,
                    expires_at: entry.expires_at,
                    remaining: new.credits,
                },
            ));
        }
        s.push_entry(entry.clone());
        Ok(Posted::Created(entry))
    }

    async fn list_entries(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        Ok(self
            .lock()
            .entries
            .values()
            .rev()
            .filter(|e| e.user_id == user_id && before.is_none_or(|b| e.id < b))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn holds_to_close(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Hold>> {
        let s = self.lock();
        Ok(s.credit_holds
            .values()
            .filter(|(h, open)| {
                *open
                    && (h.expires_at < now
                        || s.jobs
                            .get(&h.job_id)
                            .is_none_or(|j| j.job.status.is_terminal()))
            })
            .take(limit)
            .map(|(h, _)| h.clone())
            .collect())
    }

    async fn close_hold(&self, job_id: Uuid, actual: i64, now: DateTime<Utc>) -> Result<bool> {
        let mut s = self.lock();
        let Some((hold, open)) = s.credit_holds.get_mut(&job_id) else {
            return Ok(false);
        };
        if !*open {
            return Ok(false);
        }
        *open = false;
        let hold = hold.clone();
        let actual = actual.clamp(0, hold.credits);
        s.spend(hold.user_id, actual);
        let kind = if actual > 0 {
            EntryKind::Settle
        } else {
            EntryKind::Release
        };
        s.push_entry(Entry {
            id: Uuid::now_v7(),
            user_id: hold.user_id,
            kind,
            credits: -actual,
            held: -hold.credits,
            job_id: Some(job_id),
            idempotency_key: format!("close:{job_id}"),
            reason: None,
            priority: 0,
            expires_at: None,
            created_at: crate::service::micros(now),
        });
        Ok(true)
    }

    async fn pseudonymize_credits(&self, user_id: Uuid, tombstone: Uuid) -> Result<u64> {
        let mut s = self.lock();
        let mut n = 0;
        for e in s.entries.values_mut().filter(|e| e.user_id == user_id) {
            e.user_id = tombstone;
            e.reason = None;
            n += 1;
        }
        s.entry_keys = std::mem::take(&mut s.entry_keys)
            .into_iter()
            .map(|((u, k), id)| ((if u == user_id { tombstone } else { u }, k), id))
            .collect();
        for (u, _) in s.buckets.iter_mut().filter(|(u, _)| *u == user_id) {
            *u = tombstone;
        }
        for (h, _) in s
            .credit_holds
            .values_mut()
            .filter(|(h, _)| h.user_id == user_id)
        {
            h.user_id = tombstone;
        }
        if let Some(a) = s.accounts.remove(&user_id) {
            s.accounts.insert(tombstone, a);
        }
        Ok(n)
    }

    async fn expire_credits(&self, now: DateTime<Utc>) -> Result<i64> {
        let mut s = self.lock();
        let users: std::collections::BTreeSet<Uuid> = s
            .buckets
            .iter()
            .filter(|(_, b)| b.remaining > 0 && b.expires_at.is_some_and(|t| t <= now))
            .map(|(u, _)| *u)
            .collect();
        let mut total = 0;
        for user in users {
            let idx: Vec<usize> = (0..s.buckets.len())
                .filter(|&i| s.buckets[i].0 == user)
                .collect();
            let mine: Vec<Bucket> = idx.iter().map(|&i| s.buckets[i].1.clone()).collect();
            let available = s
                .accounts
                .get(&user)
                .copied()
                .unwrap_or_default()
                .available();
            for (i, t) in crate::pricing::expiring(&mine, available, now) {
                s.buckets[idx[i]].1.remaining -= t;
                let bucket = mine[i].id;
                s.push_entry(Entry {
                    id: Uuid::now_v7(),
                    user_id: user,
                    kind: EntryKind::Expiry,
                    credits: -t,
                    held: 0,
                    job_id: None,
                    idempotency_key: format!("expiry:{bucket}:{}", now.timestamp_micros()),
                    reason: None,
                    priority: 0,
                    expires_at: None,
                    created_at: crate::service::micros(now),
                });
                total += t;
            }
        }
        Ok(total)
    }
}

#[async_trait]
impl crate::billing::BillingStore for MemoryStore {
    async fn customer_of(&self, user_id: Uuid) -> Result<Option<String>> {
        Ok(self.lock().customers.get(&user_id).cloned())
    }

    async fn set_customer(&self, user_id: Uuid, customer_id: &str) -> Result<String> {
        Ok(self
            .lock()
            .customers
            .entry(user_id)
            .or_insert_with(|| customer_id.to_string())
            .clone())
    }

    async fn user_of_customer(&self, customer_id: &str) -> Result<Option<Uuid>> {
        Ok(self
            .lock()
            .customers
            .iter()
            .find(|(_, c)| c.as_str() == customer_id)
            .map(|(u, _)| *u))
    }

    async fn record_event(&self, id: &str, kind: &str, _now: DateTime<Utc>) -> Result<bool> {
        let mut s = self.lock();
        if s.billing_events.contains_key(id) {
            return Ok(false);
        }
        s.billing_events.insert(id.into(), kind.into());
        Ok(true)
    }

    async fn dunning(&self, user_id: Uuid) -> Result<Option<crate::billing::Dunning>> {
        Ok(self.lock().dunning.get(&user_id).cloned())
    }

    async fn put_dunning(&self, d: &crate::billing::Dunning) -> Result<()> {
        self.lock().dunning.insert(d.user_id, d.clone());
        Ok(())
    }

    async fn past_due(&self) -> Result<Vec<crate::billing::Dunning>> {
        Ok(self
            .lock()
            .dunning
            .values()
            .filter(|d| d.state == crate::billing::DunningState::PastDue)
            .cloned()
            .collect())
    }

    async fn record_revenue(&self, r: &crate::billing::Revenue) -> Result<()> {
        self.lock()
            .revenue
            .entry(r.id.clone())
            .or_insert_with(|| r.clone());
        Ok(())
    }

    async fn revenue_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::billing::Revenue>> {
        Ok(self
            .lock()
            .revenue
            .values()
            .filter(|r| r.at >= from && r.at < to)
            .cloned()
            .collect())
    }

    async fn job_runtimes_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>> {
        Ok(self
            .lock()
            .jobs
            .values()
            .filter_map(|j| {
                let (start, end) = (j.job.started_at?, j.job.finished_at?);
                (end >= from && end < to).then(|| (end, (end - start).num_milliseconds()))
            })
            .collect())
    }

    async fn entries_between(
        &self,
        kind: EntryKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, i64)>> {
        Ok(self
            .lock()
            .entries
            .values()
            .filter(|e| e.kind == kind && e.created_at >= from && e.created_at < to)
            .map(|e| (e.created_at, e.credits))
            .collect())
    }

    async fn create_codes(&self, codes: &[crate::billing::DiscountCode]) -> Result<()> {
        let mut s = self.lock();
        if codes.iter().any(|c| s.codes.contains_key(&c.code)) {
            return Err(Error::conflict(
                "discount_code_exists",
                "a discount code with this name exists",
            ));
        }
        for c in codes {
            s.codes.insert(c.code.clone(), c.clone());
        }
        Ok(())
    }

    async fn get_code(&self, code: &str) -> Result<Option<crate::billing::DiscountCode>> {
        Ok(self.lock().codes.get(code).cloned())
    }

    async fn redeemed(&self, code: &str, user_id: Uuid) -> Result<bool> {
        Ok(self
            .lock()
            .redemptions
            .contains(&(code.to_string(), user_id)))
    }

    async fn redeem(
        &self,
        code: &str,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<crate::billing::DiscountCode> {
        let mut s = self.lock();
        let found = s
            .codes
            .get(code)
            .cloned()
            .ok_or_else(|| Error::not_found("discount code").with_code("discount_unknown"))?;
        found.check(now)?;
        if s.redemptions.contains(&(code.to_string(), user_id)) {
            return Err(Error::conflict(
                "discount_already_redeemed",
                "you already redeemed this code",
            ));
        }
        s.redemptions.insert((code.to_string(), user_id));
        let c = s.codes.get_mut(code).expect("found above");
        c.redemptions += 1;
        Ok(c.clone())
    }

    async fn erase_billing(&self, user_id: Uuid, tombstone: Uuid) -> Result<u64> {
        let mut s = self.lock();
        let mut n = u64::from(s.customers.remove(&user_id).is_some());
        n += u64::from(s.dunning.remove(&user_id).is_some());
        for r in s
            .revenue
            .values_mut()
            .filter(|r| r.user_id == Some(user_id))
        {
            r.user_id = Some(tombstone);
        }
        s.redemptions = std::mem::take(&mut s.redemptions)
            .into_iter()
            .map(|(c, u)| (c, if u == user_id { tombstone } else { u }))
            .collect();
        Ok(n)
    }
}

#[async_trait]
impl crate::quotas::QuotaStore for MemoryStore {
    async fn tier_of(&self, user_id: Uuid) -> Result<Option<String>> {
        Ok(self.lock().tiers.get(&user_id).cloned())
    }

    async fn set_tier(&self, user_id: Uuid, tier: &str, _now: DateTime<Utc>) -> Result<()> {
        self.lock().tiers.insert(user_id, tier.to_string());
        Ok(())
    }

    async fn add_calls(&self, calls: &[crate::quotas::CallCount]) -> Result<Vec<u64>> {
        let mut s = self.lock();
        Ok(calls
            .iter()
            .map(|c| {
                let day = s.usage_days.entry((c.user_id, c.day.clone())).or_default();
                *day += c.calls;
                *day
            })
            .collect())
    }

    async fn usage_days(&self, user_id: Uuid, month: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .lock()
            .usage_days
            .iter()
            .filter(|((u, d), _)| *u == user_id && d.starts_with(month))
            .map(|((_, d), n)| (d.clone(), *n))
            .collect())
    }

    async fn erase_usage(&self, user_id: Uuid) -> Result<u64> {
        let mut s = self.lock();
        let before = s.usage_days.len() + s.tiers.len();
        s.usage_days.retain(|(u, _), _| *u != user_id);
        s.tiers.remove(&user_id);
        Ok((before - s.usage_days.len() - s.tiers.len()) as u64)
    }
}

#[async_trait]
impl PrivacyStore for MemoryStore {
    async fn get_setting(&self, key: &str) -> Result<Option<Value>> {
        Ok(self.lock().settings.get(key).cloned())
    }

    async fn put_setting(&self, key: &str, value: &Value) -> Result<()> {
        self.lock().settings.insert(key.into(), value.clone());
        Ok(())
    }

    async fn put_setting_if_absent(&self, key: &str, value: &Value) -> Result<()> {
        self.lock()
            .settings
            .entry(key.into())
            .or_insert_with(|| value.clone());
        Ok(())
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        self.lock().audit.insert(record.id, record.clone());
        Ok(())
    }

    async fn list_audit(&self, before: Option<Uuid>, limit: usize) -> Result<Vec<AuditRecord>> {
        Ok(self
            .lock()
            .audit
            .values()
            .rev()
            .filter(|a| before.is_none_or(|b| a.id < b))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn find_audit(&self, action: &str, subject: Option<&str>) -> Result<Vec<AuditRecord>> {
        Ok(self
            .lock()
            .audit
            .values()
            .rev()
            .filter(|a| {
                a.action == action && subject.is_none_or(|s| a.subject.as_deref() == Some(s))
            })
            .cloned()
            .collect())
    }

    async fn record_events(&self, events: &[Event]) -> Result<()> {
        let mut s = self.lock();
        for e in events {
            s.events.insert(e.id, e.clone());
        }
        Ok(())
    }

    async fn list_events(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        Ok(self
            .lock()
            .events
            .values()
            .filter(|e| e.user_id == user_id && after.is_none_or(|a| e.id > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn record_export(&self, export: &ExportRecord) -> Result<()> {
        self.lock().exports.insert(export.id, export.clone());
        Ok(())
    }

    async fn last_export(&self, user_id: Uuid) -> Result<Option<ExportRecord>> {
        Ok(self
            .lock()
            .exports
            .values()
            .rev()
            .find(|e| e.user_id == user_id)
            .cloned())
    }

    async fn set_legal_hold(&self, hold: &LegalHold) -> Result<()> {
        self.lock().holds.insert(hold.user_id, hold.clone());
        Ok(())
    }

    async fn clear_legal_hold(&self, user_id: Uuid) -> Result<bool> {
        Ok(self.lock().holds.remove(&user_id).is_some())
    }

    async fn legal_holds(&self) -> Result<Vec<LegalHold>> {
        Ok(self.lock().holds.values().cloned().collect())
    }

    async fn put_screening(&self, record: &ScreeningRecord) -> Result<()> {
        self.lock().screenings.insert(record.id, record.clone());
        Ok(())
    }

    async fn get_screening(&self, id: Uuid) -> Result<Option<ScreeningRecord>> {
        Ok(self.lock().screenings.get(&id).cloned())
    }

    async fn list_screenings(
        &self,
        user_id: Option<Uuid>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ScreeningRecord>> {
        Ok(self
            .lock()
            .screenings
            .values()
            .rev()
            .filter(|r| user_id.is_none_or(|u| r.user_id == u) && before.is_none_or(|b| r.id < b))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn erase_area(&self, area: StoredArea, user_id: Uuid, email: &str) -> Result<u64> {
        let mut s = self.lock();
        let before;
        let after;
        match area {
            StoredArea::Jobs => {
                let ids: Vec<Uuid> = s
                    .jobs
                    .values()
                    .filter(|j| j.job.owner_id == user_id)
                    .map(|j| j.job.id)
                    .collect();
                for id in &ids {
                    let stored = s.jobs.remove(id).expect("listed");
                    if let Some(key) = stored.job.idempotency_key {
                        s.idempotency.remove(&(user_id, key));
                    }
                    s.steps.remove(id);
                }
                return Ok(ids.len() as u64);
            }
            StoredArea::Events => {
                before = s.events.len();
                s.events.retain(|_, e| e.user_id != user_id);
                after = s.events.len();
            }
            StoredArea::Screenings => {
                before = s.screenings.len();
                s.screenings.retain(|_, r| r.user_id != user_id);
                after = s.screenings.len();
            }
            StoredArea::Outbox => {
                before = s.outbox.len();
                s.outbox.retain(|_, m| m.to != email);
                after = s.outbox.len();
            }
            StoredArea::Exports => {
                before = s.exports.len();
                s.exports.retain(|_, e| e.user_id != user_id);
                after = s.exports.len();
            }
        }
        Ok((before - after) as u64)
    }

    async fn sweep(
        &self,
        class: DataClass,
        cutoff: DateTime<Utc>,
        held: &Held,
        dry_run: bool,
    ) -> Result<u64> {
        let mut s = self.lock();
        let free = |u: &Uuid| !held.user_ids.contains(u);
        let n = match class {
            DataClass::Jobs => {
                let ids: Vec<Uuid> = s
                    .jobs
                    .values()
                    .filter(|j| {
                        j.job.status.is_terminal()
                            && j.job.finished_at.is_some_and(|f| f < cutoff)
                            && free(&j.job.owner_id)
                    })
                    .map(|j| j.job.id)
                    .collect();
                if !dry_run {
                    for id in &ids {
                        let stored = s.jobs.remove(id).expect("listed");
                        if let Some(key) = stored.job.idempotency_key {
                            s.idempotency.remove(&(stored.job.owner_id, key));
                        }
                        s.steps.remove(id);
                    }
                }
                ids.len()
            }
            DataClass::StepOutputs => {
                let finished: std::collections::HashSet<Uuid> = s
                    .jobs
                    .values()
                    .filter(|j| j.job.status.is_terminal() && free(&j.job.owner_id))
                    .map(|j| j.job.id)
                    .collect();
                let mut n = 0;
                for (job_id, steps) in s.steps.iter_mut() {
                    if !finished.contains(job_id) {
                        continue;
                    }
                    for step in steps.values_mut() {
                        if step.finished_at < cutoff && !step.output.is_null() {
                            n += 1;
                            if !dry_run {
                                step.output = Value::Null;
                            }
                        }
                    }
                }
                n
            }
            DataClass::Events => sweep_map(&mut s.events, dry_run, |e| {
                e.created_at < cutoff && free(&e.user_id)
            }),
            DataClass::Audit => sweep_map(&mut s.audit, dry_run, |a| a.at < cutoff),
            DataClass::Exports => sweep_map(&mut s.exports, dry_run, |e| {
                e.created_at < cutoff && free(&e.user_id)
            }),
            DataClass::Tokens => sweep_map(&mut s.subscriptions, dry_run, |sub| {
                sub.status == SubscriptionStatus::Pending
                    && sub.token_expires_at.is_some_and(|t| t < cutoff)
                    && !held.emails.contains(&sub.email)
            }),
            DataClass::Outbox => sweep_map(&mut s.outbox, dry_run, |m| {
                m.created_at < cutoff && !held.emails.contains(&m.to)
            }),
            DataClass::Screenings => sweep_map(&mut s.screenings, dry_run, |r| {
                r.created_at < cutoff
                    && r.appeal_status != Some(AppealStatus::Pending)
                    && free(&r.user_id)
            }),
        };
        Ok(n as u64)
    }
}

/// Removes (unless `dry_run`) the values that `old` picks; how many it picked.
fn sweep_map<V>(map: &mut BTreeMap<Uuid, V>, dry_run: bool, old: impl Fn(&V) -> bool) -> usize {
    let n = map.values().filter(|v| old(v)).count();
    if !dry_run {
        map.retain(|_, v| !old(v));
    }
    n
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn push_outbox(&self, message: &OutboxMessage) -> Result<()> {
        self.lock().outbox.insert(message.id, message.clone());
        Ok(())
    }

    async fn list_outbox(&self, before: Option<Uuid>, limit: usize) -> Result<Vec<OutboxMessage>> {
        Ok(self
            .lock()
            .outbox
            .values()
            .rev()
            .filter(|m| before.is_none_or(|b| m.id < b))
            .take(limit)
            .cloned()
            .collect())
    }
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
