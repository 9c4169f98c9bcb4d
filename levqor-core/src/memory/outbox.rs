//! The outbox in memory.

use super::MemoryStore;
use crate::error::Result;
use crate::notify::{ABANDONED, EXPIRED, apply_settle};
use crate::notify::{
    Attempt, DeliveryStatus, OutboxClaim, OutboxMessage, OutboxStore, Settle, Settled, Suppression,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

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

    async fn get_outbox(&self, id: Uuid) -> Result<Option<OutboxMessage>> {
        Ok(self.lock().outbox.get(&id).cloned())
    }

    async fn erase_outbox(&self, email: &str) -> Result<u64> {
        let mut s = self.lock();
        let gone: Vec<Uuid> = s
            .outbox
            .values()
            .filter(|m| m.to == email)
            .map(|m| m.id)
            .collect();
        for id in &gone {
            s.outbox.remove(id);
            s.outbox_leases.remove(id);
            s.outbox_attempts.remove(id);
        }
        let before = s.suppressions.len();
        s.suppressions.retain(|_, x| x.email != email);
        Ok((gone.len() + before - s.suppressions.len()) as u64)
    }

    async fn claim_outbox(&self, claim: &OutboxClaim) -> Result<Vec<OutboxMessage>> {
        let mut s = self.lock();
        let state = &mut *s;
        let mut due: Vec<&mut OutboxMessage> = state
            .outbox
            .values_mut()
            .filter(|m| claim.channels.contains(&m.channel))
            .filter(|m| match m.delivery.status {
                DeliveryStatus::Pending => {
                    (claim.not_before..=claim.now).contains(&m.delivery.next_attempt_at)
                }
                DeliveryStatus::Sending => {
                    claim.reclaim.contains(&m.channel)
                        && state
                            .outbox_leases
                            .get(&m.id)
                            .is_none_or(|(_, until)| *until <= claim.now)
                }
                _ => false,
            })
            .collect();
        due.sort_by_key(|m| (m.delivery.next_attempt_at, m.id));
        due.truncate(claim.limit);
        let mut out = Vec::with_capacity(due.len());
        for m in due {
            m.delivery.status = DeliveryStatus::Sending;
            m.delivery.attempts += 1;
            state
                .outbox_leases
                .insert(m.id, (claim.token, claim.lease_until));
            out.push(m.clone());
        }
        Ok(out)
    }

    async fn settle_outbox(&self, settles: &[Settle]) -> Result<Vec<bool>> {
        let mut s = self.lock();
        let state = &mut *s;
        Ok(settles
            .iter()
            .map(|settle| {
                let held = state
                    .outbox_leases
                    .get(&settle.message_id)
                    .is_some_and(|(token, _)| *token == settle.token);
                let Some(m) = state.outbox.get_mut(&settle.message_id) else {
                    return false;
                };
                if !held || m.delivery.status != DeliveryStatus::Sending {
                    return false;
                }
                state.outbox_leases.remove(&settle.message_id);
                apply_settle(m, settle);
                state
                    .outbox_attempts
                    .entry(settle.message_id)
                    .or_default()
                    .push(settle.attempt.clone());
                true
            })
            .collect())
    }

    async fn sweep_outbox(&self, claim: &OutboxClaim) -> Result<Settled> {
        let mut s = self.lock();
        let state = &mut *s;
        let mut settled = Settled::default();
        for m in state.outbox.values_mut() {
            if !claim.channels.contains(&m.channel) {
                continue;
            }
            match m.delivery.status {
                DeliveryStatus::Sending
                    if !claim.reclaim.contains(&m.channel)
                        && state
                            .outbox_leases
                            .get(&m.id)
                            .is_none_or(|(_, until)| *until <= claim.now) =>
                {
                    state.outbox_leases.remove(&m.id);
                    m.delivery.status = DeliveryStatus::Unknown;
                    m.delivery.last_error = Some(ABANDONED.into());
                    settled.unknown += 1;
                }
                DeliveryStatus::Pending if m.delivery.next_attempt_at < claim.not_before => {
                    m.delivery.status = DeliveryStatus::Failed;
                    m.delivery.last_error = Some(EXPIRED.into());
                    settled.expired += 1;
                }
                _ => {}
            }
        }
        Ok(settled)
    }

    async fn retry_outbox(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let mut s = self.lock();
        let Some(m) = s.outbox.get_mut(&id) else {
            return Ok(false);
        };
        if !matches!(
            m.delivery.status,
            DeliveryStatus::Failed | DeliveryStatus::Unknown
        ) {
            return Ok(false);
        }
        m.delivery.status = DeliveryStatus::Pending;
        m.delivery.next_attempt_at = now;
        Ok(true)
    }

    async fn suppress(&self, suppression: &Suppression) -> Result<bool> {
        let mut s = self.lock();
        if s.suppressions
            .values()
            .any(|x| x.email == suppression.email)
        {
            return Ok(false);
        }
        s.suppressions.insert(suppression.id, suppression.clone());
        Ok(true)
    }

    async fn suppression(&self, email: &str) -> Result<Option<Suppression>> {
        Ok(self
            .lock()
            .suppressions
            .values()
            .find(|x| x.email == email)
            .cloned())
    }

    async fn list_suppressions(
        &self,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Suppression>> {
        Ok(self
            .lock()
            .suppressions
            .values()
            .rev()
            .filter(|x| before.is_none_or(|b| x.id < b))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn unsuppress(&self, email: &str) -> Result<bool> {
        let mut s = self.lock();
        let before = s.suppressions.len();
        s.suppressions.retain(|_, x| x.email != email);
        Ok(s.suppressions.len() < before)
    }

    async fn list_attempts(&self, message_id: Uuid) -> Result<Vec<Attempt>> {
        Ok(self
            .lock()
            .outbox_attempts
            .get(&message_id)
            .cloned()
            .unwrap_or_default())
    }
}
