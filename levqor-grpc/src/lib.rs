//! Levqor's gRPC adapter: one tonic service per core domain (protos under
//! `proto/levqor/v1/`), `grpc.health.v1.Health` following database readiness, and server
//! reflection. Every RPC makes one call on a domain service, as the REST handlers do; the
//! caller's key, quota and public rate are checked by the core ([`Levqor::authorize`],
//! [`Levqor::limit_public`]), so both adapters answer the same.
//!
//! [`Levqor::authorize`]: levqor_core::Levqor::authorize
//! [`Levqor::limit_public`]: levqor_core::Levqor::limit_public
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod call;
mod convert;
mod direct;
pub mod error;
mod server;
mod services;
mod transport;

pub use error::{Code, code_for, status_for};
pub use server::{MAX_MESSAGE_BYTES, serve, services};

/// The generated messages, services and clients of `levqor.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("levqor.v1");
    include!(concat!(env!("OUT_DIR"), "/levqor.v1.serde.rs"));
}

/// The encoded descriptors of every Levqor proto and what they import (for reflection and
/// for clients that build requests at run time).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/levqor_descriptor.bin"));
