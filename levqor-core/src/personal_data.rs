//! Personal data areas: every domain that holds personal data registers a [`PersonalDataArea`]
//! that exports and erases its own part of a person. Export and erasure walk the registry
//! ([`Areas`]), so an area added later cannot be forgotten by either.

use crate::error::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, RwLock};
use uuid::Uuid;

/// The person an export or an erasure is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Their user id.
    pub id: Uuid,
    /// Their normalized email (messages and marketing consent are keyed by it).
    pub email: String,
}

/// What erasing one area did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaErasure {
    /// Rows deleted.
    pub deleted: u64,
    /// Rows kept for the law, with the person replaced by the tombstone.
    pub pseudonymized: u64,
}

impl AreaErasure {
    /// `n` rows deleted, none kept.
    pub fn deleted(n: u64) -> Self {
        Self {
            deleted: n,
            pseudonymized: 0,
        }
    }
}

/// An area that holds personal data: it exports and erases its own part of a person.
#[async_trait]
pub trait PersonalDataArea: Send + Sync {
    /// The area's name: the file name of its export (`<name>.json`) and its key in summaries.
    fn name(&self) -> &'static str;
    /// The person's data in this area, or `None` when it has none.
    async fn export(&self, person: &Person) -> Result<Option<Value>>;
    /// Erases the person from this area; `tombstone` replaces them where the law keeps a row.
    async fn erase(&self, person: &Person, tombstone: Uuid) -> Result<AreaErasure>;
    /// The person objected to profiling: delete any profile this area derived (scores,
    /// segments); how many.
    async fn on_profiling_objection(&self, _user_id: Uuid) -> Result<u64> {
        Ok(0)
    }
}

/// The registered areas, in export order.
#[derive(Default)]
pub struct Areas {
    areas: RwLock<Vec<Arc<dyn PersonalDataArea>>>,
}

impl Areas {
    /// Adds an area; export and erasure include it from now on.
    pub fn register(&self, area: Arc<dyn PersonalDataArea>) {
        self.areas.write().expect("areas lock").push(area);
    }

    /// Every area, in registration order.
    pub fn all(&self) -> Vec<Arc<dyn PersonalDataArea>> {
        self.areas.read().expect("areas lock").clone()
    }
}

/// Serializes `items` as a JSON array, or `None` when there are none: most areas export a list.
pub fn export_list<T: Serialize>(items: &[T]) -> Result<Option<Value>> {
    if items.is_empty() {
        return Ok(None);
    }
    serde_json::to_value(items)
        .map(Some)
        .map_err(|e| crate::Error::internal(e.to_string()))
}
