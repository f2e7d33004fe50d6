//! Slipway's wire protocol, generated from `proto/slipway/v1/`.
//!
//! - `AgentService`: `Bootstrap` (join token + CSR for a certificate) and `Connect`
//!   (one bidirectional stream per agent).
//! - `OperatorService`: what the CLI and CI call.
//!
//! - `convert`: the agent protocol's messages to and from the domain's
//!   (`slipway_domain::agent`), the one place both ends share.
//!
//! Only the coordinator's `grpc` module, the agent's session and the CLI's
//! client see these types (`tests/run` checks it); the rest speaks the domain's.

#![forbid(unsafe_code)]
#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("slipway.v1");
}

/// Encoded descriptors of every Slipway service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("slipway_descriptor");

pub mod convert;
