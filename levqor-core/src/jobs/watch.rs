//! Watching a job: every change of its status and of its steps, until it ends. A watcher in the
//! process that runs the job hears of each change at once (the engine's change signal,
//! [`EngineSignals::changed`](super::engine::EngineSignals::changed)); a job
//! that runs on another node is read again every [`POLL`].

use super::model::Job;
use super::service::{Jobs, StepView};
use crate::auth::Principal;
use crate::error::Result;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

/// How often a watched job is read again when this process hears nothing of it.
pub const POLL: Duration = Duration::from_millis(500);

/// A job and its steps as a watcher sees them.
#[derive(Debug, Clone, Serialize)]
pub struct JobSnapshot {
    /// The job.
    pub job: Job,
    /// Its steps, with their checkpoints.
    pub steps: Vec<StepView>,
}

impl JobSnapshot {
    /// What a watcher is told about: the status, attempts, cancel request and error of the job
    /// and the status of each step (not timestamps such as lease heartbeats).
    fn visible(&self) -> Visible {
        Visible {
            status: self.job.status.as_str(),
            attempts: self.job.attempts,
            cancel_requested: self.job.cancel_requested,
            error: self.job.error.clone(),
            steps: self
                .steps
                .iter()
                .map(|s| (s.status.clone(), s.record.as_ref().map(|r| r.attempt)))
                .collect(),
        }
    }
}

#[derive(PartialEq)]
struct Visible {
    status: &'static str,
    attempts: i32,
    cancel_requested: bool,
    error: Option<String>,
    steps: Vec<(String, Option<i32>)>,
}

/// The changes of one job: [`JobWatch::next`] returns the job as it is now, then each visible
/// change, and `None` after the snapshot in which it ended. Dropping it stops the watch.
pub struct JobWatch {
    jobs: Arc<Jobs>,
    who: Principal,
    id: Uuid,
    changes: broadcast::Receiver<Uuid>,
    last: Option<Visible>,
    ended: bool,
}

impl Jobs {
    /// Watches a job the caller may see (`NotFound` otherwise).
    pub async fn watch(self: &Arc<Self>, who: &Principal, id: Uuid) -> Result<JobWatch> {
        // Subscribe before the first read, so no change between the two is missed.
        let changes = self.signals().changes();
        self.get(who, id).await?;
        Ok(JobWatch {
            jobs: self.clone(),
            who: who.clone(),
            id,
            changes,
            last: None,
            ended: false,
        })
    }
}

impl JobWatch {
    /// The next visible state of the job; `None` once it has ended.
    pub async fn next(&mut self) -> Option<Result<JobSnapshot>> {
        if self.ended {
            return None;
        }
        loop {
            let snapshot = match self.read().await {
                Ok(s) => s,
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            };
            let visible = snapshot.visible();
            if self.last.as_ref() != Some(&visible) {
                self.ended = snapshot.job.status.is_terminal();
                self.last = Some(visible);
                return Some(Ok(snapshot));
            }
            self.wait().await;
        }
    }

    async fn read(&self) -> Result<JobSnapshot> {
        let job = self.jobs.get(&self.who, self.id).await?;
        let steps = self.jobs.steps_of(&job).await?;
        Ok(JobSnapshot { job, steps })
    }

    /// Until this process changes the job, or [`POLL`] passes.
    async fn wait(&mut self) {
        let id = self.id;
        let heard = async {
            loop {
                match self.changes.recv().await {
                    Ok(changed) if changed == id => return,
                    Ok(_) => {}
                    // Missed some: one of them may have been this job.
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        let _ = tokio::time::timeout(POLL, heard).await;
    }
}
