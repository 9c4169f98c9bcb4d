//! The job model and its state machine.

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker (possibly until `run_after`).
    Queued,
    /// Held for a person's approval before it may run.
    AwaitingApproval,
    /// Claimed by a worker under a lease.
    Running,
    /// Finished; its result is final.
    Succeeded,
    /// An attempt failed; it will be retried at `run_after`.
    Failed,
    /// Failed for good: attempts exhausted or a non-retryable error.
    Dead,
    /// Canceled before it finished.
    Canceled,
}

impl JobStatus {
    /// Every status, in declaration order.
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Queued,
        JobStatus::AwaitingApproval,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Dead,
        JobStatus::Canceled,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::AwaitingApproval => "awaiting_approval",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
            JobStatus::Canceled => "canceled",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No transition leaves a terminal status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Dead | JobStatus::Canceled
        )
    }

    /// Whether `self -> to` is an allowed transition.
    ///
    /// - queued -> running (claimed), canceled
    /// - awaiting_approval -> queued (approved), canceled (refused or canceled)
    /// - running -> succeeded, failed (will retry), dead, canceled (at a step boundary),
    ///   queued (a `delay` step, a graceful release or an expired lease)
    /// - failed -> running (retry claimed), canceled, dead (an expired lease on the last attempt)
    pub fn can_become(self, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, to),
            (Queued, Running)
                | (Queued, Canceled)
                | (AwaitingApproval, Queued)
                | (AwaitingApproval, Canceled)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Running, Dead)
                | (Running, Canceled)
                | (Running, Queued)
                | (Failed, Running)
                | (Failed, Canceled)
                | (Failed, Dead)
        )
    }

    /// `Ok` when `self -> to` is allowed, else a `Conflict` naming both.
    pub fn transition(self, to: JobStatus) -> Result<JobStatus> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(Error::conflict(
                "invalid_transition",
                format!("a {} job cannot become {}", self.as_str(), to.as_str()),
            ))
        }
    }
}

/// A job as stored and shown to its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Stable, time-ordered id (UUID v7).
    pub id: Uuid,
    /// The user that owns it.
    pub owner_id: Uuid,
    /// The workflow document as submitted.
    pub workflow: Value,
    /// The input document as submitted.
    pub input: Value,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Attempts started so far (a `delay` resumption is not a new attempt).
    pub attempts: i32,
    /// Attempts allowed before the job is dead.
    pub max_attempts: i32,
    /// Not claimed before this instant.
    pub run_after: DateTime<Utc>,
    /// The outputs of the steps, keyed by step id, once succeeded.
    pub result: Option<Value>,
    /// The last error.
    pub error: Option<String>,
    /// The owner asked to cancel while it ran; it stops at its next step boundary.
    pub cancel_requested: bool,
    /// The intake idempotency key, if one was sent.
    pub idempotency_key: Option<String>,
    /// When it was admitted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When its first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    pub finished_at: Option<DateTime<Utc>>,
}

/// How a recorded step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Ran to completion; its output is final and it never runs again.
    Succeeded,
    /// Ran and failed on the attempt recorded.
    Failed,
    /// Jumped over by a `condition`.
    Skipped,
}

impl StepStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::Skipped,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// The checkpoint of one step of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The job.
    pub job_id: Uuid,
    /// The step's id in the workflow.
    pub step_id: String,
    /// The step's position in the workflow.
    pub position: i32,
    /// How it ended.
    pub status: StepStatus,
    /// Its output (`null` when skipped or failed).
    pub output: Value,
    /// Why it failed.
    pub error: Option<String>,
    /// The job attempt in which it ended.
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::JobStatus::{self, *};

    const ALLOWED: &[(JobStatus, JobStatus)] = &[
        (Queued, Running),
        (Queued, Canceled),
        (AwaitingApproval, Queued),
        (AwaitingApproval, Canceled),
        (Running, Succeeded),
        (Running, Failed),
        (Running, Dead),
        (Running, Canceled),
        (Running, Queued),
        (Failed, Running),
        (Failed, Canceled),
        (Failed, Dead),
    ];

    #[test]
    fn every_allowed_transition_is_allowed() {
        for &(from, to) in ALLOWED {
            assert_eq!(from.transition(to).unwrap(), to, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn every_other_transition_is_refused() {
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                if ALLOWED.contains(&(from, to)) {
                    continue;
                }
                let err = from.transition(to).unwrap_err();
                assert_eq!(err.code, "invalid_transition", "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn terminal_statuses_have_no_way_out() {
        for from in JobStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert!(JobStatus::ALL.into_iter().all(|to| !from.can_become(to)));
        }
    }

    #[test]
    fn names_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(JobStatus::parse("exploded"), None);
    }
}
