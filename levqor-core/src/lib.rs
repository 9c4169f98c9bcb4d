//! Levqor's domain core: every rule, behind ports. No sockets, files or SQL live here; the
//! adapters (REST, gRPC, C) and the store implementations plug into the traits below.
//!
//! One folder per domain (`users`, `jobs`, `screening`, `consent`, `credits`, `quotas`,
//! `billing`, `privacy`, `notify`), each with its model, rules, port, intake stage and personal
//! data area, and a service struct; leaf modules hold what every domain shares. [`Levqor`] is
//! the container the [`LevqorBuilder`] wires; no domain imports it.
//!
//! ```
//! use levqor_core::{Levqor, MemoryStore, OutboxNotifier, StepRunner};
//! # struct NoHttp;
//! # #[async_trait::async_trait]
//! # impl levqor_core::HttpClient for NoHttp {
//! #     async fn send(&self, _: levqor_core::HttpRequest)
//! #         -> Result<levqor_core::HttpResponse, levqor_core::StepFailure> {
//! #         Err(levqor_core::StepFailure::permanent("no network"))
//! #     }
//! # }
//! # async fn demo() -> levqor_core::Result<()> {
//! let store = std::sync::Arc::new(MemoryStore::new());
//! let notifier = std::sync::Arc::new(OutboxNotifier::new(store.clone()));
//! let runner = std::sync::Arc::new(StepRunner::new(std::sync::Arc::new(NoHttp), notifier, vec![]));
//! let levqor = Levqor::builder(store, runner).admin_key(Some("admin")).build()?;
//! let admin = levqor.users().authenticate("admin").await?;
//! let ada = levqor.users().create(&admin, "ada@example.com", None).await?;
//! assert_eq!(ada.user().email, "ada@example.com");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod auth;
pub mod backoff;
pub mod batch;
pub mod billing;
pub(crate) mod cache;
pub mod call;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod consent;
pub mod credits;
pub mod error;
pub mod jobs;
mod levqor;
pub mod memory;
pub mod notify;
pub mod page;
pub mod personal_data;
pub mod privacy;
pub mod quotas;
pub mod screening;
pub mod secrets;
pub mod settings;
pub mod signature;
mod store;
#[cfg(test)]
mod testing;
pub mod users;

pub use audit::{Actor, AuditLog, AuditRecord, AuditStore};
pub use auth::Principal;
pub use billing::{BillingStore, PaymentProvider};
pub use clock::{Clock, ManualClock, SystemClock};
pub use consent::ConsentStore;
pub use credits::CreditStore;
pub use error::{Error, ErrorKind, Result, Violation};
pub use jobs::SYSTEM_OWNER;
pub use jobs::engine::{EngineConfig, EngineHandle};
pub use jobs::intake::{SubmitRequest, Submitted};
pub use jobs::model::{Job, JobStatus, StepRecord, StepStatus};
pub use jobs::steps::{
    Connector, HttpClient, HttpRequest, HttpResponse, StepFailure, StepRunner, SystemTask,
};
pub use jobs::store::{Admission, JobStore};
pub use levqor::{Authorized, Levqor, LevqorBuilder};
pub use memory::MemoryStore;
pub use notify::{
    Attachment, Email, EmailKind, Notifier, OutboxMessage, OutboxNotifier, OutboxStore,
};
pub use page::{MAX_PAGE, Page};
pub use personal_data::{AreaErasure, Person, PersonalDataArea};
pub use privacy::PrivacyStore;
pub use quotas::QuotaStore;
pub use screening::ScreeningStore;
pub use settings::SettingsStore;
pub use store::Store;
pub use users::{ApiKey, IssuedKey, Upserted, User, UserPatch, UserStore};
