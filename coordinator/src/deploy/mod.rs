//! Deployments: the model and the pure machine live in the domain
//! (`slipway_domain::deploy`); the executor here carries out the machine's
//! actions against the cloud and the store.

pub use slipway_domain::deploy::*;

pub mod executor;
