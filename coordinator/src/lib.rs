//! Slipway's coordinator: the only writer of state, the owner of trust, and the
//! driver of the clouds. The model, the rules and the store trait are the
//! domain's (`slipway_domain`, re-exported here as `clock`, `config`, `deploy`,
//! `error`, `infra`, `queue`, `release`); this crate carries them out.
//!
//! - `store`: the engines (sled; the domain's memory engine for tests).
//! - `executor`: carries out the deploy machine's actions against the cloud, the
//!   agents and the store; `scheduler`: one executor per active deployment.
//! - `operations`: what operators can ask, in domain terms; `promote`: public
//!   records; `lost`: replacing serving instances whose agents went silent.
//! - `agents`: agent records and the hub of live agent streams (domain
//!   messages only; the stream behind each is the gRPC layer's).
//! - `pki` (the CA and identities), `tokens` (one-time join tokens),
//!   `revocation`, `audit` (the hash-chained log), `secrets` (encrypted
//!   environment secrets).
//! - `cloud`: the domain's cloud traits, the `local` cloud's client and `aws`.
//! - `grpc`: the TLS port and the agent and operator services: the only module
//!   that sees the wire.
//! - `coordinator`: the shared state those modules reach; `faults`: named
//!   points where the fault-injection harness stops the process.
//!
//! Start-up (`run`, `dev`, `data_dir`) belongs to the `slipway-coordinator`
//! binary, not to this library.
//!
//! Dependencies point down: `grpc` → `operations`, `promote`, `lost` →
//! `scheduler` → `executor` → `coordinator` → `agents`, `audit`, `tokens`,
//! `secrets`, `revocation`, `pki` → `store`; `tests/run` checks there is no cycle.

#![forbid(unsafe_code)]

// The domain's modules, at the paths the coordinator has always used.
pub use slipway_domain::{clock, config, deploy, error, infra, queue, release, sample};

pub mod agents;
pub mod audit;
pub mod cloud;
pub mod coordinator;
pub mod executor;
pub mod faults;
pub mod grpc;
pub mod lost;
pub mod operations;
pub mod pki;
pub mod promote;
pub mod revocation;
pub mod scheduler;
pub mod secrets;
pub mod store;
pub mod tokens;
