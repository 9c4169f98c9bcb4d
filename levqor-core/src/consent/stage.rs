//! What intake checks about consent on every job, cached briefly: the terms must be accepted,
//! and a user who objects to automation gets no automated jobs.

use super::{ConsentStore, ObjectionKind, TermsVersion, terms_status};
use crate::cache::TtlCache;
use crate::error::{Error, Result};
use crate::jobs::intake::{IntakeContext, IntakeStage};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A user's consent facts that intake checks on every job.
#[derive(Debug, Clone, Default)]
pub struct ConsentState {
    /// Kinds the user objects to.
    pub objections: Vec<ObjectionKind>,
    /// The user must accept the terms before submitting.
    pub must_accept_terms: bool,
}

impl ConsentState {
    /// Whether the user objects to `kind`.
    pub fn objects(&self, kind: ObjectionKind) -> bool {
        self.objections.contains(&kind)
    }
}

/// How long a user's consent facts are trusted by intake. A change made through this node is
/// seen at once (the entry is dropped); one made through another node within this time.
pub const CONSENT_CACHE_TTL: Duration = Duration::from_secs(1);

/// Users' consent facts and the published terms, cached for [`CONSENT_CACHE_TTL`], so that
/// intake does not read three tables per job.
pub(crate) struct ConsentCache {
    store: Arc<dyn ConsentStore>,
    users: TtlCache<Uuid, ConsentState>,
    terms: TtlCache<(), Vec<TermsVersion>>,
}

impl ConsentCache {
    pub(crate) fn new(store: Arc<dyn ConsentStore>) -> Self {
        Self {
            store,
            users: TtlCache::new(CONSENT_CACHE_TTL, 10_000),
            terms: TtlCache::new(CONSENT_CACHE_TTL, 1),
        }
    }

    /// Drops what is known of one user.
    pub(crate) fn forget(&self, user_id: Uuid) {
        self.users.remove(&user_id);
    }

    /// Drops the terms and every user's facts (a version was published).
    pub(crate) fn forget_terms(&self) {
        self.terms.clear();
        self.users.clear();
    }

    async fn terms(&self) -> Result<Vec<TermsVersion>> {
        if let Some(t) = self.terms.get(&()) {
            return Ok(t);
        }
        let t = self.store.list_terms().await?;
        self.terms.insert((), t.clone());
        Ok(t)
    }

    /// The user's consent facts at `now`.
    pub(crate) async fn state(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<ConsentState> {
        if let Some(s) = self.users.get(&user_id) {
            return Ok(s);
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
        let state = ConsentState {
            objections,
            must_accept_terms,
        };
        self.users.insert(user_id, state.clone());
        Ok(state)
    }
}

/// The intake stage that enforces consent.
pub(crate) struct ConsentStage {
    cache: Arc<ConsentCache>,
}

impl ConsentStage {
    pub(crate) fn new(cache: Arc<ConsentCache>) -> Self {
        Self { cache }
    }
}

#[async_trait]
impl IntakeStage for ConsentStage {
    fn name(&self) -> &'static str {
        "consent"
    }

    async fn check(&self, ctx: &mut IntakeContext) -> Result<()> {
        let state = self.cache.state(ctx.owner_id, ctx.now).await?;
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
