//! The compliance dashboard: terms acceptance, marketing consent, objections, screening
//! verdicts and appeals, exports, erasures and legal holds, counted across the deployment.

use super::Privacy;
use crate::auth::Principal;
use crate::consent::terms_status;
use crate::error::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counts by name.
pub type Counts = BTreeMap<String, u64>;

/// Terms acceptance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TermsCounts {
    /// The version in effect.
    pub current_version: Option<String>,
    /// Users.
    pub users: u64,
    /// Users who accepted the current version.
    pub accepted_current: u64,
    /// `accepted_current / users` (0 without users).
    pub acceptance_rate: f64,
}

/// Marketing consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketingCounts {
    /// Confirmed consents per category.
    pub subscribed_by_category: Counts,
    /// Consents per status.
    pub by_status: Counts,
}

/// Screening outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScreeningCounts {
    /// Recorded screenings per verdict.
    pub verdicts: Counts,
    /// Matches per category, then per severity.
    pub matches_by_category_and_severity: BTreeMap<String, Counts>,
    /// Appeals per status.
    pub appeals: Counts,
}

/// The compliance dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplianceDashboard {
    /// Terms acceptance.
    pub terms: TermsCounts,
    /// Marketing consent.
    pub marketing: MarketingCounts,
    /// Standing objections per kind.
    pub objections: Counts,
    /// Screening outcomes.
    pub screening: ScreeningCounts,
    /// Exports sent.
    pub exports: usize,
    /// Users erased.
    pub erasures: usize,
    /// Legal holds in place.
    pub legal_holds: usize,
}

fn counts<K>(items: &[(K, u64)], name: impl Fn(&K) -> &'static str) -> Counts {
    items
        .iter()
        .map(|(k, n)| (name(k).to_string(), *n))
        .collect()
}

impl Privacy {
    /// The compliance dashboard (admin).
    pub async fn compliance(&self, who: &Principal) -> Result<ComplianceDashboard> {
        who.require_admin()?;
        let now = self.clock.now_micros();
        let consent = self.consent.store();
        let versions = consent.list_terms().await?;
        let current = terms_status(&versions, None, now).current_version;
        let stats = consent.consent_stats(current.as_deref()).await?;
        let rate = if stats.users == 0 {
            0.0
        } else {
            stats.accepted_current as f64 / stats.users as f64
        };
        let mut screening = ScreeningCounts {
            verdicts: Counts::new(),
            matches_by_category_and_severity: BTreeMap::new(),
            appeals: Counts::new(),
        };
        let mut before = None;
        loop {
            let page = self.screenings.list_screenings(None, before, 1000).await?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            for r in &page {
                *screening
                    .verdicts
                    .entry(r.screening.verdict.as_str().into())
                    .or_default() += 1;
                if let Some(a) = r.appeal_status {
                    *screening.appeals.entry(a.as_str().into()).or_default() += 1;
                }
                for m in &r.screening.matches {
                    *screening
                        .matches_by_category_and_severity
                        .entry(m.category.as_str().into())
                        .or_default()
                        .entry(m.severity.as_str().into())
                        .or_default() += 1;
                }
            }
        }
        let audit = self.audit.store();
        Ok(ComplianceDashboard {
            terms: TermsCounts {
                current_version: current,
                users: stats.users,
                accepted_current: stats.accepted_current,
                acceptance_rate: rate,
            },
            marketing: MarketingCounts {
                subscribed_by_category: counts(&stats.subscribed_by_category, |c| c.as_str()),
                by_status: counts(&stats.subscriptions_by_status, |s| s.as_str()),
            },
            objections: counts(&stats.objections_by_kind, |k| k.as_str()),
            screening,
            exports: audit.find_audit("export.sent", None).await?.len(),
            erasures: audit.find_audit("user.erased", None).await?.len(),
            legal_holds: self.store.legal_holds().await?.len(),
        })
    }
}
