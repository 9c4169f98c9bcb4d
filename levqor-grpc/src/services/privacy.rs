//! `levqor.v1.PrivacyService`: export, erasure, events, legal holds, retention, the
//! compliance dashboard and the audit log.

use crate::call::{Reply, authed};
use crate::convert::{id, json, limit, message, messages, target};
use crate::pb;
use levqor_core::Levqor;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tonic::Request;

/// Privacy over gRPC.
pub struct Privacy(pub Arc<Levqor>);

#[tonic::async_trait]
impl pb::privacy_service_server::PrivacyService for Privacy {
    async fn export_data(&self, req: Request<pb::ExportDataRequest>) -> Reply<pb::ExportRecord> {
        authed(&self.0, req, |who, r| async move {
            let user = target(r.user_id.as_deref())?;
            message(&self.0.privacy().export_user(&who, user).await?)
        })
        .await
    }

    async fn erase_data(&self, req: Request<pb::EraseDataRequest>) -> Reply<pb::ErasureSummary> {
        authed(&self.0, req, |who, r| async move {
            let user = target(r.user_id.as_deref())?;
            message(&self.0.privacy().erase_user(&who, user).await?)
        })
        .await
    }

    async fn record_events(
        &self,
        req: Request<pb::RecordEventsRequest>,
    ) -> Reply<pb::RecordEventsResponse> {
        authed(&self.0, req, |who, r| async move {
            let events: Vec<(String, Value)> = r
                .events
                .into_iter()
                .map(|e| {
                    let properties = e.properties.as_ref().map_or_else(|| json!({}), json);
                    (e.name, properties)
                })
                .collect();
            let recorded = self.0.privacy().record_events(&who, &events).await?;
            Ok(pb::RecordEventsResponse {
                recorded: recorded as u64,
            })
        })
        .await
    }

    async fn set_legal_hold(&self, req: Request<pb::SetLegalHoldRequest>) -> Reply<pb::LegalHold> {
        authed(&self.0, req, |who, r| async move {
            let user = id(&r.user_id, "user")?;
            message(
                &self
                    .0
                    .privacy()
                    .set_legal_hold(&who, user, &r.reason)
                    .await?,
            )
        })
        .await
    }

    async fn clear_legal_hold(
        &self,
        req: Request<pb::ClearLegalHoldRequest>,
    ) -> Reply<pb::ClearLegalHoldResponse> {
        authed(&self.0, req, |who, r| async move {
            let user = id(&r.user_id, "user")?;
            self.0.privacy().clear_legal_hold(&who, user).await?;
            Ok(pb::ClearLegalHoldResponse {})
        })
        .await
    }

    async fn get_retention_policies(
        &self,
        req: Request<pb::GetRetentionPoliciesRequest>,
    ) -> Reply<pb::RetentionPolicies> {
        authed(&self.0, req, |who, _| async move {
            let days = self.0.privacy().retention_policies(&who).await?;
            message(&json!({ "days": days }))
        })
        .await
    }

    async fn set_retention_policies(
        &self,
        req: Request<pb::SetRetentionPoliciesRequest>,
    ) -> Reply<pb::RetentionPolicies> {
        authed(&self.0, req, |who, r| async move {
            let changes: Map<String, Value> = r
                .days
                .into_iter()
                .map(|(class, days)| (class, json!(days)))
                .collect();
            let days = self
                .0
                .privacy()
                .set_retention_policies(&who, &changes)
                .await?;
            message(&json!({ "days": days }))
        })
        .await
    }

    async fn sweep_retention(
        &self,
        req: Request<pb::SweepRetentionRequest>,
    ) -> Reply<pb::SweepReport> {
        authed(&self.0, req, |who, r| async move {
            message(&self.0.privacy().sweep_retention(&who, r.dry_run).await?)
        })
        .await
    }

    async fn get_compliance(
        &self,
        req: Request<pb::GetComplianceRequest>,
    ) -> Reply<pb::ComplianceDashboard> {
        authed(&self.0, req, |who, _| async move {
            message(&self.0.privacy().compliance(&who).await?)
        })
        .await
    }

    async fn list_audit(&self, req: Request<pb::ListAuditRequest>) -> Reply<pb::ListAuditResponse> {
        authed(&self.0, req, |who, r| async move {
            let page = self
                .0
                .privacy()
                .audit_log(&who, limit(r.limit), r.cursor.as_deref())
                .await?;
            Ok(pb::ListAuditResponse {
                records: messages(&page.items)?,
                next_cursor: page.next_cursor,
            })
        })
        .await
    }
}
