//! Slipway's agent, baked into every image: it bootstraps its certificate with the
//! launch's one-time token, keeps one stream open to the coordinator, and runs the
//! services of its instance.
//!
//! - `boot`: where bootstrap data comes from (`--user-data-file` or EC2's IMDSv2).
//! - `identity`: the agent's key and certificate (key made here, never sent).
//! - `session`: the stream to the coordinator, reconnecting with jittered backoff.
//! - `supervisor`: starts, restarts and stops services, and runs the health check;
//!   `restarts`: when an exited service starts again (its restart budget).

#![forbid(unsafe_code)]

pub mod boot;
pub mod identity;
pub mod restarts;
pub mod session;
pub mod supervisor;

/// Reported in hello, so operators see which agent each image carries.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
