//! [`Levqor`]: the facade every adapter calls. It authenticates, authorizes and applies the
//! rules; adapters only translate requests and errors.

use crate::auth::Principal;
use crate::billing::{BillingConfig, BillingPolicy, BillingStore};
use crate::clock::Clock;
use crate::consent::{ConsentCache, ConsentStage, ConsentState, ConsentStore};
use crate::error::{Error, Result, Violation};
use crate::jobs::engine::{self, EngineConfig, EngineHandle, EngineSignals};
use crate::jobs::intake::{Intake, IntakeStage, SubmitRequest, Submitted, ValidateStage};
use crate::jobs::model::{Job, JobStatus, StepRecord};
use crate::jobs::steps::StepRunner;
use crate::jobs::store::{JobFilter, JobStore};
use crate::jobs::workflow::{Workflow, WorkflowSchema};
use crate::notify::{Email, EmailKind, OutboxMessage, OutboxStore};
use crate::pricing::{CreditStore, EntryKind, LoadGauge, NewEntry, PriceStage, PricingPolicy};
use crate::privacy::{self, PersonalDataArea, PrivacyStore};
use crate::quotas::{QuotaStore, Quotas};
use crate::screening_stage::{ScreenStage, ScreeningRules};
use crate::users::{self, ApiKey, IssuedKey, Upserted, User, UserStore};
use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

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
{
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// `memory`, `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Concurrent admit batches the backend handles well (1 for a single writer).
    fn write_parallelism(&self) -> usize {
        1
    }
}

/// Most items one list call returns.
pub const MAX_PAGE: usize = 100;

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Changes to a user.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New email.
    pub email: Option<String>,
    /// New name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
}

/// One workflow step with its checkpoint, if it has one.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// The step's id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending` until recorded, then `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// The checkpoint, if any.
    #[serde(flatten)]
    pub record: Option<StepRecord>,
    /// Milliseconds it ran.
    pub duration_ms: Option<i64>,
}

/// The Levqor service.
pub struct Levqor {
    pub(crate) store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    schema: Arc<WorkflowSchema>,
    pub(crate) intake: Intake,
    runner: Arc<StepRunner>,
    pub(crate) signals: Arc<EngineSignals>,
    admin_key_hash: Option<String>,
    pub(crate) keys: KeyCache,
    pub(crate) consent_cache: Arc<ConsentCache>,
    pub(crate) screening: Arc<ScreeningRules>,
    pub(crate) areas: Vec<Arc<dyn PersonalDataArea>>,
    pub(crate) public_url: String,
    pub(crate) pricing: Arc<RwLock<Arc<PricingPolicy>>>,
    pub(crate) gauge: Arc<LoadGauge>,
    pub(crate) signup_grant: i64,
    pub(crate) quotas: Quotas,
    pub(crate) billing: Option<BillingConfig>,
    pub(crate) billing_policy: RwLock<BillingPolicy>,
}

/// Recently seen live keys, so that a busy client does not cost a database read per request.
/// An entry lives [`KEY_CACHE_TTL`]; revoking a key through this process drops it at once, and
/// a key revoked through another node stops working here within the TTL.
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: RwLock<HashMap<String, (Principal, Instant)>>,
}

/// How long a key lookup is trusted.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);
const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    fn get(&self, hash: &str) -> Option<Principal> {
        let entries = self.entries.read().expect("key cache lock");
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, hash: String, principal: Principal) {
        let mut entries = self.entries.write().expect("key cache lock");
        if entries.len() >= KEY_CACHE_MAX {
            entries.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
            if entries.len() >= KEY_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(hash, (principal, Instant::now()));
    }

    pub(crate) fn forget_key(&self, key_id: Uuid) {
        self.entries
            .write()
            .expect("key cache lock")
            .retain(|_, (p, _)| !matches!(p, Principal::User { key_id: k, .. } if *k == key_id));
    }
}

impl Levqor {
    /// A service over `store`, running steps with `runner`. `admin_key` is the deployment's
    /// admin secret, if any.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        runner: Arc<StepRunner>,
        admin_key: Option<&str>,
    ) -> Self {
        let schema = Arc::new(WorkflowSchema::new(&runner.connector_schemas()));
        let consent_cache = Arc::new(ConsentCache::new(store.clone()));
        let screening = Arc::new(ScreeningRules::new(store.clone()));
        let pricing = Arc::new(RwLock::new(Arc::new(PricingPolicy::default())));
        let gauge = Arc::new(LoadGauge::new(store.clone()));
        let store_for_quotas = store.clone();
        let stages: Vec<Arc<dyn IntakeStage>> = vec![
            Arc::new(ValidateStage::new(schema.clone())),
            Arc::new(ScreenStage::new(screening.clone(), store.clone())),
            Arc::new(ConsentStage::new(consent_cache.clone())),
            Arc::new(PriceStage {
                policy: pricing.clone(),
                gauge: gauge.clone(),
            }),
        ];
        let job_store: Arc<dyn JobStore> = store.clone();
        let intake = Intake::new(job_store, stages, store.write_parallelism());
        runner
            .system_tasks()
            .register(Arc::new(privacy::RetentionSweepTask::new(store.clone())));
        Self {
            store,
            clock,
            schema,
            intake,
            runner,
            signals: Arc::new(EngineSignals::default()),
            admin_key_hash: admin_key.filter(|k| !k.is_empty()).map(users::hash_secret),
            keys: KeyCache::default(),
            consent_cache,
            screening,
            areas: privacy::builtin_areas(),
            public_url: "http://127.0.0.1:8080".into(),
            pricing,
            gauge,
            signup_grant: 0,
            quotas: Quotas::new(store_for_quotas),
            billing: None,
            billing_policy: RwLock::new(BillingPolicy::default()),
        }
    }

    /// Checks a workflow against the schema.
    pub(crate) fn validate_workflow(&self, workflow: &Value) -> Result<Workflow> {
        self.schema.validate(workflow).map_err(|e| {
            Error::violations(
                "validation_failed",
                e.message,
                e.violations
                    .into_iter()
                    .map(|v| Violation::new(format!("/workflow{}", v.pointer), v.message))
                    .collect(),
            )
        })
    }

    /// Runs the dunning ladder as a system job every `period` (once per period across every
    /// node of the database), once an engine runs.
    pub fn schedule_dunning(self: &Arc<Self>, period: Duration) {
        self.runner
            .system_tasks()
            .register(Arc::new(crate::billing::DunningTask {
                levqor: Arc::downgrade(self),
                period,
            }));
    }

    /// The base URL of links in emails and of the default checkout return pages.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The base URL of links in emails (confirmation and unsubscribe links).
    pub fn set_public_url(&mut self, url: &str) {
        self.public_url = url.trim_end_matches('/').to_string();
    }

    /// Sends a transactional email through the notifier.
    pub(crate) async fn send_transactional(&self, email: Email) -> Result<()> {
        self.send_email(email, EmailKind::Transactional).await
    }

    /// Sends an email through the notifier. Addresses never reach the logs, only their hash.
    pub(crate) async fn send_email(&self, email: Email, kind: EmailKind) -> Result<()> {
        self.runner
            .notifier()
            .send_email(&email, kind, self.now())
            .await
            .inspect_err(|e| {
                tracing::warn!(to = %users::hash_secret(&email.to), code = e.code, "email not accepted");
            })
    }

    /// The user's consent facts, cached for a second.
    pub(crate) async fn consent_state(&self, user_id: Uuid) -> Result<ConsentState> {
        self.consent_cache.state(user_id, self.now()).await
    }

    /// The clock's time, to the microsecond: what every backend stores, so that a job returned
    /// at admission equals the job read back later.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        use chrono::DurationRound;
        let now = self.clock.now();
        now.duration_trunc(chrono::Duration::microseconds(1))
            .unwrap_or(now)
    }

    /// Adds an intake stage before admit.
    pub fn add_intake_stage(&mut self, stage: Arc<dyn IntakeStage>) {
        self.intake.push_stage(stage);
    }

    /// Starts a worker pool in this process.
    pub fn start_engine(&self, config: EngineConfig) -> EngineHandle {
        let mut handle = engine::start(
            self.store.clone(),
            self.runner.clone(),
            self.clock.clone(),
            self.signals.clone(),
            config,
        );
        let (store, clock) = (self.store.clone(), self.clock.clone());
        handle.add_background(tokio::spawn(async move {
            // Holds of ended jobs are settled (or released) within about a second.
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Err(e) = crate::pricing::settle(store.as_ref(), clock.now()).await {
                    tracing::warn!(error = %e, "settling credit holds failed");
                }
            }
        }));
        handle
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The published workflow JSON Schema.
    pub fn workflow_schema(&self) -> &Value {
        self.schema.document()
    }

    /// Whether the database answers.
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await
    }

    /// Who holds `secret`: the admin key or a live user key.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        let hash = users::hash_secret(secret.trim());
        if self
            .admin_key_hash
            .as_deref()
            .is_some_and(|admin| constant_time_eq(admin.as_bytes(), hash.as_bytes()))
        {
            return Ok(Principal::Admin);
        }
        if let Some(principal) = self.keys.get(&hash) {
            return Ok(principal);
        }
        match self.store.find_key_by_hash(&hash).await? {
            Some(key) => {
                let principal = Principal::User {
                    user_id: key.user_id,
                    key_id: key.id,
                    scopes: key.scopes,
                };
                self.keys.put(hash, principal.clone());
                Ok(principal)
            }
            None => Err(Error::unauthenticated("the API key is unknown or revoked")),
        }
    }

    /// Creates a user, or returns the one that has the email (admin only).
    pub async fn create_user(
        &self,
        who: &Principal,
        email: &str,
        name: Option<&str>,
    ) -> Result<Upserted> {
        who.require_admin()?;
        let email = users::normalize_email(email)?;
        let name = users::validate_name(name)?;
        let now = self.now();
        let upserted = self
            .store
            .upsert_user(User {
                id: Uuid::now_v7(),
                email,
                name,
                created_at: now,
                updated_at: now,
            })
            .await?;
        if self.signup_grant > 0 {
            // Keyed, so a retried create (or one that lost a race) grants once.
            let (Upserted::Created(u) | Upserted::Existing(u)) = &upserted;
            self.store
                .post_entry(&NewEntry {
                    user_id: u.id,
                    kind: EntryKind::Grant,
                    credits: self.signup_grant,
                    idempotency_key: "signup".into(),
                    reason: Some("sign-up grant".into()),
                    priority: 0,
                    expires_at: None,
                    now,
                })
                .await?;
        }
        Ok(upserted)
    }

    /// A user the caller may see.
    pub async fn get_user(&self, who: &Principal, id: Uuid) -> Result<User> {
        who.check_owner(id, "user")?;
        self.store
            .get_user(id)
            .await?
            .ok_or_else(|| Error::not_found("user"))
    }

    /// A user by email, if the caller may see them.
    pub async fn find_user(&self, who: &Principal, email: &str) -> Result<User> {
        let email = users::normalize_email(email)?;
        let user = self
            .store
            .find_user_by_email(&email)
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        who.check_owner(user.id, "user")?;
        Ok(user)
    }

    /// Changes a user's email or name.
    pub async fn update_user(&self, who: &Principal, id: Uuid, patch: UserPatch) -> Result<User> {
        let mut user = self.get_user(who, id).await?;
        if let Some(email) = patch.email {
            user.email = users::normalize_email(&email)?;
        }
        if let Some(name) = patch.name {
            user.name = users::validate_name(name.as_deref())?;
        }
        user.updated_at = self.now();
        self.store
            .update_user(&user)
            .await?
            .ok_or_else(|| Error::not_found("user"))
    }

    /// Issues a key for a user; the secret is in the result and nowhere else.
    pub async fn create_key(
        &self,
        who: &Principal,
        user_id: Uuid,
        scopes: Option<Vec<String>>,
    ) -> Result<IssuedKey> {
        who.require_scope("*")?;
        self.get_user(who, user_id).await?;
        let scopes = users::validate_scopes(scopes)?;
        let (issued, hash) = users::issue_key(user_id, scopes, self.now());
        self.store.insert_key(&issued.key, &hash).await?;
        Ok(issued)
    }

    /// A user's keys, without secrets.
    pub async fn list_keys(&self, who: &Principal, user_id: Uuid) -> Result<Vec<ApiKey>> {
        self.get_user(who, user_id).await?;
        self.store.list_keys(user_id).await
    }

    /// Revokes a key; it stops working at once.
    pub async fn revoke_key(&self, who: &Principal, key_id: Uuid) -> Result<ApiKey> {
        who.require_scope("*")?;
        let key = self
            .store
            .get_key(key_id)
            .await?
            .ok_or_else(|| Error::not_found("key"))?;
        who.check_owner(key.user_id, "key")?;
        let revoked = self
            .store
            .revoke_key(key_id, self.now())
            .await?
            .ok_or_else(|| Error::not_found("key"))?;
        self.keys.forget_key(key_id);
        Ok(revoked)
    }

    /// Runs intake for the caller's job.
    pub async fn submit_job(&self, who: &Principal, request: SubmitRequest) -> Result<Submitted> {
        who.require_scope("jobs:write")?;
        let owner = who.user_id().ok_or_else(|| {
            Error::forbidden(
                "user_key_required",
                "jobs belong to users: submit with a user's key",
            )
        })?;
        let submitted = self.intake.submit(owner, request, self.now()).await?;
        self.signals.wake();
        Ok(submitted)
    }

    /// A job the caller may see.
    pub async fn get_job(&self, who: &Principal, id: Uuid) -> Result<Job> {
        who.require_scope("jobs:read")?;
        let job = self
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| Error::not_found("job"))?;
        who.check_owner(job.owner_id, "job")?;
        Ok(job)
    }

    /// The caller's jobs (every job for the admin), newest first.
    pub async fn list_jobs(
        &self,
        who: &Principal,
        status: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<Job>> {
        who.require_scope("jobs:read")?;
        let mut bad = Vec::new();
        let status = match status {
            None => None,
            Some(s) => match JobStatus::parse(s) {
                Some(st) => Some(st),
                None => {
                    bad.push(Violation::new("/status", format!("unknown status {s:?}")));
                    None
                }
            },
        };
        let page = PageRequest::parse(limit, cursor, &mut bad);
        if !bad.is_empty() {
            return Err(Error::violations(
                "validation_failed",
                "bad query parameters",
                bad,
            ));
        }
        let filter = JobFilter {
            owner_id: who.user_id(),
            status,
            before: page.before,
            limit: page.limit + 1,
        };
        let items = self.store.list_jobs(&filter).await?;
        Ok(page.cut(items, |j| j.id))
    }

    /// Cancels a job: at once if it waits, at its next step boundary if it runs.
    pub async fn cancel_job(&self, who: &Principal, id: Uuid) -> Result<Job> {
        let job = self.get_job(who, id).await?;
        who.require_scope("jobs:write")?;
        if job.status.is_terminal() {
            return Err(Error::conflict(
                "invalid_transition",
                format!("the job is already {}", job.status.as_str()),
            ));
        }
        let job = self
            .store
            .cancel_job(id, self.now())
            .await?
            .ok_or_else(|| Error::not_found("job"))?;
        self.signals.cancel(id);
        Ok(job)
    }

    /// Every step of a job, with its checkpoint where it has one.
    pub async fn job_steps(&self, who: &Principal, id: Uuid) -> Result<Vec<StepView>> {
        let job = self.get_job(who, id).await?;
        let workflow = Workflow::parse(&job.workflow)?;
        let mut records = self.store.list_steps(id).await?;
        Ok(workflow
            .steps
            .into_iter()
            .map(|step| {
                let record = records
                    .iter()
                    .position(|r| r.step_id == step.id)
                    .map(|i| records.swap_remove(i));
                StepView {
                    id: step.id,
                    kind: step.kind,
                    status: record
                        .as_ref()
                        .map_or("pending", |r| r.status.as_str())
                        .to_string(),
                    duration_ms: record
                        .as_ref()
                        .map(|r| (r.finished_at - r.started_at).num_milliseconds()),
                    record,
                }
            })
            .collect())
    }

    /// The outbox, newest first (admin only).
    pub async fn list_outbox(
        &self,
        who: &Principal,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<OutboxMessage>> {
        who.require_admin()?;
        let mut bad = Vec::new();
        let page = PageRequest::parse(limit, cursor, &mut bad);
        if !bad.is_empty() {
            return Err(Error::violations(
                "validation_failed",
                "bad query parameters",
                bad,
            ));
        }
        let items = self.store.list_outbox(page.before, page.limit + 1).await?;
        Ok(page.cut(items, |m| m.id))
    }
}

/// `t` to the microsecond: what every backend stores.
pub(crate) fn micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::DurationRound;
    t.duration_trunc(chrono::Duration::microseconds(1))
        .unwrap_or(t)
}

/// A page asked for: how many, and the cursor (the last id of the previous page).
pub(crate) struct PageRequest {
    pub(crate) limit: usize,
    pub(crate) before: Option<Uuid>,
}

impl PageRequest {
    /// Reads `limit` and `cursor`; any problem is a `validation_failed` error.
    pub(crate) fn parse_or_fail(limit: Option<usize>, cursor: Option<&str>) -> Result<Self> {
        let mut bad = Vec::new();
        let page = Self::parse(limit, cursor, &mut bad);
        if bad.is_empty() {
            Ok(page)
        } else {
            Err(Error::violations(
                "validation_failed",
                "bad query parameters",
                bad,
            ))
        }
    }

    /// Reads `limit` (default 20, at most [`MAX_PAGE`]) and `cursor`, adding any problem to `bad`.
    fn parse(limit: Option<usize>, cursor: Option<&str>, bad: &mut Vec<Violation>) -> Self {
        let limit = limit.unwrap_or(20);
        if !(1..=MAX_PAGE).contains(&limit) {
            bad.push(Violation::new(
                "/limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        let before = cursor.and_then(|c| match Uuid::parse_str(c) {
            Ok(id) => Some(id),
            Err(_) => {
                bad.push(Violation::new(
                    "/cursor",
                    "is not a cursor this API returned",
                ));
                None
            }
        });
        Self { limit, before }
    }

    /// Cuts `items` (fetched with `limit + 1`) to the page and sets the next cursor.
    pub(crate) fn cut<T>(&self, mut items: Vec<T>, id: impl Fn(&T) -> Uuid) -> Page<T> {
        let next_cursor = if items.len() > self.limit {
            items.truncate(self.limit);
            items.last().map(|i| id(i).to_string())
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
