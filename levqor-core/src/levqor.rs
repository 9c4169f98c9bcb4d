//! [`Levqor`]: the container of the domain services, built by [`LevqorBuilder`]. It holds no
//! rule: adapters call the services (`levqor.jobs().submit(..)`), and the builder is the one
//! place that knows how the domains are wired together (which intake stages run in which order,
//! which personal-data areas export in which order, which system tasks the engine runs).

use crate::audit::AuditLog;
use crate::auth::Principal;
use crate::billing::{
    Billing, BillingArea, BillingConfig, BillingPolicy, DunningTask, SuspensionStage, Suspensions,
};
use crate::clock::{Clock, SystemClock};
use crate::consent::{
    Consent, ConsentCache, ConsentStage, ConsentsArea, ObjectionsArea, TermsArea,
};
use crate::credits::{Credits, CreditsArea, PriceStage, Pricing, PricingPolicy, SignupGrant};
use crate::error::{Error, Result};
use crate::jobs::engine::{EngineConfig, EngineHandle};
use crate::jobs::intake::IntakeStage;
use crate::jobs::steps::StepRunner;
use crate::jobs::workflow::WorkflowSchema;
use crate::jobs::{Jobs, JobsArea};
use crate::notify::{Channel, DispatchConfig, Dispatcher, Messages, MessagesArea, Templates};
use crate::personal_data::{Areas, PersonalDataArea};
use crate::privacy::{EventsArea, ExportsArea, Privacy, Retention, RetentionSweepTask};
use crate::quotas::{PublicLimiter, QuotaStatus, Quotas, Tier, UsageArea};
use crate::screening::{RuleCache, ScreenStage, Screenings, ScreeningsArea};
use crate::store::Store;
use crate::users::{KeysArea, ProfileArea, Users};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The Levqor service: one domain service per area, over one store.
pub struct Levqor {
    store: Arc<dyn Store>,
    users: Arc<Users>,
    jobs: Arc<Jobs>,
    screenings: Arc<Screenings>,
    consent: Arc<Consent>,
    credits: Arc<Credits>,
    quotas: Arc<Quotas>,
    billing: Arc<Billing>,
    privacy: Arc<Privacy>,
    messages: Arc<Messages>,
    public_limit: PublicLimiter,
    clock: Arc<dyn Clock>,
    channels: Vec<Arc<dyn Channel>>,
    dispatch: DispatchConfig,
}

/// The caller behind an API key, and where they stand against their monthly quota: reported
/// whether or not the call is admitted, so that a refused call still says when to come back.
#[derive(Debug)]
pub struct Authorized {
    /// The caller, or why the call is refused (`Unauthenticated`, `Limit` `quota_exceeded`).
    pub caller: Result<Principal>,
    /// The quota after counting this call (`None` for the admin and for unknown keys).
    pub quota: Option<QuotaStatus>,
}

impl Levqor {
    /// A builder over `store`, running workflow steps with `runner`.
    pub fn builder(store: Arc<dyn Store>, runner: Arc<StepRunner>) -> LevqorBuilder {
        LevqorBuilder::new(store, runner)
    }

    /// Users, keys and authentication.
    pub fn users(&self) -> &Arc<Users> {
        &self.users
    }

    /// Jobs and the engine.
    pub fn jobs(&self) -> &Arc<Jobs> {
        &self.jobs
    }

    /// Content screening, its rules and appeals.
    pub fn screenings(&self) -> &Arc<Screenings> {
        &self.screenings
    }

    /// Terms, marketing consent, objections and the consent ledger.
    pub fn consent(&self) -> &Arc<Consent> {
        &self.consent
    }

    /// Credits, the ledger and quotes.
    pub fn credits(&self) -> &Arc<Credits> {
        &self.credits
    }

    /// Tiers, API quotas and usage.
    pub fn quotas(&self) -> &Arc<Quotas> {
        &self.quotas
    }

    /// Checkout, webhooks, dunning, discounts and the profitability ledger.
    pub fn billing(&self) -> &Arc<Billing> {
        &self.billing
    }

    /// Exports, erasure, retention, legal holds, the audit log and the compliance dashboard.
    pub fn privacy(&self) -> &Arc<Privacy> {
        &self.privacy
    }

    /// Outgoing email and the outbox.
    pub fn messages(&self) -> &Arc<Messages> {
        &self.messages
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The door of every adapter: the caller behind `key` (from [`crate::auth::key_from`]),
    /// with the call counted against their monthly quota. A call past the quota is refused
    /// with `Limit` `quota_exceeded`; a missing or unknown key with `Unauthenticated`.
    pub async fn authorize(&self, key: Option<&str>) -> Authorized {
        let Some(key) = key else {
            return Authorized {
                caller: Err(Error::unauthenticated(
                    "send an API key as `Authorization: Bearer <key>` or `X-Api-Key: <key>`",
                )),
                quota: None,
            };
        };
        let who = match self.users.authenticate(key).await {
            Ok(who) => who,
            Err(e) => {
                return Authorized {
                    caller: Err(e),
                    quota: None,
                };
            }
        };
        match self.quotas.meter(&who).await {
            Ok(quota) => Authorized {
                caller: match &quota {
                    Some(q) => q.check().map(|()| who),
                    None => Ok(who),
                },
                quota,
            },
            Err(e) => Authorized {
                caller: Err(e),
                quota: None,
            },
        }
    }

    /// Counts a call that needs no key (marketing sign-up and status) from `ip`; `Limit`
    /// `rate_limited` past the public rate.
    pub fn limit_public(&self, ip: Option<IpAddr>) -> Result<()> {
        self.public_limit.check(ip)
    }

    /// Whether the database answers.
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await
    }

    /// Starts a worker pool in this process; credit holds of ended jobs are settled within
    /// about a second for as long as it runs.
    /// With a delivery channel configured, the node's outbox dispatcher runs with it.
    pub fn start_engine(&self, config: EngineConfig) -> EngineHandle {
        let node = config.node.clone();
        let mut handle = self.jobs.start_engine(config);
        handle.add_background(tokio::spawn(self.credits.clone().settle_every_second()));
        if let Some(dispatcher) = self.dispatcher(&node) {
            handle.set_dispatcher(dispatcher.start());
        }
        handle
    }

    /// A dispatcher of the outbox through the configured channels, as node `node` (`None`
    /// without a channel: the outbox only keeps messages). [`start_engine`](Self::start_engine)
    /// runs one; an embedder without an engine can drive [`Dispatcher::tick`] itself.
    pub fn dispatcher(&self, node: &str) -> Option<Arc<Dispatcher>> {
        (!self.channels.is_empty()).then(|| {
            Arc::new(Dispatcher::new(
                self.store.clone(),
                self.channels.clone(),
                self.clock.clone(),
                DispatchConfig {
                    node: node.to_string(),
                    ..self.dispatch.clone()
                },
            ))
        })
    }
}

/// Configures and wires a [`Levqor`].
pub struct LevqorBuilder {
    store: Arc<dyn Store>,
    runner: Arc<StepRunner>,
    clock: Arc<dyn Clock>,
    admin_key: Option<String>,
    public_url: String,
    signup_grant: i64,
    billing: Option<BillingConfig>,
    billing_policy: BillingPolicy,
    pricing_policy: PricingPolicy,
    tiers: Option<Vec<Tier>>,
    default_tier: Option<String>,
    dunning_every: Option<Duration>,
    public_rate_per_minute: u32,
    stages: Vec<Arc<dyn IntakeStage>>,
    areas: Vec<Arc<dyn PersonalDataArea>>,
    channels: Vec<Arc<dyn Channel>>,
    dispatch: DispatchConfig,
    templates: Option<Templates>,
    resend_webhook_secret: Option<String>,
}

impl LevqorBuilder {
    /// A builder with the defaults: the system clock, no admin key, no billing provider, no
    /// sign-up grant, `http://127.0.0.1:8080` in links.
    pub fn new(store: Arc<dyn Store>, runner: Arc<StepRunner>) -> Self {
        Self {
            store,
            runner,
            clock: Arc::new(SystemClock),
            admin_key: None,
            public_url: "http://127.0.0.1:8080".into(),
            signup_grant: 0,
            billing: None,
            billing_policy: BillingPolicy::default(),
            pricing_policy: PricingPolicy::default(),
            tiers: None,
            default_tier: None,
            dunning_every: None,
            public_rate_per_minute: 10,
            stages: Vec::new(),
            areas: Vec::new(),
            channels: Vec::new(),
            dispatch: DispatchConfig::default(),
            templates: None,
            resend_webhook_secret: None,
        }
    }

    /// The signing secret of Resend's webhook (`whsec_…`): bounces and complaints it reports
    /// suppress addresses. Without it the webhook answers `webhook_not_configured`.
    pub fn resend_webhook_secret(mut self, secret: Option<&str>) -> Self {
        self.resend_webhook_secret = secret.map(str::to_string);
        self
    }

    /// The email templates (default: the built-in ones; see [`Templates::new`] for overrides).
    pub fn templates(mut self, templates: Templates) -> Self {
        self.templates = Some(templates);
        self
    }

    /// Adds a delivery channel (SMTP or Resend for `email`; Slack, Telegram, webhooks): the
    /// engine's dispatcher delivers the outbox's messages of its kind through it. Without one,
    /// messages stay in the outbox for the admin to read.
    pub fn channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channels.push(channel);
        self
    }

    /// How the outbox dispatcher batches, retries and gives up (its node name is the engine's).
    pub fn dispatch(mut self, config: DispatchConfig) -> Self {
        self.dispatch = config;
        self
    }

    /// Calls per minute one client address may make to the operations that need no key
    /// (marketing sign-up and status); 10 by default.
    pub fn public_rate_per_minute(mut self, calls: u32) -> Self {
        self.public_rate_per_minute = calls;
        self
    }

    /// Where time comes from.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The deployment's admin secret (`None` or empty: no admin).
    pub fn admin_key(mut self, key: Option<&str>) -> Self {
        self.admin_key = key.filter(|k| !k.is_empty()).map(str::to_string);
        self
    }

    /// The base URL of links in emails and of the default checkout return pages.
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = url.trim_end_matches('/').to_string();
        self
    }

    /// Credits every new user is granted (0: none).
    pub fn signup_grant(mut self, credits: i64) -> Self {
        self.signup_grant = credits.max(0);
        self
    }

    /// The payment provider and webhook secret.
    pub fn billing(mut self, config: BillingConfig) -> Self {
        self.billing = Some(config);
        self
    }

    /// Packs, dunning ladder, cost model and profit guard.
    pub fn billing_policy(mut self, policy: BillingPolicy) -> Self {
        self.billing_policy = policy;
        self
    }

    /// Step prices, load factor and performance bonus.
    pub fn pricing_policy(mut self, policy: PricingPolicy) -> Self {
        self.pricing_policy = policy;
        self
    }

    /// The developer tiers (default: sandbox, pro, enterprise).
    pub fn tiers(mut self, tiers: Vec<Tier>) -> Self {
        self.tiers = Some(tiers);
        self
    }

    /// The tier of users who have none set; [`build`](Self::build) refuses an unknown name.
    pub fn default_tier(mut self, name: &str) -> Self {
        self.default_tier = Some(name.to_string());
        self
    }

    /// Runs the dunning ladder as a system job every `period` (once per period across every
    /// node of the database), once an engine runs.
    pub fn dunning_every(mut self, period: Duration) -> Self {
        self.dunning_every = Some(period);
        self
    }

    /// Adds an intake stage, run after the built-in ones, just before admit.
    pub fn intake_stage(mut self, stage: Arc<dyn IntakeStage>) -> Self {
        self.stages.push(stage);
        self
    }

    /// Adds an area that holds personal data, exported and erased after the built-in ones.
    pub fn personal_data_area(mut self, area: Arc<dyn PersonalDataArea>) -> Self {
        self.areas.push(area);
        self
    }

    /// Wires the services. Must run inside a tokio runtime (group commit and the call counter
    /// start their tasks here). `Invalid` `unknown_tier` when the default tier is not a tier.
    pub fn build(self) -> Result<Levqor> {
        let Self {
            store,
            runner,
            clock,
            admin_key,
            public_url,
            signup_grant,
            billing,
            billing_policy,
            pricing_policy,
            tiers,
            default_tier,
            dunning_every,
            public_rate_per_minute,
            stages: extra_stages,
            areas: extra_areas,
            channels,
            dispatch,
            templates,
            resend_webhook_secret,
        } = self;
        let templates = Arc::new(templates.unwrap_or_default());
        runner.set_templates(templates.clone());
        let audit = Arc::new(AuditLog::new(store.clone(), clock.clone()));
        let messages = Arc::new(
            Messages::new(
                runner.notifier().clone(),
                store.clone(),
                audit.clone(),
                clock.clone(),
            )
            .with_templates(templates)
            .with_resend_webhook_secret(resend_webhook_secret),
        );
        let mut users = Users::new(store.clone(), clock.clone(), admin_key.as_deref());
        if signup_grant > 0 {
            users.listen(Arc::new(SignupGrant::new(store.clone(), signup_grant)));
        }
        let users = Arc::new(users);
        let channel_names: Vec<String> = channels.iter().map(|c| c.channel().to_string()).collect();
        let schema = Arc::new(WorkflowSchema::with_channels(
            &runner.connector_schemas(),
            &channel_names,
        ));

        // Intake: validate (always first) → screen → suspension → consent → price → custom.
        let rules = Arc::new(RuleCache::new(store.clone()));
        let suspensions = Arc::new(Suspensions::new(store.clone()));
        let consent_cache = Arc::new(ConsentCache::new(store.clone()));
        let pricing = Arc::new(Pricing::new(store.clone()));
        pricing.set_policy(pricing_policy);
        let mut stages: Vec<Arc<dyn IntakeStage>> = vec![
            Arc::new(ScreenStage::new(rules.clone(), store.clone())),
            Arc::new(SuspensionStage(suspensions.clone())),
            Arc::new(ConsentStage::new(consent_cache.clone())),
            Arc::new(PriceStage(pricing.clone())),
        ];
        stages.extend(extra_stages);
        let jobs = Arc::new(
            Jobs::new(
                store.clone(),
                clock.clone(),
                runner.clone(),
                schema.clone(),
                stages,
                store.write_parallelism(),
                audit.clone(),
            )
            .with_outbox(store.clone()),
        );

        let credits = Arc::new(Credits {
            store: store.clone(),
            jobs: store.clone(),
            users: users.clone(),
            audit: audit.clone(),
            schema,
            pricing,
            clock: clock.clone(),
        });
        let quotas = Arc::new(Quotas::new(
            store.clone(),
            store.write_parallelism(),
            users.clone(),
            audit.clone(),
            clock.clone(),
        ));
        if let Some(tiers) = tiers {
            quotas.set_tiers(tiers);
        }
        if let Some(name) = default_tier {
            quotas.set_default_tier(&name)?;
        }
        let areas = Arc::new(Areas::default());
        let consent = Arc::new(Consent {
            store: store.clone(),
            settings: store.clone(),
            users: users.clone(),
            messages: messages.clone(),
            audit: audit.clone(),
            areas: Arc::downgrade(&areas),
            cache: consent_cache,
            clock: clock.clone(),
            public_url: public_url.clone(),
        });
        let billing = Arc::new(Billing {
            store: store.clone(),
            credits: credits.clone(),
            quotas: quotas.clone(),
            users: users.clone(),
            messages: messages.clone(),
            audit: audit.clone(),
            suspensions,
            clock: clock.clone(),
            config: billing,
            policy: RwLock::new(billing_policy),
            public_url,
        });
        let screenings = Arc::new(Screenings {
            store: store.clone(),
            settings: store.clone(),
            rules,
            jobs: jobs.clone(),
            credits: credits.clone(),
            users: store.clone(),
            messages: messages.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
        });
        let retention = Arc::new(Retention {
            store: store.clone(),
            settings: store.clone(),
            users: store.clone(),
        });
        let privacy = Arc::new(Privacy {
            store: store.clone(),
            users: users.clone(),
            consent: consent.clone(),
            screenings: store.clone(),
            areas: areas.clone(),
            retention: retention.clone(),
            messages: messages.clone(),
            audit: audit.clone(),
            clock: clock.clone(),
        });

        let tasks = runner.system_tasks();
        tasks.register(Arc::new(RetentionSweepTask { retention, audit }));
        if let Some(period) = dunning_every {
            tasks.register(Arc::new(DunningTask {
                billing: billing.clone(),
                period,
            }));
        }

        // Export and erasure walk the areas in this order (the export's file order).
        let builtin: [Arc<dyn PersonalDataArea>; 13] = [
            Arc::new(ProfileArea(store.clone())),
            Arc::new(KeysArea(store.clone())),
            Arc::new(JobsArea(jobs.clone())),
            Arc::new(CreditsArea(store.clone())),
            Arc::new(UsageArea(quotas.clone())),
            Arc::new(BillingArea(store.clone())),
            Arc::new(ConsentsArea(consent.clone())),
            Arc::new(ObjectionsArea(store.clone())),
            Arc::new(TermsArea(store.clone())),
            Arc::new(EventsArea(store.clone())),
            Arc::new(ScreeningsArea(store.clone())),
            Arc::new(MessagesArea(store.clone())),
            Arc::new(ExportsArea(store.clone())),
        ];
        for area in builtin.into_iter().chain(extra_areas) {
            areas.register(area);
        }

        Ok(Levqor {
            store,
            users,
            jobs,
            screenings,
            consent,
            credits,
            quotas,
            billing,
            privacy,
            messages,
            public_limit: PublicLimiter::new(public_rate_per_minute, Duration::from_secs(60)),
            clock,
            channels,
            dispatch,
        })
    }
}
