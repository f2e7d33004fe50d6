//! The clouds: the traits live in the domain (`slipway_domain::cloud`); the
//! adapters implement them: `local` (the embedded default, a process playing
//! AWS: its own crate and binary, `slipway-local-cloud`) and `aws` (the real
//! SDK, a feature).

pub use slipway_domain::cloud::*;

#[cfg(feature = "aws")]
pub mod aws;
pub use slipway_local_cloud as local;
