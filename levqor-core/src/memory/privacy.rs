//! Privacy records, the audit trail and settings in memory, and the retention sweep.

use super::MemoryStore;
use crate::audit::{AuditRecord, AuditStore};
use crate::consent::SubscriptionStatus;
use crate::error::Result;
use crate::notify::OutboxMessage;
use crate::privacy::{DataClass, Event, ExportRecord, Held, LegalHold, PrivacyStore};
use crate::screening::AppealStatus;
use crate::settings::SettingsStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

#[async_trait]
impl PrivacyStore for MemoryStore {
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

    async fn erase_events(&self, user_id: Uuid) -> Result<u64> {
        let mut s = self.lock();
        let before = s.events.len();
        s.events.retain(|_, e| e.user_id != user_id);
        Ok((before - s.events.len()) as u64)
    }

    async fn record_export(&self, export: &ExportRecord, messages: &[OutboxMessage]) -> Result<()> {
        let mut s = self.lock();
        s.exports.insert(export.id, export.clone());
        for m in messages {
            s.outbox.insert(m.id, m.clone());
        }
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

    async fn erase_exports(&self, user_id: Uuid) -> Result<u64> {
        let mut s = self.lock();
        let before = s.exports.len();
        s.exports.retain(|_, e| e.user_id != user_id);
        Ok((before - s.exports.len()) as u64)
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
                        s.remove_job(*id);
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
impl AuditStore for MemoryStore {
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
}

#[async_trait]
impl SettingsStore for MemoryStore {
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
}
