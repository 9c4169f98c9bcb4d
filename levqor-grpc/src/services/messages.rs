//! `levqor.v1.MessagesService`: the outbox.

use crate::call::{Reply, authed};
use crate::convert::{id, limit, message, messages};
use crate::pb;
use levqor_core::Levqor;
use std::sync::Arc;
use tonic::Request;

/// The outbox over gRPC.
pub struct Messages(pub Arc<Levqor>);

#[tonic::async_trait]
impl pb::messages_service_server::MessagesService for Messages {
    async fn list_outbox(
        &self,
        req: Request<pb::ListOutboxRequest>,
    ) -> Reply<pb::ListOutboxResponse> {
        authed(&self.0, req, |who, r| async move {
            let page = self
                .0
                .messages()
                .list_outbox(&who, limit(r.limit), r.cursor.as_deref())
                .await?;
            Ok(pb::ListOutboxResponse {
                messages: messages(&page.items)?,
                next_cursor: page.next_cursor,
            })
        })
        .await
    }

    async fn get_outbox_message(
        &self,
        req: Request<pb::GetOutboxMessageRequest>,
    ) -> Reply<pb::OutboxEntry> {
        authed(&self.0, req, |who, r| async move {
            message(
                &self
                    .0
                    .messages()
                    .get_outbox(&who, id(&r.id, "message")?)
                    .await?,
            )
        })
        .await
    }

    async fn retry_outbox_message(
        &self,
        req: Request<pb::RetryOutboxMessageRequest>,
    ) -> Reply<pb::OutboxEntry> {
        authed(&self.0, req, |who, r| async move {
            message(
                &self
                    .0
                    .messages()
                    .retry_outbox(&who, id(&r.id, "message")?)
                    .await?,
            )
        })
        .await
    }

    async fn list_templates(
        &self,
        req: Request<pb::ListTemplatesRequest>,
    ) -> Reply<pb::TemplateList> {
        authed(&self.0, req, |who, _| async move {
            message(&self.0.messages().list_templates(&who)?)
        })
        .await
    }

    async fn preview_template(
        &self,
        req: Request<pb::PreviewTemplateRequest>,
    ) -> Reply<pb::RenderedTemplate> {
        authed(&self.0, req, |who, r| async move {
            message(&self.0.messages().preview_template(&who, &r.name)?)
        })
        .await
    }

    async fn list_suppressions(
        &self,
        req: Request<pb::ListSuppressionsRequest>,
    ) -> Reply<pb::ListSuppressionsResponse> {
        authed(&self.0, req, |who, r| async move {
            let page = self
                .0
                .messages()
                .list_suppressions(&who, limit(r.limit), r.cursor.as_deref())
                .await?;
            Ok(pb::ListSuppressionsResponse {
                suppressions: messages(&page.items)?,
                next_cursor: page.next_cursor,
            })
        })
        .await
    }

    async fn remove_suppression(
        &self,
        req: Request<pb::RemoveSuppressionRequest>,
    ) -> Reply<pb::Suppression> {
        authed(&self.0, req, |who, r| async move {
            message(&self.0.messages().remove_suppression(&who, &r.email).await?)
        })
        .await
    }
}
