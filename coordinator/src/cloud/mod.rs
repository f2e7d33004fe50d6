//! The clouds: the traits live in the domain (`slipway_domain::cloud`); the
//! adapters that implement them live here: `local` (the embedded default, a
//! process playing AWS) and `aws` (the real SDK, a feature).

pub use slipway_domain::cloud::*;

#[cfg(feature = "aws")]
pub mod aws;
pub mod local;
