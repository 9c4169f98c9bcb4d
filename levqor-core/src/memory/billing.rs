//! Billing records in memory.

use super::MemoryStore;
use crate::billing::{BillingStore, DiscountCode, Dunning, DunningState, Revenue};
use crate::credits::EntryKind;
use crate::error::{Error, Result};
use crate::notify::OutboxMessage;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[async_trait]
impl BillingStore for MemoryStore {
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

    async fn event_recorded(&self, id: &str) -> Result<bool> {
        Ok(self.lock().billing_events.contains_key(id))
    }

    async fn record_event(&self, id: &str, kind: &str, _now: DateTime<Utc>) -> Result<bool> {
        let mut s = self.lock();
        if s.billing_events.contains_key(id) {
            return Ok(false);
        }
        s.billing_events.insert(id.into(), kind.into());
        Ok(true)
    }

    async fn dunning(&self, user_id: Uuid) -> Result<Option<Dunning>> {
        Ok(self.lock().dunning.get(&user_id).cloned())
    }

    async fn put_dunning<'a>(
        &self,
        d: &Dunning,
        previous: Option<&'a Dunning>,
        messages: &[OutboxMessage],
    ) -> Result<bool> {
        let mut s = self.lock();
        if s.dunning.get(&d.user_id) != previous {
            return Ok(false);
        }
        s.dunning.insert(d.user_id, d.clone());
        for m in messages {
            s.outbox.insert(m.id, m.clone());
        }
        Ok(true)
    }

    async fn past_due(&self) -> Result<Vec<Dunning>> {
        Ok(self
            .lock()
            .dunning
            .values()
            .filter(|d| d.state == DunningState::PastDue)
            .cloned()
            .collect())
    }

    async fn record_revenue(&self, r: &Revenue) -> Result<()> {
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
    ) -> Result<Vec<Revenue>> {
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

    async fn create_codes(&self, codes: &[DiscountCode]) -> Result<()> {
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

    async fn get_code(&self, code: &str) -> Result<Option<DiscountCode>> {
        Ok(self.lock().codes.get(code).cloned())
    }

    async fn redeemed(&self, code: &str, user_id: Uuid) -> Result<bool> {
        Ok(self
            .lock()
            .redemptions
            .contains(&(code.to_string(), user_id)))
    }

    async fn redeem(&self, code: &str, user_id: Uuid, now: DateTime<Utc>) -> Result<DiscountCode> {
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
