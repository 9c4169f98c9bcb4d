//! `levqor.v1.BillingService`: checkout, billing status, discounts, the profitability ledger
//! and the profit guard. The provider's webhook is HTTP only.

use crate::call::{Reply, authed};
use crate::convert::{Checks, message, messages, target};
use crate::pb;
use levqor_core::Levqor;
use levqor_core::billing::{CheckoutOrder, NewDiscounts};
use std::sync::Arc;
use tonic::Request;

/// Billing over gRPC.
pub struct Billing(pub Arc<Levqor>);

#[tonic::async_trait]
impl pb::billing_service_server::BillingService for Billing {
    async fn checkout(&self, req: Request<pb::CheckoutRequest>) -> Reply<pb::CheckoutResult> {
        authed(&self.0, req, |who, r| async move {
            let order = CheckoutOrder {
                pack: r.pack,
                tier: r.tier,
                discount_code: r.discount_code,
                success_url: r.success_url,
                cancel_url: r.cancel_url,
            };
            message(&self.0.billing().checkout(&who, order).await?)
        })
        .await
    }

    async fn get_billing_status(
        &self,
        req: Request<pb::GetBillingStatusRequest>,
    ) -> Reply<pb::BillingStatus> {
        authed(&self.0, req, |who, r| async move {
            let user = target(r.user_id.as_deref())?;
            message(&self.0.billing().status(&who, user).await?)
        })
        .await
    }

    async fn create_discounts(
        &self,
        req: Request<pb::CreateDiscountsRequest>,
    ) -> Reply<pb::CreateDiscountsResponse> {
        authed(&self.0, req, |who, r| async move {
            let mut checks = Checks::default();
            let expires_at = checks.time(r.expires_at.as_ref(), "expires_at");
            checks.finish()?;
            let new = NewDiscounts {
                code: r.code,
                prefix: r.prefix,
                kind: r.kind,
                value: r.value,
                count: r.count.map(|n| n.max(0) as usize),
                max_redemptions: r.max_redemptions,
                expires_at,
            };
            let codes = self.0.billing().create_discounts(&who, new).await?;
            Ok(pb::CreateDiscountsResponse {
                codes: messages(&codes)?,
            })
        })
        .await
    }

    async fn get_profit_ledger(
        &self,
        req: Request<pb::GetProfitLedgerRequest>,
    ) -> Reply<pb::ProfitLedger> {
        authed(&self.0, req, |who, r| async move {
            let mut checks = Checks::default();
            let from = checks.time(r.from.as_ref(), "from");
            let to = checks.time(r.to.as_ref(), "to");
            checks.finish()?;
            let billing = self.0.billing();
            let (from, to, group_by) = billing.ledger_range(from, to, r.group_by.as_deref());
            message(&billing.profit_ledger(&who, from, to, group_by).await?)
        })
        .await
    }

    async fn get_autoscale(
        &self,
        req: Request<pb::GetAutoscaleRequest>,
    ) -> Reply<pb::AutoscaleDecision> {
        authed(&self.0, req, |who, _| async move {
            message(&self.0.billing().autoscale(&who).await?)
        })
        .await
    }
}
