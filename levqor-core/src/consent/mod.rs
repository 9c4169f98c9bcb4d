//! Consent: versioned terms of service and their acceptances, double opt-in marketing consent
//! with a preference center, objections (GDPR art. 21), and the hash-chained [ledger] that
//! proves every change. The ledger holds no personal data: it names a person by an opaque
//! subject reference whose link to the user is deleted at erasure, so the chain still verifies.
//!
//! The rules are in [`Consent`] and the pure functions here; the [`ConsentStore`] only stores,
//! and appends each change's ledger record in the same transaction as the change.

mod area;
pub mod ledger;
mod service;
#[cfg(test)]
mod service_tests;
mod stage;
mod store;

pub use area::{ConsentsArea, ObjectionsArea, TermsArea};
pub use ledger::{
    Break, GENESIS_HASH, LedgerEntry, LedgerRecord, LedgerVerification, seal, verify_records,
};
pub use service::Consent;
pub use stage::{CONSENT_CACHE_TTL, ConsentState};
pub(crate) use stage::{ConsentCache, ConsentStage};
pub use store::ConsentStore;

use crate::auth::Principal;
use crate::error::{Error, Result, Violation};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A published version of the terms of service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsVersion {
    /// The version's name, e.g. `2026-11`; unique.
    pub version: String,
    /// From when it applies.
    pub effective_at: DateTime<Utc>,
    /// What changed, in words.
    pub changelog: String,
    /// A material change: every user must accept it again before submitting jobs.
    pub material: bool,
    /// When the admin published it.
    pub published_at: DateTime<Utc>,
}

/// A user's acceptance of a terms version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsAcceptance {
    /// Stable id.
    pub id: Uuid,
    /// Who accepted (a tombstone id once the user is erased).
    pub user_id: Uuid,
    /// Which version.
    pub version: String,
    /// When.
    pub accepted_at: DateTime<Utc>,
    /// From which address (removed at erasure).
    pub ip: Option<String>,
    /// With which client (removed at erasure).
    pub user_agent: Option<String>,
}

/// Whether a user must accept the terms again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TermsStatus {
    /// The newest version in effect, if any was published.
    pub current_version: Option<String>,
    /// The newest version the user accepted.
    pub accepted_version: Option<String>,
    /// A material version in effect is newer than what the user accepted.
    pub must_accept: bool,
}

/// Decides a user's [`TermsStatus`] from every published version (any order) and the
/// newest acceptance.
pub fn terms_status(
    versions: &[TermsVersion],
    accepted: Option<&TermsAcceptance>,
    now: DateTime<Utc>,
) -> TermsStatus {
    let mut in_effect: Vec<&TermsVersion> =
        versions.iter().filter(|v| v.effective_at <= now).collect();
    in_effect.sort_by_key(|v| (v.effective_at, v.published_at));
    let current = in_effect.last();
    let accepted_at = accepted.and_then(|a| {
        versions
            .iter()
            .find(|v| v.version == a.version)
            .map(|v| (v.effective_at, v.published_at))
    });
    let must_accept = in_effect
        .iter()
        .any(|v| v.material && accepted_at.is_none_or(|at| (v.effective_at, v.published_at) > at));
    TermsStatus {
        current_version: current.map(|v| v.version.clone()),
        accepted_version: accepted.map(|a| a.version.clone()),
        must_accept,
    }
}

/// The marketing categories a person may consent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// News about the product.
    ProductUpdates,
    /// Offers and promotions.
    Offers,
    /// Technical articles.
    Technical,
    /// Events and webinars.
    Events,
    /// Courses and guides.
    Educational,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 5] = [
        Category::ProductUpdates,
        Category::Offers,
        Category::Technical,
        Category::Events,
        Category::Educational,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::ProductUpdates => "product_updates",
            Category::Offers => "offers",
            Category::Technical => "technical",
            Category::Events => "events",
            Category::Educational => "educational",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Where a marketing consent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Asked for; the confirmation link was not followed yet. No marketing is sent.
    Pending,
    /// Confirmed: marketing in its categories may be sent.
    Subscribed,
    /// Ended by the person.
    Unsubscribed,
}

impl SubscriptionStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Pending => "pending",
            SubscriptionStatus::Subscribed => "subscribed",
            SubscriptionStatus::Unsubscribed => "unsubscribed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Subscribed, Self::Unsubscribed]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// One address's marketing consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Stable id; also the subject reference of its ledger records.
    pub id: Uuid,
    /// The normalized address.
    pub email: String,
    /// Where it is.
    pub status: SubscriptionStatus,
    /// The categories consented to (or asked for, while pending).
    pub categories: Vec<Category>,
    /// SHA-256 of the pending confirmation token.
    #[serde(skip)]
    pub token_hash: Option<String>,
    /// When that token stops working.
    #[serde(skip)]
    pub token_expires_at: Option<DateTime<Utc>>,
    /// When that token was used (a second use is refused as reused).
    #[serde(skip)]
    pub token_used_at: Option<DateTime<Utc>>,
    /// When a confirmation email was last sent.
    pub last_sent_at: Option<DateTime<Utc>>,
    /// When it was confirmed.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// When it was first asked for.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a person may object to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectionKind {
    /// No marketing email, whatever the consent says.
    Marketing,
    /// No lead score is computed, and existing ones are deleted.
    Profiling,
    /// Intake refuses the person's automated jobs.
    Automation,
    /// The person's analytics events are not recorded.
    Analytics,
}

impl ObjectionKind {
    /// Every kind.
    pub const ALL: [ObjectionKind; 4] = [
        ObjectionKind::Marketing,
        ObjectionKind::Profiling,
        ObjectionKind::Automation,
        ObjectionKind::Analytics,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectionKind::Marketing => "marketing",
            ObjectionKind::Profiling => "profiling",
            ObjectionKind::Automation => "automation",
            ObjectionKind::Analytics => "analytics",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A user's stand on one kind of processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objection {
    /// What it is about.
    pub kind: ObjectionKind,
    /// Whether the user objects.
    pub objected: bool,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// How a user's consent data was erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConsentErasure {
    /// Subscriptions, objections and subject links deleted.
    pub deleted: u64,
    /// Terms acceptances kept for the record under the tombstone, without address or client.
    pub pseudonymized: u64,
}

/// Consent counts for the compliance dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsentStats {
    /// Users.
    pub users: u64,
    /// Users who accepted the given version.
    pub accepted_current: u64,
    /// Confirmed subscriptions per category.
    pub subscribed_by_category: Vec<(Category, u64)>,
    /// Subscriptions per status.
    pub subscriptions_by_status: Vec<(SubscriptionStatus, u64)>,
    /// Standing objections per kind.
    pub objections_by_kind: Vec<(ObjectionKind, u64)>,
}

/// How long a confirmation token works.
pub const TOKEN_TTL: Duration = Duration::days(7);
/// Least time between two confirmation emails to one address.
pub const RESEND_INTERVAL: Duration = Duration::hours(1);

/// Parses a list of category names; `None` in the body means every category.
pub fn parse_categories(names: Option<&[String]>) -> Result<Vec<Category>> {
    let Some(names) = names else {
        return Ok(Category::ALL.to_vec());
    };
    let mut bad = Vec::new();
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match Category::parse(n) {
            Some(c) if !out.contains(&c) => out.push(c),
            Some(_) => {}
            None => bad.push(Violation::new(
                format!("/categories/{i}"),
                format!(
                    "unknown category {n:?}; known: {}",
                    Category::ALL.map(Category::as_str).join(", ")
                ),
            )),
        }
    }
    if out.is_empty() && bad.is_empty() {
        bad.push(Violation::new("/categories", "name at least one category"));
    }
    if !bad.is_empty() {
        return Err(Error::violations(
            "validation_failed",
            "bad categories",
            bad,
        ));
    }
    out.sort();
    Ok(out)
}

/// Where a client came from, for the record of an acceptance.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address.
    pub ip: Option<String>,
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// The record of a client: its address and its `User-Agent`, cut to 500 characters.
    pub fn new(ip: Option<std::net::IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            ip: ip.map(|i| i.to_string()),
            user_agent: user_agent.map(|s| s.chars().take(500).collect()),
        }
    }
}

/// What a subscribe did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscribed {
    /// Where the consent is now.
    pub status: SubscriptionStatus,
    /// Whether a confirmation email was sent by this call.
    pub confirmation_sent: bool,
}

/// How an unsubscribe names its consent.
pub enum Unsubscribe<'a> {
    /// The token of an unsubscribe link.
    Token(&'a str),
    /// The signed-in user's own consent.
    User(&'a Principal),
}

/// Whether a consent allows marketing of `category`: confirmed and including it.
pub fn marketing_allowed(sub: &Subscription, category: Category) -> bool {
    sub.status == SubscriptionStatus::Subscribed && sub.categories.contains(&category)
}

/// A person's preference center: their consent, its categories, and every category there is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preferences {
    /// Where the consent is (`None`: never asked for).
    pub status: Option<SubscriptionStatus>,
    /// The categories consented to (or asked for, while pending).
    pub categories: Vec<Category>,
    /// Every category.
    pub available: Vec<Category>,
    /// When it was confirmed (present once there is a consent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<Option<DateTime<Utc>>>,
}

impl Preferences {
    /// The preference center of `sub`.
    pub fn of(sub: Option<&Subscription>) -> Self {
        Self {
            status: sub.map(|s| s.status),
            categories: sub.map(|s| s.categories.clone()).unwrap_or_default(),
            available: Category::ALL.to_vec(),
            confirmed_at: sub.map(|s| s.confirmed_at),
        }
    }
}

/// What a marketing send did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketingSent {
    /// The category sent to.
    pub category: Category,
    /// Emails sent.
    pub sent: u64,
    /// Confirmed consents skipped (the user objects to marketing).
    pub skipped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap()
    }

    fn version(name: &str, day: u32, material: bool) -> TermsVersion {
        TermsVersion {
            version: name.into(),
            effective_at: t(day),
            changelog: String::new(),
            material,
            published_at: t(1),
        }
    }

    fn accepted(name: &str) -> TermsAcceptance {
        TermsAcceptance {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            version: name.into(),
            accepted_at: t(2),
            ip: None,
            user_agent: None,
        }
    }

    #[test]
    fn a_newer_material_version_in_effect_must_be_accepted() {
        let versions = [
            version("v1", 1, true),
            version("v2", 10, true),
            version("v3", 20, false),
        ];
        assert!(terms_status(&versions, None, t(5)).must_accept);
        assert!(!terms_status(&versions, Some(&accepted("v1")), t(5)).must_accept);
        let s = terms_status(&versions, Some(&accepted("v1")), t(12));
        assert!(s.must_accept);
        assert_eq!(s.current_version.as_deref(), Some("v2"));
        let s = terms_status(&versions, Some(&accepted("v2")), t(25));
        assert!(!s.must_accept, "a minor version needs no new acceptance");
        assert_eq!(s.current_version.as_deref(), Some("v3"));
        assert!(!terms_status(&[], None, t(5)).must_accept);
    }

    #[test]
    fn categories_parse_with_pointers() {
        assert_eq!(parse_categories(None).unwrap().len(), 5);
        let err = parse_categories(Some(&["offers".into(), "spam".into()])).unwrap_err();
        assert_eq!(err.violations[0].pointer, "/categories/1");
        assert!(parse_categories(Some(&[])).is_err());
    }
}
