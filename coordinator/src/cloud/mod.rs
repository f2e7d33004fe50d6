//! The clouds: the traits live in the domain (`slipway_domain::cloud`); the
//! adapters implement them, each a crate of its own: `local` (the embedded
//! default, a process playing AWS: `slipway-local-cloud`) and `aws` (the real
//! SDK: `slipway-aws`, behind the `aws` feature).

pub use slipway_domain::cloud::*;

#[cfg(feature = "aws")]
pub use slipway_aws as aws;
pub use slipway_local_cloud as local;
