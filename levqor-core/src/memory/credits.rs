//! The credit ledger in memory.

use super::MemoryStore;
use crate::clock::micros;
use crate::credits::{
    Account, Bucket, CreditStore, Entry, EntryKind, Hold, NewEntry, Posted, expiring,
    insufficient_credits,
};
use crate::error::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

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
                return Err(insufficient_credits());
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
            expires_at: new.expires_at.map(micros),
            created_at: micros(new.now),
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
            created_at: micros(now),
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
            for (i, t) in expiring(&mine, available, now) {
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
                    created_at: micros(now),
                });
                total += t;
            }
        }
        Ok(total)
    }
}
