//! [`Privacy`]: analytics events, DSAR exports, erasure, legal holds, retention and the audit
//! log's reader.

use super::export::build_zip;
use super::retention::Retention;
use super::{
    EXPORT_INTERVAL, Event, ExportRecord, LegalHold, MAX_EXPORT_BYTES, PrivacyStore,
    RetentionPolicies, SweepReport,
};
use crate::audit::{Actor, AuditLog, AuditRecord, audit_subject};
use crate::auth::Principal;
use crate::clock::Clock;
use crate::consent::{Consent, ObjectionKind};
use crate::error::{Error, Result, Violation, to_json};
use crate::notify::{Attachment, EmailKind, Messages};
use crate::page::{Page, PageRequest};
use crate::personal_data::{AreaErasure, Areas, Person, PersonalDataArea};
use crate::screening::ScreeningStore;
use crate::users::{Users, acting_id};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// What an erasure did, per area; also the detail of its audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureSummary {
    /// Always true.
    pub erased: bool,
    /// What replaced the person where the law keeps a row.
    pub tombstone: Uuid,
    /// When.
    pub erased_at: DateTime<Utc>,
    /// Per area: rows deleted and rows kept under the tombstone.
    pub areas: BTreeMap<String, AreaErasure>,
    /// Set when the user had been erased before: this is the first erasure's summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub already_erased: Option<bool>,
}

/// Data subject rights, retention and legal holds.
pub struct Privacy {
    pub(crate) store: Arc<dyn PrivacyStore>,
    pub(crate) users: Arc<Users>,
    pub(crate) consent: Arc<Consent>,
    pub(crate) screenings: Arc<dyn ScreeningStore>,
    pub(crate) areas: Arc<Areas>,
    pub(crate) retention: Arc<Retention>,
    pub(crate) messages: Arc<Messages>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Privacy {
    /// Adds an area that holds personal data; export and erasure include it from now on.
    pub fn register_area(&self, area: Arc<dyn PersonalDataArea>) {
        self.areas.register(area);
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn PrivacyStore> {
        &self.store
    }

    /// The audit trail, newest first (admin).
    pub async fn audit_log(
        &self,
        who: &Principal,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<AuditRecord>> {
        who.require_admin()?;
        let page = PageRequest::parse_or_fail(limit, cursor)?;
        let items = self
            .audit
            .store()
            .list_audit(page.before, page.limit + 1)
            .await?;
        Ok(page.cut(items, |a| a.id))
    }

    /// Records analytics events for the caller, unless they object to analytics; how many
    /// were recorded.
    pub async fn record_events(
        &self,
        who: &Principal,
        events: &[(String, Value)],
    ) -> Result<usize> {
        let user = self.users.acting(who, None).await?;
        let mut bad = Vec::new();
        for (i, (name, props)) in events.iter().enumerate() {
            if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                bad.push(Violation::new(
                    format!("/events/{i}/name"),
                    "must be 1 to 100 printable characters",
                ));
            }
            if !props.is_object() {
                bad.push(Violation::new(
                    format!("/events/{i}/properties"),
                    "must be an object",
                ));
            }
        }
        if events.is_empty() || events.len() > 1000 {
            bad.push(Violation::new("/events", "send 1 to 1000 events"));
        }
        if !bad.is_empty() {
            return Err(Error::violations("validation_failed", "bad events", bad));
        }
        if self
            .consent
            .state(user.id)
            .await?
            .objects(ObjectionKind::Analytics)
        {
            return Ok(0);
        }
        let now = self.clock.now_micros();
        let rows: Vec<Event> = events
            .iter()
            .map(|(name, properties)| Event {
                id: Uuid::now_v7(),
                user_id: user.id,
                name: name.clone(),
                properties: properties.clone(),
                created_at: now,
            })
            .collect();
        self.store.record_events(&rows).await?;
        Ok(rows.len())
    }

    /// Builds the caller's (or, for the admin, `user_id`'s) export and emails it as a ZIP
    /// attachment. One per user per 24 hours.
    pub async fn export_user(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
    ) -> Result<ExportRecord> {
        let user = self.users.acting(who, user_id).await?;
        let now = self.clock.now_micros();
        if let Some(last) = self.store.last_export(user.id).await?
            && now - last.created_at < EXPORT_INTERVAL
        {
            let wait = (last.created_at + EXPORT_INTERVAL - now)
                .num_seconds()
                .max(1) as u64;
            return Err(Error::limit(
                "export_rate_limited",
                "one export per user per 24 hours",
                wait,
            ));
        }
        let person = Person {
            id: user.id,
            email: user.email.clone(),
        };
        let mut files = Vec::new();
        for area in self.areas.all() {
            if let Some(data) = area.export(&person).await? {
                files.push((area.name().to_string(), data));
            }
        }
        let areas: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
        let zip = build_zip(&files)?;
        if zip.len() > MAX_EXPORT_BYTES {
            return Err(Error::invalid(
                "export_too_large",
                format!(
                    "the export is {} bytes, over the 5 MB an email may carry; ask the admin for a partial export",
                    zip.len()
                ),
            ));
        }
        let record = ExportRecord {
            id: Uuid::now_v7(),
            user_id: user.id,
            created_at: now,
            bytes: zip.len() as i64,
            areas: areas.clone(),
        };
        let mut email =
            self.messages
                .compose("data_export", &user.email, json!({"areas": areas}))?;
        email.attachments = vec![Attachment {
            filename: format!("levqor-export-{}.zip", now.format("%Y%m%d")),
            content_type: "application/zip".into(),
            content: zip,
        }];
        // The email is written with the export's record, in one transaction.
        self.store
            .record_export(
                &record,
                &[self.messages.queue(&email, EmailKind::Transactional)],
            )
            .await?;
        self.audit
            .record(
                Actor::of(who),
                "export.sent",
                Some(user.id),
                json!({"export_id": record.id, "bytes": record.bytes, "areas": areas}),
            )
            .await?;
        Ok(record)
    }

    /// Erases a user: every area deletes or pseudonymizes its part (queued and running jobs
    /// are canceled first), then the keys are revoked and the user deleted, and an audit record
    /// without personal data is written. Erasing an erased user returns the first summary.
    pub async fn erase_user(
        &self,
        who: &Principal,
        user_id: Option<Uuid>,
    ) -> Result<ErasureSummary> {
        who.require_scope("*")?;
        let id = acting_id(who, user_id)?;
        who.check_owner(id, "user")?;
        let Some(user) = self.users.store().get_user(id).await? else {
            return self.first_erasure(id).await;
        };
        if let Some(hold) = self
            .store
            .legal_holds()
            .await?
            .into_iter()
            .find(|h| h.user_id == user.id)
        {
            return Err(Error::conflict(
                "legal_hold",
                format!(
                    "the user's data is under a legal hold ({}) and cannot be erased",
                    hold.reason
                ),
            ));
        }
        let person = Person {
            id: user.id,
            email: user.email.clone(),
        };
        let tombstone = Uuid::new_v4();
        let mut areas = BTreeMap::new();
        for area in self.areas.all() {
            areas.insert(
                area.name().to_string(),
                area.erase(&person, tombstone).await?,
            );
        }
        // The user row and keys go last, so a failure before leaves the user able to retry.
        let keys = self.users.delete(user.id).await?;
        areas.insert("profile".into(), AreaErasure::deleted(1));
        areas.insert("keys".into(), AreaErasure::deleted(keys));
        let summary = ErasureSummary {
            erased: true,
            tombstone,
            erased_at: self.clock.now_micros(),
            areas,
            already_erased: None,
        };
        self.audit
            .record(
                Actor::of(who),
                "user.erased",
                Some(user.id),
                to_json(&summary)?,
            )
            .await?;
        tracing::info!(user = %audit_subject(user.id), "user erased");
        Ok(summary)
    }

    /// The summary of an earlier erasure of `id`, or not found.
    async fn first_erasure(&self, id: Uuid) -> Result<ErasureSummary> {
        let done = self
            .audit
            .store()
            .find_audit("user.erased", Some(&audit_subject(id)))
            .await?;
        let record = done
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found("user"))?;
        let mut summary: ErasureSummary = serde_json::from_value(record.detail)
            .map_err(|e| Error::internal(format!("stored erasure summary: {e}")))?;
        summary.already_erased = Some(true);
        Ok(summary)
    }

    /// Places a legal hold on a user (admin).
    pub async fn set_legal_hold(
        &self,
        who: &Principal,
        user_id: Uuid,
        reason: &str,
    ) -> Result<LegalHold> {
        who.require_admin()?;
        self.users.get(who, user_id).await?;
        if reason.trim().is_empty() || reason.chars().count() > 500 {
            return Err(Error::violations(
                "validation_failed",
                "a hold needs a reason",
                vec![Violation::new("/reason", "must be 1 to 500 characters")],
            ));
        }
        let hold = LegalHold {
            user_id,
            reason: reason.trim().into(),
            created_at: self.clock.now_micros(),
        };
        self.store.set_legal_hold(&hold).await?;
        self.audit
            .record(Actor::Admin, "legal_hold.placed", Some(user_id), json!({}))
            .await?;
        Ok(hold)
    }

    /// Lifts a legal hold (admin).
    pub async fn clear_legal_hold(&self, who: &Principal, user_id: Uuid) -> Result<()> {
        who.require_admin()?;
        if !self.store.clear_legal_hold(user_id).await? {
            return Err(Error::not_found("legal hold"));
        }
        self.audit
            .record(Actor::Admin, "legal_hold.lifted", Some(user_id), json!({}))
            .await
    }

    /// The retention policies in force (admin).
    pub async fn retention_policies(&self, who: &Principal) -> Result<RetentionPolicies> {
        who.require_admin()?;
        self.retention.policies().await
    }

    /// Changes retention policies (admin): `{"<class>": days}`; classes left out keep their
    /// value.
    pub async fn set_retention_policies(
        &self,
        who: &Principal,
        body: &Map<String, Value>,
    ) -> Result<RetentionPolicies> {
        who.require_admin()?;
        let policies = self.retention.policies().await?.merged(body)?;
        let value = self.retention.set_policies(&policies).await?;
        self.audit
            .record(Actor::Admin, "retention.policies_changed", None, value)
            .await?;
        Ok(policies)
    }

    /// Runs the retention sweep (admin), or with `dry_run` reports what it would delete.
    pub async fn sweep_retention(&self, who: &Principal, dry_run: bool) -> Result<SweepReport> {
        who.require_admin()?;
        let report = self
            .retention
            .sweep(self.clock.now_micros(), dry_run)
            .await?;
        if !dry_run {
            self.audit
                .record(Actor::Admin, "retention.swept", None, to_json(&report)?)
                .await?;
        }
        Ok(report)
    }
}
