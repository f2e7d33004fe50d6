//! Slipway's coordinator: the only writer of state, the owner of trust, and the
//! driver of the clouds. The model, the rules and the store trait are the
//! domain's (`slipway_domain`, re-exported here as `clock`, `config`, `deploy`,
//! `error`, `infra`, `queue`, `release`); this crate carries them out.
//!
//! - `store`: the engines (sled; the domain's memory engine for tests).
//! - `deployments` (the deployments table and its queue), `releases` (the
//!   releases table), `fleets` (the fleet in force and those deployments
//!   started with), `events` (what happened, numbered, stored with the change
//!   itself): what the subsystems below share.
//! - `executor`: carries out the deploy machine's actions against the cloud, the
//!   agents and the store; `scheduler`: one executor per active deployment,
//!   owned in a `JoinSet`.
//! - `operations`: what operators can ask, in domain terms; `promote`: public
//!   records; `lost`: replacing serving instances whose agents went silent;
//!   `notify`: delivering events to webhooks, chat and email (`mail`), at
//!   least once; `migrations`: which release's schema change ran where.
//! - `agents`: agent records and the hub of live agent streams (domain
//!   messages only; the stream behind each is the gRPC layer's).
//! - `pki` (the CA and identities), `tokens` (one-time join tokens),
//!   `revocation`, `audit` (the hash-chained log), `secrets` (encrypted
//!   environment secrets), `requests` (the first answers to retried requests).
//! - `cloud`: the domain's cloud traits, the `local` cloud's client and `aws`.
//! - `stopping`: the graceful stop every long-running part watches;
//!   `faults`: named points where the fault-injection harness stops the process.
//! - `coordinator`: the wiring, the one module that sees every subsystem; each
//!   subsystem is built there with only the dependencies it takes.
//! - `dashboard`: the read-only HTTPS port (the wall-screen board, its event
//!   stream, `/metrics`) behind revocable dashboard tokens; `metrics`: the
//!   counters and histograms it exposes; `admission`: what a peer that has
//!   not authenticated may hold, on every port.
//! - `grpc`: the TLS port and the agent and operator services: the only module
//!   that sees the wire; each service takes the subsystems it serves.
//!
//! Start-up (`run`, `dev`, `data_dir`) belongs to the `slipway-coordinator`
//! binary, not to this library.
//!
//! Dependencies point down: `grpc` → `coordinator` (wiring) → `operations`,
//! `lost`, `scheduler` → `executor`, `promote`, `releases`, `deployments` →
//! `agents`, `audit`, `tokens`, `secrets`, `revocation` → `store`; `tests/run`
//! checks there is no cycle.

#![forbid(unsafe_code)]

// The domain's modules, at the paths the coordinator has always used.
pub use slipway_domain::{
    clock, config, config_diff, deploy, error, freeze, gates, infra, queue, release, sample,
};

pub mod admission;
pub mod agents;
pub mod audit;
pub mod backup;
pub mod ca_rotation;
pub mod cloud;
pub mod coordinator;
pub mod dashboard;
pub mod deployments;
pub mod events;
pub mod executor;
pub mod faults;
pub mod fleets;
pub mod grpc;
pub mod leadership;
pub mod live_tls;
pub mod lost;
pub mod mail;
pub mod metrics;
pub mod migrations;
pub mod notify;
pub mod observed;
pub mod operations;
pub mod orphans;
pub mod pki;
pub mod promote;
pub mod releases;
pub mod requests;
pub mod retention;
pub mod revocation;
pub mod scheduler;
pub mod secrets;
pub mod stopping;
pub mod store;
pub mod tokens;
