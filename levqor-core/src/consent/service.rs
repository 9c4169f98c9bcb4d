//! [`Consent`]: terms, marketing consent and its preference center, objections, the ledger,
//! and the unsubscribe links every marketing email carries.

use super::ledger::{GENESIS_HASH, LedgerEntry, LedgerRecord, LedgerVerification, verify_records};
use super::stage::{ConsentCache, ConsentState};
use super::{
    Category, ClientInfo, ConsentStore, MarketingSent, Objection, ObjectionKind, Preferences,
    RESEND_INTERVAL, Subscribed, Subscription, SubscriptionStatus, TOKEN_TTL, TermsAcceptance,
    TermsStatus, TermsVersion, Unsubscribe, marketing_allowed, parse_categories, terms_status,
};
use crate::audit::{Actor, AuditLog};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::error::{Error, Result, Violation};
use crate::notify::{EmailKind, Messages};
use crate::personal_data::Areas;
use crate::secrets::{constant_time_eq, hash_secret, hmac_sha256, new_token};
use crate::settings::SettingsStore;
use crate::users::{self, Users};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Weak};
use uuid::Uuid;

/// Terms, marketing consent, objections and the consent ledger.
pub struct Consent {
    pub(crate) store: Arc<dyn ConsentStore>,
    pub(crate) settings: Arc<dyn SettingsStore>,
    pub(crate) users: Arc<Users>,
    pub(crate) messages: Arc<Messages>,
    pub(crate) audit: Arc<AuditLog>,
    /// The areas, weakly: an area (consents) holds this service, and privacy owns the areas.
    pub(crate) areas: Weak<Areas>,
    pub(crate) cache: Arc<ConsentCache>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The base URL of links in emails.
    pub(crate) public_url: String,
}

impl Consent {
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
        if version.is_empty()
            || version.chars().count() > 64
            || version.chars().any(char::is_control)
        {
            return Err(Error::violations(
                "validation_failed",
                "bad terms version",
                vec![Violation::new(
                    "/version",
                    "must be 1 to 64 printable characters",
                )],
            ));
        }
        let now = self.clock.now_micros();
        let terms = TermsVersion {
            version: version.to_string(),
            effective_at: effective_at.unwrap_or(now),
            changelog: changelog.to_string(),
            material,
            published_at: now,
        };
        // A material change notifies every user, in the transaction that publishes it.
        let mut notices = Vec::new();
        if material {
            let mut after = None;
            loop {
                let page = self.users.store().list_users(after, 500).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for user in &page {
                    let email = self.messages.compose(
                        "terms_changed",
                        &user.email,
                        json!({
                            "version": terms.version,
                            "effective_at": terms.effective_at.to_string(),
                            "effective_date": terms.effective_at.date_naive().to_string(),
                            "changelog": terms.changelog,
                        }),
                    )?;
                    notices.push(self.messages.queue(&email, EmailKind::Transactional));
                }
            }
        }
        let detail = json!({"version": terms.version, "material": material});
        self.store
            .publish_terms(
                &terms,
                &LedgerEntry::new(now, Uuid::nil(), "terms.published", detail),
                &notices,
            )
            .await?;
        self.cache.forget_terms();
        self.audit
            .record(
                Actor::Admin,
                "terms.published",
                None,
                json!({"version": terms.version}),
            )
            .await?;
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
        let user = self.users.acting(who, user_id).await?;
        let now = self.clock.now_micros();
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
                &LedgerEntry::new(now, subject, "terms.accepted", json!({"version": version})),
            )
            .await?;
        self.cache.forget(user.id);
        let accepted = self.store.list_acceptances(user.id).await?;
        Ok(terms_status(&versions, accepted.first(), now))
    }

    /// Whether the caller (or `user_id`, for the admin) must accept the terms again.
    pub async fn terms_status(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
    ) -> Result<TermsStatus> {
        let user = self.users.acting(who, user_id).await?;
        let versions = self.store.list_terms().await?;
        let accepted = self.store.list_acceptances(user.id).await?;
        Ok(terms_status(
            &versions,
            accepted.first(),
            self.clock.now_micros(),
        ))
    }

    /// A user's acceptances, newest first.
    pub async fn terms_history(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
    ) -> Result<Vec<TermsAcceptance>> {
        let user = self.users.acting(who, user_id).await?;
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
        let now = self.clock.now_micros();
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
        // A link sent within the hour stays as it is: it confirms the categories its email
        // named, whatever anyone asks for meanwhile.
        if let Some(sub) = &existing
            && sub.status == SubscriptionStatus::Pending
            && sub.last_sent_at.is_some_and(|t| now - t < RESEND_INTERVAL)
        {
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
            // The confirmation is written with the request, in one transaction.
            last_sent_at: Some(now),
            confirmed_at: None,
            created_at: existing.as_ref().map_or(now, |s| s.created_at),
            updated_at: now,
        };
        let detail = json!({"categories": categories_json(&categories)});
        let confirm = self.messages.compose(
            "marketing_confirm",
            &email,
            json!({
                "categories": categories.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "confirm_url": format!("{}/v1/marketing/confirm?token={token}", self.public_url),
            }),
        )?;
        self.store
            .put_subscription(
                &sub,
                Some(&LedgerEntry::new(
                    now,
                    sub.id,
                    "marketing.requested",
                    detail,
                )),
                &[self.messages.queue(&confirm, EmailKind::Transactional)],
            )
            .await?;
        Ok(Subscribed {
            status: SubscriptionStatus::Pending,
            confirmation_sent: true,
        })
    }

    /// Confirms a pending consent with the token from its email.
    pub async fn confirm_subscription(&self, token: &str) -> Result<Subscription> {
        let now = self.clock.now_micros();
        let sub = self
            .store
            .subscription_by_token(&hash_secret(token.trim()))
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
                Some(&LedgerEntry::new(
                    now,
                    confirmed.id,
                    "marketing.confirmed",
                    detail,
                )),
                &[],
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
                let user = self.users.acting(who, None).await?;
                self.store.subscription_by_email(&user.email).await?
            }
        }
        .ok_or_else(|| Error::not_found("subscription"))?;
        if sub.status == SubscriptionStatus::Unsubscribed {
            return Ok(sub);
        }
        let now = self.clock.now_micros();
        let ended = Subscription {
            status: SubscriptionStatus::Unsubscribed,
            token_hash: None,
            token_expires_at: None,
            updated_at: now,
            ..sub
        };
        let email = self
            .messages
            .compose("marketing_unsubscribed", &ended.email, json!({}))?;
        self.store
            .put_subscription(
                &ended,
                Some(&LedgerEntry::new(
                    now,
                    ended.id,
                    "marketing.unsubscribed",
                    json!({}),
                )),
                &[self.messages.queue(&email, EmailKind::Transactional)],
            )
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
    pub async fn preferences(&self, who: &Principal) -> Result<Preferences> {
        let user = self.users.acting(who, None).await?;
        let sub = self.store.subscription_by_email(&user.email).await?;
        Ok(Preferences::of(sub.as_ref()))
    }

    /// Replaces the caller's categories. A confirmed consent changes at once; with no consent
    /// yet, this starts the double opt-in; an empty list unsubscribes.
    pub async fn set_preferences(
        &self,
        who: &Principal,
        categories: &[String],
    ) -> Result<Preferences> {
        let user = self.users.acting(who, None).await?;
        if categories.is_empty() {
            let ended = self.unsubscribe(Unsubscribe::User(who)).await;
            return match ended {
                Ok(sub) => Ok(Preferences::of(Some(&sub))),
                Err(e) if e.code == "not_found" => Ok(Preferences::of(None)),
                Err(e) => Err(e),
            };
        }
        let wanted = parse_categories(Some(categories))?;
        let now = self.clock.now_micros();
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
                        Some(&LedgerEntry::new(
                            now,
                            updated.id,
                            "marketing.categories",
                            detail,
                        )),
                        &[],
                    )
                    .await?;
                Ok(Preferences::of(Some(&updated)))
            }
            _ => {
                self.subscribe(&user.email, Some(categories)).await?;
                let sub = self.store.subscription_by_email(&user.email).await?;
                Ok(Preferences::of(sub.as_ref()))
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
    ) -> Result<MarketingSent> {
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
                    || self.messages.is_suppressed(&sub.email).await?
                {
                    skipped += 1;
                    continue;
                }
                let token = self.unsubscribe_token(sub.id).await?;
                let unsubscribe_url =
                    format!("{}/v1/marketing/unsubscribe?token={token}", self.public_url);
                let mut email = self.messages.compose(
                    "marketing",
                    &sub.email,
                    json!({
                        "subject": subject,
                        "body": body,
                        "category": category.as_str(),
                        "unsubscribe_url": unsubscribe_url,
                    }),
                )?;
                // RFC 8058 one-click unsubscribe: the mail client POSTs to the link.
                email
                    .headers
                    .insert("List-Unsubscribe".into(), format!("<{unsubscribe_url}>"));
                email.headers.insert(
                    "List-Unsubscribe-Post".into(),
                    "List-Unsubscribe=One-Click".into(),
                );
                self.messages.send(email, EmailKind::Marketing).await?;
                sent += 1;
            }
        }
        self.audit
            .record(
                Actor::Admin,
                "marketing.sent",
                None,
                json!({"category": category.as_str(), "sent": sent, "skipped": skipped}),
            )
            .await?;
        Ok(MarketingSent {
            category,
            sent,
            skipped,
        })
    }

    /// A user's objections, one per kind (those never set read as not objected).
    pub async fn objections(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
    ) -> Result<Vec<Objection>> {
        let user = self.users.acting(who, user_id).await?;
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
        let user = self.users.acting(who, user_id).await?;
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
        let now = self.clock.now_micros();
        let subject = self.store.subject_of(user.id).await?;
        let objection = Objection {
            kind,
            objected,
            updated_at: now,
        };
        let email = self.messages.compose(
            "objection_recorded",
            &user.email,
            json!({"kind": kind.as_str(), "objected": objected, "at": now.to_string()}),
        )?;
        self.store
            .set_objection(
                user.id,
                &objection,
                &LedgerEntry::new(
                    now,
                    subject,
                    "objection.set",
                    json!({"kind": kind.as_str(), "objected": objected}),
                ),
                &[self.messages.queue(&email, EmailKind::Transactional)],
            )
            .await?;
        self.cache.forget(user.id);
        if kind == ObjectionKind::Profiling && objected {
            let areas = self.areas.upgrade().map(|a| a.all()).unwrap_or_default();
            for area in areas {
                area.on_profiling_objection(user.id).await?;
            }
        }
        self.objections(who, Some(user.id)).await
    }

    /// `Forbidden` `objection_profiling` when the user objects to profiling. Lead scoring must
    /// call this before it computes a score.
    pub async fn check_profiling_allowed(&self, user_id: Uuid) -> Result<()> {
        if self.state(user_id).await?.objects(ObjectionKind::Profiling) {
            return Err(Error::forbidden(
                "objection_profiling",
                "the user objects to profiling: no score may be computed",
            ));
        }
        Ok(())
    }

    /// Checks the whole ledger (admin): `ok` and the record count, or the first broken record.
    pub async fn verify_ledger(&self, who: &Principal) -> Result<LedgerVerification> {
        who.require_admin()?;
        let mut at = (0i64, GENESIS_HASH.to_string());
        loop {
            let page = self.store.ledger_after(at.0, 1000).await?;
            if page.is_empty() {
                return Ok(LedgerVerification {
                    ok: true,
                    records: Some(at.0),
                    head: Some(at.1),
                    records_checked: None,
                    broken: None,
                });
            }
            match verify_records(at.clone(), &page) {
                Ok(next) => at = next,
                Err(b) => {
                    tracing::warn!(seq = b.seq, id = %b.id, reason = %b.reason, "consent ledger broken");
                    return Ok(LedgerVerification {
                        ok: false,
                        records: None,
                        head: None,
                        records_checked: Some(b.seq - 1),
                        broken: Some(b),
                    });
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
        if constant_time_eq(link_mac(&secret, id).as_bytes(), mac.as_bytes()) {
            Ok(id)
        } else {
            Err(unknown())
        }
    }

    async fn link_secret(&self) -> Result<String> {
        const KEY: &str = "link_secret";
        if let Some(Value::String(s)) = self.settings.get_setting(KEY).await? {
            return Ok(s);
        }
        let (fresh, _) = new_token();
        // Two nodes racing here both write; the first write wins and both read it back.
        self.settings
            .put_setting_if_absent(KEY, &json!(fresh))
            .await?;
        match self.settings.get_setting(KEY).await? {
            Some(Value::String(s)) => Ok(s),
            _ => Err(Error::internal("the link secret could not be stored")),
        }
    }

    /// The user's consent facts as intake sees them (cached for
    /// [`CONSENT_CACHE_TTL`](super::CONSENT_CACHE_TTL)).
    pub async fn state(&self, user_id: Uuid) -> Result<ConsentState> {
        self.cache.state(user_id, self.clock.now_micros()).await
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ConsentStore> {
        &self.store
    }

    /// Drops what this node knows of a user's consent (erasure).
    pub(crate) fn forget(&self, user_id: Uuid) {
        self.cache.forget(user_id);
    }
}

fn categories_json(c: &[Category]) -> Value {
    json!(c.iter().map(|c| c.as_str()).collect::<Vec<_>>())
}

/// HMAC-SHA256 of the id under the deployment's link secret (hashed into the key).
fn link_mac(secret: &str, id: Uuid) -> String {
    hex::encode(hmac_sha256(
        &Sha256::digest(secret.as_bytes()),
        id.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_macs_depend_on_secret_and_id() {
        let a = link_mac("s1", Uuid::from_u128(1));
        assert_eq!(a, link_mac("s1", Uuid::from_u128(1)));
        assert_ne!(a, link_mac("s2", Uuid::from_u128(1)));
        assert_ne!(a, link_mac("s1", Uuid::from_u128(2)));
    }

    /// Links already sent keep working: the MAC is the standard HMAC-SHA256 (checked against
    /// an independent implementation).
    #[test]
    fn link_macs_match_the_hmac_of_earlier_links() {
        assert_eq!(
            link_mac("secret", Uuid::from_u128(7)),
            "f490aaeb90316be3babc4ce7c51e7ea2969fd1d735975155e757f6eaf35181a5"
        );
    }
}
