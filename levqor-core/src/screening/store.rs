//! Screening records: what screening decided about a job that it did not simply allow, and the
//! appeal against a refusal. The [`ScreeningStore`] only stores; the rules are in the service.

use super::Screening;
use crate::error::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Where an appeal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppealStatus {
    /// The user appealed; an admin has not decided.
    Pending,
    /// An admin let the job run.
    Approved,
    /// An admin upheld the refusal.
    Denied,
}

impl AppealStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AppealStatus::Pending => "pending",
            AppealStatus::Approved => "approved",
            AppealStatus::Denied => "denied",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Denied]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// A screening that did not simply allow a job: blocked, held or warned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreeningRecord {
    /// The job's id (a refused job keeps the id it would have had).
    pub id: Uuid,
    /// Whose request.
    pub user_id: Uuid,
    /// What screening decided.
    pub screening: Screening,
    /// For a refused job: the request, so that an approved appeal can admit it.
    pub request: Option<Value>,
    /// The appeal, if any.
    pub appeal_status: Option<AppealStatus>,
    /// The user's reason for the appeal.
    pub appeal_reason: Option<String>,
    /// The admin's note on the decision.
    pub decision_note: Option<String>,
    /// When it was screened.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Storage of screening records.
#[async_trait]
pub trait ScreeningStore: Send + Sync {
    /// Inserts or replaces a screening record.
    async fn put_screening(&self, record: &ScreeningRecord) -> Result<()>;
    /// Stores the decision of `record`'s appeal (its status, note and time) only while the stored
    /// appeal is still `from`: whether it did. Of two admins deciding one appeal at once, one
    /// moves it.
    async fn move_appeal(&self, record: &ScreeningRecord, from: AppealStatus) -> Result<bool>;
    /// A screening record by id.
    async fn get_screening(&self, id: Uuid) -> Result<Option<ScreeningRecord>>;
    /// Screening records (one user's, or all), newest first, older than `before`.
    async fn list_screenings(
        &self,
        user_id: Option<Uuid>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ScreeningRecord>>;
    /// Deletes a user's screening records; how many.
    async fn erase_screenings(&self, user_id: Uuid) -> Result<u64>;
}
