//! [`Store`]: every storage port at once. A backend (memory, SQLite, PostgreSQL) implements
//! each domain's port on one type; the builder hands each domain service only its own ports.
//! No domain names this trait.

use crate::audit::AuditStore;
use crate::billing::BillingStore;
use crate::consent::ConsentStore;
use crate::credits::CreditStore;
use crate::error::Result;
use crate::jobs::store::JobStore;
use crate::notify::OutboxStore;
use crate::privacy::PrivacyStore;
use crate::quotas::QuotaStore;
use crate::screening::ScreeningStore;
use crate::settings::SettingsStore;
use crate::users::UserStore;
use async_trait::async_trait;

/// Everything Levqor stores: one backend implements every area's port.
#[async_trait]
pub trait Store:
    JobStore
    + UserStore
    + OutboxStore
    + ConsentStore
    + PrivacyStore
    + CreditStore
    + QuotaStore
    + BillingStore
    + ScreeningStore
    + AuditStore
    + SettingsStore
{
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// `memory`, `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Concurrent admit batches the backend handles well (1 for a single writer).
    fn write_parallelism(&self) -> usize {
        1
    }
    /// Closes the connections (and ends their threads); later calls fail as `unavailable`.
    async fn close(&self) {}
}
