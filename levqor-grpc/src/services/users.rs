//! `levqor.v1.UsersService`: users and keys.

use crate::call::{Reply, authed};
use crate::convert::{id, message, messages};
use crate::pb;
use levqor_core::{Levqor, Upserted, UserPatch};
use std::sync::Arc;
use tonic::Request;

/// Users and keys over gRPC.
pub struct Users(pub Arc<Levqor>);

#[tonic::async_trait]
impl pb::users_service_server::UsersService for Users {
    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Reply<pb::CreateUserResponse> {
        authed(&self.0, req, |who, r| async move {
            let upserted = self
                .0
                .users()
                .create(&who, &r.email, r.name.as_deref())
                .await?;
            let created = matches!(upserted, Upserted::Created(_));
            Ok(pb::CreateUserResponse {
                user: Some(message(upserted.user())?),
                created,
            })
        })
        .await
    }

    async fn find_user(&self, req: Request<pb::FindUserRequest>) -> Reply<pb::User> {
        authed(&self.0, req, |who, r| async move {
            message(&self.0.users().find(&who, &r.email).await?)
        })
        .await
    }

    async fn get_user(&self, req: Request<pb::GetUserRequest>) -> Reply<pb::User> {
        authed(&self.0, req, |who, r| async move {
            message(&self.0.users().get(&who, id(&r.id, "user")?).await?)
        })
        .await
    }

    async fn update_user(&self, req: Request<pb::UpdateUserRequest>) -> Reply<pb::User> {
        authed(&self.0, req, |who, r| async move {
            let patch = UserPatch {
                email: r.email,
                name: r.name.map(|n| Some(n).filter(|n| !n.is_empty())),
            };
            message(
                &self
                    .0
                    .users()
                    .update(&who, id(&r.id, "user")?, patch)
                    .await?,
            )
        })
        .await
    }

    async fn create_key(&self, req: Request<pb::CreateKeyRequest>) -> Reply<pb::CreateKeyResponse> {
        authed(&self.0, req, |who, r| async move {
            let scopes = (!r.scopes.is_empty()).then_some(r.scopes);
            let user = id(&r.user_id, "user")?;
            let issued = self.0.users().create_key(&who, user, scopes).await?;
            Ok(pb::CreateKeyResponse {
                key: Some(message(&issued.key)?),
                secret: issued.secret,
            })
        })
        .await
    }

    async fn list_keys(&self, req: Request<pb::ListKeysRequest>) -> Reply<pb::ListKeysResponse> {
        authed(&self.0, req, |who, r| async move {
            let keys = self
                .0
                .users()
                .list_keys(&who, id(&r.user_id, "user")?)
                .await?;
            Ok(pb::ListKeysResponse {
                keys: messages(&keys)?,
            })
        })
        .await
    }

    async fn revoke_key(&self, req: Request<pb::RevokeKeyRequest>) -> Reply<pb::ApiKey> {
        authed(&self.0, req, |who, r| async move {
            message(&self.0.users().revoke_key(&who, id(&r.id, "key")?).await?)
        })
        .await
    }

    async fn get_me(&self, req: Request<pb::GetMeRequest>) -> Reply<pb::User> {
        authed(&self.0, req, |who, _| async move {
            message(&self.0.users().me(&who).await?)
        })
        .await
    }
}
