//! Principals: who is calling, and what they may touch. A user's key reaches only that user's
//! data; anything else reads as "not found", so ids of other users' things leak nothing.

use crate::error::{Error, Result};
use uuid::Uuid;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The deployment's admin key: every user's data.
    Admin,
    /// A user's API key.
    User {
        /// The user.
        user_id: Uuid,
        /// The key used.
        key_id: Uuid,
        /// The key's scopes.
        scopes: Vec<String>,
    },
}

impl Principal {
    /// Whether the caller may act on `user_id`'s data.
    pub fn may_act_for(&self, user_id: Uuid) -> bool {
        match self {
            Principal::Admin => true,
            Principal::User { user_id: me, .. } => *me == user_id,
        }
    }

    /// `NotFound` unless the caller may act on `user_id`'s data.
    pub fn check_owner(&self, user_id: Uuid, what: &str) -> Result<()> {
        if self.may_act_for(user_id) {
            Ok(())
        } else {
            Err(Error::not_found(what))
        }
    }

    /// `Forbidden` unless the caller holds `scope` (or `*`; admins hold every scope).
    pub fn require_scope(&self, scope: &str) -> Result<()> {
        match self {
            Principal::Admin => Ok(()),
            Principal::User { scopes, .. } if scopes.iter().any(|s| s == "*" || s == scope) => {
                Ok(())
            }
            Principal::User { .. } => Err(Error::forbidden(
                "insufficient_scope",
                format!("this key lacks the {scope:?} scope"),
            )),
        }
    }

    /// `Forbidden` unless the caller is the admin.
    pub fn require_admin(&self) -> Result<()> {
        match self {
            Principal::Admin => Ok(()),
            Principal::User { .. } => Err(Error::forbidden(
                "admin_only",
                "only the admin key may do this",
            )),
        }
    }

    /// The user id of a user principal.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Principal::Admin => None,
            Principal::User { user_id, .. } => Some(*user_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(scopes: &[&str]) -> Principal {
        Principal::User {
            user_id: Uuid::from_u128(1),
            key_id: Uuid::nil(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn users_reach_only_their_own_data() {
        assert!(user(&["*"]).check_owner(Uuid::from_u128(1), "job").is_ok());
        assert_eq!(
            user(&["*"])
                .check_owner(Uuid::from_u128(2), "job")
                .unwrap_err()
                .code,
            "not_found"
        );
        assert!(
            Principal::Admin
                .check_owner(Uuid::from_u128(2), "job")
                .is_ok()
        );
    }

    #[test]
    fn scopes_limit_keys() {
        assert!(user(&["jobs:read"]).require_scope("jobs:read").is_ok());
        assert_eq!(
            user(&["jobs:read"])
                .require_scope("jobs:write")
                .unwrap_err()
                .code,
            "insufficient_scope"
        );
        assert!(user(&["*"]).require_scope("jobs:write").is_ok());
        assert_eq!(user(&["*"]).require_admin().unwrap_err().code, "admin_only");
    }
}
