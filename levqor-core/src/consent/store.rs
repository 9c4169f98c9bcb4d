//! The [`ConsentStore`] port.

use super::ledger::{LedgerEntry, LedgerRecord};
use super::{
    Category, ConsentErasure, ConsentStats, Objection, ObjectionKind, Subscription,
    TermsAcceptance, TermsVersion,
};
use crate::error::Result;
use crate::notify::OutboxMessage;
use async_trait::async_trait;
use uuid::Uuid;

/// Storage of terms, subscriptions, objections and the ledger. Every write that takes a
/// [`LedgerEntry`] appends it to the ledger in the same transaction, so a change and its proof
/// land together or not at all.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Stores a terms version with `messages` (its notices to every user) in one transaction;
    /// `Conflict` `terms_version_exists` when the name is taken.
    async fn publish_terms(
        &self,
        terms: &TermsVersion,
        entry: &LedgerEntry,
        messages: &[OutboxMessage],
    ) -> Result<()>;
    /// Every published version.
    async fn list_terms(&self) -> Result<Vec<TermsVersion>>;
    /// Records an acceptance.
    async fn accept_terms(&self, acceptance: &TermsAcceptance, entry: &LedgerEntry) -> Result<()>;
    /// A user's acceptances, newest first.
    async fn list_acceptances(&self, user_id: Uuid) -> Result<Vec<TermsAcceptance>>;
    /// The subscription of a normalized address.
    async fn subscription_by_email(&self, email: &str) -> Result<Option<Subscription>>;
    /// The subscription whose confirmation token hashes to `token_hash`.
    async fn subscription_by_token(&self, token_hash: &str) -> Result<Option<Subscription>>;
    /// A subscription by id.
    async fn get_subscription(&self, id: Uuid) -> Result<Option<Subscription>>;
    /// Inserts or replaces a subscription (by id; the email is unique), with its ledger entry
    /// and the `messages` it causes (its confirmation link), in one transaction.
    async fn put_subscription(
        &self,
        sub: &Subscription,
        entry: Option<&LedgerEntry>,
        messages: &[OutboxMessage],
    ) -> Result<()>;
    /// Confirmed subscriptions that include `category`, by id, after `after`.
    async fn list_subscribed(
        &self,
        category: Category,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Subscription>>;
    /// Sets a user's objection, with its ledger entry and the `messages` it causes (its
    /// confirmation), in one transaction.
    async fn set_objection(
        &self,
        user_id: Uuid,
        objection: &Objection,
        entry: &LedgerEntry,
        messages: &[OutboxMessage],
    ) -> Result<()>;
    /// A user's objections.
    async fn list_objections(&self, user_id: Uuid) -> Result<Vec<Objection>>;
    /// Whether the user of `email` objects to `kind`.
    async fn objects_by_email(&self, email: &str, kind: ObjectionKind) -> Result<bool>;
    /// The user's subject reference, created on first use.
    async fn subject_of(&self, user_id: Uuid) -> Result<Uuid>;
    /// Ledger records with `seq > after`, in order.
    async fn ledger_after(&self, after: i64, limit: usize) -> Result<Vec<LedgerRecord>>;
    /// Deletes a user's subscriptions (by email), objections and subject link, and keeps
    /// their acceptances under `tombstone` without address or client.
    async fn erase_consents(
        &self,
        user_id: Uuid,
        email: &str,
        tombstone: Uuid,
    ) -> Result<ConsentErasure>;
    /// Counts for the dashboard; `current` is the version in effect.
    async fn consent_stats(&self, current: Option<&str>) -> Result<ConsentStats>;
}
