//! `levqor.v1.QuotasService`: usage and tiers.

use crate::call::{Reply, authed, open};
use crate::convert::{id, message, messages, target};
use crate::pb;
use levqor_core::Levqor;
use std::sync::Arc;
use tonic::Request;

/// Quotas over gRPC.
pub struct Quotas(pub Arc<Levqor>);

#[tonic::async_trait]
impl pb::quotas_service_server::QuotasService for Quotas {
    async fn get_usage(&self, req: Request<pb::GetUsageRequest>) -> Reply<pb::Usage> {
        authed(&self.0, req, |who, r| async move {
            let user = target(r.user_id.as_deref())?;
            message(&self.0.quotas().usage(&who, user).await?)
        })
        .await
    }

    async fn list_tiers(&self, req: Request<pb::ListTiersRequest>) -> Reply<pb::ListTiersResponse> {
        open(req, |_, _| async move {
            Ok(pb::ListTiersResponse {
                tiers: messages(&self.0.quotas().tiers())?,
            })
        })
        .await
    }

    async fn set_tier(&self, req: Request<pb::SetTierRequest>) -> Reply<pb::SetTierResponse> {
        authed(&self.0, req, |who, r| async move {
            let user = id(&r.user_id, "user")?;
            let tier = self.0.quotas().set_tier(&who, user, &r.tier).await?;
            Ok(pb::SetTierResponse {
                user_id: user.to_string(),
                tier: Some(message(&tier)?),
            })
        })
        .await
    }
}
