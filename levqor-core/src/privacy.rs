//! Data subject rights and retention: the audit trail, analytics events, DSAR exports (a ZIP
//! emailed as an attachment, never a link), erasure across every registered area, retention
//! policies and their sweep, legal holds, and the compliance dashboard.
//!
//! Every area that holds personal data registers a [`PersonalDataArea`]: its exporter and its
//! eraser. Export and erasure walk the registry, so an area added later cannot be forgotten by
//! either. Audit records carry no personal data: a user appears as the SHA-256 of their id.

use crate::auth::Principal;
use crate::consent::{self, Category, ObjectionKind};
use crate::error::{Error, Result, Violation};
use crate::jobs::steps::{StepFailure, SystemTask};
use crate::jobs::store::JobFilter;
use crate::notify::{Attachment, Email};
use crate::service::Levqor;
use crate::service::Store;
use crate::users::User;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use uuid::Uuid;

/// Who did an audited thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The admin key.
    Admin,
    /// A user's key, on their own data.
    User,
    /// The platform itself (sweeps, system jobs).
    System,
}

impl Actor {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Admin => "admin",
            Actor::User => "user",
            Actor::System => "system",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Actor::Admin, Actor::User, Actor::System]
            .into_iter()
            .find(|a| a.as_str() == s)
    }

    fn of(who: &Principal) -> Self {
        match who {
            Principal::Admin => Actor::Admin,
            Principal::User { .. } => Actor::User,
        }
    }
}

/// One audited action. Holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Stable, time-ordered id.
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// What, e.g. `export.sent`, `user.erased`, `terms.published`.
    pub action: String,
    /// SHA-256 of the user id acted on, if any.
    pub subject: Option<String>,
    /// Facts of the action (counts, versions), never personal data.
    pub detail: Value,
}

/// An analytics event a user's client recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Stable, time-ordered id.
    pub id: Uuid,
    /// Whose.
    pub user_id: Uuid,
    /// What happened, e.g. `page_view`.
    pub name: String,
    /// Free-form properties.
    pub properties: Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A DSAR export that was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// Stable id.
    pub id: Uuid,
    /// Whose data.
    pub user_id: Uuid,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// Size of the ZIP.
    pub bytes: i64,
    /// The areas it holds.
    pub areas: Vec<String>,
}

/// A legal hold: the user's data must be kept; sweeps skip it and erasure is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalHold {
    /// The user.
    pub user_id: Uuid,
    /// Why (a case number, not personal data).
    pub reason: String,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

/// Where a screened request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppealStatus {
    /// The user appealed; an admin has not decided.
    Pending,
    /// An admin let the job run.
    Approved,
    /// An admin upheld the refusal.
    Denied,
}

impl AppealStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AppealStatus::Pending => "pending",
            AppealStatus::Approved => "approved",
            AppealStatus::Denied => "denied",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Denied]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// A screening that did not simply allow a job: blocked, held or warned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreeningRecord {
    /// The job's id (a refused job keeps the id it would have had).
    pub id: Uuid,
    /// Whose request.
    pub user_id: Uuid,
    /// What screening decided.
    pub screening: crate::screening::Screening,
    /// For a refused job: the request, so that an approved appeal can admit it.
    pub request: Option<Value>,
    /// The appeal, if any.
    pub appeal_status: Option<AppealStatus>,
    /// The user's reason for the appeal.
    pub appeal_reason: Option<String>,
    /// The admin's note on the decision.
    pub decision_note: Option<String>,
    /// When it was screened.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The data classes with a retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataClass {
    /// Finished jobs, with their steps.
    Jobs,
    /// Outputs of the steps of finished jobs (the step records stay, their outputs are nulled).
    StepOutputs,
    /// Analytics events.
    Events,
    /// Audit records.
    Audit,
    /// Export records.
    Exports,
    /// Consents never confirmed whose token expired, and used or expired tokens.
    Tokens,
    /// Outbox messages.
    Outbox,
    /// Screening records without a pending appeal.
    Screenings,
}

impl DataClass {
    /// Every class.
    pub const ALL: [DataClass; 8] = [
        DataClass::Jobs,
        DataClass::StepOutputs,
        DataClass::Events,
        DataClass::Audit,
        DataClass::Exports,
        DataClass::Tokens,
        DataClass::Outbox,
        DataClass::Screenings,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Jobs => "jobs",
            DataClass::StepOutputs => "step_outputs",
            DataClass::Events => "events",
            DataClass::Audit => "audit",
            DataClass::Exports => "exports",
            DataClass::Tokens => "tokens",
            DataClass::Outbox => "outbox",
            DataClass::Screenings => "screenings",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The default retention, in days.
    pub fn default_days(self) -> i64 {
        match self {
            DataClass::Jobs => 90,
            DataClass::StepOutputs => 30,
            DataClass::Events => 365,
            DataClass::Audit => 2557,
            DataClass::Exports => 30,
            DataClass::Tokens => 30,
            DataClass::Outbox => 90,
            DataClass::Screenings => 365,
        }
    }
}

/// Retention in days per data class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicies(pub BTreeMap<DataClass, i64>);

impl Default for RetentionPolicies {
    fn default() -> Self {
        Self(
            DataClass::ALL
                .into_iter()
                .map(|c| (c, c.default_days()))
                .collect(),
        )
    }
}

impl RetentionPolicies {
    /// Reads `{"jobs": 90, ...}`; classes left out keep their current value.
    pub fn merged(&self, body: &Map<String, Value>) -> Result<Self> {
        let mut out = self.clone();
        let mut bad = Vec::new();
        for (k, v) in body {
            match (DataClass::parse(k), v.as_i64()) {
                (Some(c), Some(days)) if (1..=36_500).contains(&days) => {
                    out.0.insert(c, days);
                }
                (Some(_), _) => bad.push(Violation::new(
                    format!("/{k}"),
                    "must be a whole number of days from 1 to 36500",
                )),
                (None, _) => bad.push(Violation::new(format!("/{k}"), "is not a data class")),
            }
        }
        if bad.is_empty() {
            Ok(out)
        } else {
            Err(Error::violations(
                "validation_failed",
                "bad retention policies",
                bad,
            ))
        }
    }

    /// The retention of `class`.
    pub fn days(&self, class: DataClass) -> i64 {
        self.0.get(&class).copied().unwrap_or(class.default_days())
    }
}

/// The personal-data areas the store erases by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredArea {
    /// The user's jobs, their steps, queue entries and leases.
    Jobs,
    /// The user's analytics events.
    Events,
    /// The user's screening records.
    Screenings,
    /// Messages to the user's address.
    Outbox,
    /// The user's export records.
    Exports,
}

/// Users whose data a sweep must keep.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// Their ids.
    pub user_ids: Vec<Uuid>,
    /// Their emails.
    pub emails: Vec<String>,
}

/// Storage of settings, audit, events, exports, holds and screening records, and the bulk
/// deletes of erasure and retention.
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// A deployment setting.
    async fn get_setting(&self, key: &str) -> Result<Option<Value>>;
    /// Sets a deployment setting.
    async fn put_setting(&self, key: &str, value: &Value) -> Result<()>;
    /// Sets a deployment setting unless it is set.
    async fn put_setting_if_absent(&self, key: &str, value: &Value) -> Result<()>;
    /// Appends an audit record.
    async fn append_audit(&self, record: &AuditRecord) -> Result<()>;
    /// Audit records, newest first, older than `before` when given.
    async fn list_audit(&self, before: Option<Uuid>, limit: usize) -> Result<Vec<AuditRecord>>;
    /// Audit records of `action` about `subject` (or every subject), newest first.
    async fn find_audit(&self, action: &str, subject: Option<&str>) -> Result<Vec<AuditRecord>>;
    /// Records events.
    async fn record_events(&self, events: &[Event]) -> Result<()>;
    /// A user's events, oldest first, after `after` when given.
    async fn list_events(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Event>>;
    /// Records a sent export.
    async fn record_export(&self, export: &ExportRecord) -> Result<()>;
    /// The user's newest export.
    async fn last_export(&self, user_id: Uuid) -> Result<Option<ExportRecord>>;
    /// Places or replaces a legal hold.
    async fn set_legal_hold(&self, hold: &LegalHold) -> Result<()>;
    /// Lifts a hold; whether there was one.
    async fn clear_legal_hold(&self, user_id: Uuid) -> Result<bool>;
    /// Every hold.
    async fn legal_holds(&self) -> Result<Vec<LegalHold>>;
    /// Inserts or replaces a screening record.
    async fn put_screening(&self, record: &ScreeningRecord) -> Result<()>;
    /// A screening record by id.
    async fn get_screening(&self, id: Uuid) -> Result<Option<ScreeningRecord>>;
    /// Screening records (one user's, or all), newest first, older than `before`.
    async fn list_screenings(
        &self,
        user_id: Option<Uuid>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ScreeningRecord>>;
    /// Deletes what `area` holds of the user (`email` finds outbox messages); how many rows.
    async fn erase_area(&self, area: StoredArea, user_id: Uuid, email: &str) -> Result<u64>;
    /// Deletes (or, for step outputs, nulls) what `class` holds from before `cutoff`, keeping
    /// what belongs to `held`; with `dry_run`, only counts. How many rows.
    async fn sweep(
        &self,
        class: DataClass,
        cutoff: DateTime<Utc>,
        held: &Held,
        dry_run: bool,
    ) -> Result<u64>;
}

/// What erasing one area did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaErasure {
    /// Rows deleted.
    pub deleted: u64,
    /// Rows kept for the law, with the person replaced by the tombstone.
    pub pseudonymized: u64,
}

/// An area that holds personal data: it exports and erases its own part of a user.
#[async_trait]
pub trait PersonalDataArea: Send + Sync {
    /// The area's name: the file name of its export (`<name>.json`) and its key in summaries.
    fn name(&self) -> &'static str;
    /// The user's data in this area, or `None` when it has none.
    async fn export(&self, levqor: &Levqor, user: &User) -> Result<Option<Value>>;
    /// Erases the user from this area.
    async fn erase(&self, levqor: &Levqor, user: &User, tombstone: Uuid) -> Result<AreaErasure>;
    /// The user objected to profiling: delete any profile this area derived (scores, segments).
    async fn on_profiling_objection(&self, _levqor: &Levqor, _user_id: Uuid) -> Result<u64> {
        Ok(0)
    }
}

/// Largest export.
pub const MAX_EXPORT_BYTES: usize = 5 * 1024 * 1024;
/// Least time between two exports of one user.
pub const EXPORT_INTERVAL: Duration = Duration::hours(24);
/// The id of the platform's own jobs' owner.
pub const SYSTEM_OWNER: Uuid = Uuid::nil();

const POLICIES_KEY: &str = "retention_policies";

/// The areas Levqor itself holds, in export order.
pub fn builtin_areas() -> Vec<Arc<dyn PersonalDataArea>> {
    [
        Builtin::Profile,
        Builtin::Keys,
        Builtin::Jobs,
        Builtin::Credits,
        Builtin::Usage,
        Builtin::Billing,
        Builtin::Consents,
        Builtin::Objections,
        Builtin::Terms,
        Builtin::Events,
        Builtin::Screenings,
        Builtin::Messages,
        Builtin::Exports,
    ]
    .into_iter()
    .map(|a| Arc::new(a) as Arc<dyn PersonalDataArea>)
    .collect()
}

#[derive(Clone, Copy)]
enum Builtin {
    Profile,
    Keys,
    Jobs,
    Credits,
    Usage,
    Billing,
    Consents,
    Objections,
    Terms,
    Events,
    Screenings,
    Messages,
    Exports,
}

fn non_empty(items: Vec<Value>) -> Option<Value> {
    (!items.is_empty()).then_some(Value::Array(items))
}

fn to_values<T: Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect()
}

#[async_trait]
impl PersonalDataArea for Builtin {
    fn name(&self) -> &'static str {
        match self {
            Builtin::Profile => "profile",
            Builtin::Keys => "keys",
            Builtin::Jobs => "jobs",
            Builtin::Credits => "credits",
            Builtin::Usage => "usage",
            Builtin::Billing => "billing",
            Builtin::Consents => "consents",
            Builtin::Objections => "objections",
            Builtin::Terms => "terms",
            Builtin::Events => "events",
            Builtin::Screenings => "screenings",
            Builtin::Messages => "messages",
            Builtin::Exports => "exports",
        }
    }

    async fn export(&self, levqor: &Levqor, user: &User) -> Result<Option<Value>> {
        let store = &levqor.store;
        Ok(match self {
            Builtin::Profile => Some(serde_json::to_value(user).map_err(internal)?),
            Builtin::Keys => non_empty(to_values(&store.list_keys(user.id).await?)),
            Builtin::Jobs => {
                let mut out = Vec::new();
                let mut before = None;
                loop {
                    let page = store
                        .list_jobs(&JobFilter {
                            owner_id: Some(user.id),
                            status: None,
                            before,
                            limit: 1000,
                        })
                        .await?;
                    let Some(last) = page.last() else { break };
                    before = Some(last.id);
                    out.extend(to_values(&page));
                }
                non_empty(out)
            }
            Builtin::Credits => {
                let mut out = Vec::new();
                let mut before = None;
                loop {
                    let page = store.list_entries(user.id, before, 1000).await?;
                    let Some(last) = page.last() else { break };
                    before = Some(last.id);
                    out.extend(to_values(&page));
                }
                let account = store.account(user.id).await?;
                (!out.is_empty()).then(|| json!({"account": account, "entries": out}))
            }
            Builtin::Billing => {
                let status = levqor
                    .billing_status(&Principal::Admin, Some(user.id))
                    .await?;
                (status["customer"] == true || status["state"] != "active").then_some(status)
            }
            Builtin::Usage => {
                let usage = levqor.usage(&Principal::Admin, Some(user.id)).await?;
                (usage["calls"].as_u64() != Some(0) || usage["tier"] != "sandbox").then_some(usage)
            }
            Builtin::Consents => {
                let sub = store.subscription_by_email(&user.email).await?;
                let mut subjects = vec![store.subject_of(user.id).await?];
                subjects.extend(sub.as_ref().map(|s| s.id));
                let ledger = levqor.ledger_of(&subjects).await?;
                (sub.is_some() || !ledger.is_empty())
                    .then(|| json!({"marketing": sub, "ledger": ledger}))
            }
            Builtin::Objections => non_empty(to_values(&store.list_objections(user.id).await?)),
            Builtin::Terms => non_empty(to_values(&store.list_acceptances(user.id).await?)),
            Builtin::Events => {
                let mut out = Vec::new();
                let mut after = None;
                loop {
                    let page = store.list_events(user.id, after, 5000).await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id);
                    out.extend(to_values(&page));
                }
                non_empty(out)
            }
            Builtin::Screenings => {
                let mut out = Vec::new();
                let mut before = None;
                loop {
                    let page = store.list_screenings(Some(user.id), before, 1000).await?;
                    let Some(last) = page.last() else { break };
                    before = Some(last.id);
                    out.extend(to_values(&page));
                }
                non_empty(out)
            }
            // Messages and export records are the platform's own records about the user;
            // their content already appears in the other files.
            Builtin::Messages | Builtin::Exports => None,
        })
    }

    async fn erase(&self, levqor: &Levqor, user: &User, tombstone: Uuid) -> Result<AreaErasure> {
        let store = &levqor.store;
        let deleted = |n| AreaErasure {
            deleted: n,
            pseudonymized: 0,
        };
        Ok(match self {
            // The user row and keys go last, in `erase_user`, so a failure before leaves
            // the user able to retry.
            Builtin::Profile | Builtin::Keys => AreaErasure::default(),
            Builtin::Jobs => {
                let mut before = None;
                loop {
                    let page = store
                        .list_jobs(&JobFilter {
                            owner_id: Some(user.id),
                            status: None,
                            before,
                            limit: 1000,
                        })
                        .await?;
                    let Some(last) = page.last() else { break };
                    before = Some(last.id);
                    for job in page.iter().filter(|j| !j.status.is_terminal()) {
                        store.cancel_job(job.id, levqor.now()).await?;
                        levqor.signals.cancel(job.id);
                    }
                }
                deleted(
                    store
                        .erase_area(StoredArea::Jobs, user.id, &user.email)
                        .await?,
                )
            }
            Builtin::Usage => {
                levqor.quotas.drop_counts(user.id);
                deleted(store.erase_usage(user.id).await?)
            }
            Builtin::Billing => AreaErasure {
                deleted: store.erase_billing(user.id, tombstone).await?,
                pseudonymized: 0,
            },
            // The ledger is a record the law requires: it stays, under the tombstone.
            Builtin::Credits => AreaErasure {
                deleted: 0,
                pseudonymized: store.pseudonymize_credits(user.id, tombstone).await?,
            },
            Builtin::Consents => {
                let e = store
                    .erase_consents(user.id, &user.email, tombstone)
                    .await?;
                AreaErasure {
                    deleted: e.deleted,
                    pseudonymized: e.pseudonymized,
                }
            }
            // Objections and acceptances are erased with the consents, in one transaction.
            Builtin::Objections | Builtin::Terms => AreaErasure::default(),
            Builtin::Events => deleted(
                store
                    .erase_area(StoredArea::Events, user.id, &user.email)
                    .await?,
            ),
            Builtin::Screenings => deleted(
                store
                    .erase_area(StoredArea::Screenings, user.id, &user.email)
                    .await?,
            ),
            Builtin::Messages => deleted(
                store
                    .erase_area(StoredArea::Outbox, user.id, &user.email)
                    .await?,
            ),
            Builtin::Exports => deleted(
                store
                    .erase_area(StoredArea::Exports, user.id, &user.email)
                    .await?,
            ),
        })
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(e.to_string())
}

/// Builds a ZIP with one `<name>.json` per entry (deflated, pretty JSON).
pub fn build_zip(files: &[(String, Value)]) -> Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, value) in files {
        zip.start_file(format!("{name}.json"), options)
            .map_err(internal)?;
        let bytes = serde_json::to_vec_pretty(value).map_err(internal)?;
        zip.write_all(&bytes).map_err(internal)?;
    }
    Ok(zip.finish().map_err(internal)?.into_inner())
}

/// What a sweep did (or would do) per class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Only counted.
    pub dry_run: bool,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Rows per class.
    pub classes: BTreeMap<DataClass, u64>,
    /// Users whose data was kept for a legal hold.
    pub held_users: usize,
}

impl Levqor {
    /// Writes an audit record.
    pub(crate) async fn audit(
        &self,
        actor: Actor,
        action: &str,
        user_id: Option<Uuid>,
        detail: Value,
    ) -> Result<()> {
        self.store
            .append_audit(&AuditRecord {
                id: Uuid::now_v7(),
                at: self.now(),
                actor,
                action: action.into(),
                subject: user_id.map(consent::audit_subject),
                detail,
            })
            .await
    }

    /// Adds an area that holds personal data; export and erasure include it from now on.
    pub fn register_area(&mut self, area: Arc<dyn PersonalDataArea>) {
        self.areas.push(area);
    }

    /// The audit trail, newest first (admin).
    pub async fn audit_log(
        &self,
        who: &Principal,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<crate::Page<AuditRecord>> {
        who.require_admin()?;
        let page = crate::service::PageRequest::parse_or_fail(limit, cursor)?;
        let items = self.store.list_audit(page.before, page.limit + 1).await?;
        Ok(page.cut(items, |a| a.id))
    }

    /// Records analytics events for the caller, unless they object to analytics; how many
    /// were recorded.
    pub async fn record_events(
        &self,
        who: &Principal,
        events: &[(String, Value)],
    ) -> Result<usize> {
        let user = self.acting_user(who, None).await?;
        let mut bad = Vec::new();
        for (i, (name, props)) in events.iter().enumerate() {
            if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
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
            .consent_state(user.id)
            .await?
            .objects(ObjectionKind::Analytics)
        {
            return Ok(0);
        }
        let now = self.now();
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
        let user = self.acting_user(who, user_id).await?;
        let now = self.now();
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
        let mut files = Vec::new();
        for area in &self.areas {
            if let Some(data) = area.export(self, &user).await? {
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
        self.send_transactional(Email {
            to: user.email.clone(),
            subject: "Your data export".into(),
            body: format!(
                "Attached is a copy of the personal data we hold about you, one JSON file per area: {}.",
                areas.join(", ")
            ),
            job_id: None,
            attachments: vec![Attachment {
                filename: format!("levqor-export-{}.zip", now.format("%Y%m%d")),
                content_type: "application/zip".into(),
                content: zip,
            }],
        })
        .await?;
        self.store.record_export(&record).await?;
        self.audit(
            Actor::of(who),
            "export.sent",
            Some(user.id),
            json!({"export_id": record.id, "bytes": record.bytes, "areas": areas}),
        )
        .await?;
        Ok(record)
    }

    /// Erases a user: every area deletes or pseudonymizes its part, keys are revoked, queued
    /// jobs canceled, and an audit record without personal data is written. Erasing an erased
    /// user returns the first summary.
    pub async fn erase_user(&self, who: &Principal, user_id: Option<Uuid>) -> Result<Value> {
        who.require_scope("*")?;
        let id = match (who, user_id) {
            (_, Some(id)) => id,
            (Principal::User { user_id, .. }, None) => *user_id,
            (Principal::Admin, None) => {
                return self.acting_user(who, None).await.map(|_| json!({}));
            }
        };
        who.check_owner(id, "user")?;
        let Some(user) = self.store.get_user(id).await? else {
            let done = self
                .store
                .find_audit("user.erased", Some(&consent::audit_subject(id)))
                .await?;
            return match done.into_iter().next() {
                Some(record) => {
                    let mut summary = record.detail;
                    summary["already_erased"] = json!(true);
                    Ok(summary)
                }
                None => Err(Error::not_found("user")),
            };
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
        let tombstone = Uuid::new_v4();
        let mut areas = Map::new();
        for area in &self.areas {
            let done = area.erase(self, &user, tombstone).await?;
            areas.insert(
                area.name().into(),
                serde_json::to_value(done).map_err(internal)?,
            );
        }
        let keys = self.store.list_keys(user.id).await?;
        for key in &keys {
            self.store.revoke_key(key.id, self.now()).await?;
            self.keys.forget_key(key.id);
        }
        self.store.delete_user(user.id).await?;
        self.consent_cache.forget(user.id);
        areas.insert("profile".into(), json!({"deleted": 1, "pseudonymized": 0}));
        areas.insert(
            "keys".into(),
            json!({"deleted": keys.len(), "pseudonymized": 0}),
        );
        let summary = json!({
            "erased": true,
            "tombstone": tombstone,
            "erased_at": self.now(),
            "areas": areas,
        });
        self.audit(
            Actor::of(who),
            "user.erased",
            Some(user.id),
            summary.clone(),
        )
        .await?;
        tracing::info!(user = %consent::audit_subject(user.id), "user erased");
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
        self.get_user(who, user_id).await?;
        if reason.trim().is_empty() || reason.len() > 500 {
            return Err(Error::violations(
                "validation_failed",
                "a hold needs a reason",
                vec![Violation::new("/reason", "must be 1 to 500 characters")],
            ));
        }
        let hold = LegalHold {
            user_id,
            reason: reason.trim().into(),
            created_at: self.now(),
        };
        self.store.set_legal_hold(&hold).await?;
        self.audit(Actor::Admin, "legal_hold.placed", Some(user_id), json!({}))
            .await?;
        Ok(hold)
    }

    /// Lifts a legal hold (admin).
    pub async fn clear_legal_hold(&self, who: &Principal, user_id: Uuid) -> Result<()> {
        who.require_admin()?;
        if !self.store.clear_legal_hold(user_id).await? {
            return Err(Error::not_found("legal hold"));
        }
        self.audit(Actor::Admin, "legal_hold.lifted", Some(user_id), json!({}))
            .await
    }

    /// The retention policies in force.
    pub async fn retention_policies(&self, who: &Principal) -> Result<RetentionPolicies> {
        who.require_admin()?;
        self.load_policies().await
    }

    async fn load_policies(&self) -> Result<RetentionPolicies> {
        load_policies(self.store.as_ref()).await
    }

    /// Changes retention policies (admin); classes left out keep their value.
    pub async fn set_retention_policies(
        &self,
        who: &Principal,
        body: &Map<String, Value>,
    ) -> Result<RetentionPolicies> {
        who.require_admin()?;
        let policies = self.load_policies().await?.merged(body)?;
        let value = serde_json::to_value(&policies).map_err(internal)?;
        self.store.put_setting(POLICIES_KEY, &value).await?;
        self.audit(Actor::Admin, "retention.policies_changed", None, value)
            .await?;
        Ok(policies)
    }

    /// Runs the retention sweep (admin), or with `dry_run` reports what it would delete.
    pub async fn sweep_retention(&self, who: &Principal, dry_run: bool) -> Result<SweepReport> {
        who.require_admin()?;
        let report = self.run_sweep(dry_run).await?;
        if !dry_run {
            self.audit(
                Actor::Admin,
                "retention.swept",
                None,
                serde_json::to_value(&report).map_err(internal)?,
            )
            .await?;
        }
        Ok(report)
    }

    async fn run_sweep(&self, dry_run: bool) -> Result<SweepReport> {
        run_sweep(self.store.as_ref(), self.now(), dry_run).await
    }

    /// The compliance dashboard (admin).
    pub async fn compliance(&self, who: &Principal) -> Result<Value> {
        who.require_admin()?;
        let now = self.now();
        let versions = self.store.list_terms().await?;
        let current = consent::terms_status(&versions, None, now).current_version;
        let stats = self.store.consent_stats(current.as_deref()).await?;
        let rate = if stats.users == 0 {
            0.0
        } else {
            stats.accepted_current as f64 / stats.users as f64
        };
        let mut blocks: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut verdicts: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut appeals: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut before = None;
        loop {
            let page = self.store.list_screenings(None, before, 1000).await?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            for r in &page {
                *verdicts.entry(r.screening.verdict.as_str()).or_default() += 1;
                if let Some(a) = r.appeal_status {
                    *appeals.entry(a.as_str()).or_default() += 1;
                }
                for m in &r.screening.matches {
                    *blocks
                        .entry(m.category.as_str().to_string())
                        .or_default()
                        .entry(m.severity.as_str().to_string())
                        .or_default() += 1;
                }
            }
        }
        let by_cat = |v: &[(Category, u64)]| -> Map<String, Value> {
            v.iter()
                .map(|(c, n)| (c.as_str().to_string(), json!(n)))
                .collect()
        };
        let exports = self.store.find_audit("export.sent", None).await?.len();
        let erasures = self.store.find_audit("user.erased", None).await?.len();
        Ok(json!({
            "terms": {
                "current_version": current,
                "users": stats.users,
                "accepted_current": stats.accepted_current,
                "acceptance_rate": rate,
            },
            "marketing": {
                "subscribed_by_category": by_cat(&stats.subscribed_by_category),
                "by_status": stats.subscriptions_by_status.iter()
                    .map(|(s, n)| (s.as_str().to_string(), json!(n)))
                    .collect::<Map<String, Value>>(),
            },
            "objections": stats.objections_by_kind.iter()
                .map(|(k, n)| (k.as_str().to_string(), json!(n)))
                .collect::<Map<String, Value>>(),
            "screening": {
                "verdicts": verdicts,
                "matches_by_category_and_severity": blocks,
                "appeals": appeals,
            },
            "exports": exports,
            "erasures": erasures,
            "legal_holds": self.store.legal_holds().await?.len(),
        }))
    }
}

async fn load_policies(store: &dyn Store) -> Result<RetentionPolicies> {
    Ok(match store.get_setting(POLICIES_KEY).await? {
        Some(Value::Object(map)) => RetentionPolicies::default().merged(&map)?,
        _ => RetentionPolicies::default(),
    })
}

/// The sweep, shared by the admin route and the daily system job: per class, what is older
/// than its retention goes, except what belongs to a user under a legal hold.
async fn run_sweep(store: &dyn Store, now: DateTime<Utc>, dry_run: bool) -> Result<SweepReport> {
    let policies = load_policies(store).await?;
    let holds = store.legal_holds().await?;
    let mut held = Held::default();
    for h in &holds {
        held.user_ids.push(h.user_id);
        if let Some(u) = store.get_user(h.user_id).await? {
            held.emails.push(u.email);
        }
    }
    let mut classes = BTreeMap::new();
    for class in DataClass::ALL {
        let cutoff = now - Duration::days(policies.days(class));
        classes.insert(class, store.sweep(class, cutoff, &held, dry_run).await?);
    }
    Ok(SweepReport {
        dry_run,
        at: now,
        classes,
        held_users: holds.len(),
    })
}

/// The daily retention sweep, run by the engine as a system job.
pub(crate) struct RetentionSweepTask {
    store: Arc<dyn Store>,
}

impl RetentionSweepTask {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl SystemTask for RetentionSweepTask {
    fn name(&self) -> &'static str {
        "retention_sweep"
    }

    fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(24 * 3600)
    }

    async fn run(&self, now: DateTime<Utc>) -> std::result::Result<Value, StepFailure> {
        let failed = |e: Error| StepFailure::retryable(format!("retention sweep: {}", e.message));
        let report = run_sweep(self.store.as_ref(), now, false)
            .await
            .map_err(failed)?;
        let detail =
            serde_json::to_value(&report).map_err(|e| StepFailure::permanent(e.to_string()))?;
        self.store
            .append_audit(&AuditRecord {
                id: Uuid::now_v7(),
                at: now,
                actor: Actor::System,
                action: "retention.swept".into(),
                subject: None,
                detail: detail.clone(),
            })
            .await
            .map_err(failed)?;
        Ok(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_hold_one_json_file_per_area() {
        let zip = build_zip(&[
            ("profile".into(), json!({"a": 1})),
            ("events".into(), json!([1, 2])),
        ])
        .unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().to_string())
            .collect();
        assert_eq!(names, ["profile.json", "events.json"]);
        let mut s = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("events.json").unwrap(), &mut s)
            .unwrap();
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), json!([1, 2]));
    }

    #[test]
    fn policies_merge_and_refuse_unknown_classes() {
        let p = RetentionPolicies::default();
        let body = json!({"events": 10}).as_object().unwrap().clone();
        assert_eq!(p.merged(&body).unwrap().days(DataClass::Events), 10);
        let body = json!({"events": 0, "logs": 5}).as_object().unwrap().clone();
        let err = p.merged(&body).unwrap_err();
        assert_eq!(err.violations.len(), 2);
    }
}
