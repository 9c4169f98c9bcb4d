//! Screening records in memory.

use super::MemoryStore;
use crate::error::Result;
use crate::screening::{AppealStatus, ScreeningRecord, ScreeningStore};
use async_trait::async_trait;
use uuid::Uuid;

#[async_trait]
impl ScreeningStore for MemoryStore {
    async fn put_screening(&self, record: &ScreeningRecord) -> Result<()> {
        self.lock().screenings.insert(record.id, record.clone());
        Ok(())
    }

    async fn move_appeal(&self, record: &ScreeningRecord, from: AppealStatus) -> Result<bool> {
        let mut s = self.lock();
        match s.screenings.get_mut(&record.id) {
            Some(stored) if stored.appeal_status == Some(from) => {
                stored.appeal_status = record.appeal_status;
                stored.decision_note = record.decision_note.clone();
                stored.updated_at = record.updated_at;
                Ok(true)
            }
            _ => Ok(false),
        }
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

    async fn erase_screenings(&self, user_id: Uuid) -> Result<u64> {
        let mut s = self.lock();
        let before = s.screenings.len();
        s.screenings.retain(|_, r| r.user_id != user_id);
        Ok((before - s.screenings.len()) as u64)
    }
}
