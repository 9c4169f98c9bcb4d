//! The profitability ledger: revenue, compute costs, referral payouts and margin per day, week
//! or month; and the profit guard, which allows scaling up only while the trailing margin
//! holds. Money is counted in millionths of a cent and shown in cents.

use super::{Billing, period_start};
use crate::auth::Principal;
use crate::credits::EntryKind;
use crate::error::{Error, Result, Violation};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Money in and out over some time, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProfitFigures {
    /// Revenue received.
    pub revenue_cents: f64,
    /// What the jobs' runtime cost the platform.
    pub cost_cents: f64,
    /// Referral rewards paid, at what a credit is worth.
    pub payouts_cents: f64,
    /// Revenue less cost and payouts.
    pub margin_cents: f64,
    /// The margin as a share of revenue (`None` without revenue).
    pub margin_pct: Option<f64>,
}

impl ProfitFigures {
    /// The figures of `[revenue, cost, payouts]` in millionths of a cent.
    fn of([revenue, cost, payouts]: [i64; 3]) -> Self {
        let margin = revenue - cost - payouts;
        Self {
            revenue_cents: revenue as f64 / 1e6,
            cost_cents: cost as f64 / 1e6,
            payouts_cents: payouts as f64 / 1e6,
            margin_cents: margin as f64 / 1e6,
            margin_pct: (revenue > 0).then(|| margin as f64 * 100.0 / revenue as f64),
        }
    }
}

/// One period of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfitPeriod {
    /// Where the period starts.
    pub period: DateTime<Utc>,
    /// Its figures.
    #[serde(flatten)]
    pub figures: ProfitFigures,
}

/// The profitability ledger of `[from, to)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfitLedger {
    /// From.
    pub from: DateTime<Utc>,
    /// To (excluded).
    pub to: DateTime<Utc>,
    /// `day`, `week` or `month`.
    pub group_by: String,
    /// The periods with any figure, oldest first.
    pub periods: Vec<ProfitPeriod>,
    /// The whole range.
    pub total: ProfitFigures,
}

/// The profit guard's answer, with the figures that decided it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutoscaleDecision {
    /// Whether scaling up is allowed.
    pub allowed: bool,
    /// Why, in words.
    pub reason: String,
    /// The trailing margin (`None` without revenue).
    pub margin_pct: Option<f64>,
    /// The least margin allowed.
    pub threshold_pct: f64,
    /// The trailing window, in days.
    pub window_days: i64,
    /// Revenue in the window.
    pub revenue_cents: f64,
    /// Compute cost in the window.
    pub cost_cents: f64,
    /// Referral payouts in the window.
    pub payouts_cents: f64,
}

impl Billing {
    /// A ledger request that may leave things out, completed: `to` defaults to now, `from` to
    /// 30 days before `to`, the grouping to `day`.
    pub fn ledger_range<'a>(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        group_by: Option<&'a str>,
    ) -> (DateTime<Utc>, DateTime<Utc>, &'a str) {
        let to = to.unwrap_or_else(|| self.clock.now_micros());
        let from = from.unwrap_or(to - Duration::days(30));
        (from, to, group_by.unwrap_or("day"))
    }

    /// The profitability ledger (admin): revenue, compute costs, referral payouts and margin
    /// per day, week or month of `[from, to)`.
    pub async fn profit_ledger(
        &self,
        who: &Principal,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        group_by: &str,
    ) -> Result<ProfitLedger> {
        who.require_admin()?;
        let mut bad = Vec::new();
        if !["day", "week", "month"].contains(&group_by) {
            bad.push(Violation::new("/group_by", "must be day, week or month"));
        }
        if to <= from {
            bad.push(Violation::new("/to", "must be after from"));
        } else if to - from > Duration::days(3_660) {
            bad.push(Violation::new("/from", "the range is at most 10 years"));
        }
        if !bad.is_empty() {
            return Err(Error::violations(
                "validation_failed",
                "bad ledger range",
                bad,
            ));
        }
        let policy = self.policy();
        let mut rows: BTreeMap<DateTime<Utc>, [i64; 3]> = BTreeMap::new();
        for r in self.store.revenue_between(from, to).await? {
            rows.entry(period_start(r.at, group_by)).or_default()[0] += r.amount_minor * 1_000_000;
        }
        for (at, ms) in self.store.job_runtimes_between(from, to).await? {
            rows.entry(period_start(at, group_by)).or_default()[1] +=
                ms * policy.compute_micro_cents_per_sec / 1_000;
        }
        for (at, credits) in self
            .store
            .entries_between(EntryKind::Referral, from, to)
            .await?
        {
            rows.entry(period_start(at, group_by)).or_default()[2] +=
                credits * policy.credit_micro_cents;
        }
        let mut total = [0i64; 3];
        let periods = rows
            .into_iter()
            .map(|(period, v)| {
                for i in 0..3 {
                    total[i] += v[i];
                }
                ProfitPeriod {
                    period,
                    figures: ProfitFigures::of(v),
                }
            })
            .collect();
        Ok(ProfitLedger {
            from,
            to,
            group_by: group_by.to_string(),
            periods,
            total: ProfitFigures::of(total),
        })
    }

    /// The profit guard (admin): scaling up is allowed only while the trailing margin is at
    /// least the configured minimum; the figures that decided are included.
    pub async fn autoscale(&self, who: &Principal) -> Result<AutoscaleDecision> {
        let policy = self.policy();
        let now = self.clock.now_micros();
        let from = now - Duration::days(policy.margin_window_days.max(1));
        // Up to and including this instant.
        let ledger = self
            .profit_ledger(who, from, now + Duration::microseconds(1), "month")
            .await?;
        let t = ledger.total;
        let margin = t.margin_pct;
        let allowed = margin.is_some_and(|m| m >= policy.min_margin_pct);
        Ok(AutoscaleDecision {
            allowed,
            reason: match margin {
                None => "no revenue in the window: scaling up would run at a loss".to_string(),
                Some(m) if allowed => format!(
                    "trailing margin {m:.1}% is at least {:.1}%",
                    policy.min_margin_pct
                ),
                Some(m) => format!(
                    "trailing margin {m:.1}% is below {:.1}%",
                    policy.min_margin_pct
                ),
            },
            margin_pct: margin,
            threshold_pct: policy.min_margin_pct,
            window_days: policy.margin_window_days,
            revenue_cents: t.revenue_cents,
            cost_cents: t.cost_cents,
            payouts_cents: t.payouts_cents,
        })
    }
}
