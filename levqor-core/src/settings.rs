//! Deployment settings shared by every node: small JSON documents by key (the screening rule
//! set, retention policies, the secret of unsubscribe links). Stored in the database so that
//! every node of a deployment reads the same.

use crate::error::Result;
use async_trait::async_trait;
use serde_json::Value;

/// Storage of deployment settings.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// A deployment setting.
    async fn get_setting(&self, key: &str) -> Result<Option<Value>>;
    /// Sets a deployment setting.
    async fn put_setting(&self, key: &str, value: &Value) -> Result<()>;
    /// Sets a deployment setting unless it is set.
    async fn put_setting_if_absent(&self, key: &str, value: &Value) -> Result<()>;
}
