//! Data subject rights and retention: analytics events, DSAR exports (a ZIP emailed as an
//! attachment, never a link), erasure across every registered
//! [`PersonalDataArea`](crate::personal_data::PersonalDataArea), retention policies and their
//! sweep, legal holds, the audit log's reader and the compliance dashboard.
//!
//! Privacy exports and erases nothing of its own beyond events and export records: it walks the
//! registry, and each domain's area handles its own data.

mod area;
mod compliance;
mod export;
mod retention;
mod service;
#[cfg(test)]
mod service_tests;
mod store;

pub use area::{EventsArea, ExportsArea};
pub use compliance::{ComplianceDashboard, Counts, MarketingCounts, ScreeningCounts, TermsCounts};
pub use export::build_zip;
pub(crate) use retention::{Retention, RetentionSweepTask};
pub use service::{ErasureSummary, Privacy};
pub use store::PrivacyStore;

use crate::error::{Error, Result, Violation};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// An analytics event a user's client recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Stable, time-ordered id.
    pub id: Uuid,
    /// Whose.
    pub user_id: Uuid,
    /// What happened, e.g. `page_view`.
    pub name: String,
    /// Free-form properties.
    pub properties: Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A DSAR export that was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// Stable id.
    pub id: Uuid,
    /// Whose data.
    pub user_id: Uuid,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// Size of the ZIP.
    pub bytes: i64,
    /// The areas it holds.
    pub areas: Vec<String>,
}

/// A legal hold: the user's data must be kept; sweeps skip it and erasure is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalHold {
    /// The user.
    pub user_id: Uuid,
    /// Why (a case number, not personal data).
    pub reason: String,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

/// The data classes with a retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataClass {
    /// Finished jobs, with their steps.
    Jobs,
    /// Outputs of the steps of finished jobs (the step records stay, their outputs are nulled).
    StepOutputs,
    /// Analytics events.
    Events,
    /// Audit records.
    Audit,
    /// Export records.
    Exports,
    /// Consents never confirmed whose token expired, and used or expired tokens.
    Tokens,
    /// Outbox messages.
    Outbox,
    /// Screening records without a pending appeal.
    Screenings,
}

impl DataClass {
    /// Every class.
    pub const ALL: [DataClass; 8] = [
        DataClass::Jobs,
        DataClass::StepOutputs,
        DataClass::Events,
        DataClass::Audit,
        DataClass::Exports,
        DataClass::Tokens,
        DataClass::Outbox,
        DataClass::Screenings,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Jobs => "jobs",
            DataClass::StepOutputs => "step_outputs",
            DataClass::Events => "events",
            DataClass::Audit => "audit",
            DataClass::Exports => "exports",
            DataClass::Tokens => "tokens",
            DataClass::Outbox => "outbox",
            DataClass::Screenings => "screenings",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The default retention, in days.
    pub fn default_days(self) -> i64 {
        match self {
            DataClass::Jobs => 90,
            DataClass::StepOutputs => 30,
            DataClass::Events => 365,
            DataClass::Audit => 2557,
            DataClass::Exports => 30,
            DataClass::Tokens => 30,
            DataClass::Outbox => 90,
            DataClass::Screenings => 365,
        }
    }
}

/// Retention in days per data class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicies(pub BTreeMap<DataClass, i64>);

impl Default for RetentionPolicies {
    fn default() -> Self {
        Self(
            DataClass::ALL
                .into_iter()
                .map(|c| (c, c.default_days()))
                .collect(),
        )
    }
}

impl RetentionPolicies {
    /// Reads `{"jobs": 90, ...}`; classes left out keep their current value.
    pub fn merged(&self, body: &Map<String, Value>) -> Result<Self> {
        let mut out = self.clone();
        let mut bad = Vec::new();
        for (k, v) in body {
            match (DataClass::parse(k), v.as_i64()) {
                (Some(c), Some(days)) if (1..=36_500).contains(&days) => {
                    out.0.insert(c, days);
                }
                (Some(_), _) => bad.push(Violation::new(
                    format!("/{k}"),
                    "must be a whole number of days from 1 to 36500",
                )),
                (None, _) => bad.push(Violation::new(format!("/{k}"), "is not a data class")),
            }
        }
        if bad.is_empty() {
            Ok(out)
        } else {
            Err(Error::violations(
                "validation_failed",
                "bad retention policies",
                bad,
            ))
        }
    }

    /// The retention of `class`.
    pub fn days(&self, class: DataClass) -> i64 {
        self.0.get(&class).copied().unwrap_or(class.default_days())
    }
}

/// Users whose data a sweep must keep.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// Their ids.
    pub user_ids: Vec<Uuid>,
    /// Their emails.
    pub emails: Vec<String>,
}

/// Largest export.
pub const MAX_EXPORT_BYTES: usize = 5 * 1024 * 1024;
/// Least time between two exports of one user.
pub const EXPORT_INTERVAL: Duration = Duration::hours(24);

/// What a sweep did (or would do) per class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Only counted.
    pub dry_run: bool,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Rows per class.
    pub classes: BTreeMap<DataClass, u64>,
    /// Users whose data was kept for a legal hold.
    pub held_users: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_merge_and_refuse_unknown_classes() {
        let p = RetentionPolicies::default();
        let body = json!({"events": 10}).as_object().unwrap().clone();
        assert_eq!(p.merged(&body).unwrap().days(DataClass::Events), 10);
        let body = json!({"events": 0, "logs": 5}).as_object().unwrap().clone();
        let err = p.merged(&body).unwrap_err();
        assert_eq!(err.violations.len(), 2);
    }
}
