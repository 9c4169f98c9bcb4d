//! Jobs: the model and state machine, workflows, intake, step execution and the engine.

pub mod context;
pub mod engine;
pub mod intake;
pub mod model;
pub mod steps;
pub mod store;
pub mod workflow;
