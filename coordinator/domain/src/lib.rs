//! Slipway's domain: what a deployment is and how it moves, with no I/O. The
//! coordinator drives it; nothing here knows about gRPC, the store engine, an
//! async runtime or a particular cloud.
//!
//! - `clock`: time as the decisions read it.
//! - `agent`: what passes between the coordinator and an instance's agent
//!   (configuration, commands); `service`: the services an agent reports.
//! - `config`: the fleet file (projects, environments, deadlines) and its
//!   validation; `config_diff`: what a new fleet file would change; `sample`:
//!   the sample fleet of `--dev`.
//! - `release`: a registered release.
//! - `deploy`: the deployment model and its pure state machine (`machine`).
//! - `queue`: one FIFO per project and environment.
//! - `cloud`: the `Compute` / `LoadBalancer` / `Dns` traits the clouds implement,
//!   and the tags every launch carries.
//! - `error`: the kinds of failure (`Code`) every module's errors say they are.
//! - `infra`: the load balancers and records the fleet implies (plan / apply).
//! - `store`: the `Store` engine trait, typed tables (`Db`), batches, the
//!   in-memory engine and the suite every engine passes.
//!
//! Dependencies point down: `infra` → `cloud` → `deploy` → `config`, `clock`;
//! `store` depends on nothing else here (record types name their own tables).

#![forbid(unsafe_code)]

pub mod agent;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod config_diff;
pub mod deploy;
pub mod error;
pub mod freeze;
pub mod gates;
pub mod infra;
pub mod queue;
pub mod release;
pub mod sample;
pub mod service;
pub mod store;
#[cfg(test)]
mod testing;
