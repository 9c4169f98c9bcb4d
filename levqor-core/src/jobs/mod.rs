//! Jobs: the model and state machine, workflows, intake, step execution and the engine, and
//! [`Jobs`], the service adapters call.
//!
//! Jobs sit low in the core: intake's stages (screening, consent, billing, pricing) live in
//! their own domains and are handed in when the service is built, so nothing here names them.

mod area;
pub mod context;
pub mod engine;
pub mod intake;
pub mod model;
mod service;
#[cfg(test)]
mod service_tests;
pub mod steps;
pub mod store;
pub mod watch;
pub mod workflow;

pub use area::JobsArea;
pub use service::{Jobs, StepView};
pub use watch::{JobSnapshot, JobWatch};

/// The owner of the platform's own jobs (system jobs: the retention sweep, dunning).
pub const SYSTEM_OWNER: uuid::Uuid = uuid::Uuid::nil();
