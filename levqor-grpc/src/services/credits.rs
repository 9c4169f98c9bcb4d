//! `levqor.v1.CreditsService`: balances, ledger entries, grants and quotes.

use crate::call::{Reply, authed};
use crate::convert::{Checks, id, json_or_null, limit, message, messages, target};
use crate::pb;
use levqor_core::Levqor;
use levqor_core::credits::Grant;
use std::sync::Arc;
use tonic::Request;

/// Credits over gRPC.
pub struct Credits(pub Arc<Levqor>);

#[tonic::async_trait]
impl pb::credits_service_server::CreditsService for Credits {
    async fn get_balance(&self, req: Request<pb::GetBalanceRequest>) -> Reply<pb::CreditBalance> {
        authed(&self.0, req, |who, r| async move {
            let user = target(r.user_id.as_deref())?;
            message(&self.0.credits().balance(&who, user).await?)
        })
        .await
    }

    async fn list_entries(
        &self,
        req: Request<pb::ListEntriesRequest>,
    ) -> Reply<pb::ListEntriesResponse> {
        authed(&self.0, req, |who, r| async move {
            let page = self
                .0
                .credits()
                .entries(&who, None, limit(r.limit), r.cursor.as_deref())
                .await?;
            Ok(pb::ListEntriesResponse {
                entries: messages(&page.items)?,
                next_cursor: page.next_cursor,
            })
        })
        .await
    }

    async fn grant(&self, req: Request<pb::GrantRequest>) -> Reply<pb::GrantResponse> {
        authed(&self.0, req, |who, r| async move {
            let mut checks = Checks::default();
            let expires_at = checks.time(r.expires_at.as_ref(), "expires_at");
            checks.finish()?;
            let grant = Grant {
                credits: r.credits,
                reason: r.reason,
                expires_at,
                priority: r.priority,
                idempotency_key: r.idempotency_key,
            };
            let user = id(&r.user_id, "user")?;
            let (entry, created) = self.0.credits().grant(&who, user, grant).await?;
            Ok(pb::GrantResponse {
                entry: Some(message(&entry)?),
                created,
            })
        })
        .await
    }

    async fn get_quote(&self, req: Request<pb::GetQuoteRequest>) -> Reply<pb::Quote> {
        authed(&self.0, req, |who, r| async move {
            let workflow = json_or_null(r.workflow.as_ref());
            let quote = self
                .0
                .billing()
                .quote(&who, &workflow, r.discount_code.as_deref())
                .await?;
            message(&quote)
        })
        .await
    }
}
