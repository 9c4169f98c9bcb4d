//! The RPCs, one module per core domain, each a tonic service over the [`Levqor`] service.
//! An RPC reads the message, makes one call on a domain service and writes the result; no
//! rule lives here.
//!
//! [`Levqor`]: levqor_core::Levqor

pub(crate) mod billing;
pub(crate) mod consent;
pub(crate) mod credits;
pub(crate) mod jobs;
pub(crate) mod messages;
pub(crate) mod privacy;
pub(crate) mod quotas;
pub(crate) mod screening;
pub(crate) mod users;
