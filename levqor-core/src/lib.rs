//! Levqor's domain core: every rule, behind ports. No sockets, files or SQL live here; the
//! adapters (REST, gRPC, C) and the store implementations plug into the traits below.
//!
//! ```
//! use levqor_core::{Levqor, MemoryStore, ManualClock};
//! # async fn demo() -> levqor_core::Result<()> {
//! let store = std::sync::Arc::new(MemoryStore::new());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub mod batch;
pub mod billing;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod consent;
pub mod error;
pub mod jobs;
pub mod memory;
pub mod notify;
pub mod pricing;
pub mod privacy;
pub mod quotas;
pub mod screening;
pub mod screening_stage;
pub mod service;
pub mod users;

pub use auth::Principal;
pub use billing::{BillingStore, PaymentProvider};
pub use clock::{Clock, ManualClock, SystemClock};
pub use consent::ConsentStore;
pub use error::{Error, ErrorKind, Result, Violation};
pub use jobs::engine::{EngineConfig, EngineHandle};
pub use jobs::intake::{SubmitRequest, Submitted};
pub use jobs::model::{Job, JobStatus, StepRecord, StepStatus};
pub use jobs::steps::{
    Connector, HttpClient, HttpRequest, HttpResponse, StepFailure, StepRunner, SystemTask,
};
pub use jobs::store::{Admission, JobStore};
pub use memory::MemoryStore;
pub use notify::{
    Attachment, Email, EmailKind, Notifier, OutboxMessage, OutboxNotifier, OutboxStore,
};
pub use pricing::CreditStore;
pub use privacy::{PersonalDataArea, PrivacyStore};
pub use quotas::QuotaStore;
pub use service::{Levqor, Page, Store, UserPatch};
pub use users::{ApiKey, IssuedKey, Upserted, User, UserStore};
