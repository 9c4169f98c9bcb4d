//! Consent in memory; every write with a ledger entry appends it under the same lock.

use super::MemoryStore;
use crate::consent::{
    Category, ConsentErasure, ConsentStats, ConsentStore, LedgerEntry, LedgerRecord, Objection,
    ObjectionKind, Subscription, SubscriptionStatus, TermsAcceptance, TermsVersion,
};
use crate::error::{Error, Result};
use crate::notify::OutboxMessage;
use async_trait::async_trait;
use uuid::Uuid;

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn publish_terms(
        &self,
        terms: &TermsVersion,
        entry: &LedgerEntry,
        messages: &[OutboxMessage],
    ) -> Result<()> {
        let mut s = self.lock();
        if s.terms.iter().any(|t| t.version == terms.version) {
            return Err(Error::conflict(
                "terms_version_exists",
                "a terms version with this name was already published",
            ));
        }
        s.terms.push(terms.clone());
        s.append_ledger(entry);
        for m in messages {
            s.outbox.insert(m.id, m.clone());
        }
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
        messages: &[OutboxMessage],
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
        for m in messages {
            s.outbox.insert(m.id, m.clone());
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
        messages: &[OutboxMessage],
    ) -> Result<()> {
        let mut s = self.lock();
        s.objections
            .insert((user_id, objection.kind), objection.clone());
        s.append_ledger(entry);
        for m in messages {
            s.outbox.insert(m.id, m.clone());
        }
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
