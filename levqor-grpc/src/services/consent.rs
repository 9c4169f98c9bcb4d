//! `levqor.v1.ConsentService`: terms, marketing consent, preferences, objections and the
//! consent ledger.

use crate::call::{Reply, authed, client, open};
use crate::convert::{Checks, message, messages, target};
use crate::pb;
use levqor_core::Levqor;
use levqor_core::consent::{Subscription, Unsubscribe};
use std::sync::Arc;
use tonic::Request;

/// Consent over gRPC.
pub struct Consent(pub Arc<Levqor>);

/// What the marketing RPCs answer: the subscription's status and categories.
fn view(sub: &Subscription) -> levqor_core::Result<pb::SubscriptionView> {
    message(&serde_json::json!({"status": sub.status, "categories": sub.categories}))
}

#[tonic::async_trait]
impl pb::consent_service_server::ConsentService for Consent {
    async fn publish_terms(
        &self,
        req: Request<pb::PublishTermsRequest>,
    ) -> Reply<pb::TermsVersion> {
        authed(&self.0, req, |who, r| async move {
            let mut checks = Checks::default();
            let effective_at = checks.time(r.effective_at.as_ref(), "effective_at");
            checks.finish()?;
            let terms = self
                .0
                .consent()
                .publish_terms(&who, &r.version, effective_at, &r.changelog, r.material)
                .await?;
            message(&terms)
        })
        .await
    }

    async fn list_terms(&self, req: Request<pb::ListTermsRequest>) -> Reply<pb::ListTermsResponse> {
        open(req, |_, _| async move {
            Ok(pb::ListTermsResponse {
                versions: messages(&self.0.consent().list_terms().await?)?,
            })
        })
        .await
    }

    async fn accept_terms(&self, req: Request<pb::AcceptTermsRequest>) -> Reply<pb::TermsStatus> {
        let client = client(&req);
        authed(&self.0, req, |who, r| async move {
            let status = self
                .0
                .consent()
                .accept_terms(&who, None, &r.version, client)
                .await?;
            message(&status)
        })
        .await
    }

    async fn get_terms_status(
        &self,
        req: Request<pb::GetTermsStatusRequest>,
    ) -> Reply<pb::TermsStatus> {
        authed(&self.0, req, |who, _| async move {
            message(&self.0.consent().terms_status(&who, None).await?)
        })
        .await
    }

    async fn get_terms_history(
        &self,
        req: Request<pb::GetTermsHistoryRequest>,
    ) -> Reply<pb::TermsHistory> {
        authed(&self.0, req, |who, r| async move {
            let user = target(r.user_id.as_deref())?;
            let consent = self.0.consent();
            Ok(pb::TermsHistory {
                status: Some(message(&consent.terms_status(&who, user).await?)?),
                acceptances: messages(&consent.terms_history(&who, user).await?)?,
            })
        })
        .await
    }

    async fn subscribe(&self, req: Request<pb::SubscribeRequest>) -> Reply<pb::Subscribed> {
        open(req, |ip, r| async move {
            self.0.limit_public(ip)?;
            let categories = (!r.categories.is_empty()).then_some(r.categories);
            let done = self
                .0
                .consent()
                .subscribe(&r.email, categories.as_deref())
                .await?;
            message(&done)
        })
        .await
    }

    async fn confirm_subscription(
        &self,
        req: Request<pb::ConfirmSubscriptionRequest>,
    ) -> Reply<pb::SubscriptionView> {
        open(req, |_, r| async move {
            view(&self.0.consent().confirm_subscription(&r.token).await?)
        })
        .await
    }

    async fn unsubscribe(
        &self,
        req: Request<pb::UnsubscribeRequest>,
    ) -> Reply<pb::SubscriptionView> {
        // A link's token says whose consent it is; without one, the caller's key does.
        match req.get_ref().token.clone() {
            Some(token) => {
                open(req, |_, _| async move {
                    view(
                        &self
                            .0
                            .consent()
                            .unsubscribe(Unsubscribe::Token(&token))
                            .await?,
                    )
                })
                .await
            }
            None => {
                authed(&self.0, req, |who, _| async move {
                    view(
                        &self
                            .0
                            .consent()
                            .unsubscribe(Unsubscribe::User(&who))
                            .await?,
                    )
                })
                .await
            }
        }
    }

    async fn get_marketing_status(
        &self,
        req: Request<pb::GetMarketingStatusRequest>,
    ) -> Reply<pb::SubscriptionView> {
        open(req, |ip, r| async move {
            self.0.limit_public(ip)?;
            view(&self.0.consent().subscription_status(&r.email).await?)
        })
        .await
    }

    async fn get_preferences(
        &self,
        req: Request<pb::GetPreferencesRequest>,
    ) -> Reply<pb::Preferences> {
        authed(&self.0, req, |who, _| async move {
            message(&self.0.consent().preferences(&who).await?)
        })
        .await
    }

    async fn set_preferences(
        &self,
        req: Request<pb::SetPreferencesRequest>,
    ) -> Reply<pb::Preferences> {
        authed(&self.0, req, |who, r| async move {
            message(
                &self
                    .0
                    .consent()
                    .set_preferences(&who, &r.categories)
                    .await?,
            )
        })
        .await
    }

    async fn send_marketing(
        &self,
        req: Request<pb::SendMarketingRequest>,
    ) -> Reply<pb::MarketingSent> {
        authed(&self.0, req, |who, r| async move {
            let sent = self
                .0
                .consent()
                .send_marketing(&who, &r.category, &r.subject, &r.body)
                .await?;
            message(&sent)
        })
        .await
    }

    async fn list_objections(
        &self,
        req: Request<pb::ListObjectionsRequest>,
    ) -> Reply<pb::ListObjectionsResponse> {
        authed(&self.0, req, |who, r| async move {
            let user = target(r.user_id.as_deref())?;
            Ok(pb::ListObjectionsResponse {
                objections: messages(&self.0.consent().objections(&who, user).await?)?,
            })
        })
        .await
    }

    async fn set_objection(
        &self,
        req: Request<pb::SetObjectionRequest>,
    ) -> Reply<pb::ListObjectionsResponse> {
        authed(&self.0, req, |who, r| async move {
            let user = target(r.user_id.as_deref())?;
            let all = self
                .0
                .consent()
                .set_objection(&who, user, &r.kind, r.objected)
                .await?;
            Ok(pb::ListObjectionsResponse {
                objections: messages(&all)?,
            })
        })
        .await
    }

    async fn verify_ledger(
        &self,
        req: Request<pb::VerifyLedgerRequest>,
    ) -> Reply<pb::LedgerVerification> {
        authed(&self.0, req, |who, _| async move {
            message(&self.0.consent().verify_ledger(&who).await?)
        })
        .await
    }
}
