//! The platform's load, as quotes see it: queue depth and recent latency, measured at most
//! once a second per node, and each user's recent latency, measured at most every 30 seconds.

use super::Load;
use crate::cache::TtlCache;
use crate::error::Result;
use crate::jobs::model::Job;
use crate::jobs::store::{JobFilter, JobStore};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use uuid::Uuid;

/// Platform load, measured at most once a second per node.
pub(crate) struct LoadGauge {
    store: Arc<dyn JobStore>,
    cached: RwLock<Option<(Load, Instant)>>,
    /// One caller refreshes a stale reading; the others use it meanwhile.
    refreshing: AtomicBool,
    /// Each user's p95 latency, ms.
    users: TtlCache<Uuid, i64>,
}

const GAUGE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
const USER_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// p95 of the latencies (admission to end, ms) of `jobs` that finished.
fn p95(jobs: &[Job]) -> i64 {
    let mut ms: Vec<i64> = jobs
        .iter()
        .filter_map(|j| Some((j.finished_at? - j.created_at).num_milliseconds()))
        .collect();
    if ms.is_empty() {
        return 0;
    }
    ms.sort_unstable();
    ms[((ms.len() * 95).div_ceil(100)).saturating_sub(1)]
}

impl LoadGauge {
    pub(crate) fn new(store: Arc<dyn JobStore>) -> Self {
        Self {
            store,
            cached: RwLock::new(None),
            refreshing: AtomicBool::new(false),
            users: TtlCache::new(USER_TTL, 10_000),
        }
    }

    /// The load now, with `user_id`'s own latency when given.
    pub(crate) async fn load(&self, user_id: Option<Uuid>, now: DateTime<Utc>) -> Result<Load> {
        let cached = *self.cached.read().expect("gauge lock");
        let mut load = match cached {
            Some((l, at)) if at.elapsed() < GAUGE_TTL => l,
            Some((l, _)) if self.refreshing.swap(true, Ordering::AcqRel) => l,
            _ => {
                // The newest jobs, whatever their status: a bounded read on every backend
                // (by primary key), of which the finished ones give the latency.
                let recent = self
                    .store
                    .list_jobs(&JobFilter {
                        limit: 500,
                        ..Default::default()
                    })
                    .await;
                let depth = self.store.queue_depth(now).await;
                self.refreshing.store(false, Ordering::Release);
                let l = Load {
                    queue_depth: depth?,
                    p95_ms: p95(&recent?),
                    user_p95_ms: 0,
                };
                *self.cached.write().expect("gauge lock") = Some((l, Instant::now()));
                l
            }
        };
        if let Some(user) = user_id {
            load.user_p95_ms = match self.users.get(&user) {
                Some(ms) => ms,
                None => {
                    let recent = self
                        .store
                        .list_jobs(&JobFilter {
                            owner_id: Some(user),
                            limit: 20,
                            ..Default::default()
                        })
                        .await?;
                    let ms = p95(&recent);
                    self.users.insert(user, ms);
                    ms
                }
            };
        }
        Ok(load)
    }
}
