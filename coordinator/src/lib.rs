//! Slipway's coordinator: the only writer of state, the owner of trust, and the
//! driver of the clouds.
//!
//! - `config`: the fleet file (projects, environments, deadlines).
//! - `store`: durable state behind a `Store` trait (sled).
//! - `release`, `deploy` (`machine`: the pure state machine; `executor`: its
//!   actions), `queue` (FIFO per target), `promote` (public records).
//! - `pki` (the CA and identities), `tokens` (one-time join tokens), `revocation`,
//!   `audit`
//!   (the hash-chained log of every mutating action), `secrets` (encrypted
//!   environment secrets).
//! - `agents`: agent records and the hub of live agent streams; `lost`: replacing
//!   serving instances whose agents went silent.
//! - `cloud`: the `Compute` / `LoadBalancer` / `Dns` traits and the `local` cloud.
//! - `faults`: named points where the fault-injection harness stops the process.
//! - `grpc`: the TLS port and the agent and operator services.
//! - `infra`: the load balancers and records the fleet implies (plan / apply).
//! - `operations`: what operators can ask, in domain terms.
//! - `data_dir`: the data directory, resolved once at start-up.
//! - `coordinator`: shared state and the scheduler; `run`: start-up; `dev`: the
//!   embedded default (sample fleet, releases and profile).

#![forbid(unsafe_code)]

// The domain's modules, at the paths the coordinator has always used.
pub use slipway_domain::{clock, config, deploy, error, infra, queue, release};

pub mod agents;
pub mod audit;
pub mod cloud;
pub mod coordinator;
pub mod data_dir;
pub mod dev;
pub mod executor;
pub mod faults;
pub mod grpc;
pub mod lost;
pub mod operations;
pub mod pki;
pub mod promote;
pub mod revocation;
pub mod run;
pub mod scheduler;
pub mod secrets;
pub mod store;
pub mod tokens;
