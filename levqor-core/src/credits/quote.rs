//! Quotes: what a workflow costs now. The sum of its steps' prices, times a load factor that
//! rises when the platform is busy, less a performance bonus when the user's recent runs missed
//! the latency objective. Pure: the load is measured by the [gauge](super::LoadGauge).

use super::Hold;
use crate::jobs::model::{Job, JobStatus, StepStatus};
use crate::jobs::workflow::Workflow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What each step type costs, in credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prices {
    /// Per step type.
    pub steps: BTreeMap<String, i64>,
    /// For a type not listed (a connector).
    pub default_step: i64,
}

impl Default for Prices {
    fn default() -> Self {
        let steps = [
            ("log", 1),
            ("condition", 1),
            ("delay", 1),
            ("email", 5),
            ("slack", 5),
            ("telegram", 5),
            ("http_request", 10),
            ("webhook", 10),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self {
            steps,
            default_step: 10,
        }
    }
}

impl Prices {
    /// The price of one step of `kind`.
    pub fn of(&self, kind: &str) -> i64 {
        self.steps.get(kind).copied().unwrap_or(self.default_step)
    }
}

/// What the load factor and the performance bonus are measured against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricingPolicy {
    /// Prices per step type.
    pub prices: Prices,
    /// Queue depth at which the load factor starts to rise.
    pub queue_target: u64,
    /// p95 job latency (admission to end) at which the load factor starts to rise, in ms.
    pub latency_target_ms: i64,
    /// Highest load factor, in basis points (15,000 = 1.5).
    pub max_factor_bp: i64,
    /// The latency a user is promised for their runs, in ms.
    pub slo_ms: i64,
    /// Discount when the platform missed that SLO on the user's recent runs, in basis points.
    pub bonus_bp: i64,
    /// How long an unsettled hold lives.
    pub hold_ttl_hours: i64,
}

impl Default for PricingPolicy {
    fn default() -> Self {
        Self {
            prices: Prices::default(),
            queue_target: 10_000,
            latency_target_ms: 5_000,
            max_factor_bp: 15_000,
            slo_ms: 30_000,
            bonus_bp: 1_000,
            hold_ttl_hours: 24,
        }
    }
}

/// The platform's and the user's recent latency, which quotes depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Load {
    /// Jobs waiting to run.
    pub queue_depth: u64,
    /// p95 latency of recent jobs, ms.
    pub p95_ms: i64,
    /// p95 latency of the user's recent jobs, ms (0 without any).
    pub user_p95_ms: i64,
}

/// One line of a quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// What it is (`base:http_request`, `load_factor`, `performance_bonus`).
    pub name: String,
    /// Credits, for base lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<i64>,
    /// A multiplier, for factors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// In words.
    pub detail: String,
}

/// A price and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// What the job is held for.
    pub credits: i64,
    /// The lines.
    pub components: Vec<Component>,
    /// The price of one step per type, as quoted: settlement charges the steps that ran at
    /// these prices, times the same factor.
    pub step_prices: BTreeMap<String, i64>,
    /// The combined factor, in basis points.
    pub factor_bp: i64,
}

/// The load factor for `load`: 1.0 at or below both targets, rising linearly with the worse
/// overshoot, capped at `max_factor_bp`. In basis points.
pub fn load_factor_bp(policy: &PricingPolicy, load: &Load) -> i64 {
    let over = |value: f64, target: f64| {
        if target <= 0.0 {
            0.0
        } else {
            (value / target - 1.0).max(0.0)
        }
    };
    let worst = over(load.queue_depth as f64, policy.queue_target as f64)
        .max(over(load.p95_ms as f64, policy.latency_target_ms as f64))
        .min(1.0);
    let span = (policy.max_factor_bp - 10_000).max(0) as f64;
    10_000 + (worst * span).round() as i64
}

/// Prices `workflow` under `policy` and `load`: the sum of its steps' prices, times the load
/// factor, less the performance bonus when the user's recent runs missed the SLO; rounded up,
/// never below 1 for a workflow with steps.
pub fn quote(policy: &PricingPolicy, workflow: &Workflow, load: &Load) -> Quote {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for s in &workflow.steps {
        *counts.entry(s.kind.as_str()).or_default() += 1;
    }
    let mut components = Vec::new();
    let mut base = 0;
    let mut step_prices = BTreeMap::new();
    for (kind, n) in &counts {
        let price = policy.prices.of(kind);
        step_prices.insert(kind.to_string(), price);
        base += price * n;
        components.push(Component {
            name: format!("base:{kind}"),
            credits: Some(price * n),
            factor: None,
            detail: format!("{n} × {price} credits"),
        });
    }
    let load_bp = load_factor_bp(policy, load);
    components.push(Component {
        name: "load_factor".into(),
        credits: None,
        factor: Some(load_bp as f64 / 10_000.0),
        detail: format!(
            "queue depth {} (target {}), p95 latency {} ms (target {} ms); bounded 1.0–{}",
            load.queue_depth,
            policy.queue_target,
            load.p95_ms,
            policy.latency_target_ms,
            policy.max_factor_bp as f64 / 10_000.0
        ),
    });
    let missed = load.user_p95_ms > policy.slo_ms;
    let bonus_bp = if missed {
        policy.bonus_bp.clamp(0, 10_000)
    } else {
        0
    };
    components.push(Component {
        name: "performance_bonus".into(),
        credits: None,
        factor: Some((10_000 - bonus_bp) as f64 / 10_000.0),
        detail: if missed {
            format!(
                "your recent runs took {} ms at p95, over the {} ms objective",
                load.user_p95_ms, policy.slo_ms
            )
        } else {
            "the latency objective was met on your recent runs".into()
        },
    });
    let factor_bp = load_bp * (10_000 - bonus_bp) / 10_000;
    let credits = charge(base, factor_bp);
    Quote {
        credits,
        components,
        step_prices,
        factor_bp,
    }
}

/// `base × factor`, rounded up, at least 1 when `base` is positive.
pub fn charge(base: i64, factor_bp: i64) -> i64 {
    if base <= 0 {
        return 0;
    }
    ((base * factor_bp + 9_999) / 10_000).max(1)
}

/// The actual cost of a finished job: the steps that ran (succeeded), at the quoted prices and
/// factor; never above the hold. A job that did not succeed costs nothing.
pub fn actual_cost(
    hold: &Hold,
    job: Option<&Job>,
    steps: &[crate::jobs::model::StepRecord],
) -> i64 {
    let Some(job) = job.filter(|j| j.status == JobStatus::Succeeded) else {
        return 0;
    };
    let Ok(workflow) = Workflow::parse(&job.workflow) else {
        return 0;
    };
    let prices: BTreeMap<String, i64> =
        serde_json::from_value(hold.quote["step_prices"].clone()).unwrap_or_default();
    let factor_bp = hold.quote["factor_bp"].as_i64().unwrap_or(10_000);
    let base: i64 = steps
        .iter()
        .filter(|s| s.status == StepStatus::Succeeded)
        .filter_map(|s| workflow.steps.iter().find(|w| w.id == s.step_id))
        .map(|w| prices.get(&w.kind).copied().unwrap_or(0))
        .sum();
    charge(base, factor_bp).min(hold.credits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn wf(kinds: &[&str]) -> Workflow {
        let steps: Vec<Value> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| json!({"id": format!("s{i}"), "type": k}))
            .collect();
        Workflow::parse(&json!({"name": "w", "steps": steps})).unwrap()
    }

    #[test]
    fn default_prices_follow_the_contract() {
        let q = quote(
            &PricingPolicy::default(),
            &wf(&["log", "condition", "delay", "email", "http_request"]),
            &Load::default(),
        );
        assert_eq!(q.credits, 18);
        assert_eq!(q.factor_bp, 10_000);
        assert_eq!(q.components[0].name, "base:condition");
    }

    #[test]
    fn load_raises_the_price_within_bounds() {
        let p = PricingPolicy::default();
        let calm = Load::default();
        assert_eq!(load_factor_bp(&p, &calm), 10_000);
        let busy = Load {
            queue_depth: 15_000,
            ..calm
        };
        assert_eq!(load_factor_bp(&p, &busy), 12_500);
        let swamped = Load {
            queue_depth: 1_000_000,
            p95_ms: 1_000_000,
            ..calm
        };
        assert_eq!(load_factor_bp(&p, &swamped), 15_000, "bounded at 1.5");
        assert_eq!(
            quote(&p, &wf(&["http_request"]), &busy).credits,
            13,
            "12.5 rounded up"
        );
    }

    #[test]
    fn a_missed_slo_discounts_the_user() {
        let p = PricingPolicy::default();
        let slow = Load {
            user_p95_ms: 60_000,
            ..Load::default()
        };
        let q = quote(&p, &wf(&["http_request", "http_request"]), &slow);
        assert_eq!(q.credits, 18);
        assert_eq!(q.components.last().unwrap().factor, Some(0.9));
    }

    #[test]
    fn charges_round_up_and_never_exceed_the_hold() {
        assert_eq!(charge(1, 10_001), 2);
        assert_eq!(charge(0, 15_000), 0);
        assert_eq!(charge(3, 9_000), 3);
    }
}
