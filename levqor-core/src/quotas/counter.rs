//! Counting API calls. When several nodes may write (PostgreSQL), every call goes to the
//! database, group-committed, so the count is exact across them. On a single-writer store
//! (SQLite: one process) the counts live in memory and are written every [`FLUSH_EVERY`]; a
//! crash loses at most that much counting, never a request.

use super::{CallCount, QuotaStore};
use crate::batch::Batcher;
use crate::error::Result;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// How often local counts are written.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

enum Mode {
    /// Every call goes to the database, group-committed.
    Shared(Batcher<CallCount, Result<u64>>),
    /// Counts in memory, written every [`FLUSH_EVERY`].
    Local(Arc<LocalCounts>),
}

/// Counts calls per user and day.
pub(crate) struct CallCounter {
    store: Arc<dyn QuotaStore>,
    mode: Mode,
}

struct DayCount {
    month: String,
    stored: u64,
    pending: u64,
}

#[derive(Default)]
struct LocalCounts {
    days: Mutex<HashMap<(Uuid, String), DayCount>>,
}

impl LocalCounts {
    fn bump(&self, key: &(Uuid, String)) -> Option<u64> {
        let mut days = self.days.lock().expect("counts lock");
        days.get_mut(key).map(|d| {
            d.pending += 1;
            d.stored + d.pending
        })
    }

    /// Writes what is pending; on failure it stays pending for the next flush.
    async fn flush(&self, store: &dyn QuotaStore) -> Result<()> {
        let batch: Vec<CallCount> = {
            let days = self.days.lock().expect("counts lock");
            days.iter()
                .filter(|(_, d)| d.pending > 0)
                .map(|((user_id, day), d)| CallCount {
                    user_id: *user_id,
                    month: d.month.clone(),
                    day: day.clone(),
                    calls: d.pending,
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let totals = store.add_calls(&batch).await?;
        let mut days = self.days.lock().expect("counts lock");
        for (c, total) in batch.iter().zip(totals) {
            if let Some(d) = days.get_mut(&(c.user_id, c.day.clone())) {
                d.pending -= c.calls;
                d.stored = total;
            }
        }
        if days.len() > 100_000 {
            days.retain(|_, d| d.pending > 0);
        }
        Ok(())
    }

    fn pending(&self, user_id: Uuid, month: &str) -> Vec<(String, u64)> {
        let days = self.days.lock().expect("counts lock");
        days.iter()
            .filter(|((u, _), d)| *u == user_id && d.month == month && d.pending > 0)
            .map(|((_, day), d)| (day.clone(), d.pending))
            .collect()
    }
}

impl CallCounter {
    /// Counts into `store`; `parallelism` is how many writes it serves at once (1: one writer,
    /// so counts are kept here and flushed).
    pub(crate) fn new(store: Arc<dyn QuotaStore>, parallelism: usize) -> Self {
        let counting = store.clone();
        let mode = if parallelism > 1 {
            Mode::Shared(Batcher::spawn(
                1024,
                parallelism,
                move |calls: Vec<CallCount>| {
                    let store = counting.clone();
                    async move {
                        let totals = store.add_calls(&calls).await?;
                        Ok(totals.into_iter().map(Ok).collect())
                    }
                },
            ))
        } else {
            let local = Arc::new(LocalCounts::default());
            let weak = Arc::downgrade(&local);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(FLUSH_EVERY).await;
                    let Some(local) = weak.upgrade() else { break };
                    if let Err(e) = local.flush(counting.as_ref()).await {
                        tracing::warn!(error = %e, "writing API call counts failed; retrying");
                    }
                }
            });
            Mode::Local(local)
        };
        Self { store, mode }
    }

    /// Counts one call; the day's total for the user with it.
    pub(crate) async fn count(&self, call: CallCount) -> Result<u64> {
        match &self.mode {
            Mode::Shared(batcher) => batcher.submit(call).await?,
            Mode::Local(local) => {
                let key = (call.user_id, call.day.clone());
                if let Some(n) = local.bump(&key) {
                    return Ok(n);
                }
                let stored = self
                    .store
                    .usage_days(call.user_id, &call.month)
                    .await?
                    .into_iter()
                    .find(|(d, _)| *d == call.day)
                    .map_or(0, |(_, n)| n);
                local
                    .days
                    .lock()
                    .expect("counts lock")
                    .entry(key.clone())
                    .or_insert(DayCount {
                        month: call.month,
                        stored,
                        pending: 0,
                    });
                Ok(local.bump(&key).unwrap_or(stored + 1))
            }
        }
    }

    /// The user's calls of `month` by day: what is stored plus what is not written yet.
    pub(crate) async fn usage_days(
        &self,
        user_id: Uuid,
        month: &str,
    ) -> Result<Vec<(String, u64)>> {
        let mut days: BTreeMap<String, u64> = self
            .store
            .usage_days(user_id, month)
            .await?
            .into_iter()
            .collect();
        if let Mode::Local(local) = &self.mode {
            for (day, n) in local.pending(user_id, month) {
                *days.entry(day).or_default() += n;
            }
        }
        Ok(days.into_iter().collect())
    }

    /// Drops a user's unwritten counts (erasure), so a later flush does not bring them back.
    pub(crate) fn drop_counts(&self, user_id: Uuid) {
        if let Mode::Local(local) = &self.mode {
            local
                .days
                .lock()
                .expect("counts lock")
                .retain(|(u, _), _| *u != user_id);
        }
    }
}
