//! What every handler shares.

use levqor_core::Levqor;
use std::sync::Arc;

/// Shared state of the REST adapter.
#[derive(Clone)]
pub struct AppState {
    /// The service.
    pub levqor: Arc<Levqor>,
}

impl AppState {
    /// State over `levqor`.
    pub fn new(levqor: Arc<Levqor>) -> Self {
        Self { levqor }
    }
}
