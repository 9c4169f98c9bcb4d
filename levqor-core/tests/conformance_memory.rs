//! The store conformance suite against the in-memory store.

use levqor_core::{MemoryStore, Store};
use std::sync::Arc;

async fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

levqor_core::conformance_suite!(memory());
