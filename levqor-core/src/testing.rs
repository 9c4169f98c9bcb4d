//! Fixtures for the domain services' unit tests: the shared ports over one in-memory store, a
//! clock that stands still, and constructors of each service with only what it needs.

use crate::audit::AuditLog;
use crate::auth::Principal;
use crate::billing::{Billing, BillingConfig, BillingPolicy, Suspensions};
use crate::clock::ManualClock;
use crate::consent::{Consent, ConsentCache};
use crate::credits::{Credits, Pricing};
use crate::jobs::Jobs;
use crate::jobs::intake::IntakeStage;
use crate::jobs::steps::{HttpClient, HttpRequest, HttpResponse, StepFailure, StepRunner};
use crate::jobs::workflow::WorkflowSchema;
use crate::memory::MemoryStore;
use crate::notify::{Messages, Notifier, OutboxNotifier};
use crate::personal_data::Areas;
use crate::privacy::{Privacy, Retention};
use crate::quotas::Quotas;
use crate::users::{User, Users};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use std::sync::{Arc, RwLock};

/// 2026-11-02 09:00 UTC.
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

/// An `http_request` step's client without a network: every request fails for good.
struct Offline;

#[async_trait]
impl HttpClient for Offline {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, StepFailure> {
        Err(StepFailure::permanent("offline"))
    }
}

/// The ports every service shares, over one in-memory store.
pub(crate) struct Base {
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) users: Arc<Users>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) messages: Arc<Messages>,
    pub(crate) areas: Arc<Areas>,
}

impl Base {
    /// Email lands in the store's outbox.
    pub(crate) fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        Self::with_notifier(store.clone(), Arc::new(OutboxNotifier::new(store)))
    }

    /// Email goes through `notifier` (a mock, to make sending fail).
    pub(crate) fn with_notifier(store: Arc<MemoryStore>, notifier: Arc<dyn Notifier>) -> Self {
        let clock = Arc::new(ManualClock::new(t0()));
        let audit = Arc::new(AuditLog::new(store.clone(), clock.clone()));
        Self {
            users: Arc::new(Users::new(store.clone(), clock.clone(), Some("admin"))),
            audit: audit.clone(),
            messages: Arc::new(Messages::new(notifier, store.clone(), audit, clock.clone())),
            areas: Arc::new(Areas::default()),
            store,
            clock,
        }
    }

    /// A new user and a principal holding their all-scopes key.
    pub(crate) async fn user(&self, email: &str) -> (User, Principal) {
        let user = self
            .users
            .create(&Principal::Admin, email, Some("Test Person"))
            .await
            .unwrap()
            .user()
            .clone();
        let key = self
            .users
            .create_key(&Principal::Admin, user.id, None)
            .await
            .unwrap();
        let who = self.users.authenticate(&key.secret).await.unwrap();
        (user, who)
    }

    /// The consent service.
    pub(crate) fn consent(&self) -> Consent {
        Consent {
            store: self.store.clone(),
            settings: self.store.clone(),
            users: self.users.clone(),
            messages: self.messages.clone(),
            audit: self.audit.clone(),
            areas: Arc::downgrade(&self.areas),
            cache: Arc::new(ConsentCache::new(self.store.clone())),
            clock: self.clock.clone(),
            public_url: "https://levqor.test".into(),
        }
    }

    /// The credits service, with the built-in step types' schema.
    pub(crate) fn credits(&self) -> Credits {
        Credits {
            store: self.store.clone(),
            jobs: self.store.clone(),
            users: self.users.clone(),
            audit: self.audit.clone(),
            schema: Arc::new(WorkflowSchema::new(&[])),
            pricing: Arc::new(Pricing::new(self.store.clone())),
            clock: self.clock.clone(),
        }
    }

    /// The quotas service on a single writer (counts kept in memory, flushed each second).
    pub(crate) fn quotas(&self) -> Quotas {
        Quotas::new(
            self.store.clone(),
            1,
            self.users.clone(),
            self.audit.clone(),
            self.clock.clone(),
        )
    }

    /// The billing service, with `config` when billing is configured.
    pub(crate) fn billing(&self, config: Option<BillingConfig>) -> Billing {
        Billing {
            store: self.store.clone(),
            credits: Arc::new(self.credits()),
            quotas: Arc::new(self.quotas()),
            users: self.users.clone(),
            messages: self.messages.clone(),
            audit: self.audit.clone(),
            suspensions: Arc::new(Suspensions::new(self.store.clone())),
            clock: self.clock.clone(),
            config,
            policy: RwLock::new(BillingPolicy::default()),
            public_url: "https://levqor.test".into(),
        }
    }

    /// The privacy service over `consent`, exporting and erasing the registered areas.
    pub(crate) fn privacy(&self, consent: Arc<Consent>) -> Privacy {
        Privacy {
            store: self.store.clone(),
            users: self.users.clone(),
            consent,
            screenings: self.store.clone(),
            areas: self.areas.clone(),
            retention: Arc::new(Retention {
                store: self.store.clone(),
                settings: self.store.clone(),
                users: self.store.clone(),
            }),
            messages: self.messages.clone(),
            audit: self.audit.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The jobs service: validation, then `stages`, admitting one batch at a time; steps run
    /// offline (no HTTP) and email lands in the outbox.
    pub(crate) fn jobs(&self, stages: Vec<Arc<dyn IntakeStage>>) -> Jobs {
        let notifier = Arc::new(OutboxNotifier::new(self.store.clone()));
        let runner = Arc::new(StepRunner::new(Arc::new(Offline), notifier, Vec::new()));
        Jobs::new(
            self.store.clone(),
            self.clock.clone(),
            runner,
            Arc::new(WorkflowSchema::new(&[])),
            stages,
            1,
            self.audit.clone(),
        )
    }
}
