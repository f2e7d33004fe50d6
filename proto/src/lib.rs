//! Slipway's wire protocol, generated from `proto/slipway/v1/`.
//!
//! - `AgentService`: `Bootstrap` (join token + CSR for a certificate) and `Connect`
//!   (one bidirectional stream per agent).
//! - `OperatorService`: what the CLI and CI call.
//!
//! - `user_data`: what a launch hands the agent (EC2 user-data).
//! - `profile`: the CLI's profile file and certificate bundle; `private_file`:
//!   owner-only files for keys.
//! - `http_probe`: one HTTP health check, shared by the agent and the local cloud.
//! - `logging`: `SLIPWAY_LOG` and `SLIPWAY_LOG_FORMAT` for the coordinator and
//!   the local cloud.
//!
//! Only the coordinator's `grpc` module, the agent and the CLI see these types;
//! domain code converts them at the edge.

#![forbid(unsafe_code)]
#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("slipway.v1");
}

/// Encoded descriptors of every Slipway service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("slipway_descriptor");

pub mod http_probe;
pub mod logging;
pub mod private_file;
pub mod profile;
pub mod user_data;
