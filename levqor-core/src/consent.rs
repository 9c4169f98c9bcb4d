//! Consent: versioned terms of service and their acceptances, double opt-in marketing consent
//! with a preference center, objections (GDPR art. 21), and the hash-chained ledger that proves
//! every change. The ledger holds no personal data: it names a person by an opaque subject
//! reference whose link to the user is deleted at erasure, so the chain still verifies.
//!
//! Rules live here and in the facade methods at the bottom; the [`ConsentStore`] only stores,
//! and appends each change's ledger record in the same transaction as the change.

use crate::auth::Principal;
use crate::error::{Error, Result, Violation};
use crate::notify::Email;
use crate::privacy::Actor;
use crate::service::Levqor;
use crate::users::{self, User};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
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

/// A consent change to chain into the ledger. It carries no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Stable id.
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// The opaque subject reference (never a user id or an email).
    pub subject: Uuid,
    /// What happened, e.g. `terms.accepted`, `marketing.confirmed`, `objection.set`.
    pub action: String,
    /// The facts of the change (versions, categories, kinds), never personal data.
    pub detail: Value,
}

/// A ledger record: an entry, its place in the chain, the hash of the record before it and its
/// own hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// Position, from 1.
    pub seq: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: LedgerEntry,
    /// The previous record's hash (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over `seq`, `prev_hash` and the entry.
    pub hash: String,
}

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of the record at `seq` holding `entry` after a record hashed `prev_hash`. Times
/// count in microseconds so that the hash of a stored record can be recomputed exactly.
pub fn seal(seq: i64, prev_hash: &str, entry: &LedgerEntry) -> String {
    let canonical = json!({
        "seq": seq,
        "prev_hash": prev_hash,
        "id": entry.id,
        "at_micros": entry.at.timestamp_micros(),
        "subject": entry.subject,
        "action": entry.action,
        "detail": entry.detail,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Where a chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The first bad record's position.
    pub seq: i64,
    /// Its id.
    pub id: Uuid,
    /// What is wrong with it.
    pub reason: String,
}

/// Walks records in order, from the one after `prev` (`(0, GENESIS_HASH)` at the start), and
/// returns the last good position and hash, or the first break.
pub fn verify_records(
    prev: (i64, String),
    records: &[LedgerRecord],
) -> std::result::Result<(i64, String), Break> {
    let (mut seq, mut hash) = prev;
    for r in records {
        let bad = |reason: &str| Break {
            seq: r.seq,
            id: r.entry.id,
            reason: reason.into(),
        };
        if r.seq != seq + 1 {
            return Err(bad("a record is missing before this one"));
        }
        if r.prev_hash != hash {
            return Err(bad("its prev_hash is not the hash of the record before it"));
        }
        if seal(r.seq, &r.prev_hash, &r.entry) != r.hash {
            return Err(bad("its content does not match its hash"));
        }
        seq = r.seq;
        hash = r.hash.clone();
    }
    Ok((seq, hash))
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

/// Storage of terms, subscriptions, objections and the ledger. Every write that takes a
/// [`LedgerEntry`] appends it to the ledger in the same transaction, so a change and its proof
/// land together or not at all.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Stores a terms version; `Conflict` `terms_version_exists` when the name is taken.
    async fn publish_terms(&self, terms: &TermsVersion, entry: &LedgerEntry) -> Result<()>;
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
    /// Inserts or replaces a subscription (by id; the email is unique), with its ledger entry.
    async fn put_subscription(&self, sub: &Subscription, entry: Option<&LedgerEntry>)
    -> Result<()>;
    /// Confirmed subscriptions that include `category`, by id, after `after`.
    async fn list_subscribed(
        &self,
        category: Category,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Subscription>>;
    /// Sets a user's objection.
    async fn set_objection(
        &self,
        user_id: Uuid,
        objection: &Objection,
        entry: &LedgerEntry,
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

/// How long a confirmation token works.
pub const TOKEN_TTL: Duration = Duration::days(7);
/// Least time between two confirmation emails to one address.
pub const RESEND_INTERVAL: Duration = Duration::hours(1);

/// A random token for a link, and the hash that is stored in its place.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = users::hash_secret(&token);
    (token, hash)
}

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

/// What a subscribe did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscribed {
    /// Where the consent is now.
    pub status: SubscriptionStatus,
    /// Whether a confirmation email was sent by this call.
    pub confirmation_sent: bool,
}

fn entry(at: DateTime<Utc>, subject: Uuid, action: &str, detail: Value) -> LedgerEntry {
    LedgerEntry {
        id: Uuid::now_v7(),
        at,
        subject,
        action: action.into(),
        detail,
    }
}

fn categories_json(c: &[Category]) -> Value {
    json!(c.iter().map(|c| c.as_str()).collect::<Vec<_>>())
}

impl Levqor {
    /// Publishes a terms version (admin). A material version emails every user.
    pub async fn publish_terms(
        &self,
        who: &Principal,
        version: &str,
        effective_at: Option<DateTime<Utc>>,
        changelog: &str,
        material: bool,
    ) -> Result<TermsVersion> {
        who.require_admin()?;
        let version = version.trim();
        if version.is_empty() || version.len() > 64 || version.chars().any(char::is_control) {
            return Err(Error::violations(
                "validation_failed",
                "bad terms version",
                vec![Violation::new(
                    "/version",
                    "must be 1 to 64 printable characters",
                )],
            ));
        }
        let now = self.now();
        let terms = TermsVersion {
            version: version.to_string(),
            effective_at: effective_at.unwrap_or(now),
            changelog: changelog.to_string(),
            material,
            published_at: now,
        };
        let detail = json!({"version": terms.version, "material": material});
        self.store
            .publish_terms(&terms, &entry(now, Uuid::nil(), "terms.published", detail))
            .await?;
        self.consent_cache.forget_terms();
        self.audit(
            Actor::Admin,
            "terms.published",
            None,
            json!({"version": terms.version}),
        )
        .await?;
        if material {
            let mut after = None;
            loop {
                let page = self.store.list_users(after, 500).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for user in &page {
                    self.send_transactional(Email {
                        to: user.email.clone(),
                        subject: format!("Our terms of service change on {}", terms.effective_at.date_naive()),
                        body: format!(
                            "We have published version {} of our terms of service, effective {}.\n\nWhat changed:\n{}\n\nPlease review and accept it before you submit new jobs.",
                            terms.version, terms.effective_at, terms.changelog
                        ),
                        job_id: None,
                        attachments: Vec::new(),
                    })
                    .await?;
                }
            }
        }
        Ok(terms)
    }

    /// Every published terms version, newest first.
    pub async fn list_terms(&self) -> Result<Vec<TermsVersion>> {
        let mut v = self.store.list_terms().await?;
        v.sort_by_key(|t| std::cmp::Reverse((t.effective_at, t.published_at)));
        Ok(v)
    }

    /// Records that the caller (or, for the admin, `user_id`) accepts `version`.
    pub async fn accept_terms(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
        version: &str,
        client: ClientInfo,
    ) -> Result<TermsStatus> {
        let user = self.acting_user(who, user_id).await?;
        let now = self.now();
        let versions = self.store.list_terms().await?;
        let Some(terms) = versions.iter().find(|t| t.version == version) else {
            return Err(Error::violations(
                "validation_failed",
                "no such terms version",
                vec![Violation::new(
                    "/version",
                    format!("{version:?} was not published"),
                )],
            ));
        };
        if terms.effective_at > now {
            return Err(Error::conflict(
                "terms_not_in_effect",
                format!(
                    "version {version} is not in effect until {}",
                    terms.effective_at
                ),
            ));
        }
        let acceptance = TermsAcceptance {
            id: Uuid::now_v7(),
            user_id: user.id,
            version: version.to_string(),
            accepted_at: now,
            ip: client.ip,
            user_agent: client.user_agent,
        };
        let subject = self.store.subject_of(user.id).await?;
        self.store
            .accept_terms(
                &acceptance,
                &entry(now, subject, "terms.accepted", json!({"version": version})),
            )
            .await?;
        self.consent_cache.forget(user.id);
        let accepted = self.store.list_acceptances(user.id).await?;
        Ok(terms_status(&versions, accepted.first(), now))
    }

    /// Whether the caller (or `user_id`, for the admin) must accept the terms again.
    pub async fn terms_status(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
    ) -> Result<TermsStatus> {
        let user = self.acting_user(who, user_id).await?;
        let versions = self.store.list_terms().await?;
        let accepted = self.store.list_acceptances(user.id).await?;
        Ok(terms_status(&versions, accepted.first(), self.now()))
    }

    /// A user's acceptances, newest first.
    pub async fn terms_history(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
    ) -> Result<Vec<TermsAcceptance>> {
        let user = self.acting_user(who, user_id).await?;
        self.store.list_acceptances(user.id).await
    }

    /// Asks for marketing email: stores a pending consent and emails a confirmation link.
    /// Repeating it creates nothing new and re-sends the link at most once per hour; a
    /// confirmed address is left as it is (its owner changes categories in the preference
    /// center).
    pub async fn subscribe(
        &self,
        email: &str,
        categories: Option<&[String]>,
    ) -> Result<Subscribed> {
        let email = users::normalize_email(email)?;
        let categories = parse_categories(categories)?;
        let now = self.now();
        let existing = self.store.subscription_by_email(&email).await?;
        // A confirmed address keeps its categories: anyone may call this route, so adding
        // categories is for the address's owner, in the preference center.
        if existing
            .as_ref()
            .is_some_and(|sub| sub.status == SubscriptionStatus::Subscribed)
        {
            return Ok(Subscribed {
                status: SubscriptionStatus::Subscribed,
                confirmation_sent: false,
            });
        }
        if let Some(sub) = &existing
            && sub.status == SubscriptionStatus::Pending
            && sub.last_sent_at.is_some_and(|t| now - t < RESEND_INTERVAL)
        {
            if sub.categories != categories {
                let updated = Subscription {
                    categories,
                    updated_at: now,
                    ..sub.clone()
                };
                self.store.put_subscription(&updated, None).await?;
            }
            return Ok(Subscribed {
                status: SubscriptionStatus::Pending,
                confirmation_sent: false,
            });
        }
        let (token, token_hash) = new_token();
        let sub = Subscription {
            id: existing.as_ref().map_or_else(Uuid::new_v4, |s| s.id),
            email: email.clone(),
            status: SubscriptionStatus::Pending,
            categories: categories.clone(),
            token_hash: Some(token_hash),
            token_expires_at: Some(now + TOKEN_TTL),
            token_used_at: None,
            last_sent_at: Some(now),
            confirmed_at: None,
            created_at: existing.as_ref().map_or(now, |s| s.created_at),
            updated_at: now,
        };
        let detail = json!({"categories": categories_json(&categories)});
        self.store
            .put_subscription(
                &sub,
                Some(&entry(now, sub.id, "marketing.requested", detail)),
            )
            .await?;
        self.send_transactional(Email {
            to: email,
            subject: "Confirm your subscription".into(),
            body: format!(
                "Please confirm that you want our emails about: {}.\n\nConfirm: {}/v1/marketing/confirm?token={token}\n\nThis link works for 7 days. If you did not ask for this, ignore this email.",
                categories.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
                self.public_url
            ),
            job_id: None,
            attachments: Vec::new(),
        })
        .await?;
        Ok(Subscribed {
            status: SubscriptionStatus::Pending,
            confirmation_sent: true,
        })
    }

    /// Confirms a pending consent with the token from its email.
    pub async fn confirm_subscription(&self, token: &str) -> Result<Subscription> {
        let now = self.now();
        let sub = self
            .store
            .subscription_by_token(&users::hash_secret(token.trim()))
            .await?
            .ok_or_else(|| Error::not_found("confirmation token").with_code("token_unknown"))?;
        if sub.token_used_at.is_some() {
            return Err(Error::conflict(
                "token_used",
                "this confirmation link was already used",
            ));
        }
        if sub.token_expires_at.is_none_or(|t| t <= now) {
            return Err(Error::invalid(
                "token_expired",
                "this confirmation link has expired; subscribe again to get a new one",
            ));
        }
        let confirmed = Subscription {
            status: SubscriptionStatus::Subscribed,
            token_used_at: Some(now),
            confirmed_at: Some(now),
            updated_at: now,
            ..sub
        };
        let detail = json!({"categories": categories_json(&confirmed.categories)});
        self.store
            .put_subscription(
                &confirmed,
                Some(&entry(now, confirmed.id, "marketing.confirmed", detail)),
            )
            .await?;
        Ok(confirmed)
    }

    /// Ends a consent, by the token of an unsubscribe link or, for a signed-in user, by their
    /// own email; emails a confirmation. Ending an ended consent changes nothing.
    pub async fn unsubscribe(&self, by: Unsubscribe<'_>) -> Result<Subscription> {
        let sub = match by {
            Unsubscribe::Token(token) => {
                let id = self.verify_unsubscribe_token(token).await?;
                self.store.get_subscription(id).await?
            }
            Unsubscribe::User(who) => {
                let user = self.acting_user(who, None).await?;
                self.store.subscription_by_email(&user.email).await?
            }
        }
        .ok_or_else(|| Error::not_found("subscription"))?;
        if sub.status == SubscriptionStatus::Unsubscribed {
            return Ok(sub);
        }
        let now = self.now();
        let ended = Subscription {
            status: SubscriptionStatus::Unsubscribed,
            token_hash: None,
            token_expires_at: None,
            updated_at: now,
            ..sub
        };
        self.store
            .put_subscription(
                &ended,
                Some(&entry(now, ended.id, "marketing.unsubscribed", json!({}))),
            )
            .await?;
        self.send_transactional(Email {
            to: ended.email.clone(),
            subject: "You are unsubscribed".into(),
            body:
                "You will get no more marketing email from us. You can subscribe again at any time."
                    .into(),
            job_id: None,
            attachments: Vec::new(),
        })
        .await?;
        Ok(ended)
    }

    /// The consent of an address: `pending`, `subscribed` or `unsubscribed`.
    pub async fn subscription_status(&self, email: &str) -> Result<Subscription> {
        let email = users::normalize_email(email)?;
        self.store
            .subscription_by_email(&email)
            .await?
            .ok_or_else(|| Error::not_found("subscription"))
    }

    /// The caller's preference center: their consent and categories.
    pub async fn preferences(&self, who: &Principal) -> Result<Value> {
        let user = self.acting_user(who, None).await?;
        let sub = self.store.subscription_by_email(&user.email).await?;
        Ok(preferences_view(sub.as_ref()))
    }

    /// Replaces the caller's categories. A confirmed consent changes at once; with no consent
    /// yet, this starts the double opt-in; an empty list unsubscribes.
    pub async fn set_preferences(&self, who: &Principal, categories: &[String]) -> Result<Value> {
        let user = self.acting_user(who, None).await?;
        if categories.is_empty() {
            let ended = self.unsubscribe(Unsubscribe::User(who)).await;
            return match ended {
                Ok(sub) => Ok(preferences_view(Some(&sub))),
                Err(e) if e.code == "not_found" => Ok(preferences_view(None)),
                Err(e) => Err(e),
            };
        }
        let wanted = parse_categories(Some(categories))?;
        let now = self.now();
        match self.store.subscription_by_email(&user.email).await? {
            Some(sub) if sub.status == SubscriptionStatus::Subscribed => {
                let detail = json!({"categories": categories_json(&wanted)});
                let updated = Subscription {
                    categories: wanted,
                    updated_at: now,
                    ..sub
                };
                self.store
                    .put_subscription(
                        &updated,
                        Some(&entry(now, updated.id, "marketing.categories", detail)),
                    )
                    .await?;
                Ok(preferences_view(Some(&updated)))
            }
            _ => {
                self.subscribe(&user.email, Some(categories)).await?;
                let sub = self.store.subscription_by_email(&user.email).await?;
                Ok(preferences_view(sub.as_ref()))
            }
        }
    }

    /// Sends a marketing email to every confirmed consent of `category` whose user does not
    /// object to marketing (admin). Each carries its own unsubscribe link.
    pub async fn send_marketing(
        &self,
        who: &Principal,
        category: &str,
        subject: &str,
        body: &str,
    ) -> Result<Value> {
        who.require_admin()?;
        let category = Category::parse(category).ok_or_else(|| {
            Error::violations(
                "validation_failed",
                "unknown category",
                vec![Violation::new("/category", "is not a marketing category")],
            )
        })?;
        if subject.trim().is_empty() || body.trim().is_empty() {
            return Err(Error::violations(
                "validation_failed",
                "the email needs a subject and a body",
                vec![Violation::new("/subject", "and /body must not be empty")],
            ));
        }
        let (mut sent, mut skipped) = (0u64, 0u64);
        let mut after = None;
        loop {
            let page = self.store.list_subscribed(category, after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for sub in page {
                if !marketing_allowed(&sub, category)
                    || self
                        .store
                        .objects_by_email(&sub.email, ObjectionKind::Marketing)
                        .await?
                {
                    skipped += 1;
                    continue;
                }
                let token = self.unsubscribe_token(sub.id).await?;
                self.send_email(Email {
                    to: sub.email.clone(),
                    subject: subject.to_string(),
                    body: format!(
                        "{body}\n\n--\nYou get this because you subscribed to {}. Unsubscribe: {}/v1/marketing/unsubscribe?token={token}",
                        category.as_str(),
                        self.public_url
                    ),
                    job_id: None,
                    attachments: Vec::new(),
                }, crate::notify::EmailKind::Marketing)
                .await?;
                sent += 1;
            }
        }
        self.audit(
            Actor::Admin,
            "marketing.sent",
            None,
            json!({"category": category.as_str(), "sent": sent, "skipped": skipped}),
        )
        .await?;
        Ok(json!({"category": category.as_str(), "sent": sent, "skipped": skipped}))
    }

    /// A user's objections, one per kind (those never set read as not objected).
    pub async fn objections(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
    ) -> Result<Vec<Objection>> {
        let user = self.acting_user(who, user_id).await?;
        let set = self.store.list_objections(user.id).await?;
        Ok(ObjectionKind::ALL
            .into_iter()
            .map(|kind| {
                set.iter()
                    .find(|o| o.kind == kind)
                    .cloned()
                    .unwrap_or(Objection {
                        kind,
                        objected: false,
                        updated_at: user.created_at,
                    })
            })
            .collect())
    }

    /// Sets an objection; it takes effect at once, is chained into the ledger, and the user
    /// gets a confirmation email.
    pub async fn set_objection(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
        kind: &str,
        objected: bool,
    ) -> Result<Vec<Objection>> {
        let user = self.acting_user(who, user_id).await?;
        let kind = ObjectionKind::parse(kind).ok_or_else(|| {
            Error::violations(
                "validation_failed",
                "unknown objection",
                vec![Violation::new(
                    "/kind",
                    "must be marketing, profiling, automation or analytics",
                )],
            )
        })?;
        let now = self.now();
        let subject = self.store.subject_of(user.id).await?;
        let objection = Objection {
            kind,
            objected,
            updated_at: now,
        };
        self.store
            .set_objection(
                user.id,
                &objection,
                &entry(
                    now,
                    subject,
                    "objection.set",
                    json!({"kind": kind.as_str(), "objected": objected}),
                ),
            )
            .await?;
        self.consent_cache.forget(user.id);
        if kind == ObjectionKind::Profiling && objected {
            for area in &self.areas {
                area.on_profiling_objection(self, user.id).await?;
            }
        }
        let verb = if objected {
            "now object to"
        } else {
            "no longer object to"
        };
        self.send_transactional(Email {
            to: user.email.clone(),
            subject: format!("Your {} objection is recorded", kind.as_str()),
            body: format!(
                "You {verb} {} of your data. This took effect at {now}.",
                kind.as_str()
            ),
            job_id: None,
            attachments: Vec::new(),
        })
        .await?;
        self.objections(who, Some(user.id)).await
    }

    /// `Forbidden` `objection_profiling` when the user objects to profiling. Lead scoring must
    /// call this before it computes a score.
    pub async fn check_profiling_allowed(&self, user_id: Uuid) -> Result<()> {
        if self
            .consent_state(user_id)
            .await?
            .objects(ObjectionKind::Profiling)
        {
            return Err(Error::forbidden(
                "objection_profiling",
                "the user objects to profiling: no score may be computed",
            ));
        }
        Ok(())
    }

    /// Checks the whole ledger (admin): `ok` and the record count, or the first broken record.
    pub async fn verify_ledger(&self, who: &Principal) -> Result<Value> {
        who.require_admin()?;
        let mut at = (0i64, GENESIS_HASH.to_string());
        loop {
            let page = self.store.ledger_after(at.0, 1000).await?;
            if page.is_empty() {
                return Ok(json!({"ok": true, "records": at.0, "head": at.1}));
            }
            match verify_records(at.clone(), &page) {
                Ok(next) => at = next,
                Err(b) => {
                    tracing::warn!(seq = b.seq, id = %b.id, reason = %b.reason, "consent ledger broken");
                    return Ok(json!({"ok": false, "records_checked": b.seq - 1, "broken": b}));
                }
            }
        }
    }

    /// The ledger records of the acting user (their subject), for exports.
    pub(crate) async fn ledger_of(&self, subjects: &[Uuid]) -> Result<Vec<LedgerRecord>> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.ledger_after(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            out.extend(
                page.into_iter()
                    .filter(|r| subjects.contains(&r.entry.subject)),
            );
        }
        Ok(out)
    }

    /// The caller's own user.
    pub async fn me(&self, who: &Principal) -> Result<User> {
        self.acting_user(who, None).await
    }

    /// The user a consent call acts on: the caller, or `user_id` for the admin.
    pub(crate) async fn acting_user(&self, who: &Principal, user_id: Option<Uuid>) -> Result<User> {
        let id = match (who, user_id) {
            (_, Some(id)) => id,
            (Principal::User { user_id, .. }, None) => *user_id,
            (Principal::Admin, None) => {
                return Err(Error::forbidden(
                    "user_key_required",
                    "this acts on one user: call it with the user's key or under /v1/admin/users/{id}",
                ));
            }
        };
        self.get_user(who, id).await
    }

    /// The HMAC-style token of a subscription's unsubscribe links: it never expires and needs
    /// no storage, so every email can carry one.
    pub(crate) async fn unsubscribe_token(&self, id: Uuid) -> Result<String> {
        let secret = self.link_secret().await?;
        Ok(format!("{}.{}", id.simple(), link_mac(&secret, id)))
    }

    async fn verify_unsubscribe_token(&self, token: &str) -> Result<Uuid> {
        let unknown = || Error::not_found("unsubscribe token").with_code("token_unknown");
        let (id, mac) = token.trim().split_once('.').ok_or_else(unknown)?;
        let id = Uuid::parse_str(id).map_err(|_| unknown())?;
        let secret = self.link_secret().await?;
        if crate::service::constant_time_eq(link_mac(&secret, id).as_bytes(), mac.as_bytes()) {
            Ok(id)
        } else {
            Err(unknown())
        }
    }

    async fn link_secret(&self) -> Result<String> {
        const KEY: &str = "link_secret";
        if let Some(Value::String(s)) = self.store.get_setting(KEY).await? {
            return Ok(s);
        }
        let (fresh, _) = new_token();
        // Two nodes racing here both write; the first write wins and both read it back.
        self.store.put_setting_if_absent(KEY, &json!(fresh)).await?;
        match self.store.get_setting(KEY).await? {
            Some(Value::String(s)) => Ok(s),
            _ => Err(Error::internal("the link secret could not be stored")),
        }
    }
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

fn preferences_view(sub: Option<&Subscription>) -> Value {
    match sub {
        None => {
            json!({"status": null, "categories": [], "available": Category::ALL.map(Category::as_str)})
        }
        Some(s) => json!({
            "status": s.status.as_str(),
            "categories": categories_json(&s.categories),
            "available": Category::ALL.map(Category::as_str),
            "confirmed_at": s.confirmed_at,
        }),
    }
}

fn link_mac(secret: &str, id: Uuid) -> String {
    // HMAC-SHA256 (RFC 2104) of the id under the deployment's link secret.
    let key = Sha256::digest(secret.as_bytes());
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, b) in key.iter().enumerate() {
        ipad[i] ^= b;
        opad[i] ^= b;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(id.as_bytes())
        .finalize();
    hex::encode(
        Sha256::new()
            .chain_update(opad)
            .chain_update(inner)
            .finalize(),
    )
}

/// A user's consent facts that intake checks on every job, cached briefly.
#[derive(Debug, Clone, Default)]
pub struct ConsentState {
    /// Kinds the user objects to.
    pub objections: Vec<ObjectionKind>,
    /// The user must accept the terms before submitting.
    pub must_accept_terms: bool,
    /// Dunning suspended the account: no new jobs.
    pub suspended: bool,
}

impl ConsentState {
    /// Whether the user objects to `kind`.
    pub fn objects(&self, kind: ObjectionKind) -> bool {
        self.objections.contains(&kind)
    }
}

/// Records a consent change as an audit record too (no personal data in it).
pub(crate) fn audit_subject(user_id: Uuid) -> String {
    hex::encode(Sha256::digest(user_id.as_bytes()))
}

/// How long a user's consent facts are trusted by intake. A change made through this node is
/// seen at once (the entry is dropped); one made through another node within this time.
pub const CONSENT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

type Cached<T> = std::sync::RwLock<std::collections::HashMap<Uuid, (T, std::time::Instant)>>;

/// Users' consent facts and the published terms, cached for [`CONSENT_CACHE_TTL`], so that
/// intake does not read three tables per job.
pub(crate) struct ConsentCache {
    store: std::sync::Arc<dyn crate::service::Store>,
    users: Cached<ConsentState>,
    terms: std::sync::RwLock<Option<(Vec<TermsVersion>, std::time::Instant)>>,
}

impl ConsentCache {
    pub(crate) fn new(store: std::sync::Arc<dyn crate::service::Store>) -> Self {
        Self {
            store,
            users: Default::default(),
            terms: Default::default(),
        }
    }

    pub(crate) fn forget(&self, user_id: Uuid) {
        self.users.write().expect("consent cache").remove(&user_id);
    }

    pub(crate) fn forget_terms(&self) {
        *self.terms.write().expect("consent cache") = None;
        self.users.write().expect("consent cache").clear();
    }

    async fn terms(&self) -> Result<Vec<TermsVersion>> {
        if let Some((t, at)) = &*self.terms.read().expect("consent cache")
            && at.elapsed() < CONSENT_CACHE_TTL
        {
            return Ok(t.clone());
        }
        let t = self.store.list_terms().await?;
        *self.terms.write().expect("consent cache") = Some((t.clone(), std::time::Instant::now()));
        Ok(t)
    }

    pub(crate) async fn state(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<ConsentState> {
        if let Some((s, at)) = self.users.read().expect("consent cache").get(&user_id)
            && at.elapsed() < CONSENT_CACHE_TTL
        {
            return Ok(s.clone());
        }
        let terms = self.terms().await?;
        let must_accept_terms = if terms.iter().any(|t| t.material && t.effective_at <= now) {
            let accepted = self.store.list_acceptances(user_id).await?;
            terms_status(&terms, accepted.first(), now).must_accept
        } else {
            false
        };
        let objections = self
            .store
            .list_objections(user_id)
            .await?
            .into_iter()
            .filter(|o| o.objected)
            .map(|o| o.kind)
            .collect();
        let suspended = self
            .store
            .dunning(user_id)
            .await?
            .is_some_and(|d| d.state == crate::billing::DunningState::Suspended);
        let state = ConsentState {
            objections,
            must_accept_terms,
            suspended,
        };
        let mut users = self.users.write().expect("consent cache");
        if users.len() >= 10_000 {
            users.clear();
        }
        users.insert(user_id, (state.clone(), std::time::Instant::now()));
        Ok(state)
    }
}

/// The intake stage that enforces consent: the terms must be accepted, and a user who objects
/// to automation gets no automated jobs.
pub(crate) struct ConsentStage {
    cache: std::sync::Arc<ConsentCache>,
}

impl ConsentStage {
    pub(crate) fn new(cache: std::sync::Arc<ConsentCache>) -> Self {
        Self { cache }
    }
}

#[async_trait]
impl crate::jobs::intake::IntakeStage for ConsentStage {
    fn name(&self) -> &'static str {
        "consent"
    }

    async fn check(&self, ctx: &mut crate::jobs::intake::IntakeContext) -> Result<()> {
        let state = self.cache.state(ctx.owner_id, ctx.now).await?;
        if state.suspended {
            return Err(Error::forbidden(
                "account_suspended",
                "the account is suspended for an unpaid invoice; paying it restores intake",
            ));
        }
        if state.must_accept_terms {
            return Err(Error::forbidden(
                "terms_not_accepted",
                "accept the current terms of service (POST /v1/terms/accept) before submitting jobs",
            ));
        }
        if state.objects(ObjectionKind::Automation) {
            return Err(Error::forbidden(
                "objection_automation",
                "you object to automated processing, so no automated job is run for you",
            ));
        }
        Ok(())
    }
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

    fn chain(n: usize) -> Vec<LedgerRecord> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n as i64)
            .map(|seq| {
                let e = entry(
                    t(1),
                    Uuid::from_u128(seq as u128),
                    "objection.set",
                    json!({"kind": "analytics"}),
                );
                let hash = seal(seq, &prev, &e);
                let r = LedgerRecord {
                    seq,
                    entry: e,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn the_ledger_verifies_and_names_the_first_tampered_record() {
        let mut records = chain(5);
        assert_eq!(
            verify_records((0, GENESIS_HASH.into()), &records)
                .unwrap()
                .0,
            5
        );
        records[2].entry.detail = json!({"kind": "marketing"});
        let b = verify_records((0, GENESIS_HASH.into()), &records).unwrap_err();
        assert_eq!(b.seq, 3);
        let mut records = chain(5);
        records.remove(1);
        assert_eq!(
            verify_records((0, GENESIS_HASH.into()), &records)
                .unwrap_err()
                .seq,
            3
        );
    }

    #[test]
    fn categories_parse_with_pointers() {
        assert_eq!(parse_categories(None).unwrap().len(), 5);
        let err = parse_categories(Some(&["offers".into(), "spam".into()])).unwrap_err();
        assert_eq!(err.violations[0].pointer, "/categories/1");
        assert!(parse_categories(Some(&[])).is_err());
    }

    #[test]
    fn link_macs_depend_on_secret_and_id() {
        let a = link_mac("s1", Uuid::from_u128(1));
        assert_eq!(a, link_mac("s1", Uuid::from_u128(1)));
        assert_ne!(a, link_mac("s2", Uuid::from_u128(1)));
        assert_ne!(a, link_mac("s1", Uuid::from_u128(2)));
    }
}
